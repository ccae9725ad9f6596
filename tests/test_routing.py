"""The OR-Tools adapter: results are feasible, never worse than the warm start, frozen stops stay put."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ProfileTravel, simulate
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.kernels.route import MIXED, SINGLE_SITE
from dispatch.routing import OptimiseResult, RoutingParams, optimise
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes

TRAVEL = (np.array([3600.0, 1.3, 0.0, 0.0, 0.0]), np.full(24, 5.0), np.zeros((1, 1)), np.zeros((1, 1)))
W = np.array([1.0, 0.05, 20.0])
NOW = 36_000.0
FAST = RoutingParams(time_limit_s=0.3)
NONE = np.zeros(0, dtype=np.int64)
# The same travel model, written independently in conftest: 5 m/s all day, detour 1.3.
ORACLE = ProfileTravel(np.full(24, 5.0), 3600.0, 1.3, 0.0)


def make_orders(
    drops: list[tuple[float, float]],
    sites: list[int] | None = None,
    site_xy: list[tuple[float, float]] | None = None,
    ready: float = NOW,
    promised: float = NOW + 3600.0,
    size: list[int] | None = None,
    pinned: list[int] | None = None,
) -> OrderTable:
    n = len(drops)
    sites = sites or [0] * n
    site_xy = site_xy or [(0.0, 0.0)]
    return OrderTable.build(
        pick_x=[site_xy[s][0] for s in sites],
        pick_y=[site_xy[s][1] for s in sites],
        drop_x=[d[0] for d in drops],
        drop_y=[d[1] for d in drops],
        site=sites,
        ready=np.full(n, ready),
        promised=np.full(n, promised),
        size=size,
        service_pick=np.full(n, 60.0),
        service_drop=np.full(n, 90.0),
        pinned=pinned,
    )


def make_riders(xy: list[tuple[float, float]], capacity: int = 4, shift_h: float = 4.0) -> RiderTable:
    m = len(xy)
    return RiderTable.build(
        x=[p[0] for p in xy],
        y=[p[1] for p in xy],
        avail=np.full(m, NOW),
        shift_end=np.full(m, NOW + shift_h * 3600.0),
        capacity=np.full(m, capacity),
    )


def route_cost(orders: OrderTable, riders: RiderTable, routes: Routes, r: int, mode: int, max_orders: int) -> float:
    """Rider r's cost by conftest's plain-Python oracle (independent of the kernels); +inf when infeasible."""
    f = int(routes.frozen[r])
    stops = routes.stops(r)
    sim = simulate(orders, riders, r, stops, travel=ORACLE, n_frozen=f, mode=mode, weights=W, max_orders=max_orders)
    return sim.cost if sim.feasible else math.inf


def check_result(
    res: OptimiseResult,
    orders: OrderTable,
    riders: RiderTable,
    before: Routes,
    rider_idx: np.ndarray,
    new_orders: np.ndarray,
    mode: int,
    max_orders: int,
    drop_penalty: float,
) -> None:
    """Independent checks of everything optimise promises about its result."""
    after = res.routes
    assert res.cost_after <= res.cost_before
    if not res.improved:
        assert res.cost_after == res.cost_before
        assert res.assigned.size == 0
        for r in range(riders.m):
            assert after.stops(r) == before.stops(r)
        return
    # Riders outside the group are untouched; frozen prefixes are unchanged.
    for r in range(riders.m):
        f = int(before.frozen[r])
        assert after.frozen[r] == f
        assert after.stops(r)[:f] == before.stops(r)[:f]
        if r not in rider_idx:
            assert after.stops(r) == before.stops(r)
    seen_before = {o for r in rider_idx for o, _ in before.stops(int(r))}
    seen_after: set[int] = set()
    for r in rider_idx.tolist():
        stops, old = after.stops(r), before.stops(r)
        seen_after |= {o for o, _ in stops}
        # Every stop once; a pickup before its drop-off.
        assert len(set(stops)) == len(stops)
        for s, (o, k) in enumerate(stops):
            if k == PICKUP:
                assert (o, DROPOFF) in stops[s + 1 :]
        # On-board orders (picked up in the frozen prefix or before the route) stay with their rider.
        onboard = {o for o, k in old if k == DROPOFF and (o, PICKUP) not in old}
        onboard |= {o for o, k in old[: int(before.frozen[r])] if k == PICKUP}
        assert all((o, DROPOFF) in stops for o in onboard)
        # Capacity and the most drop-offs per route.
        load = sum(int(orders.size[o]) for o, k in stops if k == DROPOFF and (o, PICKUP) not in stops)
        assert load <= riders.capacity[r]
        for o, k in stops:
            load += int(orders.size[o]) if k == PICKUP else -int(orders.size[o])
            assert 0 <= load <= riders.capacity[r]
        assert sum(1 for _, k in stops if k == DROPOFF) <= max_orders
        assert np.isfinite(route_cost(orders, riders, after, r, mode, max_orders))
    # The orders from before plus the assigned ones, each in one route.
    assert seen_after == seen_before | set(res.assigned.tolist())
    assert sum(len(after.stops(int(r))) for r in rider_idx) == len({s for r in rider_idx for s in after.stops(int(r))})
    assert set(res.assigned.tolist()) <= set(new_orders.tolist())
    total = sum(route_cost(orders, riders, after, int(r), mode, max_orders) for r in rider_idx)
    total += drop_penalty * (new_orders.size - res.assigned.size)
    assert total == pytest.approx(res.cost_after, rel=1e-7)


def test_zigzag_warm_start_is_improved() -> None:
    xs = [1000.0, 2000.0, 3000.0, 4000.0]
    orders = make_orders([(x, 0.0) for x in xs])
    riders = make_riders([(0.0, 0.0)])
    # Pick the bag, then ride 4 km -> 1 km -> 3 km -> 2 km.
    routes = Routes.from_lists(
        [[(0, PICKUP), (1, PICKUP), (2, PICKUP), (3, PICKUP)] + [(o, DROPOFF) for o in (3, 0, 2, 1)]], 8
    )
    res = optimise(orders, riders, routes, TRAVEL, W, SINGLE_SITE, 5, np.array([0]), NONE, NOW, FAST)
    assert res.improved
    assert res.cost_after < res.cost_before
    assert [o for o, k in res.routes.stops(0) if k == DROPOFF] == [0, 1, 2, 3]
    check_result(res, orders, riders, routes, np.array([0]), NONE, SINGLE_SITE, 5, FAST.drop_penalty)
    # The input is not modified.
    assert [o for o, k in routes.stops(0) if k == DROPOFF] == [3, 0, 2, 1]


def test_infeasible_input_is_repaired() -> None:
    # SINGLE_SITE: picking up order 2 while order 1 is still on board breaks the trip rule.
    orders = make_orders([(1000.0, 0.0), (2000.0, 0.0), (1500.0, 0.0)])
    riders = make_riders([(0.0, 0.0)])
    stops = [(0, PICKUP), (1, PICKUP), (0, DROPOFF), (2, PICKUP), (1, DROPOFF), (2, DROPOFF)]
    routes = Routes.from_lists([stops], 6)
    res = optimise(orders, riders, routes, TRAVEL, W, SINGLE_SITE, 5, np.array([0]), NONE, NOW, FAST)
    assert res.cost_before == math.inf
    assert res.improved
    assert np.isfinite(res.cost_after)
    check_result(res, orders, riders, routes, np.array([0]), NONE, SINGLE_SITE, 5, FAST.drop_penalty)


def test_optimal_route_is_kept() -> None:
    orders = make_orders([(1000.0, 0.0), (2000.0, 0.0)])
    riders = make_riders([(0.0, 0.0)])
    routes = Routes.from_lists([[(0, PICKUP), (1, PICKUP), (0, DROPOFF), (1, DROPOFF)]], 4)
    res = optimise(orders, riders, routes, TRAVEL, W, SINGLE_SITE, 5, np.array([0]), NONE, NOW, FAST)
    assert not res.improved
    assert res.routes.stops(0) == routes.stops(0)
    assert res.routes is not routes


def test_frozen_prefix_and_onboard_orders_stay() -> None:
    # Rider 0 picked up orders 0 and 1 (frozen) and drops them far apart; rider 1 zig-zags (2.5 km out, then
    # back to 0.5 km).
    orders = make_orders([(3000.0, 0.0), (-3000.0, 0.0), (2500.0, 0.0), (500.0, 0.0)])
    riders = make_riders([(0.0, 0.0), (-200.0, 0.0)])
    routes = Routes.from_lists(
        [
            [(0, PICKUP), (1, PICKUP), (1, DROPOFF), (0, DROPOFF)],
            [(2, PICKUP), (3, PICKUP), (2, DROPOFF), (3, DROPOFF)],
        ],
        8,
        frozen=[2, 0],
    )
    res = optimise(orders, riders, routes, TRAVEL, W, MIXED, 5, np.array([0, 1]), NONE, NOW, FAST)
    check_result(res, orders, riders, routes, np.array([0, 1]), NONE, MIXED, 5, FAST.drop_penalty)
    assert res.improved
    stops0 = res.routes.stops(0)
    assert stops0[:2] == [(0, PICKUP), (1, PICKUP)]
    assert {(0, DROPOFF), (1, DROPOFF)} <= set(stops0)


def test_onboard_without_pickup_in_route_stays() -> None:
    # Order 0 is on board rider 0 (only its drop-off is in the route); rider 1 is closer but may not take it.
    orders = make_orders([(5000.0, 0.0), (100.0, 0.0)])
    riders = make_riders([(0.0, 0.0), (4900.0, 0.0)])
    routes = Routes.from_lists([[(0, DROPOFF), (1, PICKUP), (1, DROPOFF)], []], 4)
    res = optimise(orders, riders, routes, TRAVEL, W, MIXED, 5, np.array([0, 1]), NONE, NOW, FAST)
    check_result(res, orders, riders, routes, np.array([0, 1]), NONE, MIXED, 5, FAST.drop_penalty)
    assert (0, DROPOFF) in res.routes.stops(0)
    assert (0, DROPOFF) not in res.routes.stops(1)


def test_new_orders_assigned_to_free_riders() -> None:
    orders = make_orders([(1000.0, 0.0), (0.0, 1000.0), (-1000.0, 0.0), (0.0, -1000.0), (800.0, 800.0)])
    riders = make_riders([(0.0, 0.0), (200.0, 0.0)], capacity=3)
    routes = Routes.empty(2, 4)
    new = np.arange(5, dtype=np.int64)
    res = optimise(orders, riders, routes, TRAVEL, W, SINGLE_SITE, 5, np.array([0, 1]), new, NOW, FAST)
    assert res.improved
    assert sorted(res.assigned.tolist()) == list(range(5))
    assert res.cost_before >= 5 * FAST.drop_penalty
    assert res.cost_after < FAST.drop_penalty
    check_result(res, orders, riders, routes, np.array([0, 1]), new, SINGLE_SITE, 5, FAST.drop_penalty)
    assert res.routes.width >= 6


def test_capacity_and_max_orders_respected() -> None:
    orders = make_orders([(300.0 * i, 500.0) for i in range(6)], size=[2, 1, 1, 2, 1, 1])
    riders = make_riders([(0.0, 0.0)], capacity=3)
    new = np.arange(6, dtype=np.int64)
    routes = Routes.empty(1, 2)
    for mode in (SINGLE_SITE, MIXED):
        res = optimise(orders, riders, routes, TRAVEL, W, mode, 4, np.array([0]), new, NOW, FAST)
        assert res.improved
        assert res.assigned.size == 4  # max_orders caps the route at four drop-offs
        check_result(res, orders, riders, routes, np.array([0]), new, mode, 4, FAST.drop_penalty)


def test_single_site_trips_are_not_interleaved() -> None:
    # Two sites far apart; in SINGLE_SITE mode each bag is delivered before the next site's pickup.
    site_xy = [(0.0, 0.0), (3000.0, 0.0)]
    orders = make_orders(
        [(1500.0, 500.0), (1500.0, -500.0), (3500.0, 500.0), (4500.0, 0.0)],
        sites=[0, 0, 1, 1],
        site_xy=site_xy,
    )
    riders = make_riders([(0.0, 0.0)])
    new = np.arange(4, dtype=np.int64)
    res = optimise(orders, riders, Routes.empty(1, 2), TRAVEL, W, SINGLE_SITE, 5, np.array([0]), new, NOW, FAST)
    check_result(res, orders, riders, Routes.empty(1, 2), np.array([0]), new, SINGLE_SITE, 5, FAST.drop_penalty)
    assert res.assigned.size == 4
    onboard = 0
    prev: tuple[int, int] | None = None
    for o, k in res.routes.stops(0):
        if k == PICKUP:
            assert onboard == 0 or (prev is not None and prev[1] == PICKUP and orders.site[prev[0]] == orders.site[o])
            onboard += 1
        else:
            onboard -= 1
        prev = (o, k)


def test_unreachable_new_order_is_left_out() -> None:
    # The shift ends in 10 minutes: the far order cannot be picked up in time.
    orders = make_orders([(500.0, 0.0), (0.0, 0.0)], sites=[0, 1], site_xy=[(0.0, 0.0), (20_000.0, 0.0)])
    riders = make_riders([(0.0, 0.0)], shift_h=600.0 / 3600.0)
    new = np.array([0, 1], dtype=np.int64)
    res = optimise(orders, riders, Routes.empty(1, 2), TRAVEL, W, MIXED, 5, np.array([0]), new, NOW, FAST)
    assert res.assigned.tolist() == [0]
    check_result(res, orders, riders, Routes.empty(1, 2), np.array([0]), new, MIXED, 5, FAST.drop_penalty)


def test_pinned_new_order_goes_to_its_rider() -> None:
    # Order 0 is pinned to rider 1, although rider 0 is next to it.
    orders = make_orders([(500.0, 0.0), (600.0, 0.0)], pinned=[1, -1])
    riders = make_riders([(0.0, 0.0), (3000.0, 3000.0)])
    new = np.array([0, 1], dtype=np.int64)
    routes = Routes.empty(2, 2)
    res = optimise(orders, riders, routes, TRAVEL, W, MIXED, 5, np.array([0, 1]), new, NOW, FAST)
    check_result(res, orders, riders, routes, np.array([0, 1]), new, MIXED, 5, FAST.drop_penalty)
    assert res.assigned.tolist() == [0, 1]
    assert (0, PICKUP) in res.routes.stops(1)


def test_bad_input_is_rejected() -> None:
    orders = make_orders([(1000.0, 0.0), (2000.0, 0.0)])
    riders = make_riders([(0.0, 0.0)])
    routes = Routes.from_lists([[(0, PICKUP), (0, DROPOFF)]], 4)
    with pytest.raises(ValueError, match="new_orders"):
        optimise(orders, riders, routes, TRAVEL, W, MIXED, 5, np.array([0]), np.array([0]), NOW, FAST)
    with pytest.raises(ValueError, match="rider_idx"):
        optimise(orders, riders, routes, TRAVEL, W, MIXED, 5, np.array([3]), NONE, NOW, FAST)
    with pytest.raises(ValueError, match="rider_idx"):
        optimise(orders, riders, routes, TRAVEL, W, MIXED, 5, np.array([0, 0]), NONE, NOW, FAST)
    bad = Routes.from_lists([[(0, PICKUP), (1, DROPOFF)]], 4)
    with pytest.raises(ValueError, match="routes"):
        optimise(orders, riders, bad, TRAVEL, W, MIXED, 5, np.array([0]), NONE, NOW, FAST)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("time_limit_s", 0.0),
        ("time_limit_s", float("nan")),
        ("cost_scale", -1.0),
        ("drop_penalty", 0.0),
        ("drop_penalty", 1e30),
        ("first_solution", "NOPE"),
        ("metaheuristic", "UNSET"),
    ],
)
def test_params_reject_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RoutingParams(**{field: value})  # type: ignore[arg-type]


def test_params_accept_other_strategies() -> None:
    p = RoutingParams(time_limit_s=0.2, first_solution="SAVINGS", metaheuristic="TABU_SEARCH")
    assert p.first_solution == "SAVINGS"


@st.composite
def instances(draw: st.DrawFn) -> tuple[OrderTable, RiderTable, Routes, np.ndarray, np.ndarray, int]:
    """2-3 riders with valid routes (trips: a bag from one site, then its drop-offs), random frozen prefixes,
    and a few new orders."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    mode = draw(st.sampled_from([SINGLE_SITE, MIXED]))
    m = draw(st.integers(2, 3))
    n_sites = draw(st.integers(1, 3))
    n_routed = draw(st.integers(0, 7))
    n_new = draw(st.integers(0, 3))
    n = n_routed + n_new
    site_xy = [(float(x), float(y)) for x, y in rng.uniform(-3000, 3000, (n_sites, 2))]
    sites = rng.integers(0, n_sites, n).tolist()
    drops = [(float(x), float(y)) for x, y in rng.uniform(-4000, 4000, (n, 2))]
    orders = OrderTable.build(
        pick_x=[site_xy[s][0] for s in sites],
        pick_y=[site_xy[s][1] for s in sites],
        drop_x=[d[0] for d in drops],
        drop_y=[d[1] for d in drops],
        site=sites,
        ready=NOW + rng.uniform(-300, 900, n),
        promised=NOW + rng.uniform(1200, 3600, n),
        size=rng.integers(1, 3, n),
        service_pick=np.full(n, 60.0),
        service_drop=np.full(n, 90.0),
    )
    riders = RiderTable.build(
        x=rng.uniform(-3000, 3000, m),
        y=rng.uniform(-3000, 3000, m),
        avail=np.full(m, NOW),
        shift_end=NOW + rng.uniform(2 * 3600, 4 * 3600, m),
        capacity=np.full(m, 4),
        speed=rng.uniform(0.8, 1.2, m),
    )
    # Deal routed orders out as trips of 1-2 orders from one site each (valid in both modes).
    stops: list[list[tuple[int, int]]] = [[] for _ in range(m)]
    pending = list(range(n_routed))
    while pending:
        r = int(rng.integers(0, m))
        o = pending.pop()
        bag = [o]
        same = [q for q in pending if sites[q] == sites[o]]
        if same and rng.random() < 0.5:
            bag.append(same[0])
            pending.remove(same[0])
        stops[r] += [(q, PICKUP) for q in bag] + [(q, DROPOFF) for q in rng.permutation(bag).tolist()]
    frozen = [int(rng.integers(0, len(s) + 1)) if rng.random() < 0.5 else 0 for s in stops]
    routes = Routes.from_lists(stops, 4, frozen=frozen)
    rider_idx = np.arange(m, dtype=np.int64)
    new = np.arange(n_routed, n, dtype=np.int64)
    return orders, riders, routes, rider_idx, new, mode


