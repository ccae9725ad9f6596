"""Tests for dispatch.kernels.insertion: the cheapest feasible insertion equals brute force over every position
pair, costed by the plain-Python oracle; apply_insertion puts the stops there; statuses say why not."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    MIXED,
    NOW,
    SINGLE_SITE,
    WEIGHTS,
    random_instance,
    random_routes,
    routes_of,
    simulate,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.geo import ProfileTravelTime, SpeedProfile
from dispatch.kernels import insertion as ins
from dispatch.kernels.route import evaluate_routes
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes

seeds = st.integers(0, 2**32 - 1)
modes = st.sampled_from([SINGLE_SITE, MIXED])


def inserted(seq, o, i, j):  # type: ignore[no-untyped-def]
    """``seq[:i] + [P] + seq[i:j] + [D] + seq[j:]``."""
    return [*seq[:i], (o, PICKUP), *seq[i:j], (o, DROPOFF), *seq[j:]]


def brute_force(inst, routes, r, o, mode, max_orders):  # type: ignore[no-untyped-def]
    """{(i, j): (delta cost, added lateness)} of every feasible insertion of order o into rider r's route."""
    seq = routes.stops(r)
    F = int(routes.frozen[r])
    old = simulate(inst.orders, inst.riders, r, seq, travel=inst.travel, n_frozen=F, mode=mode)
    assert old.feasible, old.violations
    out = {}
    for i in range(F, len(seq) + 1):
        for j in range(i, len(seq) + 1):
            new = simulate(
                inst.orders, inst.riders, r, inserted(seq, o, i, j), travel=inst.travel, n_frozen=F, mode=mode,
                max_orders=max_orders,
            )  # fmt: skip
            if new.feasible:
                out[(i, j)] = (new.cost - old.cost, new.lateness - old.lateness)
    return out, old


@settings(max_examples=50, deadline=None)
@given(seed=seeds, mode=modes, kind=st.sampled_from(["constant", "profile", "short_bins", "matrix", "minutes"]))
def test_insertion_costs_equal_brute_force(seed: int, mode: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 4))
    n_routed = 3 * m
    n_new = int(rng.integers(1, 4))
    inst = random_instance(rng, n_routed + n_new, m, kind=kind, capacity=(1, 7), shift=(300.0, 5400.0))
    seqs, frozen = random_routes(rng, inst, list(range(n_routed)), mode=mode, feasible_only=True)
    routes = routes_of(seqs, frozen, max(len(s) for s in seqs) + 2)
    max_orders = int(rng.integers(2, 8))
    ot, rt = inst.orders.as_tuple(), inst.riders.as_tuple()
    ev, tot = evaluate_routes(ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode)
    new = np.arange(n_routed, n_routed + n_new, dtype=np.int64)
    pair_o = np.repeat(new, m)
    pair_r = np.tile(np.arange(m, dtype=np.int64), n_new)
    todo = np.ones(pair_o.shape[0], dtype=np.bool_)
    online = np.ones(m, dtype=np.bool_)
    cost, pi, pj, late, status = ins.insertion_costs(
        ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode, max_orders, ev, tot, online, pair_o, pair_r, todo
    )
    for p in range(pair_o.shape[0]):
        o, r = int(pair_o[p]), int(pair_r[p])
        options, old = brute_force(inst, routes, r, o, mode, max_orders)
        if not options:
            assert cost[p] == np.inf, (o, r, cost[p], pi[p], pj[p])
            assert status[p] != ins.OK
            continue
        best = min(d for d, _ in options.values())
        tol = 1e-6 * max(1.0, abs(best), abs(old.cost))
        assert status[p] == ins.OK
        assert abs(cost[p] - best) <= tol, (o, r, cost[p], best)
        # The kernel's position pair is one of the brute force's best (ties allowed) and its numbers are its own.
        key = (int(pi[p]), int(pj[p]))
        assert key in options, (key, sorted(options))
        assert abs(options[key][0] - best) <= tol
        assert abs(late[p] - options[key][1]) <= 1e-6 * max(1.0, abs(options[key][1]))
        # apply_insertion puts the pickup before old stop i and the drop-off before old stop j.
        after = routes.copy()
        ins.apply_insertion(after.as_tuple(), r, o, key[0], key[1])
        assert after.stops(r) == inserted(routes.stops(r), o, *key)
        assert after.stops(r)[: frozen[r]] == routes.stops(r)[: frozen[r]]
        assert int(after.frozen[r]) == frozen[r]
        for q in range(m):
            if q != r:
                assert after.stops(q) == routes.stops(q)


# ----------------------------------------------------------------------------------------------------------------
# Handcrafted cases: statuses and frozen stops
# ----------------------------------------------------------------------------------------------------------------


