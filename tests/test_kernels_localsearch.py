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
from dispatch.kernels.localsearch import improve_route, improve_routes
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from([SINGLE_SITE, MIXED]), passes=st.integers(1, 3))
def test_improve_route_never_worse_and_keeps_structure(seed: int, mode: int, passes: int) -> None:
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
        before, after = improve_route(ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode, max_orders, r, passes)
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
        orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, mode, 5, 0, 3
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
    improve_route(orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, SINGLE_SITE, 5, 0, 3)
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
        orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, MIXED, 5, 0, 3
    )
    assert routes.stops(0) == [(0, PICKUP), (1, PICKUP), (1, DROPOFF), (0, DROPOFF)]  # 4 km in mixed mode
    assert after < before
    # In single-site mode that interleaving is not allowed, and the route is already the best allowed.
    routes = Routes.from_lists([seq], 4)
    before, after = improve_route(
        orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, SINGLE_SITE, 5, 0, 3
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
    gain = improve_routes(ot, rt, routes.as_tuple(), inst.arrays, WEIGHTS, mode, 5, which, 2)
    assert routes.stops(1) == seqs[1]  # not in ``which``
    want = 0.0
    for r in (0, 2):
        sim = simulate(inst.orders, inst.riders, r, routes.stops(r), travel=inst.travel, n_frozen=frozen[r], mode=mode)
        if sim.feasible:
            want += costs_before[r] - sim.cost
    assert gain >= -1e-9
    assert gain == pytest.approx(want, abs=1e-5)
