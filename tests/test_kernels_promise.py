"""Tests for dispatch.kernels.promise helpers that the batch tests (test_promise_batch.py) do not cover."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.geo import ProfileTravelTime
from dispatch.kernels.promise import near_home, site_free_times
from dispatch.kernels.travel import pairwise_seconds

TRAVEL = ProfileTravelTime().arrays()
T0 = 1_750_046_400.0


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 300), st.integers(1, 6), st.integers(0, 40))
def test_free_times_sorted_as_far_as_needed(seed: int, k: int, n_sites: int, need_max: int) -> None:
    """Each site's free times hold the same times as a stable sort by (site, time) gives, with at least the first
    ``need`` of them in that order; riders out of reach or free only after their shift end are left out."""
    rng = np.random.default_rng(seed)
    m = k + 5
    idx = np.sort(rng.choice(m, k, replace=False)).astype(np.int64)
    site_x = np.arange(n_sites) * 10_000.0
    site_y = np.zeros(n_sites)
    near = rng.integers(0, n_sites, m).astype(np.int64)
    dist = rng.uniform(0.0, 3000.0, m)
    end_x = site_x[near[idx]] + rng.integers(0, 3, k) * 400.0  # few distinct points and times: many ties
    end_y = np.zeros(k)
    end_t = T0 + rng.integers(0, 4, k) * 60.0
    speed = np.ones(m)
    shift_end = T0 + rng.choice([120.0, 9000.0], m)
    capacity = rng.integers(1, 9, m).astype(np.int64)
    need = rng.integers(0, need_max + 1, n_sites).astype(np.int64)
    ptr, free_at, max_cap = site_free_times(TRAVEL, site_x, site_y, 2000.0, idx, end_t, end_x, end_y, near, dist,
                                            speed, shift_end, capacity, need)  # fmt: skip
    minus = np.full(k, -1, dtype=np.int64)
    s = near[idx]
    t = end_t + pairwise_seconds(TRAVEL, end_x, end_y, minus, site_x[s], site_y[s], minus, end_t, speed[idx])
    keep = (dist[idx] <= 2000.0) & (t < shift_end[idx])
    s, t, cap = s[keep], t[keep], capacity[idx][keep]
    order = np.lexsort((t, s))
    np.testing.assert_array_equal(ptr, np.searchsorted(s[order], np.arange(n_sites + 1)))
    for g in range(n_sites):
        want = t[order][ptr[g] : ptr[g + 1]]
        got = free_at[ptr[g] : ptr[g + 1]]
        u = min(max(int(need[g]), 1), want.shape[0])
        np.testing.assert_array_equal(got[:u], want[:u])
        np.testing.assert_array_equal(np.sort(got), want)
        assert max_cap[g] == (cap[s == g].max() if want.shape[0] else 0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_sites=st.integers(2, 30), j=st.integers(0, 200))
def test_near_home_agrees_with_a_kd_tree(seed: int, n_sites: int, j: int) -> None:
    """A point the kernel places at its home site is that site's by the k-d tree too, at the same distance to the
    last bit; points near a site (most of them within its clear radius) are found."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    sx, sy = rng.uniform(-2e4, 2e4, n_sites), rng.uniform(-2e4, 2e4, n_sites)
    tree = cKDTree(np.column_stack([sx, sy]))
    d2, _ = tree.query(np.column_stack([sx, sy]), k=2)
    clear = 0.5 * d2[:, 1] * (1.0 - 1e-9)
    home = rng.integers(-1, n_sites + 2, j)  # -1 and n_sites or more: no home
    at = np.clip(home, 0, n_sites - 1)
    px = sx[at] + rng.normal(0.0, 1.0, j) * clear[at]
    py = sy[at] + rng.normal(0.0, 1.0, j) * clear[at]
    hit, dist = near_home(px, py, np.arange(j, dtype=np.int64), home, sx, sy, clear)
    d, nearest = tree.query(np.column_stack([px, py]))
    assert not hit[(home < 0) | (home >= n_sites)].any()
    assert np.array_equal(nearest[hit], home[hit])
    assert np.array_equal(dist[hit], d[hit])
    if j:
        inside = (home >= 0) & (home < n_sites) & (np.hypot(px - sx[at], py - sy[at]) < 0.99 * clear[at])
        assert np.array_equal(hit[inside], np.ones(int(inside.sum()), dtype=bool))
