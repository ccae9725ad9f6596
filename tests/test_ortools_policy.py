"""Tests for dispatch.ortools_policy: OrToolsPolicy ticks checked by the plain-Python oracle (feasibility, frozen
stops, no double assignment, every pending order assigned or given a reason, ETAs, costs), and its reasons."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from conftest import NOW, MatrixTravel, ProfileTravel, Sim, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch import ortools_policy, routing
from dispatch.geo import ProfileTravelTime, SpeedProfile
from dispatch.ortools_policy import OrToolsPolicy
from dispatch.policy import DispatchParams, ParamsError, Reason, Snapshot, TickResult, planning_view
from dispatch.routing import OptimiseResult, RoutingParams
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes
from dispatch.synthetic import CitySpec, city_snapshot, site_snapshot

FAST = 0.05  # OR-Tools seconds per model: the tests check rules, not solution quality


# ----------------------------------------------------------------------------------------------------------------
# Independent checks of a tick's result
# ----------------------------------------------------------------------------------------------------------------


def travel_model(travel: tuple[Any, ...]) -> Any:
    """The oracle's own travel model for a kernels' travel tuple."""
    params = travel[0]
    if params[3] != 0.0:
        return MatrixTravel(travel[2], travel[3])
    return ProfileTravel(travel[1], params[0], params[1], params[2])


def oracle(snap: Snapshot, routes: Routes, r: int, params: DispatchParams, max_orders: int | None = None) -> Sim:
    return simulate(
        snap.orders, snap.riders, r, routes.stops(r), travel=travel_model(snap.travel),
        n_frozen=int(routes.frozen[r]), mode=params.mode, weights=params.weights, max_orders=max_orders,
    )  # fmt: skip


def on_board(routes: Routes, r: int) -> set[int]:
    """Orders rider r carries once its frozen prefix is done: no pickup in the route, or a frozen one."""
    stops = routes.stops(r)
    f = int(routes.frozen[r])
    picks = {o for o, k in stops if k == PICKUP}
    return {o for o, k in stops if k == DROPOFF and o not in picks} | {o for o, k in stops[:f] if k == PICKUP}


def check_tick(
    snap: Snapshot, before: Routes, res: TickResult, params: DispatchParams, now: float, *, reassign: bool = False
) -> None:
    """Properties every OrToolsPolicy tick must have (``reassign``: open orders may change riders)."""
    orders, riders = snap.orders, snap.riders
    m = riders.m
    # The snapshot's routes are not modified.
    for a, b in zip(snap.routes.as_tuple(), before.as_tuple(), strict=True):
        np.testing.assert_array_equal(a, b)
    out = res.routes
    assert out.length.shape == (m,)
    np.testing.assert_array_equal(out.frozen, before.frozen)
    assert "total" in res.timings_ms and res.timings_ms["total"] >= 0.0
    # Assigned and unassigned split the pending orders; each order is assigned once; every left order has a reason.
    pending = set(snap.pending.tolist())
    ao, ar = res.assigned_order.tolist(), res.assigned_rider.tolist()
    uo = res.unassigned_order.tolist()
    assert len(ao) == len(ar) and len(ao) == len(set(ao))
    assert len(uo) == len(set(uo)) and res.unassigned_reason.shape == res.unassigned_order.shape
    assert set(ao).isdisjoint(uo) and set(ao) | set(uo) == pending
    assert len(ao) + len(uo) == len(pending)
    valid = {int(x) for x in Reason} - {int(Reason.NONE)}
    assert {int(x) for x in res.unassigned_reason.tolist()} <= valid
    # No stop is in two routes or twice in one; an assigned order is in its rider's route, pickup and drop-off.
    where: dict[tuple[int, int], int] = {}
    for r in range(m):
        for stop in out.stops(r):
            assert stop not in where, stop
            where[stop] = r
    for o, r in zip(ao, ar, strict=True):
        assert where.get((o, PICKUP)) == r and where.get((o, DROPOFF)) == r, o
    for o in uo:
        assert (o, PICKUP) not in where and (o, DROPOFF) not in where
    # Frozen prefixes unchanged; orders on board stay with their rider; every old stop is still routed, with its
    # own rider unless reassign; the only new stops are the assignments'.
    old_stops = {s for r in range(m) for s in before.stops(r)}
    new_stops = {(o, k) for o in ao for k in (PICKUP, DROPOFF)}
    assert set(where) == old_stops | new_stops
    for r in range(m):
        old, new = before.stops(r), out.stops(r)
        F = int(before.frozen[r])
        assert new[:F] == old[:F], r
        assert all((o, DROPOFF) in new for o in on_board(before, r)), r
        if not reassign:
            assert not Counter(old) - Counter(new), r
            assert set((Counter(new) - Counter(old)).elements()) == {s for s in new_stops if where[s] == r}, r
    # ``changed`` is exactly the riders whose stops differ.
    assert res.changed.tolist() == [r for r in range(m) if out.stops(r) != before.stops(r)]
    # Every route is feasible for the oracle (changed ones within the order limit), pickups precede drop-offs
    # (the oracle checks it; asserted here too), and the reported ETAs are its arrival times.
    changed = set(res.changed.tolist())
    eta = res.eta_dropoff(orders.n)
    sims: dict[int, Sim] = {}
    plan_snap = planning_view(snap, params)  # costs are priced against the promises less the margin
    for r in range(m):
        stops = out.stops(r)
        for s, (o, k) in enumerate(stops):
            if k == PICKUP:
                assert (o, DROPOFF) in stops[s + 1 :], (r, o)
        sim = oracle(plan_snap, out, r, params, params.max_orders_per_rider if r in changed else None)
        assert sim.feasible, (r, stops, sim.violations)
        sims[r] = sim
        for s, (o, k) in enumerate(stops):
            assert res.arrive[r, s] == pytest.approx(sim.arrive[s], abs=1e-4), (r, s)
            if k == DROPOFF:
                assert eta[o] == pytest.approx(sim.arrive[s], abs=1e-4)
    routed = {o for o, k in where if k == DROPOFF}
    assert all(math.isnan(eta[o]) for o in range(orders.n) if o not in routed)
    # New orders go to riders online and in shift; pinned orders to their own rider.
    for o, r in zip(ao, ar, strict=True):
        assert riders.online[r] and riders.shift_start[r] <= now < riders.shift_end[r]
        if orders.pinned[o] >= 0:
            assert r == orders.pinned[o]
    # The costs: route cost (by the oracle) of the changed riders plus the reject cost of the orders left, and
    # OR-Tools' plans are kept only when cheaper, so the tick never raises it.
    reject = params.reject_costs(orders, now)
    before_cost = sum(oracle(plan_snap, before, r, params).cost for r in changed) + float(reject[list(pending)].sum())
    after_cost = sum(sims[r].cost for r in changed) + float(reject[uo].sum())
    assert res.cost_before == pytest.approx(before_cost, rel=1e-9, abs=1e-6)
    assert res.cost_after == pytest.approx(after_cost, rel=1e-9, abs=1e-6)
    assert res.cost_after <= res.cost_before + 1e-6 * max(1.0, abs(res.cost_before))


def reasons_of(res: TickResult) -> dict[int, int]:
    return dict(zip(res.unassigned_order.tolist(), res.unassigned_reason.tolist(), strict=True))


def assigned_of(res: TickResult) -> dict[int, int]:
    return dict(zip(res.assigned_order.tolist(), res.assigned_rider.tolist(), strict=True))


def run(snap: Snapshot, *, reassign: bool = False, max_group_orders: int = 20, **changes: Any) -> TickResult:
    params = DispatchParams(**{"ortools_time_limit_s": FAST, **changes})
    before = snap.routes.copy()
    res = OrToolsPolicy(params, max_group_orders=max_group_orders, reassign=reassign).tick(snap, NOW)
    check_tick(snap, before, res, params, NOW, reassign=reassign)
    return res


# ----------------------------------------------------------------------------------------------------------------
# Property tests on small synthetic cities
# ----------------------------------------------------------------------------------------------------------------


@st.composite
def city(draw: Any) -> tuple[Snapshot, DispatchParams]:
    stops = draw(st.sampled_from([2, 4, 6]))
    spec = CitySpec(
        n_orders=draw(st.integers(1, 10)),
        n_riders=draw(st.integers(1, 8)),
        n_sites=draw(st.integers(1, 3)),
        radius_m=draw(st.sampled_from([0.0, 3000.0, 8000.0])),
        zone_m=draw(st.sampled_from([1000.0, 3000.0])),
        max_route_stops=stops,
        busy_share=draw(st.sampled_from([0.0, 0.5, 1.0])),
        capacity=draw(st.integers(stops, 9)),
        seed=draw(st.integers(0, 2**31 - 1)),
    )
    snap = city_snapshot(spec)
    rng = np.random.default_rng(spec.seed)
    pinned = snap.orders.pinned.copy()
    pend = snap.pending
    pin = rng.random(pend.shape[0]) < draw(st.sampled_from([0.0, 0.3]))
    pinned[pend[pin]] = rng.integers(0, spec.n_riders, int(pin.sum()))
    online = rng.random(spec.n_riders) >= draw(st.sampled_from([0.0, 0.3]))
    snap = dataclasses.replace(
        snap,
        orders=dataclasses.replace(snap.orders, pinned=pinned),
        riders=dataclasses.replace(snap.riders, online=online),
    )
    params = DispatchParams(
        trip_mode=draw(st.sampled_from(["single_site", "mixed"])),
        max_orders_per_rider=draw(st.integers(1, 5)),
        candidate_k=draw(st.integers(1, 4)),
        hold_s=draw(st.sampled_from([0.0, 30.0, 120.0])),
        max_reach_m=draw(st.sampled_from([2000.0, 8000.0])),
        ortools_time_limit_s=FAST,
    )
    return snap, params


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=city(), reassign=st.booleans())
def test_tick_properties(case: tuple[Snapshot, DispatchParams], reassign: bool) -> None:
    snap, params = case
    assert all(oracle(snap, snap.routes, r, params).feasible for r in range(snap.riders.m))
    before = snap.routes.copy()
    res = OrToolsPolicy(params, max_group_orders=4, reassign=reassign).tick(snap, NOW)
    check_tick(snap, before, res, params, NOW, reassign=reassign)
    orders, rd = snap.orders, snap.riders
    reason = reasons_of(res)
    # Held orders (young, not pinned) are held, and only they.
    for o in snap.pending.tolist():
        held = NOW - orders.placed[o] < params.hold_s and orders.pinned[o] < 0
        assert (reason.get(o) == Reason.HELD_FOR_BATCHING) == held, o
    # "No rider in reach" is true: no accepting rider's next free point is within reach of the pickup.
    n_drops = np.array([sum(k == DROPOFF for _, k in before.stops(r)) for r in range(rd.m)])
    acc = rd.online & (rd.shift_start <= NOW) & (rd.shift_end > NOW) & (n_drops < params.max_orders_per_rider)
    fx, fy = rd.x.copy(), rd.y.copy()
    for r in range(rd.m):
        if before.stops(r):
            o, k = before.stops(r)[-1]
            fx[r] = orders.pick_x[o] if k == PICKUP else orders.drop_x[o]
            fy[r] = orders.pick_y[o] if k == PICKUP else orders.drop_y[o]
    for o, why in reason.items():
        if why == Reason.NO_RIDER_IN_REACH:
            assert orders.pinned[o] < 0
            d = np.hypot(fx - orders.pick_x[o], fy - orders.pick_y[o])
            assert not np.any(acc & (d <= params.max_reach_m)), o
        if why == Reason.PINNED_RIDER_UNAVAILABLE:
            assert orders.pinned[o] >= 0 and not acc[orders.pinned[o]]


def test_busy_site_in_several_models() -> None:
    """One site, 30 orders, in models of at most 8 orders, each on the routes the one before left: the hard rules
    hold across them (how many orders each places depends on the time limit)."""
    snap = site_snapshot(n_orders=30, n_riders=20, seed=4)
    params = DispatchParams(hold_s=0.0, ortools_time_limit_s=FAST)
    policy = OrToolsPolicy(params, max_group_orders=8)
    res = policy.tick(snap, NOW)
    check_tick(snap, snap.routes.copy(), res, params, NOW)
    assert len(policy.last_solver_status) == 4
    assert res.assigned_order.size > 0


def test_city_tick_with_matrix_travel() -> None:
    """A city whose travel is an explicit matrix: the ETAs are still the oracle's."""
    snap = city_snapshot(CitySpec(n_orders=8, n_riders=6, n_sites=2, radius_m=3000.0, seed=11))
    o, rd = snap.orders, snap.riders
    px = np.concatenate([o.pick_x, o.drop_x, rd.x])
    py = np.concatenate([o.pick_y, o.drop_y, rd.y])
    dmat = np.hypot(px[:, None] - px[None, :], py[:, None] - py[None, :]) * 1.25
    from dispatch.geo import MatrixTravelTime

    n = o.n
    snap = dataclasses.replace(
        snap,
        orders=dataclasses.replace(o, pick_loc=np.arange(n), drop_loc=n + np.arange(n)),
        riders=dataclasses.replace(rd, loc=2 * n + np.arange(rd.m)),
        travel=MatrixTravelTime(dmat / 4.0, dmat).arrays(),
    )
    # A time limit OR-Tools meets even on a loaded machine (at FAST it can find no first solution in time and
    # assign nothing): the point here is the matrix ETAs, not speed.
    res = run(snap, hold_s=0.0, ortools_time_limit_s=1.0)
    assert res.assigned_order.size > 0


