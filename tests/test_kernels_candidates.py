"""Tests for dispatch.kernels.candidates' per-group estimate row (``_row_profile``) against the generic estimates it
stands for (``_estimate`` and ``bag_estimate``), and for ``travel.first_bin`` against ``profile_seconds``. The
candidate rule as a whole is tested in test_candidates.py."""

from __future__ import annotations

import numpy as np
from conftest import random_instance
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.kernels.candidates import _estimate, _row_profile, bag_estimate, pool_profile, pool_scratch
from dispatch.kernels.travel import first_bin, profile_seconds


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bin_s=st.sampled_from([60.0, 300.0, 3600.0]),
    depart=st.floats(1.6e9, 1.8e9),
    factor=st.floats(0.5, 1.5),
    share=st.floats(0.0, 1.0),
)
def test_first_bin_gives_profile_seconds_within_the_bin(
    seed: int, bin_s: float, depart: float, factor: float, share: float
) -> None:
    """Within ``reach`` the duration is ``metres / v`` to the last bit; the reach ends at the bin's end."""
    rng = np.random.default_rng(seed)
    speeds = rng.uniform(2.0, 7.0, int(86_400 / bin_s))
    params = np.array([bin_s, 1.3, 28_800.0, 0.0, 0.0])
    v, reach = first_bin(params, speeds, depart, factor)
    assert reach > 0.0
    metres = share * reach
    if metres > 0.0:
        assert metres / v == profile_seconds(params, speeds, metres, depart, factor)
    # Riding the whole reach takes the rest of the bin: the next second is in another bin.
    local = depart + 28_800.0
    assert abs(reach / v - (np.floor(local / bin_s) + 1.0) * bin_s + local) < 1e-6 * bin_s


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["constant", "profile", "short_bins", "minutes"]))
def test_row_profile_equals_the_generic_estimates(seed: int, kind: str) -> None:
    """Each order's row over a random pool (riders with and without a visit, some out of shift, visits with 0 to 4
    later drop-off points, legs from the bag within and beyond the visit's speed bin) is, to the last bit, the
    smaller of the append estimate and the bag estimate, as the generic path computes them."""
    rng = np.random.default_rng(seed)
    inst = random_instance(rng, 12, 20, n_sites=1, kind=kind)
    orders = inst.orders.as_tuple()
    travel = inst.arrays
    weights = np.array([1.0, 0.05, 20.0])
    speed = inst.riders.speed
    # Visits: half the riders pass the site, each with 0-4 later drop-off points.
    n_vis = 10
    counts = rng.integers(0, 5, n_vis)
    q1 = np.cumsum(counts).astype(np.int64)
    q0 = q1 - counts
    n_drop = int(q1[-1])
    vis_at = 1.7e9 + rng.uniform(-300.0, 3000.0, n_vis)
    drop_x = rng.uniform(-3000.0, 3000.0, n_drop)
    drop_y = rng.uniform(-3000.0, 3000.0, n_drop)
    visits = (
        np.zeros(n_vis, np.int64),
        np.arange(n_vis, dtype=np.int64),
        vis_at,
        q0,
        q1,
        drop_x,
        drop_y,
        np.full(n_drop, -1, np.int64),
    )
    n_pool = 20
    p_r = np.arange(n_pool, dtype=np.int64)
    p_v = np.full(n_pool, -1, dtype=np.int64)
    p_v[rng.permutation(n_pool)[:n_vis]] = np.arange(n_vis)  # the visitors anywhere in the pool
    p_m1 = rng.uniform(0.0, 5000.0, n_pool)
    p_fat = 1.7e9 + rng.uniform(0.0, 900.0, n_pool)
    p_arr = np.where(rng.random(n_pool) < 0.2, np.inf, p_fat + p_m1 / 4.5)
    shared = pool_scratch(n_pool, max(1, int(counts.max())))
    nv, width = pool_profile(travel, visits, n_pool, p_r, p_v, speed, shared)
    assert nv == n_vis
    row = np.empty(n_pool)
    for o in range(12):
        m2, t2 = rng.uniform(100.0, 4000.0), rng.uniform(30.0, 900.0)
        _row_profile(orders, travel, weights, o, m2, t2, n_pool, p_m1, p_arr, p_fat, speed[p_r], shared, nv, width,
                     row)  # fmt: skip
        for b in range(n_pool):
            want = np.inf
            if p_arr[b] < np.inf:
                want = _estimate(orders, weights, o, p_m1[b], p_arr[b], p_fat[b], m2, t2, speed[b])
            if p_v[b] >= 0:
                v = p_v[b]
                bag = bag_estimate(orders, travel, weights, o, vis_at[v], q0[v], q1[v], drop_x, drop_y, visits[7],
                                   speed[b])  # fmt: skip
                want = min(want, bag)
            assert row[b] == want, (o, b, row[b], want)
