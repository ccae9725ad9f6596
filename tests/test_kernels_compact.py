"""Tests for dispatch.kernels.compact: the active set's routes over their own order indices, and back."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.kernels.compact import compact_routes, scatter_routes, take_evaluation
from dispatch.kernels.route import allocate_evaluation
from dispatch.state import DROPOFF, PICKUP, Routes


def random_routes(rng: np.random.Generator, m: int, n: int, width: int) -> tuple[Routes, np.ndarray]:
    """Routes over distinct orders of 0..n-1 (each order in at most one route), and the orders in none."""
    pool = rng.permutation(n).tolist()
    stops: list[list[tuple[int, int]]] = []
    for _ in range(m):
        take = [pool.pop() for _ in range(min(len(pool), int(rng.integers(0, width // 2 + 1))))]
        seq = [(o, PICKUP) for o in take] + [(o, DROPOFF) for o in take]
        stops.append(seq[int(rng.integers(0, len(take) + 1)) :] if take else [])  # some pickups already made
    frozen = [int(rng.integers(0, len(s) + 1)) for s in stops]
    return Routes.from_lists(stops, width, frozen), np.array(sorted(pool), dtype=np.int64)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 15), n=st.integers(1, 60))
def test_compact_then_scatter_round_trips(seed: int, m: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    routes, free = random_routes(rng, m, n, 10)
    act_r = np.flatnonzero(rng.random(m) < 0.7).astype(np.int64)
    pending = rng.permutation(free)[: int(rng.integers(0, free.size + 1))].astype(np.int64)
    scratch = np.full(n, -1, dtype=np.int64)
    act_o, length, frozen, order, kind, local_pending = compact_routes(routes.as_tuple(), act_r, pending, scratch)

    assert np.all(scratch == -1)
    routed = [int(routes.order[r, s]) for r in act_r for s in range(routes.length[r])]
    assert act_o.tolist() == sorted(set(routed) | set(pending.tolist()))
    assert np.array_equal(act_o[local_pending], pending)
    assert np.array_equal(length, routes.length[act_r]) and np.array_equal(frozen, routes.frozen[act_r])
    for a, r in enumerate(act_r):
        L = int(length[a])
        assert np.array_equal(act_o[order[a, :L]], routes.order[r, :L])
        assert np.array_equal(kind[a, :L], routes.kind[r, :L])
        assert np.all(order[a, L:] == -1)

    back = Routes.empty(m, routes.width)
    scatter_routes(back.as_tuple(), act_r, act_o, (length, frozen, order, kind))
    for r in act_r:
        L = int(routes.length[r])
        assert back.length[r] == L and back.frozen[r] == routes.frozen[r]
        assert np.array_equal(back.order[r, :L], routes.order[r, :L])
        assert np.all(back.order[r, L:] == -1)
    others = np.setdiff1d(np.arange(m), act_r)
    assert np.all(back.length[others] == 0)


def test_compact_orders_far_apart_are_sorted_too() -> None:
    """Order indices spread thinly over a long range (an old order still waiting beside the day's new ones): the
    kernel sorts them instead of reading the marks across the range; the result is the same kind."""
    n = 200_000
    routes = Routes.from_lists([[(150_000, PICKUP), (150_000, DROPOFF)], [(7, DROPOFF)], [(199_999, DROPOFF)]], 4)
    pending = np.array([3, 120_000], dtype=np.int64)
    scratch = np.full(n, -1, dtype=np.int64)
    act_o, length, _frozen, order, _kind, local_pending = compact_routes(
        routes.as_tuple(), np.arange(3, dtype=np.int64), pending, scratch
    )
    assert act_o.tolist() == [3, 7, 120_000, 150_000, 199_999]
    assert np.all(scratch == -1)
    assert act_o[local_pending].tolist() == [3, 120_000]
    assert act_o[order[0, : length[0]]].tolist() == [150_000, 150_000]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 30), width=st.integers(1, 8), q=st.integers(0, 40))
def test_take_evaluation_copies_each_rows_stops(seed: int, m: int, width: int, q: int) -> None:
    """Each taken per-stop row equals the source row up to that rider's route length (float and int arrays
    alike), and the totals are the rows' own."""
    rng = np.random.default_rng(seed)
    length = rng.integers(0, width + 1, m).astype(np.int64)
    idx = rng.integers(0, m, q).astype(np.int64)  # repeats allowed
    ev, tot = allocate_evaluation(m, width)
    for a in (*ev, *tot):
        a[:] = rng.integers(-5, 5, a.shape).astype(a.dtype) if a.dtype != np.float64 else rng.random(a.shape)
    ev_rows, tot_rows = take_evaluation(ev, tot, idx, length)
    for a, out in zip(ev, ev_rows, strict=True):
        assert out.shape == (q, width) and out.dtype == a.dtype
        for row, r in enumerate(idx.tolist()):
            n = int(length[r])
            assert np.array_equal(out[row, :n], a[r, :n])
    for a, out in zip(tot, tot_rows, strict=True):
        assert out.dtype == a.dtype and np.array_equal(out, a[idx])
