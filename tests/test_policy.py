"""Tests for dispatch.policy: DispatchParams validation, and KernelPolicy / GreedyPolicy ticks checked by the
plain-Python oracle (feasibility, frozen stops, no double assignment, reasons, ETAs)."""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from conftest import (
    NOW,
    MatrixTravel,
    ProfileTravel,
    close,
    simulate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.geo import ProfileTravelTime, SpeedProfile
from dispatch.kernels import insertion as ins
from dispatch.policy import (
    DispatchParams,
    GreedyPolicy,
    KernelPolicy,
    ParamsError,
    Reason,
    Snapshot,
    TickResult,
    _reasons,
)
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes
from dispatch.synthetic import CitySpec, city_snapshot

# ----------------------------------------------------------------------------------------------------------------
# DispatchParams
# ----------------------------------------------------------------------------------------------------------------

BAD_VALUES: list[tuple[str, Any]] = [
    ("tick_s", 0.0),
    ("tick_s", -1.0),
    ("tick_s", math.nan),
    ("tick_s", math.inf),
    ("tick_s", "15"),
    ("hold_s", -1.0),
    ("hold_s", math.nan),
    ("max_orders_per_rider", 0),
    ("max_orders_per_rider", 2.5),
    ("max_orders_per_rider", True),
    ("weight_time", -0.1),
    ("weight_distance", math.inf),
    ("weight_late", -20.0),
    ("unassigned_cost", 0.0),
    ("unassigned_cost", math.nan),
    ("candidate_k", 0),
    ("candidate_k", "8"),
    ("max_reach_m", 0.0),
    ("max_reach_m", math.inf),
    ("reference_speed_mps", -4.5),
    ("rounds", -1),
    ("local_search_passes", -1),
    ("trip_mode", "single"),
    ("trip_mode", 0),
    ("ortools_every_ticks", -1),
    ("ortools_time_limit_s", 0.0),
    ("ortools_min_stops", 1),
    ("parallel", 1),
    ("local_search_pairs", 1),
    ("parallel", "yes"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_VALUES])
def test_params_reject_bad_values_naming_the_field(name: str, value: Any) -> None:
    with pytest.raises(ParamsError) as info:
        DispatchParams(**{name: value})
    assert info.value.field == name
    assert str(info.value).startswith(f"{name}:")
    # The same through with_updates, from valid defaults.
    with pytest.raises(ParamsError) as info2:
        DispatchParams().with_updates(**{name: value})
    assert info2.value.field == name


def test_params_reject_booleans_for_numbers() -> None:
    with pytest.raises(ParamsError) as info:
        DispatchParams(tick_s=True)
    assert info.value.field == "tick_s"


def test_params_defaults_and_updates() -> None:
    p = DispatchParams()
    np.testing.assert_array_equal(p.weights, [p.weight_time, p.weight_distance, p.weight_late])
    assert p.weights.dtype == np.float64
    assert p.n_rounds == p.max_orders_per_rider
    assert DispatchParams(rounds=2).n_rounds == 2
    assert DispatchParams(trip_mode="mixed").mode != DispatchParams(trip_mode="single_site").mode
    q = p.with_updates(candidate_k=3, trip_mode="mixed")
    assert (q.candidate_k, q.trip_mode) == (3, "mixed")
    assert p.candidate_k == DispatchParams().candidate_k  # the original is unchanged
    assert q.to_dict()["candidate_k"] == 3
    with pytest.raises(ParamsError) as info:
        p.with_updates(no_such_field=1)
    assert info.value.field == "no_such_field"
    with pytest.raises(ParamsError):
        p.with_updates(candidate_k=4, tick=3)
    assert isinstance(ParamsError("x", "y"), ValueError)


# ----------------------------------------------------------------------------------------------------------------
# Independent checks of a tick's result
# ----------------------------------------------------------------------------------------------------------------


def travel_model(travel: tuple[Any, ...]) -> Any:
    """The oracle's own travel model for a kernels' travel tuple."""
    params = travel[0]
    if params[3] != 0.0:
        return MatrixTravel(travel[2], travel[3])
    return ProfileTravel(travel[1], params[0], params[1], params[2])


def route_oracle(snap: Snapshot, routes: Routes, r: int, mode: int, max_orders: int | None = None):  # type: ignore[no-untyped-def]
    return simulate(
        snap.orders, snap.riders, r, routes.stops(r), travel=travel_model(snap.travel),
        n_frozen=int(routes.frozen[r]), mode=mode, max_orders=max_orders,
    )  # fmt: skip


def check_tick(snap: Snapshot, before: Routes, res: TickResult, params: DispatchParams, now: float) -> None:
    """Properties every policy's tick must have."""
    orders, riders = snap.orders, snap.riders
    m = riders.m
    mode = params.mode
    # The snapshot's routes are not modified.
    for a, b in zip(snap.routes.as_tuple(), before.as_tuple(), strict=True):
        np.testing.assert_array_equal(a, b)
    out = res.routes
    assert out.length.shape == (m,)
    np.testing.assert_array_equal(out.frozen, before.frozen)
    # Assigned and unassigned split the pending orders; each order is assigned once.
    pending = set(snap.pending.tolist())
    ao, ar = res.assigned_order.tolist(), res.assigned_rider.tolist()
    uo = res.unassigned_order.tolist()
    assert len(ao) == len(ar) and len(ao) == len(set(ao))
    assert len(uo) == len(set(uo)) and res.unassigned_reason.shape == res.unassigned_order.shape
    assert set(ao).isdisjoint(uo) and set(ao) | set(uo) == pending
    valid = {int(x) for x in Reason} - {int(Reason.NONE)}
    assert {int(x) for x in res.unassigned_reason.tolist()} <= valid
    # No stop is in two routes or twice in one.
    where: dict[tuple[int, int], int] = {}
    for r in range(m):
        for stop in out.stops(r):
            assert stop not in where, stop
            where[stop] = r
    # Frozen prefixes unchanged; every old stop stays with its rider; the only new stops are the assignments'.
    new_for: dict[int, set[tuple[int, int]]] = {}
    for o, r in zip(ao, ar, strict=True):
        new_for.setdefault(r, set()).update({(o, PICKUP), (o, DROPOFF)})
    for r in range(m):
        old, new = before.stops(r), out.stops(r)
        F = int(before.frozen[r])
        assert new[:F] == old[:F], r
        assert not Counter(old) - Counter(new), r
        assert set((Counter(new) - Counter(old)).elements()) == new_for.get(r, set()), r
        assert len(new) == len(old) + len(new_for.get(r, set()))
    for o in uo:
        assert (o, PICKUP) not in where and (o, DROPOFF) not in where
    # Every route is feasible for the oracle (changed ones within the order limit), pickups before drop-offs,
    # and the reported ETAs are its arrival times.
    changed = set(ar)
    eta = res.eta_dropoff(orders.n)
    routed = set()
    for r in range(m):
        sim = route_oracle(snap, out, r, mode, params.max_orders_per_rider if r in changed else None)
        assert sim.feasible, (r, out.stops(r), sim.violations)
        for s, (o, k) in enumerate(out.stops(r)):
            assert close(float(res.arrive[r, s]), sim.arrive[s], abs_=1e-4), (r, s)
            if k == DROPOFF:
                assert close(float(eta[o]), sim.arrive[s], abs_=1e-4)
                routed.add(o)
    assert all(math.isnan(eta[o]) for o in range(orders.n) if o not in routed)


def snapshot_routes_feasible(snap: Snapshot, mode: int) -> bool:
    return all(route_oracle(snap, snap.routes, r, mode).feasible for r in range(snap.riders.m))


def accepting_now(snap: Snapshot, params: DispatchParams, now: float) -> np.ndarray:
    n_orders = np.array([sum(k == DROPOFF for _, k in snap.routes.stops(r)) for r in range(snap.riders.m)])
    rd = snap.riders
    return rd.online & (rd.shift_start <= now) & (rd.shift_end > now) & (n_orders < params.max_orders_per_rider)


def free_points(snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    x, y = snap.riders.x.copy(), snap.riders.y.copy()
    for r in range(snap.riders.m):
        stops = snap.routes.stops(r)
        if stops:
            o, k = stops[-1]
            x[r] = snap.orders.pick_x[o] if k == PICKUP else snap.orders.drop_x[o]
            y[r] = snap.orders.pick_y[o] if k == PICKUP else snap.orders.drop_y[o]
    return x, y


# ----------------------------------------------------------------------------------------------------------------
# Property tests on small synthetic cities
# ----------------------------------------------------------------------------------------------------------------


@st.composite
def city(draw: Any) -> tuple[Snapshot, DispatchParams]:
    stops = draw(st.sampled_from([2, 4, 6]))
    spec = CitySpec(
        n_orders=draw(st.integers(1, 12)),
        n_riders=draw(st.integers(1, 10)),
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
    pin_share = draw(st.sampled_from([0.0, 0.3]))
    off_share = draw(st.sampled_from([0.0, 0.3]))
    pinned = snap.orders.pinned.copy()
    pend = snap.pending
    pin = rng.random(pend.shape[0]) < pin_share
    pinned[pend[pin]] = rng.integers(0, spec.n_riders, int(pin.sum()))
    online = rng.random(spec.n_riders) >= off_share
    snap = dataclasses.replace(
        snap,
        orders=dataclasses.replace(snap.orders, pinned=pinned),
        riders=dataclasses.replace(snap.riders, online=online),
    )
    params = DispatchParams(
        trip_mode=draw(st.sampled_from(["single_site", "mixed"])),
        max_orders_per_rider=draw(st.integers(1, 5)),
        candidate_k=draw(st.integers(1, 6)),
        hold_s=draw(st.sampled_from([0.0, 30.0, 120.0])),
        local_search_passes=draw(st.integers(0, 2)),
        max_reach_m=draw(st.sampled_from([2000.0, 8000.0])),
    )
    return snap, params


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=city())
def test_kernel_policy_tick_properties(case: tuple[Snapshot, DispatchParams]) -> None:
    snap, params = case
    assert snapshot_routes_feasible(snap, params.mode)
    before = snap.routes.copy()
    res = KernelPolicy(params).tick(snap, NOW)
    check_tick(snap, before, res, params, NOW)
    rd, orders = snap.riders, snap.orders
    # New orders go to riders online and in shift, and pinned orders to their rider only.
    for o, r in zip(res.assigned_order.tolist(), res.assigned_rider.tolist(), strict=True):
        assert rd.online[r] and rd.shift_start[r] <= NOW < rd.shift_end[r]
        if orders.pinned[o] >= 0:
            assert r == orders.pinned[o]
    assert sorted(set(res.assigned_rider.tolist())) == res.changed.tolist()
    # Held orders (young, not pinned) are held, and only they.
    reason = dict(zip(res.unassigned_order.tolist(), res.unassigned_reason.tolist(), strict=True))
    for o in snap.pending.tolist():
        held = NOW - orders.placed[o] < params.hold_s and orders.pinned[o] < 0
        assert (reason.get(o) == Reason.HELD_FOR_BATCHING) == held, o
    # "No rider in reach" is true of an unpinned order: no accepting rider's next free point is within reach.
    acc = accepting_now(snap, params, NOW)
    fx, fy = free_points(snap)
    for o, why in reason.items():
        if why == Reason.NO_RIDER_IN_REACH and orders.pinned[o] < 0:
            d = np.hypot(fx - orders.pick_x[o], fy - orders.pick_y[o])
            assert not np.any(acc & (d <= params.max_reach_m)), o
    # The tick never raises the objective it minimises.
    assert res.cost_after <= res.cost_before + 1e-6 * max(1.0, abs(res.cost_before))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=city())
def test_greedy_policy_tick_properties(case: tuple[Snapshot, DispatchParams]) -> None:
    snap, params = case
    assert snapshot_routes_feasible(snap, params.mode)
    before = snap.routes.copy()
    res = GreedyPolicy(params).tick(snap, NOW)
    check_tick(snap, before, res, params, NOW)
    rd, orders = snap.riders, snap.orders
    riders = res.assigned_rider.tolist()
    assert len(riders) == len(set(riders))  # one order per trip
    for o, r in zip(res.assigned_order.tolist(), riders, strict=True):
        assert before.length[r] == 0 and rd.online[r] and rd.shift_start[r] <= NOW < rd.shift_end[r]
        assert res.routes.stops(r) == [(o, PICKUP), (o, DROPOFF)]
        if orders.pinned[o] >= 0:
            assert r == orders.pinned[o]
    assert {int(x) for x in res.unassigned_reason} <= {int(Reason.RIDERS_BUSY), int(Reason.NO_RIDER_IN_REACH)}
    # First come first served: the earliest placed order, when unpinned, gets the nearest idle rider in reach.
    pend = snap.pending
    first = int(pend[np.lexsort((pend, orders.placed[pend]))][0])
    idle = np.flatnonzero(rd.online & (before.length == 0) & (rd.shift_start <= NOW) & (rd.shift_end > NOW))
    if orders.pinned[first] < 0 and idle.size:
        d = np.hypot(rd.x[idle] - orders.pick_x[first], rd.y[idle] - orders.pick_y[first])
        if d.min() <= params.max_reach_m:
            got = dict(zip(res.assigned_order.tolist(), riders, strict=True))
            assert got.get(first) == int(idle[np.argmin(d)])


# ----------------------------------------------------------------------------------------------------------------
# Handcrafted snapshots: reasons, batching rounds
# ----------------------------------------------------------------------------------------------------------------


def hand_snapshot(
    picks: list[tuple[float, float]],
    *,
    placed_ago: float | list[float] = 600.0,
    promised_in: float | list[float] = 3600.0,
    size: list[int] | None = None,
    site: list[int] | None = None,
    pinned: list[int] | None = None,
    riders: list[tuple[float, float]],
    capacity: int = 6,
    shift_in: float = 7200.0,
    online: list[bool] | None = None,
    routes: list[list[tuple[int, int]]] | None = None,
    extra_orders: int = 0,
) -> Snapshot:
    """Pending orders picked up at ``picks`` and dropped 1 km north; ``extra_orders`` more orders (already on
    board of someone, listed in ``routes``) at the first pick point. Constant 5 m/s, no detour."""
    n = len(picks) + extra_orders
    px = [p[0] for p in picks] + [picks[0][0]] * extra_orders
    py = [p[1] for p in picks] + [picks[0][1]] * extra_orders
    ago = np.broadcast_to(np.asarray(placed_ago, dtype=float), (len(picks),)).tolist() + [900.0] * extra_orders
    prom = np.broadcast_to(np.asarray(promised_in, dtype=float), (len(picks),)).tolist() + [3600.0] * extra_orders
    if site is None:
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
    rt = Routes.from_lists(routes or [[] for _ in range(m)], 4)
    travel = ProfileTravelTime(profile=SpeedProfile.constant(5.0), detour=1.0).arrays()
    return Snapshot(orders, rd, rt, np.arange(len(picks), dtype=np.int64), travel)


def reasons_of(res: TickResult) -> dict[int, int]:
    return dict(zip(res.unassigned_order.tolist(), res.unassigned_reason.tolist(), strict=True))


def assigned_of(res: TickResult) -> dict[int, int]:
    return dict(zip(res.assigned_order.tolist(), res.assigned_rider.tolist(), strict=True))


def tick(snap: Snapshot, **changes: Any) -> TickResult:
    params = DispatchParams(**changes)
    before = snap.routes.copy()
    res = KernelPolicy(params).tick(snap, NOW)
    check_tick(snap, before, res, params, NOW)
    return res


def test_order_out_of_reach_gets_no_rider_in_reach() -> None:
    # Site A at the origin with two riders nearby; site B 20 km east, nobody within 8 km of it.
    snap = hand_snapshot([(0.0, 0.0), (20_000.0, 0.0)], riders=[(300.0, 0.0), (-400.0, 200.0)])
    res = tick(snap, max_reach_m=8000.0)
    assert 0 in assigned_of(res)
    assert reasons_of(res) == {1: Reason.NO_RIDER_IN_REACH}
    params = DispatchParams(max_reach_m=8000.0)
    greedy = GreedyPolicy(params).tick(snap, NOW)
    check_tick(snap, snap.routes.copy(), greedy, params, NOW)
    assert reasons_of(greedy) == {1: Reason.NO_RIDER_IN_REACH}


def test_young_orders_are_held_unless_pinned() -> None:
    snap = hand_snapshot(
        [(0.0, 0.0)] * 3, placed_ago=[5.0, 5.0, 600.0], pinned=[-1, 0, -1], riders=[(100.0, 0.0), (0.0, 100.0)]
    )
    res = tick(snap, hold_s=30.0)
    assert reasons_of(res) == {0: Reason.HELD_FOR_BATCHING}
    assert assigned_of(res)[1] == 0 and 2 in assigned_of(res)
    res = tick(snap, hold_s=0.0)
    assert set(assigned_of(res)) == {0, 1, 2}


def test_riders_at_the_order_limit_leave_no_rider_in_reach() -> None:
    """Every rider already holds max_orders_per_rider orders: none accepts, so none is a candidate; the code
    reports NO_RIDER_IN_REACH (the proto's CAPACITY text also covers this case, see the report)."""
    routes = [[(1, DROPOFF), (2, DROPOFF)], [(3, DROPOFF), (4, DROPOFF)]]
    snap = hand_snapshot([(0.0, 0.0)], riders=[(100.0, 0.0), (0.0, 100.0)], routes=routes, extra_orders=4)
    res = tick(snap, max_orders_per_rider=2)
    assert reasons_of(res) == {0: Reason.NO_RIDER_IN_REACH}
    res = tick(snap, max_orders_per_rider=3)
    assert 0 in assigned_of(res)


def test_order_bigger_than_every_rider_gets_capacity() -> None:
    snap = hand_snapshot([(0.0, 0.0), (0.0, 0.0)], size=[3, 1], riders=[(100.0, 0.0), (0.0, 100.0)], capacity=2)
    res = tick(snap)
    assert reasons_of(res) == {0: Reason.CAPACITY}
    assert 1 in assigned_of(res)


def test_order_beyond_every_shift_gets_shift_ends() -> None:
    # The pickup is 2 km away (400 s at 5 m/s); both shifts end in 60 s.
    snap = hand_snapshot([(2000.0, 0.0)], riders=[(0.0, 0.0), (0.0, 10.0)], shift_in=60.0)
    res = tick(snap)
    assert reasons_of(res) == {0: Reason.SHIFT_ENDS}


def test_order_late_with_every_rider() -> None:
    # Promised 20,000 s ago: any insertion costs > 20 x 20,000, far above the reject cost.
    snap = hand_snapshot([(0.0, 0.0)], promised_in=-20_000.0, placed_ago=60.0, riders=[(100.0, 0.0)])
    res = tick(snap, unassigned_cost=1000.0)
    assert reasons_of(res) == {0: Reason.LATE_WITH_EVERY_RIDER}


def test_order_outbid_gets_riders_busy() -> None:
    snap = hand_snapshot([(0.0, 0.0), (0.0, 0.0)], riders=[(100.0, 0.0)])
    res = tick(snap, max_orders_per_rider=1)
    assert len(assigned_of(res)) == 1
    assert list(reasons_of(res).values()) == [Reason.RIDERS_BUSY]


def test_rounds_batch_several_orders_on_one_rider() -> None:
    snap = hand_snapshot([(0.0, 0.0)] * 3, riders=[(100.0, 0.0)])
    for mode in ("single_site", "mixed"):
        res = tick(snap, max_orders_per_rider=5, trip_mode=mode)
        assert assigned_of(res) == {0: 0, 1: 0, 2: 0}
        assert sorted(res.routes.stops(0)) == sorted([(o, k) for o in range(3) for k in (PICKUP, DROPOFF)])
    res = tick(snap, max_orders_per_rider=5, rounds=2)
    assert len(assigned_of(res)) == 2  # one more order per rider per round


def test_parallel_insertion_gives_the_serial_result() -> None:
    snap = city_snapshot(CitySpec(n_orders=15, n_riders=10, n_sites=2, radius_m=3000.0, seed=5))
    a = KernelPolicy(DispatchParams(hold_s=0.0)).tick(snap, NOW)
    b = KernelPolicy(DispatchParams(hold_s=0.0, parallel=True)).tick(snap, NOW)
    np.testing.assert_array_equal(a.assigned_order, b.assigned_order)
    np.testing.assert_array_equal(a.assigned_rider, b.assigned_rider)
    for r in range(snap.riders.m):
        assert a.routes.stops(r) == b.routes.stops(r)


def test_greedy_leaves_orders_when_no_rider_is_idle() -> None:
    routes = [[(1, DROPOFF)]]
    snap = hand_snapshot([(0.0, 0.0)], riders=[(100.0, 0.0)], routes=routes, extra_orders=1)
    res = GreedyPolicy().tick(snap, NOW)
    assert reasons_of(res) == {0: Reason.RIDERS_BUSY}
    assert res.routes.stops(0) == [(1, DROPOFF)]


def test_greedy_routes_respect_capacity() -> None:
    snap = hand_snapshot([(0.0, 0.0)], size=[3], riders=[(100.0, 0.0)], capacity=2)
    params = DispatchParams()
    res = GreedyPolicy(params).tick(snap, NOW)
    assert route_oracle(snap, res.routes, 0, params.mode).feasible


def test_pinned_order_with_offline_rider_gets_pinned_rider_unavailable() -> None:
    snap = hand_snapshot([(0.0, 0.0)], pinned=[0], riders=[(100.0, 0.0), (0.0, 100.0)], online=[False, True])
    res = tick(snap)
    assert reasons_of(res) == {0: Reason.PINNED_RIDER_UNAVAILABLE}


def test_synthetic_now_is_around_midday_in_utc_plus_8() -> None:
    local = datetime.datetime.fromtimestamp(NOW, datetime.timezone(datetime.timedelta(hours=8)))
    assert 10 <= local.hour <= 14


def test_promise_margin_prices_lateness_against_the_earlier_deadline() -> None:
    # One order, one rider; its drop-off ETA is found first, then it is promised 60 s after that ETA.
    probe = hand_snapshot([(0.0, 0.0)], riders=[(100.0, 0.0)])
    eta = float(tick(probe, promise_margin_s=0.0).eta_dropoff(1)[0])
    snap = hand_snapshot([(0.0, 0.0)], promised_in=eta + 60.0 - NOW, riders=[(100.0, 0.0)])
    plain = tick(snap, promise_margin_s=0.0)
    margin = tick(snap, promise_margin_s=180.0)
    assert assigned_of(plain) == assigned_of(margin) == {0: 0}
    np.testing.assert_array_equal(plain.eta_dropoff(1), margin.eta_dropoff(1))  # the ETAs are not shifted
    # On time by 60 s, but 120 s inside the margin: priced as 120 s late.
    assert margin.cost_after - plain.cost_after == pytest.approx(DispatchParams().weight_late * 120.0, rel=1e-9)
    assert snap.orders.promised[0] == pytest.approx(eta + 60.0)  # the snapshot itself is not modified


def plain_reasons(left, pinned, held_orders, in_reach, eligible, pair_o, first_cost, first_status, reject):  # type: ignore[no-untyped-def]
    """The reason rule of ``policy._reasons``, one order at a time."""
    reach = dict(zip(eligible.tolist(), in_reach.tolist(), strict=True))
    out = []
    for o in left.tolist():
        mine = pair_o == o
        c, st_ = first_cost[mine], first_status[mine]
        if o in set(held_orders.tolist()):
            out.append(Reason.HELD_FOR_BATCHING)
        elif not reach.get(o, False) or c.size == 0:
            out.append(Reason.PINNED_RIDER_UNAVAILABLE if pinned[o] >= 0 else Reason.NO_RIDER_IN_REACH)
        elif not np.isfinite(c).any():
            off = all(s in (ins.AFTER_SHIFT, ins.OFFLINE) for s in st_.tolist())
            out.append(Reason.SHIFT_ENDS if off else Reason.CAPACITY)
        elif float(c.min()) >= reject[o]:
            out.append(Reason.LATE_WITH_EVERY_RIDER)
        else:
            out.append(Reason.RIDERS_BUSY)
    return [int(r) for r in out]


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), pairs=st.integers(0, 80))
def test_reasons_in_whole_arrays_follow_the_rule_order_by_order(seed: int, n: int, pairs: int) -> None:
    rng = np.random.default_rng(seed)
    pending = np.sort(rng.choice(2 * n + 5, n, replace=False)).astype(np.int64)
    left = rng.permutation(pending)[: rng.integers(1, n + 1)]
    eligible = pending[rng.random(n) < 0.8]
    in_reach = rng.random(eligible.size) < 0.8
    pair_o = np.sort(rng.choice(pending, pairs)).astype(np.int64)
    first_cost = np.where(rng.random(pairs) < 0.4, np.inf, rng.uniform(0.0, 100.0, pairs))
    first_status = rng.choice([0, ins.AFTER_SHIFT, ins.OFFLINE, 1, 3], pairs).astype(np.int64)
    pinned = np.where(rng.random(2 * n + 5) < 0.2, 1, -1).astype(np.int64)
    held = pending[rng.random(n) < 0.2]
    reject = rng.uniform(0.0, 120.0, 2 * n + 5)

    class Cand:
        pass

    cand = Cand()
    cand.in_reach = in_reach  # type: ignore[attr-defined]
    got = _reasons(left, pinned=pinned, held_orders=held, cand=cand, eligible=eligible, pair_o=pair_o,
                   first_cost=first_cost, first_status=first_status, reject=reject)  # fmt: skip
    want = plain_reasons(left, pinned, held, in_reach, eligible, pair_o, first_cost, first_status, reject)
    assert got.tolist() == want