# ----------------------------------------------------------------------------------------------------------------
# Handcrafted snapshots: reasons, pinning, batching, reassignment
# ----------------------------------------------------------------------------------------------------------------


def hand_snapshot(
    picks: list[tuple[float, float]],
    *,
    placed_ago: float | list[float] = 600.0,
    promised_in: float | list[float] = 3600.0,
    size: list[int] | None = None,
    pinned: list[int] | None = None,
    riders: list[tuple[float, float]],
    capacity: int = 6,
    shift_in: float = 7200.0,
    online: list[bool] | None = None,
    routes: list[list[tuple[int, int]]] | None = None,
    frozen: list[int] | None = None,
    extra_orders: int = 0,
) -> Snapshot:
    """Pending orders picked up at ``picks`` (one site per point) and dropped 1 km north; ``extra_orders`` more
    orders at the first pick point, listed in ``routes``. Constant 5 m/s, no detour."""
    n = len(picks) + extra_orders
    px = [p[0] for p in picks] + [picks[0][0]] * extra_orders
    py = [p[1] for p in picks] + [picks[0][1]] * extra_orders
    ago = np.broadcast_to(np.asarray(placed_ago, dtype=float), (len(picks),)).tolist() + [900.0] * extra_orders
    prom = np.broadcast_to(np.asarray(promised_in, dtype=float), (len(picks),)).tolist() + [3600.0] * extra_orders
    keys = sorted(set(picks))
    site = [keys.index(p) for p in picks] + [0] * extra_orders
    orders = OrderTable.build(
        pick_x=px,
        pick_y=py,
        drop_x=px,
        drop_y=[y + 1000.0 for y in py],
        site=site,
        ready=[NOW - 60.0] * n,
        promised=[NOW + p for p in prom],
        placed=[NOW - a for a in ago],
        size=size if size is not None else [1] * n,
        service_pick=[30.0] * n,
        service_drop=[30.0] * n,
        pinned=(pinned or [-1] * len(picks)) + [-1] * extra_orders,
    )
    m = len(riders)
    rd = RiderTable.build(
        x=[r[0] for r in riders],
        y=[r[1] for r in riders],
        avail=[NOW] * m,
        shift_start=[NOW - 3600.0] * m,
        shift_end=[NOW + shift_in] * m,
        capacity=[capacity] * m,
        online=online,
    )
    rt = Routes.from_lists(routes or [[] for _ in range(m)], 4, frozen)
    travel = ProfileTravelTime(profile=SpeedProfile.constant(5.0), detour=1.0).arrays()
    return Snapshot(orders, rd, rt, np.arange(len(picks), dtype=np.int64), travel)


