"""Tests for dispatch.kernels.localsearch: improve_route never makes a route worse, keeps the frozen prefix, the
stops and precedence, and finds known improvements."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from conftest import (
    MIXED,
    NOW,
    SINGLE_SITE,
    WEIGHTS,
    ConstantTravel,
    close,
    random_instance,
    random_routes,
    routes_of,
    simulate,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.geo import ProfileTravelTime, SpeedProfile
from dispatch.kernels.localsearch import EPS, improve_route, improve_routes
from dispatch.kernels.route import sequence_cost
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from([SINGLE_SITE, MIXED]),
    passes=st.integers(1, 3),
    pairs=st.booleans(),
)
def test_improve_route_never_worse_and_keeps_structure(seed: int, mode: int, passes: int, pairs: bool) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 4))
    inst = random_instance(rng, 4 * m, m, kind="constant", capacity=(2, 9))
    seqs, frozen = random_routes(
        rng, inst, list(range(inst.orders.n)), mode=mode, feasible_only=bool(rng.random() < 0.8), max_len=10
    )
    routes = routes_of(seqs, frozen, 10)
    max_orders = int(rng.integers(2, 7))
    ot, rt = inst.orders.as_tuple(), inst.riders.as_tuple()
    for r in range(m):
        old = routes.stops(r)
        F = frozen[r]
        sim0 = simulate(
            inst.orders, inst.riders, r, old, travel=inst.travel, n_frozen=F, mode=mode, max_orders=max_orders
        )
        before, after = improve_route(
            ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode, max_orders, r, passes, pairs
        )
        new = routes.stops(r)
        assert int(routes.length[r]) == len(old) and int(routes.frozen[r]) == F
        if not sim0.feasible:
            assert before == after == np.inf
            assert new == old  # an infeasible route is left alone
            continue
        assert close(before, sim0.cost, abs_=1e-5)
        assert after <= before
        assert new[:F] == old[:F]
        assert Counter(new) == Counter(old)
        sim1 = simulate(
            inst.orders, inst.riders, r, new, travel=inst.travel, n_frozen=F, mode=mode, max_orders=max_orders
        )
        assert sim1.feasible, sim1.violations  # precedence, capacity, shift end, trip mode, order limit
        assert close(after, sim1.cost, abs_=1e-5)


def zigzag():  # type: ignore[no-untyped-def]
    """Four orders already on board, drop-offs on a line east of the rider at 1, 2, 3 and 4 km."""
    xs = [1000.0, 2000.0, 3000.0, 4000.0]
    orders = OrderTable.build(
        pick_x=[0.0] * 4,
        pick_y=[0.0] * 4,
        drop_x=xs,
        drop_y=[0.0] * 4,
        site=[0] * 4,
        ready=[NOW] * 4,
        promised=[NOW + 86400.0] * 4,
        service_drop=[30.0] * 4,
    )
    riders = RiderTable.build(x=[0.0], y=[0.0], avail=[NOW], shift_end=[NOW + 3600.0], capacity=[4])
    travel = ProfileTravelTime(profile=SpeedProfile.constant(5.0), detour=1.0).arrays()
    return orders, riders, travel


@pytest.mark.parametrize("mode", [SINGLE_SITE, MIXED])
def test_improve_route_untangles_a_zigzag(mode: int) -> None:
    orders, riders, travel = zigzag()
    seq = [(0, DROPOFF), (2, DROPOFF), (1, DROPOFF), (3, DROPOFF)]  # 1, 3, 2, 4 km: 6 km ridden
    routes = Routes.from_lists([seq], 4)
    before, after = improve_route(
        orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, mode, 5, 0, 3, False
    )
    assert routes.stops(0) == [(0, DROPOFF), (1, DROPOFF), (2, DROPOFF), (3, DROPOFF)]  # 4 km
    # 2 km less at 5 m/s: 400 s and 100 m-cost units saved.
    assert before - after == pytest.approx(400.0 + 0.05 * 2000.0)
    sim = simulate(orders, riders, 0, routes.stops(0), travel=ConstantTravel(5.0, 1.0), mode=mode)
    assert after == pytest.approx(sim.cost)


def test_improve_route_keeps_the_frozen_stop_first() -> None:
    """The drop-off at 3 km is frozen first; the best rest is 4, 2, 1 km (7 km), not 2, 1, 4 km (8 km)."""
    orders, riders, travel = zigzag()
    seq = [(2, DROPOFF), (0, DROPOFF), (3, DROPOFF), (1, DROPOFF)]
    routes = Routes.from_lists([seq], 4, [1])
    improve_route(orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, SINGLE_SITE, 5, 0, 3, True)
    assert routes.stops(0) == [(2, DROPOFF), (3, DROPOFF), (1, DROPOFF), (0, DROPOFF)]
    assert int(routes.frozen[0]) == 1


def test_improve_route_moves_a_pickup_and_drop_off_pair() -> None:
    """A bag picked up and delivered out of the way is moved to where the rider passes anyway."""
    orders = OrderTable.build(
        pick_x=[0.0, 2000.0],
        pick_y=[0.0, 0.0],
        drop_x=[4000.0, 3000.0],
        drop_y=[0.0, 0.0],
        site=[0, 1],
        ready=[NOW, NOW],
        promised=[NOW + 86400.0] * 2,
    )
    riders = RiderTable.build(x=[0.0], y=[0.0], avail=[NOW], shift_end=[NOW + 7200.0], capacity=[4])
    travel = ProfileTravelTime(profile=SpeedProfile.constant(5.0), detour=1.0).arrays()
    # Deliver order 0 at 4 km, then come back to 2 km for order 1 and deliver it at 3 km: 7 km.
    seq = [(0, PICKUP), (0, DROPOFF), (1, PICKUP), (1, DROPOFF)]
    routes = Routes.from_lists([seq], 4)
    before, after = improve_route(
        orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, MIXED, 5, 0, 3, True
    )
    assert routes.stops(0) == [(0, PICKUP), (1, PICKUP), (1, DROPOFF), (0, DROPOFF)]  # 4 km in mixed mode
    assert after < before
    # In single-site mode that interleaving is not allowed, and the route is already the best allowed.
    routes = Routes.from_lists([seq], 4)
    before, after = improve_route(
        orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, SINGLE_SITE, 5, 0, 3, True
    )
    assert routes.stops(0) == seq and after == before


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from([SINGLE_SITE, MIXED]))
def test_improve_routes_gain_is_the_sum_of_route_gains(seed: int, mode: int) -> None:
    rng = np.random.default_rng(seed)
    inst = random_instance(rng, 12, 3, kind="constant")
    seqs, frozen = random_routes(rng, inst, list(range(12)), mode=mode, feasible_only=False, max_len=10)
    routes = routes_of(seqs, frozen, 10)
    ot, rt = inst.orders.as_tuple(), inst.riders.as_tuple()
    which = np.array([0, 2], dtype=np.int64)
    costs_before = [
        simulate(inst.orders, inst.riders, r, seqs[r], travel=inst.travel, n_frozen=frozen[r], mode=mode).cost
        for r in range(3)
    ]
    gain, improved = improve_routes(ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode, 5, which, 2, True)
    assert routes.stops(1) == seqs[1]  # not in ``which``
    want = 0.0
    for r in (0, 2):
        sim = simulate(inst.orders, inst.riders, r, routes.stops(r), travel=inst.travel, n_frozen=frozen[r], mode=mode)
        if sim.feasible:
            want += costs_before[r] - sim.cost
    assert gain >= -1e-9
    assert gain == pytest.approx(want, abs=1e-5)
    # The riders reported improved are exactly those whose stops changed.
    assert improved.tolist() == [r for r in (0, 2) if routes.stops(r) != seqs[r]]


def plain_search(inst, rider, seq, F, mode, max_orders, passes, pairs):  # type: ignore[no-untyped-def]
    """The same moves in the same order (pair relocation when ``pairs``), each priced by ``sequence_cost`` of the
    whole sequence: the oracle for the kernel's priced-from-the-change, stop-early version. Returns (final
    sequence, cost)."""

    def cost(s: list[tuple[int, int]]) -> float:
        o = np.array([a for a, _ in s], dtype=np.int64)
        k = np.array([b for _, b in s], dtype=np.int64)
        return float(
            sequence_cost(inst.orders.as_tuple(), rider, inst.arrays, WEIGHTS, mode, o, k, len(s), F, max_orders)
        )

    cur = list(seq)
    n = len(cur)
    best = cost(cur)
    if n - F < 2 or best == np.inf:
        return cur, best

    def offer(cand: list[tuple[int, int]]) -> bool:
        nonlocal best, cur
        c = cost(cand)
        if c < best - EPS:
            best, cur = c, cand
            return True
        return False

    for _ in range(passes):
        improved = False
        for ln in (1, 2, 3):
            for a in range(F, n - ln + 1):
                for b in range(F, n - ln + 1):
                    if b != a:
                        seg, rest = cur[a : a + ln], cur[:a] + cur[a + ln :]
                        improved |= offer(rest[:b] + seg + rest[b:])
        for a in range(F, n - 1):
            for b in range(a + 1, n):
                improved |= offer(cur[:a] + cur[a : b + 1][::-1] + cur[b + 1 :])
        for p in range(F, n if pairs else F):
            o, k = cur[p]
            if k != PICKUP or (o, DROPOFF) not in cur:
                continue
            rest = [st_ for st_ in cur if st_[0] != o]
            for i in range(F, n - 1):
                for j in range(i, n - 1):
                    improved |= offer([*rest[:i], (o, PICKUP), *rest[i:j], (o, DROPOFF), *rest[j:]])
            if improved:
                break
        if not improved:
            break
    return cur, best


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from([SINGLE_SITE, MIXED]),
    kind=st.sampled_from(["constant", "profile", "matrix", "minutes"]),
    pairs=st.booleans(),
)
def test_improve_route_equals_the_plain_search(seed: int, mode: int, kind: str, pairs: bool) -> None:
    """Same moves accepted as pricing every candidate sequence whole: same final route, same costs."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 3))
    inst = random_instance(rng, 5 * m, m, kind=kind, capacity=(6, 12))
    seqs, frozen = random_routes(rng, inst, list(range(inst.orders.n)), mode=mode, feasible_only=True, max_len=10)
    routes = routes_of(seqs, frozen, 10)
    max_orders = 6  # about a third of these routes improve
    ot, rt = inst.orders.as_tuple(), inst.riders.as_tuple()
    for r in range(m):
        rider = (rt[0][r], rt[1][r], rt[2][r], rt[3][r], rt[5][r], rt[6][r], rt[7][r])
        want_seq, want_cost = plain_search(inst, rider, seqs[r], frozen[r], mode, max_orders, 2, pairs)
        _before, after = improve_route(ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode, max_orders, r, 2, pairs)
        assert routes.stops(r) == want_seq
        assert after == want_cost or (after == np.inf and want_cost == np.inf)


