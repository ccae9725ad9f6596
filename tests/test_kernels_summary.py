"""Tests for dispatch.kernels.summary against plain numpy versions (the whole-table passes they replace)."""

from __future__ import annotations

import numpy as np
from conftest import SINGLE_SITE, WEIGHTS, random_instance, random_routes, routes_of
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.kernels.route import evaluate_routes
from dispatch.kernels.summary import accepting_rows, drop_counts, free_points, visits
from dispatch.state import DROPOFF, PICKUP, OrderTable, Routes


def plain_visits(orders: OrderTable, routes: Routes, arrive: np.ndarray) -> tuple[np.ndarray, ...]:
    width = routes.width
    pos = np.arange(width)[None, :]
    live = pos < routes.length[:, None]
    rr, ss = np.nonzero((routes.kind == PICKUP) & live & (pos + 1 >= routes.frozen[:, None]))
    dr, ds = np.nonzero((routes.kind == DROPOFF) & live)
    key_d = dr * width + ds
    q0 = np.searchsorted(key_d, rr * width + ss, side="right")
    q1 = np.searchsorted(key_d, (rr + 1) * width, side="left")
    do = routes.order[dr, ds]
    return (orders.site[routes.order[rr, ss]], rr, arrive[rr, ss], q0, q1, orders.drop_x[do], orders.drop_y[do],
            orders.drop_loc[do])  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 30), m=st.integers(1, 12))
def test_summaries_match_plain_numpy(seed: int, n: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    inst = random_instance(rng, max(n, 1), m)
    seqs, frozen = random_routes(rng, inst, list(range(n)), mode=SINGLE_SITE, feasible_only=False)
    routes = routes_of(seqs, frozen, 12)
    rt = routes.as_tuple()
    orders_t = inst.orders.as_tuple()
    ev, tot = evaluate_routes(orders_t, inst.riders.as_tuple(), rt, inst.arrays, WEIGHTS, SINGLE_SITE)

    live = np.arange(routes.width)[None, :] < routes.length[:, None]
    n_drops = ((routes.kind == DROPOFF) & live).sum(axis=1)
    assert np.array_equal(drop_counts(rt), n_drops)
    riders = inst.riders
    online = rng.random(m) < 0.8
    now = float(np.median(riders.shift_end))
    max_orders = int(rng.integers(1, 4))
    rows = rng.permutation(m)[: int(rng.integers(0, m + 1))].astype(np.int64)
    want = online & (riders.shift_end > now) & (riders.shift_start <= now) & (n_drops < max_orders)
    got = accepting_rows(rows, rt, online, riders.shift_start, riders.shift_end, now, max_orders)
    assert np.array_equal(got, want[rows])

    x, y, loc, at = free_points(orders_t, inst.riders.as_tuple(), rt, tot[0])
    for r in range(m):
        L = int(routes.length[r])
        if L == 0:
            want = (inst.riders.x[r], inst.riders.y[r], inst.riders.loc[r])
        else:
            o, k = int(routes.order[r, L - 1]), int(routes.kind[r, L - 1])
            o_t = inst.orders
            want = (o_t.pick_x[o], o_t.pick_y[o], o_t.pick_loc[o]) if k == PICKUP else (
                o_t.drop_x[o], o_t.drop_y[o], o_t.drop_loc[o])  # fmt: skip
        assert (x[r], y[r], loc[r]) == want
    assert np.array_equal(at, tot[0])

    got = visits(orders_t, rt, ev[0])
    for a, b in zip(got, plain_visits(inst.orders, routes, ev[0]), strict=True):
        assert np.array_equal(a, b)