def line_world(sizes=(1, 1, 1), **rider):  # type: ignore[no-untyped-def]
    """Orders 0 and 1 at site 0 (500, 0) with drop-offs 1 km and 2 km north of it; order 2 at site 1 (-500, 0),
    dropped 1 km north of that. The rider starts at (0, 0). 5 m/s, no detour."""
    orders = OrderTable.build(
        pick_x=[500.0, 500.0, -500.0],
        pick_y=[0.0, 0.0, 0.0],
        drop_x=[500.0, 500.0, -500.0],
        drop_y=[1000.0, 2000.0, 1000.0],
        site=[0, 0, 1],
        ready=[NOW, NOW, NOW],
        promised=[NOW + 3600.0] * 3,
        size=list(sizes),
        service_pick=[60.0, 60.0, 60.0],
        service_drop=[30.0, 30.0, 30.0],
    )
    args = {"x": [0.0], "y": [0.0], "avail": [NOW], "shift_end": [NOW + 3600.0], "capacity": [4]}
    args.update(rider)
    riders = RiderTable.build(**args)
    travel = ProfileTravelTime(profile=SpeedProfile.constant(5.0), detour=1.0).arrays()
    return orders, riders, travel


def insert(orders, riders, travel, routes, o, mode=SINGLE_SITE, max_orders=5, online=True):  # type: ignore[no-untyped-def]
    """insertion_costs for the one pair (o, rider 0): (cost, i, j, late, status)."""
    ot, rt = orders.as_tuple(), riders.as_tuple()
    ev, tot = evaluate_routes(ot, rt, routes.as_tuple(), travel, WEIGHTS, mode)
    res = ins.insertion_costs(
        ot, rt, routes.as_tuple(), travel, WEIGHTS, mode, max_orders, ev, tot, np.array([online]),
        np.array([o], dtype=np.int64), np.array([0], dtype=np.int64), np.ones(1, dtype=np.bool_),
    )  # fmt: skip
    return tuple(a[0] for a in res)


def test_insertion_joins_the_bag_at_the_same_site() -> None:
    orders, riders, travel = line_world()
    routes = Routes.from_lists([[(0, PICKUP), (0, DROPOFF)]], 4)
    cost, i, j, late, status = insert(orders, riders, travel, routes, 1)
    assert status == ins.OK
    # Best: pick order 1 up together with order 0 (either first), drop it after order 0 on the way north:
    # 1 km more (200 s) and 30 s of drop-off service, no pickup service of its own.
    assert j == 2 and i in (0, 1)
    assert late == 0.0
    assert cost == pytest.approx(230.0 + 0.05 * 1000.0)
    _ev, tot = evaluate_routes(orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, SINGLE_SITE)
    rs = routes.copy()
    ins.apply_insertion(rs.as_tuple(), 0, 1, i, j)
    _, tot2 = evaluate_routes(orders.as_tuple(), riders.as_tuple(), rs.as_tuple(), travel, WEIGHTS, SINGLE_SITE)
    assert cost == pytest.approx(tot2[3][0] - tot[3][0])


def test_insertion_statuses() -> None:
    orders, riders, travel = line_world()
    bag = Routes.from_lists([[(0, PICKUP), (0, DROPOFF)]], 4)
    # Order limit reached.
    cost, *_, status = insert(orders, riders, travel, bag, 1, max_orders=1)
    assert (cost, status) == (np.inf, ins.NO_CAPACITY)
    # Capacity in size units: order 1 takes 2 units, the rider has 1.
    big, small, _ = line_world(sizes=(1, 2, 1), capacity=[1])
    cost, *_, status = insert(big, small, travel, bag, 1)
    assert (cost, status) == (np.inf, ins.NO_CAPACITY)
    # Shift ends before the pickup (reached at NOW + 100) can be reached.
    _, short, _ = line_world(shift_end=[NOW + 50.0])
    cost, *_, status = insert(orders, short, travel, Routes.empty(1, 4), 1)
    assert (cost, status) == (np.inf, ins.AFTER_SHIFT)
    # Offline rider.
    cost, *_, status = insert(orders, riders, travel, Routes.empty(1, 4), 1, online=False)
    assert (cost, status) == (np.inf, ins.OFFLINE)


def test_insertion_trip_modes() -> None:
    """A rider at site 1 about to deliver order 2; order 1 is at site 0. Mixed: pick it up on the way and
    interleave; single site: only after order 2's bag is delivered (or before it is picked up)."""
    orders, riders, travel = line_world(x=[-500.0])
    route = Routes.from_lists([[(2, PICKUP), (2, DROPOFF)]], 4)
    mixed = insert(orders, riders, travel, route, 1, mode=MIXED)
    single = insert(orders, riders, travel, route, 1, mode=SINGLE_SITE)
    assert mixed[4] == single[4] == ins.OK
    assert (mixed[1], mixed[2]) == (1, 2)  # [P2, P1, D2, D1]
    assert (single[1], single[2]) in {(2, 2), (0, 0)}
    assert mixed[0] < single[0]


