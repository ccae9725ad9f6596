"""kernels.movement.advance_riders against a plain numpy version of the same rule (the simulator's former code)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.kernels.movement import advance_riders, clock_riders
from dispatch.kernels.route import MIXED, evaluate_routes
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes
from dispatch.synthetic import NOW, CitySpec, city_snapshot

F64 = npt.NDArray[np.float64]


def numpy_advance(orders: OrderTable, riders: RiderTable, routes: Routes, ev: tuple[Any, ...], rows: Any,
                  t_next: float, picked_at: F64, delivered_at: F64, metres: F64, delivered: Any) -> None:  # fmt: skip
    """The oracle: whole-array numpy, as dispatch.sim.loop did it before the kernel."""
    arrive, depart = ev[0][rows], ev[1][rows]
    cum_metres = ev[5][rows]
    width = routes.width
    length = routes.length[rows]
    order = routes.order[rows]
    kind = routes.kind[rows]
    pos = np.arange(width)[None, :]
    done = (pos < length[:, None]) & (depart <= t_next)
    n_done = done.sum(axis=1)
    moved = np.flatnonzero(n_done)
    if moved.size:
        qq, ss = np.nonzero(done)
        o = order[qq, ss]
        k = kind[qq, ss]
        pick = k == PICKUP
        picked_at[o[pick]] = np.maximum(arrive[qq, ss][pick], orders.ready[o[pick]])
        drop = ~pick
        delivered_at[o[drop]] = arrive[qq, ss][drop]
        np.add.at(delivered, rows[qq[drop]], 1)
        last = n_done[moved] - 1
        lo = order[moved, last]
        lk = kind[moved, last]
        r = rows[moved]
        metres[r] += cum_metres[moved, last]
        riders.x[r] = np.where(lk == PICKUP, orders.pick_x[lo], orders.drop_x[lo])
        riders.y[r] = np.where(lk == PICKUP, orders.pick_y[lo], orders.drop_y[lo])
        riders.loc[r] = np.where(lk == PICKUP, orders.pick_loc[lo], orders.drop_loc[lo])
        riders.avail[r] = depart[moved, last]
        src = np.minimum(pos + n_done[moved, None], width - 1)
        keep = pos < (length[moved] - n_done[moved])[:, None]
        routes.order[r] = np.where(keep, np.take_along_axis(order[moved], src, axis=1), -1)
        routes.kind[r] = np.where(keep, np.take_along_axis(kind[moved], src, axis=1), 0)
        routes.length[r] -= n_done[moved]
        routes.frozen[r] = np.maximum(routes.frozen[r] - n_done[moved], 0)
    routes.frozen[rows] = np.where(routes.length[rows] > 0, np.maximum(routes.frozen[rows], 1), 0)


def _copy_riders(r: RiderTable) -> RiderTable:
    return RiderTable(**{f: getattr(r, f).copy() for f in r.__dataclass_fields__})


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), horizon=st.floats(0.0, 3600.0), share=st.floats(0.0, 1.0))
def test_advance_riders_matches_numpy(seed: int, horizon: float, share: float) -> None:
    snap = city_snapshot(CitySpec(n_orders=40, n_riders=30, n_sites=3, seed=seed))
    orders, routes = snap.orders, snap.routes
    ev, _tot = evaluate_routes(orders.as_tuple(), snap.riders.as_tuple(), routes.as_tuple(), snap.travel,
                               np.array([1.0, 0.0, 20.0]), MIXED)  # fmt: skip
    rng = np.random.default_rng(seed)
    busy = np.flatnonzero(routes.length > 0)
    rows = np.sort(busy[rng.random(busy.size) < share]).astype(np.int64)
    t_next = NOW + horizon
    n, m = orders.n, snap.riders.m
    state = []
    for _ in range(2):
        riders = _copy_riders(snap.riders)
        state.append((riders, routes.copy(), np.full(n, np.nan), np.full(n, np.nan), np.zeros(m),
                      np.zeros(m, dtype=np.int64)))  # fmt: skip
    r1, rt1, p1, d1, me1, de1 = state[0]
    r2, rt2, p2, d2, me2, de2 = state[1]
    before_len, before_frozen = rt1.length.copy(), rt1.frozen.copy()
    changed = advance_riders(orders.as_tuple(), r1.as_tuple(), rt1.as_tuple(), ev[0], ev[1], ev[5], rows, t_next,
                             p1, d1, me1, de1)  # fmt: skip
    numpy_advance(orders, r2, rt2, ev, rows, t_next, p2, d2, me2, de2)
    for a, b in ((rt1.length, rt2.length), (rt1.frozen, rt2.frozen), (rt1.order, rt2.order), (rt1.kind, rt2.kind),
                 (p1, p2), (d1, d2), (me1, me2), (de1, de2), (r1.x, r2.x), (r1.y, r2.y), (r1.loc, r2.loc),
                 (r1.avail, r2.avail)):  # fmt: skip
        assert np.array_equal(a, b, equal_nan=True)
    want = (rt1.length[rows] != before_len[rows]) | (rt1.frozen[rows] != before_frozen[rows])
    assert np.array_equal(changed, want)
    # Every stop left is still in order, and the routes' other riders are untouched.
    other = np.setdiff1d(np.arange(m), rows)
    assert np.array_equal(rt1.order[other], routes.order[other])
    assert set(np.unique(rt1.kind[rt1.order >= 0])) <= {PICKUP, DROPOFF}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(0, 50))
def test_clock_riders_matches_plain_numpy(seed: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    now = 1000.0
    length = np.where(rng.random(m) < 0.5, 0, rng.integers(1, 6, m)).astype(np.int64)
    online = rng.random(m) < 0.7
    shift_end = now + rng.choice([-60.0, 0.0, 60.0], m)
    avail = now + rng.uniform(-100.0, 100.0, m)
    dirty = rng.random(m) < 0.3
    empty = length == 0
    leaving = online & empty & (shift_end <= now)
    want_online = online & ~leaving
    want_avail = np.where(want_online & empty, np.maximum(avail, now), avail)
    want_dirty = dirty | empty
    gone, busy = clock_riders(length, online, shift_end, avail, dirty, now, 0, m)
    assert gone.tolist() == np.flatnonzero(leaving).tolist()
    assert busy == bool((length > 0).any())
    assert np.array_equal(online, want_online) and np.array_equal(avail, want_avail)
    assert np.array_equal(dirty, want_dirty)