@pytest.mark.parametrize(("seed", "mode"), [(32, SINGLE_SITE), (301, MIXED)])
def test_pair_relocation_only_when_asked(seed: int, mode: int) -> None:
    """Random one-rider routes (found by a search over seeds) where only pair relocation reaches the better
    route: the kernel finds it with ``pairs`` and, like the oracle, not without."""
    rng = np.random.default_rng(seed)
    inst = random_instance(rng, 5, 1, kind="constant", capacity=(6, 12))
    seqs, frozen = random_routes(rng, inst, list(range(inst.orders.n)), mode=mode, feasible_only=True, max_len=10)
    ot, rt = inst.orders.as_tuple(), inst.riders.as_tuple()
    rider = (rt[0][0], rt[1][0], rt[2][0], rt[3][0], rt[5][0], rt[6][0], rt[7][0])
    costs = {}
    for pairs in (True, False):
        want_seq, want_cost = plain_search(inst, rider, seqs[0], frozen[0], mode, 6, 2, pairs)
        routes = routes_of(seqs, frozen, 10)
        _before, after = improve_route(ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode, 6, 0, 2, pairs)
        assert routes.stops(0) == want_seq
        assert after == want_cost
        costs[pairs] = after
    assert costs[True] < costs[False] - 1.0


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from([SINGLE_SITE, MIXED]),
    kind=st.sampled_from(["constant", "matrix", "minutes"]),
)
def test_improve_route_equals_the_plain_search_on_one_sites_bags(seed: int, mode: int, kind: str) -> None:
    """Routes of bags from one site (the moves that only reorder a bag's pickups after its first are skipped
    unpriced): the same moves accepted as pricing every candidate sequence whole."""
    rng = np.random.default_rng(seed)
    inst = random_instance(rng, 7, 1, n_sites=1, kind=kind, capacity=(8, 12), shift=(600.0, 7200.0))
    seqs, frozen = random_routes(rng, inst, list(range(7)), mode=mode, feasible_only=True, max_len=14, style="bags")
    routes = routes_of(seqs, frozen, 14)
    ot, rt = inst.orders.as_tuple(), inst.riders.as_tuple()
    rider = (rt[0][0], rt[1][0], rt[2][0], rt[3][0], rt[5][0], rt[6][0], rt[7][0])
    want_seq, want_cost = plain_search(inst, rider, seqs[0], frozen[0], mode, 7, 2, False)
    _before, after = improve_route(ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode, 7, 0, 2, False)
    assert routes.stops(0) == want_seq
    assert after == want_cost or (after == np.inf and want_cost == np.inf)