def test_insertion_never_moves_frozen_stops() -> None:
    """With the whole route frozen the only place is after it, however cheaper an earlier one would be."""
    orders, riders, travel = line_world()
    route = [(0, PICKUP), (0, DROPOFF)]
    free = insert(orders, riders, travel, Routes.from_lists([route], 4, [0]), 1)
    frozen = insert(orders, riders, travel, Routes.from_lists([route], 4, [2]), 1)
    assert free[0] < frozen[0]
    assert (frozen[1], frozen[2]) == (2, 2)
    one = insert(orders, riders, travel, Routes.from_lists([route], 4, [1]), 1)
    assert one[1] >= 1 and one[2] >= one[1]


@settings(max_examples=25, deadline=None)
@given(seed=seeds, mode=modes)
def test_insertion_costs_into_prices_only_todo_and_equals_insertion_costs(seed: int, mode: int) -> None:
    """The in-place kernels (serial and parallel) price pairs rider by rider: every ``todo`` pair gets exactly the
    numbers of ``insertion_costs``, every other pair keeps what the caller passed in."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 5))
    n_routed = 3 * m
    n_new = int(rng.integers(1, 6))
    inst = random_instance(rng, n_routed + n_new, m, kind="profile", capacity=(1, 7), shift=(300.0, 5400.0))
    seqs, frozen = random_routes(rng, inst, list(range(n_routed)), mode=mode, feasible_only=True)
    routes = routes_of(seqs, frozen, max(len(s) for s in seqs) + 2)
    ot, rt = inst.orders.as_tuple(), inst.riders.as_tuple()
    ev, tot = evaluate_routes(ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode)
    pair_o = np.repeat(np.arange(n_routed, n_routed + n_new, dtype=np.int64), m)
    pair_r = np.tile(np.arange(m, dtype=np.int64), n_new)
    P = pair_o.shape[0]
    todo = rng.random(P) < 0.6
    online = rng.random(m) < 0.8
    args = (ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode, 5, ev, tot, online, pair_o, pair_r)
    want = ins.insertion_costs(*args, np.ones(P, dtype=np.bool_))
    for fn in (ins.insertion_costs_into, ins.insertion_costs_into_parallel):
        out = (np.full(P, -7.0), np.full(P, -7), np.full(P, -7), np.full(P, -7.0), np.full(P, -7))
        fn(*args, todo, *out)
        for got, full in zip(out, want, strict=True):
            assert np.array_equal(got[todo], full[todo])
            assert np.all(got[~todo] == -7)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, n=st.integers(0, 40), m=st.integers(1, 6))
def test_by_rider_is_a_stable_grouping(seed: int, n: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    pair_r = rng.integers(0, m, n).astype(np.int64)
    todo = rng.random(n) < 0.7
    seq = ins.by_rider(pair_r, todo, m)
    want = sorted(np.flatnonzero(todo).tolist(), key=lambda p: (int(pair_r[p]), p))
    assert seq.tolist() == want


def test_insertion_tries_every_bag_position_when_the_shift_ends_within_the_bag() -> None:
    """A bag of two at one site and a new order there that is ready only after the rider's shift end: picked up
    straight after the bag's first order it would delay the second pickup past the shift end, so the only
    feasible place is after the bag's last pickup, a position that is otherwise priced as the first."""
    orders = OrderTable.build(
        pick_x=[500.0] * 3, pick_y=[0.0] * 3, drop_x=[500.0] * 3, drop_y=[1000.0, 2000.0, 1500.0], site=[0] * 3,
        ready=[NOW, NOW + 160.0, NOW + 450.0], promised=[NOW + 3600.0] * 3, service_pick=[60.0] * 3,
        service_drop=[30.0] * 3,
    )  # fmt: skip
    riders = RiderTable.build(x=[0.0], y=[0.0], avail=[NOW], shift_end=[NOW + 400.0], capacity=[4])
    travel = ProfileTravelTime(profile=SpeedProfile.constant(5.0), detour=1.0).arrays()
    routes = Routes.from_lists([[(0, PICKUP), (1, PICKUP), (0, DROPOFF), (1, DROPOFF)]], 8, [0])
    cost, i, j, _late, status = insert(orders, riders, travel, routes, 2)
    assert status == ins.OK and np.isfinite(cost)
    assert i == 2 and j >= 2