def test_order_out_of_reach_gets_no_rider_in_reach() -> None:
    # Site A at the origin with two riders nearby; site B 20 km east, nobody within 8 km of it.
    snap = hand_snapshot([(0.0, 0.0), (20_000.0, 0.0)], riders=[(300.0, 0.0), (-400.0, 200.0)])
    res = run(snap, max_reach_m=8000.0)
    assert 0 in assigned_of(res)
    assert reasons_of(res) == {1: Reason.NO_RIDER_IN_REACH}


def test_no_rider_in_reach_at_all() -> None:
    snap = hand_snapshot([(0.0, 0.0), (0.0, 0.0)], riders=[(9000.0, 0.0)])
    res = run(snap, max_reach_m=8000.0)
    assert reasons_of(res) == {0: Reason.NO_RIDER_IN_REACH, 1: Reason.NO_RIDER_IN_REACH}
    assert res.changed.size == 0 and res.cost_after == res.cost_before


def test_young_orders_are_held_unless_pinned() -> None:
    snap = hand_snapshot(
        [(0.0, 0.0)] * 3, placed_ago=[5.0, 5.0, 600.0], pinned=[-1, 0, -1], riders=[(100.0, 0.0), (0.0, 100.0)]
    )
    res = run(snap, hold_s=30.0)
    assert reasons_of(res) == {0: Reason.HELD_FOR_BATCHING}
    assert assigned_of(res)[1] == 0 and 2 in assigned_of(res)
    res = run(snap, hold_s=0.0)
    assert set(assigned_of(res)) == {0, 1, 2}


