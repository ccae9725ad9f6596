"""Tests for dispatch.sim.offer: the riders a simulated tick offers the policy, against a plain per-site oracle."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.candidates import RIDER_SIDE_PER_ORDER
from dispatch.kernels.route import PICKUP
from dispatch.sim.offer import (
    IDLE_PER_PENDING,
    Returning,
    idle_quota,
    mean_drop_m,
    offered_riders,
    returning_quota,
)


def _oracle(online, busy, site, x, y, speed, sx, sy, onward, quota, v, wm, all_busy) -> list[int]:  # type: ignore[no-untyped-def]
    keep = [r for r in range(len(online)) if busy[r] and (all_busy or quota[site[r]] > 0)]
    for s in range(len(sx)):
        idle = [r for r in range(len(online)) if online[r] and not busy[r] and site[r] == s]

        def key(r: int, s: int = s) -> tuple[float, int]:
            d = float(np.hypot(x[r] - sx[s], y[r] - sy[s]))
            return ((d + onward[s]) / (v * speed[r]) + wm * d, r)

        keep += sorted(idle, key=key)[: int(quota[s])]
    return sorted(keep)


def _riders_and_sites(rng: np.random.Generator, m: int, n_sites: int) -> tuple[np.ndarray, ...]:
    """Random riders' sites, positions and speeds, and sites' positions, onward distances and idle quotas (coarse
    positions and speeds, so that ties happen)."""
    site = rng.integers(0, n_sites, m)
    x = rng.integers(-3, 4, m) * 250.0
    y = rng.integers(-3, 4, m) * 250.0
    speed = rng.choice([0.9, 1.0, 1.1], m)
    sx = rng.normal(0, 300, n_sites)
    sy = rng.normal(0, 300, n_sites)
    onward = rng.choice([0.0, 1500.0], n_sites)
    quota = rng.integers(0, 6, n_sites)
    return site, x, y, speed, sx, sy, onward, quota


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 60), st.integers(1, 4), st.booleans())
def test_each_site_gets_its_cheapest_idle_riders_and_its_busy_riders(
    seed: int, m: int, n_sites: int, all_busy: bool
) -> None:
    rng = np.random.default_rng(seed)
    online = rng.random(m) < 0.8
    busy = online & (rng.random(m) < 0.3)
    site, x, y, speed, sx, sy, onward, quota = _riders_and_sites(rng, m, n_sites)
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


def _returning_oracle(busy, site, speed, sx, sy, onward, quota, v, wm, ret) -> set[int]:  # type: ignore[no-untyped-def]
    """The busy riders the returning limit leaves out, by a plain per-site sort (the inert riders never ranked,
    and left out when ``ret.drop_inert``)."""
    length, frozen, order, kind = ret.routes
    pick_x, pick_y, drop_x, drop_y = ret.points
    out: set[int] = set()
    for s in range(len(sx)):
        if quota[s] <= 0:
            continue
        if ret.drop_inert:
            out |= {r for r in range(len(busy)) if busy[r] and site[r] == s and ret.inert[r]}
        if ret.quota[s] < 0:
            continue
        returning = []
        for r in range(len(busy)):
            if not busy[r] or site[r] != s or ret.inert[r]:
                continue
            if any(kind[r, j] == PICKUP for j in range(max(frozen[r] - 1, 0), length[r])):
                continue  # visiting its site: always offered
            last, o = length[r] - 1, order[r, length[r] - 1]
            ex, ey = (pick_x[o], pick_y[o]) if kind[r, last] == PICKUP else (drop_x[o], drop_y[o])
            d = float(np.hypot(ex - sx[s], ey - sy[s]))
            key = max(0.0, ret.end_t[r] - ret.now) + (d + onward[s]) / (v * speed[r]) + wm * d
            returning.append((key, r))
        out |= {r for _k, r in sorted(returning)[int(ret.quota[s]) :]}
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 60), st.integers(1, 4), st.booleans())
def test_returning_riders_are_cut_to_the_cheapest_per_site_and_visitors_stay(
    seed: int, m: int, n_sites: int, drop_inert: bool
) -> None:
    rng = np.random.default_rng(seed)
    online = rng.random(m) < 0.8
    width = 6
    length = np.where(online & (rng.random(m) < 0.6), rng.integers(1, width + 1, m), 0).astype(np.int64)
    busy = length > 0
    frozen = (rng.random(m) * (length + 1)).astype(np.int64)
    n_orders = 20
    order = rng.integers(0, n_orders, (m, width)).astype(np.int64)
    kind = (rng.random((m, width)) < 0.6).astype(np.int64)  # mostly drop-offs (kind 1): many riders return
    points = tuple(rng.integers(-4, 5, n_orders) * 250.0 for _ in range(4))
    site, x, y, speed, sx, sy, onward, quota = _riders_and_sites(rng, m, n_sites)
    now = 1000.0
    end_t = now + rng.choice([-60.0, 0.0, 300.0, 900.0], m)  # ties, and routes ending before now
    limit = rng.integers(-1, 4, n_sites)
    inert = busy & (rng.random(m) < 0.2)  # riders that accept no order: never ranked, offered or left out
    ret = Returning((length, frozen, order, kind), points, end_t, now, limit, inert, drop_inert)  # type: ignore[arg-type]
    got = offered_riders(online, busy, site, x, y, speed, sx, sy, onward, quota, 4.5, 0.05, False, None, None, ret)
    full = _oracle(online, busy, site, x, y, speed, sx, sy, onward, quota, 4.5, 0.05, False)
    left_out = _returning_oracle(busy, site, speed, sx, sy, onward, quota, 4.5, 0.05, ret)
    assert got.tolist() == [r for r in full if r not in left_out]
    # with every busy rider offered (a baseline policy), the limit is not applied
    assert offered_riders(online, busy, site, x, y, speed, sx, sy, onward, quota, 4.5, 0.05, True, None, None,
                          ret).tolist() == _oracle(online, busy, site, x, y, speed, sx, sy, onward, quota, 4.5, 0.05,
                                                   True)  # fmt: skip


def test_returning_quota_only_where_orders_wait() -> None:
    q = returning_quota(np.array([2, 2, 0], dtype=np.int64), 4, 12)
    assert q.tolist() == [12 + 1, 0, 12 + 2, 0]
