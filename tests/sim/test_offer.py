"""Tests for dispatch.sim.offer: the riders a simulated tick offers the policy, against a plain per-site oracle."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.candidates import RIDER_SIDE_PER_ORDER
from dispatch.sim.offer import IDLE_PER_PENDING, idle_quota, mean_drop_m, offered_riders


def _oracle(online, busy, site, x, y, speed, sx, sy, onward, quota, v, wm, all_busy) -> list[int]:  # type: ignore[no-untyped-def]
    keep = [r for r in range(len(online)) if busy[r] and (all_busy or quota[site[r]] > 0)]
    for s in range(len(sx)):
        idle = [r for r in range(len(online)) if online[r] and not busy[r] and site[r] == s]

        def key(r: int, s: int = s) -> tuple[float, int]:
            d = float(np.hypot(x[r] - sx[s], y[r] - sy[s]))
            return ((d + onward[s]) / (v * speed[r]) + wm * d, r)

        keep += sorted(idle, key=key)[: int(quota[s])]
    return sorted(keep)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 60), st.integers(1, 4), st.booleans())
def test_each_site_gets_its_cheapest_idle_riders_and_its_busy_riders(
    seed: int, m: int, n_sites: int, all_busy: bool
) -> None:
    rng = np.random.default_rng(seed)
    online = rng.random(m) < 0.8
    busy = online & (rng.random(m) < 0.3)
    site = rng.integers(0, n_sites, m)
    x = rng.integers(-3, 4, m) * 250.0  # coarse positions and speeds, so that ties happen
    y = rng.integers(-3, 4, m) * 250.0
    speed = rng.choice([0.9, 1.0, 1.1], m)
    sx = rng.normal(0, 300, n_sites)
    sy = rng.normal(0, 300, n_sites)
    onward = rng.choice([0.0, 1500.0], n_sites)
    quota = rng.integers(0, 6, n_sites)
    got = offered_riders(online, busy, site, x, y, speed, sx, sy, onward, quota, 4.5, 0.05, all_busy)
    assert got.tolist() == _oracle(online, busy, site, x, y, speed, sx, sy, onward, quota, 4.5, 0.05, all_busy)


def test_quota_only_where_orders_wait() -> None:
    q = idle_quota(np.array([2, 2, 0], dtype=np.int64), 4, 12)
    extra = (RIDER_SIDE_PER_ORDER + 1) * 12
    assert q.tolist() == [IDLE_PER_PENDING + extra, 0, 2 * IDLE_PER_PENDING + extra, 0]
    q4 = idle_quota(np.array([2, 2, 0], dtype=np.int64), 4, 12, rider_side=4)
    assert q4.tolist() == [IDLE_PER_PENDING + 5 * 12, 0, 2 * IDLE_PER_PENDING + 5 * 12, 0]


def test_mean_drop_distance_per_site() -> None:
    site = np.array([1, 1, 0], dtype=np.int64)
    got = mean_drop_m(site, np.array([3.0, 0.0, 10.0]), np.array([4.0, 2.0, 0.0]), np.zeros(3), np.zeros(3))
    assert got.tolist() == [10.0, 3.5, 0.0]