def test_pinned_order_goes_to_its_rider_only() -> None:
    # Rider 1 sits at the pickup, rider 0 is 3 km away; the order is pinned to rider 0.
    snap = hand_snapshot([(0.0, 0.0)], pinned=[0], riders=[(3000.0, 0.0), (0.0, 0.0)])
    res = run(snap)
    assert assigned_of(res) == {0: 0}
    assert res.routes.stops(1) == []


def test_pinned_order_with_offline_rider_gets_pinned_rider_unavailable() -> None:
    snap = hand_snapshot([(0.0, 0.0)], pinned=[0], riders=[(100.0, 0.0), (0.0, 100.0)], online=[False, True])
    res = run(snap)
    assert reasons_of(res) == {0: Reason.PINNED_RIDER_UNAVAILABLE}


def test_order_bigger_than_every_rider_gets_capacity() -> None:
    snap = hand_snapshot([(0.0, 0.0), (0.0, 0.0)], size=[3, 1], riders=[(100.0, 0.0), (0.0, 100.0)], capacity=2)
    res = run(snap)
    assert reasons_of(res) == {0: Reason.CAPACITY}
    assert 1 in assigned_of(res)


def test_order_beyond_every_shift_gets_shift_ends() -> None:
    # The pickup is 2 km away (400 s at 5 m/s); both shifts end in 60 s.
    snap = hand_snapshot([(2000.0, 0.0)], riders=[(0.0, 0.0), (0.0, 10.0)], shift_in=60.0)
    res = run(snap)
    assert reasons_of(res) == {0: Reason.SHIFT_ENDS}