@settings(max_examples=15, deadline=None)
@given(instances())
def test_never_worse_than_warm_start(
    inst: tuple[OrderTable, RiderTable, Routes, np.ndarray, np.ndarray, int],
) -> None:
    orders, riders, routes, rider_idx, new, mode = inst
    params = RoutingParams(time_limit_s=0.2)
    before = sum(route_cost(orders, riders, routes, int(r), mode, 5) for r in rider_idx)
    before += params.drop_penalty * new.size
    res = optimise(orders, riders, routes, TRAVEL, W, mode, 5, rider_idx, new, NOW, params)
    assert res.cost_before == pytest.approx(before, rel=1e-9)
    assert res.cost_after <= res.cost_before
    check_result(res, orders, riders, routes, rider_idx, new, mode, 5, params.drop_penalty)


def test_integer_overflow_skips_ortools_instead_of_failing() -> None:
    # A lateness weight so large that the integer model would overflow int64: no exception, OR-Tools skipped,
    # and what comes back is still a checked result (the greedy seed or the input).
    orders = make_orders([(1000.0, 0.0), (0.0, 1000.0)])
    riders = make_riders([(0.0, 0.0)], capacity=3)
    routes = Routes.empty(1, 4)
    huge = np.array([1.0, 0.05, 1e13])
    res = optimise(orders, riders, routes, TRAVEL, huge, SINGLE_SITE, 5, np.array([0]), np.arange(2), NOW, FAST)
    assert "MODEL_OVERFLOW" in res.solver_status
    assert res.source in ("seed", "input")
    check_result(res, orders, riders, routes, np.array([0]), np.arange(2), SINGLE_SITE, 5, FAST.drop_penalty)