def test_order_late_with_every_rider_is_dropped() -> None:
    # Promised 20,000 s ago: any rider costs > 20 x 20,000, far above its reject cost (1,000 + 20 x 60), which
    # is the penalty OR-Tools pays for leaving it out.
    snap = hand_snapshot([(0.0, 0.0)], promised_in=-20_000.0, placed_ago=60.0, riders=[(100.0, 0.0)])
    res = run(snap, unassigned_cost=1000.0)
    assert reasons_of(res) == {0: Reason.LATE_WITH_EVERY_RIDER}
    assert res.routes.stops(0) == []


def test_one_rider_batches_a_site() -> None:
    snap = hand_snapshot([(0.0, 0.0)] * 3, riders=[(100.0, 0.0)])
    for mode in ("single_site", "mixed"):
        res = run(snap, max_orders_per_rider=5, trip_mode=mode)
        assert assigned_of(res) == {0: 0, 1: 0, 2: 0}
        assert sorted(res.routes.stops(0)) == sorted([(o, k) for o in range(3) for k in (PICKUP, DROPOFF)])


def test_order_limit_leaves_riders_busy() -> None:
    snap = hand_snapshot([(0.0, 0.0)] * 3, riders=[(100.0, 0.0)])
    res = run(snap, max_orders_per_rider=1)
    assert len(assigned_of(res)) == 1
    assert sorted(reasons_of(res).values()) == [Reason.RIDERS_BUSY, Reason.RIDERS_BUSY]


def test_rider_at_the_order_limit_is_not_given_more() -> None:
    routes = [[(1, DROPOFF), (2, DROPOFF)], [(3, DROPOFF), (4, DROPOFF)]]
    snap = hand_snapshot([(0.0, 0.0)], riders=[(100.0, 0.0), (0.0, 100.0)], routes=routes, extra_orders=4)
    res = run(snap, max_orders_per_rider=2)
    assert reasons_of(res) == {0: Reason.NO_RIDER_IN_REACH}
    res = run(snap, max_orders_per_rider=3)
    assert 0 in assigned_of(res)


def test_open_order_moves_only_with_reassign() -> None:
    """Rider 0 is 6 km from the site with order 1 to pick up there (not frozen); rider 1 waits at the site.
    Without reassign order 1 stays with rider 0 (which then batches the new order with it); with it, OR-Tools hands
    both to rider 1 (a far cheaper plan)."""
    routes = [[(1, PICKUP), (1, DROPOFF)], []]
    snap = hand_snapshot([(0.0, 0.0)], riders=[(6000.0, 0.0), (0.0, 0.0)], routes=routes, extra_orders=1)
    kept = run(snap, reassign=False, ortools_time_limit_s=0.2)
    assert {(1, PICKUP), (1, DROPOFF)} <= set(kept.routes.stops(0))
    assert 0 in assigned_of(kept)
    moved = run(snap, reassign=True, ortools_time_limit_s=0.2)
    assert moved.routes.stops(0) == []
    assert {o for o, _ in moved.routes.stops(1)} == {0, 1}
    assert moved.changed.tolist() == [0, 1]
    assert moved.cost_after < kept.cost_after


def test_frozen_and_on_board_stops_stay_with_reassign() -> None:
    # Rider 0 has picked up order 1 (frozen) and must still drop it; order 2 is on board with no pickup in the route.
    routes = [[(1, PICKUP), (1, DROPOFF), (2, DROPOFF)], []]
    snap = hand_snapshot([(0.0, 0.0)], riders=[(3000.0, 0.0), (0.0, 0.0)], routes=routes, frozen=[1, 0], extra_orders=2)
    res = run(snap, reassign=True, ortools_time_limit_s=0.1)
    assert res.routes.stops(0)[0] == (1, PICKUP)
    assert {(1, DROPOFF), (2, DROPOFF)} <= set(res.routes.stops(0))


@pytest.mark.parametrize(("field", "value"), [("max_group_orders", 0), ("max_group_orders", True), ("reassign", 1)])
def test_bad_options_are_rejected_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ParamsError) as info:
        OrToolsPolicy(**{field: value})
    assert info.value.field == field


def test_default_params() -> None:
    policy = OrToolsPolicy()
    assert policy.params == DispatchParams()
    assert (policy.max_group_orders, policy.reassign) == (20, False)


def test_make_policy_knows_ortools() -> None:
    from dispatch.policy import POLICIES, make_policy

    assert "ortools" in POLICIES
    assert type(make_policy("ortools")).__name__ == "OrToolsPolicy"


# ----------------------------------------------------------------------------------------------------------------
# The fallback when OR-Tools finds no solution in time
# ----------------------------------------------------------------------------------------------------------------

# ``solver_status`` of an ``optimise`` call in which OR-Tools found nothing: every search timed out or failed, or
# the integer model would overflow and OR-Tools was not run.
NO_SOLUTION = [
    "scratch:ROUTING_FAIL_TIMEOUT, warm:ROUTING_FAIL_TIMEOUT",
    "warm:WARM_START_REJECTED, scratch:ROUTING_FAIL",
    "MODEL_OVERFLOW",
]
# OR-Tools found a solution (in at least one search), but not a cheaper one.
NOT_BETTER = [
    "scratch:ROUTING_SUCCESS, warm:ROUTING_SUCCESS",
    "warm:ROUTING_PARTIAL_SUCCESS_LOCAL_OPTIMUM_NOT_REACHED",
    "scratch:ROUTING_FAIL_TIMEOUT, warm:ROUTING_SUCCESS",
]


def fake_optimise(status: str, calls: list[tuple[list[int], list[int]]] | None = None) -> Any:
    """An ``optimise`` that keeps the input, as ``routing.optimise`` does when no candidate beats it: a copy of the
    routes, not improved, nothing assigned, the given ``status`` (the policy reads neither cost). ``calls``
    records each call's riders and new orders."""

    def fake(
        orders: OrderTable,
        riders: RiderTable,
        routes: Routes,
        travel: tuple[Any, ...],
        weights: Any,
        mode: int,
        max_orders: int,
        rider_idx: Any,
        new_orders: Any,
        now: float,
        params: RoutingParams | None = None,
    ) -> OptimiseResult:
        if calls is not None:
            calls.append((np.asarray(rider_idx).tolist(), np.asarray(new_orders).tolist()))
        return OptimiseResult(routes.copy(), False, 0.0, 0.0, np.zeros(0, np.int64), status)

    return fake


def run_fallback(
    snap: Snapshot, monkeypatch: pytest.MonkeyPatch, status: str = NO_SOLUTION[0], **changes: Any
) -> tuple[TickResult, list[str]]:
    """A checked tick in which ``optimise`` reports ``status`` and keeps the input; the tick's solver statuses."""
    monkeypatch.setattr(ortools_policy, "optimise", fake_optimise(status))
    params = DispatchParams(**{"ortools_time_limit_s": FAST, **changes})
    policy = OrToolsPolicy(params)
    res = policy.tick(snap, NOW)
    check_tick(snap, snap.routes.copy(), res, params, NOW)
    return res, policy.last_solver_status


def fallback_count(status: str) -> int:
    _, sep, n = status.rpartition("+fallback:")
    assert sep, status
    return int(n)


@pytest.mark.parametrize("status", NO_SOLUTION)
def test_fallback_places_a_site_when_ortools_finds_nothing(status: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # One site, three orders; rider 0 waits 100 m from it, rider 1 is 3 km away: batching on rider 0 is cheapest.
    snap = hand_snapshot([(0.0, 0.0)] * 3, riders=[(100.0, 0.0), (3000.0, 0.0)])
    res, statuses = run_fallback(snap, monkeypatch, status)
    assert assigned_of(res) == {0: 0, 1: 0, 2: 0}
    assert statuses == [f"{status}+fallback:3"]
    assert res.unassigned_order.size == 0 and res.changed.tolist() == [0]
    assert res.cost_after < res.cost_before
    assert res.timings_ms["fallback"] >= 0.0


def test_fallback_takes_orders_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # One rider that may hold one order: the oldest of the three gets it, the others wait.
    snap = hand_snapshot([(0.0, 0.0)] * 3, placed_ago=[300.0, 900.0, 600.0], riders=[(100.0, 0.0)])
    res, statuses = run_fallback(snap, monkeypatch, max_orders_per_rider=1)
    assert assigned_of(res) == {1: 0}
    assert reasons_of(res) == {0: Reason.RIDERS_BUSY, 2: Reason.RIDERS_BUSY}
    assert statuses == [f"{NO_SOLUTION[0]}+fallback:1"]


def test_fallback_picks_the_cheapest_rider(monkeypatch: pytest.MonkeyPatch) -> None:
    snap = hand_snapshot([(0.0, 0.0)], riders=[(2000.0, 0.0), (0.0, 500.0), (-1500.0, 0.0)])
    res, _ = run_fallback(snap, monkeypatch)
    assert assigned_of(res) == {0: 1}


def test_fallback_inserts_into_a_route_under_way(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rider 0 has order 1 to pick up at the site (nothing frozen); the new order joins its bag rather than a rider
    # 2 km away, and order 1 stays in the route.
    routes = [[(1, PICKUP), (1, DROPOFF)], []]
    snap = hand_snapshot([(0.0, 0.0)], riders=[(100.0, 0.0), (2000.0, 0.0)], routes=routes, extra_orders=1)
    res, _ = run_fallback(snap, monkeypatch, trip_mode="single_site")
    assert assigned_of(res) == {0: 0}
    assert sorted(res.routes.stops(0)) == sorted([(o, k) for o in (0, 1) for k in (PICKUP, DROPOFF)])


def test_fallback_keeps_a_pinned_order_with_its_rider(monkeypatch: pytest.MonkeyPatch) -> None:
    snap = hand_snapshot([(0.0, 0.0)], pinned=[0], riders=[(3000.0, 0.0), (0.0, 0.0)])
    res, _ = run_fallback(snap, monkeypatch)
    assert assigned_of(res) == {0: 0}


def test_fallback_leaves_an_order_dearer_than_its_reject_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    # Order 0 was promised 20,000 s ago: any insertion costs > 20 x 20,000, far above its reject cost (1,000 +
    # 20 x 60); order 1, at the same site, is on time and goes to the rider.
    snap = hand_snapshot(
        [(0.0, 0.0)] * 2, promised_in=[-20_000.0, 3600.0], placed_ago=[60.0, 600.0], riders=[(100.0, 0.0)]
    )
    res, statuses = run_fallback(snap, monkeypatch, unassigned_cost=1000.0)
    assert assigned_of(res) == {1: 0}
    assert reasons_of(res) == {0: Reason.LATE_WITH_EVERY_RIDER}
    assert statuses == [f"{NO_SOLUTION[0]}+fallback:1"]


def test_fallback_respects_capacity_and_shift(monkeypatch: pytest.MonkeyPatch) -> None:
    # Order 0 is bigger than any rider; order 1's pickup, 2 km away, is reached after both shifts end.
    snap = hand_snapshot([(0.0, 0.0), (2000.0, 0.0)], size=[3, 1], riders=[(0.0, 0.0), (0.0, 10.0)], capacity=2)
    snap_short = dataclasses.replace(snap, riders=dataclasses.replace(snap.riders, shift_end=np.full(2, NOW + 60.0)))
    res, statuses = run_fallback(snap_short, monkeypatch, max_reach_m=8000.0)
    assert reasons_of(res) == {0: Reason.CAPACITY, 1: Reason.SHIFT_ENDS}
    assert all(fallback_count(s) == 0 for s in statuses)


@pytest.mark.parametrize("status", NOT_BETTER)
def test_no_fallback_when_ortools_found_a_plan_that_is_not_better(status: str, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = hand_snapshot([(0.0, 0.0)] * 3, riders=[(100.0, 0.0), (3000.0, 0.0)])
    res, statuses = run_fallback(snap, monkeypatch, status)
    assert statuses == [status]
    assert res.assigned_order.size == 0 and res.changed.size == 0
    assert set(reasons_of(res)) == {0, 1, 2}
    assert res.timings_ms["fallback"] == 0.0


def test_fallback_completes_a_kept_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """OR-Tools found nothing, but the adapter kept its greedy seed, which placed order 0 only: the fallback places
    the rest on the seed's routes and leaves order 0 where the seed put it."""
    snap = hand_snapshot([(0.0, 0.0)] * 2, riders=[(100.0, 0.0), (0.0, 150.0)])
    status = NO_SOLUTION[0]

    def seed_only(orders: OrderTable, riders: RiderTable, routes: Routes, *args: Any, **kw: Any) -> OptimiseResult:
        out = routes.copy()
        out.order[1, :2], out.kind[1, :2], out.length[1] = 0, [PICKUP, DROPOFF], 2
        return OptimiseResult(out, True, 1e9, 0.0, np.array([0], dtype=np.int64), status, "seed")

    monkeypatch.setattr(ortools_policy, "optimise", seed_only)
    params = DispatchParams(ortools_time_limit_s=FAST)
    policy = OrToolsPolicy(params)
    res = policy.tick(snap, NOW)
    check_tick(snap, snap.routes.copy(), res, params, NOW)
    assert assigned_of(res)[0] == 1 and 1 in assigned_of(res)
    assert policy.last_solver_status == [f"{status}+fallback:1"]


def test_fallback_when_the_real_adapter_gets_nothing_from_ortools(monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through ``routing.optimise``, with OR-Tools' searches made to time out: the adapter's greedy seed
    appends both orders, which costs more than the group's drop penalty (order 0 is very late), so the adapter
    keeps the input and places nothing; the fallback then places order 1 and leaves order 0."""
    monkeypatch.setattr(routing._Solver, "solve", lambda self, init, seconds: (None, "ROUTING_FAIL_TIMEOUT"))
    snap = hand_snapshot(
        [(0.0, 0.0)] * 2, promised_in=[-20_000.0, 3600.0], placed_ago=[60.0, 600.0], riders=[(100.0, 0.0)]
    )
    params = DispatchParams(ortools_time_limit_s=FAST, unassigned_cost=1000.0)
    policy = OrToolsPolicy(params)
    res = policy.tick(snap, NOW)
    check_tick(snap, snap.routes.copy(), res, params, NOW)
    assert assigned_of(res) == {1: 0}
    assert reasons_of(res) == {0: Reason.LATE_WITH_EVERY_RIDER}
    (status,) = policy.last_solver_status
    assert "ROUTING_FAIL_TIMEOUT" in status and fallback_count(status) == 1


def test_found_statuses_are_ortools_names() -> None:
    from ortools.constraint_solver import routing_enums_pb2

    names = set(routing_enums_pb2.RoutingSearchStatus.Value.keys())
    assert names >= ortools_policy._FOUND
    assert not ortools_policy._solution_found("scratch:ROUTING_FAIL_TIMEOUT, warm:ROUTING_FAIL")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=city())
def test_fallback_tick_properties(case: tuple[Snapshot, DispatchParams]) -> None:
    """With OR-Tools finding nothing for any group, every tick still keeps the hard rules (``check_tick``: routes
    feasible for the oracle, no order twice, costs not raised), each model is followed by the fallback, and the
    fallback's counts add up to the orders assigned."""
    snap, params = case
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ortools_policy, "optimise", fake_optimise(NO_SOLUTION[0]))
        policy = OrToolsPolicy(params, max_group_orders=4)
        before = snap.routes.copy()
        res = policy.tick(snap, NOW)
    check_tick(snap, before, res, params, NOW)
    assert sum(fallback_count(s) for s in policy.last_solver_status) == res.assigned_order.size
