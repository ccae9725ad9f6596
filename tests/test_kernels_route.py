"""Tests for dispatch.kernels.route (evaluate_routes, evaluate_subset, sequence_cost) and the travel legs it rides,
checked against the plain-Python oracle of conftest."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import (
    MIXED,
    NOW,
    SINGLE_SITE,
    WEIGHTS,
    ConstantTravel,
    ProfileTravel,
    ProviderTravel,
    close,
    random_instance,
    random_routes,
    rider_tuple,
    routes_of,
    seq_arrays,
    simulate,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.geo import ProfileTravelTime, SpeedProfile
from dispatch.kernels.route import bag_mates, evaluate_routes, evaluate_subset, sequence_cost
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes

seeds = st.integers(0, 2**32 - 1)
modes = st.sampled_from([SINGLE_SITE, MIXED])

EV_NAMES = ("arrive", "depart", "load", "onboard", "late", "cum_metres", "cum_late", "slack")


def evaluate(inst, routes: Routes, mode: int, weights=WEIGHTS):  # type: ignore[no-untyped-def]
    return evaluate_routes(
        inst.orders.as_tuple(), inst.riders.as_tuple(), routes.as_tuple(), inst.arrays, weights, mode
    )


def assert_matches_oracle(inst, routes: Routes, mode: int, ev, tot, travel=None) -> None:  # type: ignore[no-untyped-def]
    """Every per-stop and per-rider output of evaluate_routes equals the oracle's."""
    arrive, depart, load, onboard, late, cum_metres, cum_late, _slack = ev
    end, metres, lateness, cost, feasible = tot
    for r in range(inst.riders.m):
        seq = routes.stops(r)
        sim = simulate(
            inst.orders, inst.riders, r, seq, travel=travel or inst.travel, n_frozen=int(routes.frozen[r]), mode=mode
        )
        for s in range(len(seq)):
            assert close(arrive[r, s], sim.arrive[s]), (r, s, "arrive")
            assert close(depart[r, s], sim.depart[s]), (r, s, "depart")
            assert load[r, s] == sim.load[s], (r, s, "load")
            assert onboard[r, s] == sim.onboard[s], (r, s, "onboard")
            assert close(late[r, s], sim.late[s]), (r, s, "late")
            assert close(cum_metres[r, s], sim.cum_metres[s]), (r, s, "cum_metres")
            assert close(cum_late[r, s], sim.cum_late[s]), (r, s, "cum_late")
        assert close(end[r], sim.end), (r, "end")
        assert close(metres[r], sim.metres), (r, "metres")
        assert close(lateness[r], sim.lateness), (r, "lateness")
        assert close(cost[r], sim.cost, rel=1e-9, abs_=1e-5), (r, "cost")
        assert bool(feasible[r]) == sim.feasible, (r, seq, int(routes.frozen[r]), sim.violations)


# ----------------------------------------------------------------------------------------------------------------
# A handcrafted route with known numbers
# ----------------------------------------------------------------------------------------------------------------


def two_order_world() -> tuple[OrderTable, RiderTable, tuple]:  # type: ignore[type-arg]
    """Rider at (0, 0) from NOW; a site at (500, 0); drop-offs 1 km and 2 km north of it; 5 m/s, no detour."""
    orders = OrderTable.build(
        pick_x=[500.0, 500.0],
        pick_y=[0.0, 0.0],
        drop_x=[500.0, 500.0],
        drop_y=[1000.0, 2000.0],
        site=[0, 0],
        ready=[NOW + 200.0, NOW + 200.0],
        promised=[NOW + 400.0, NOW + 1000.0],
        service_pick=[60.0, 60.0],
        service_drop=[30.0, 30.0],
    )
    riders = RiderTable.build(x=[0.0], y=[0.0], avail=[NOW], shift_end=[NOW + 3600.0], capacity=[2])
    travel = ProfileTravelTime(profile=SpeedProfile.constant(5.0), detour=1.0).arrays()
    return orders, riders, travel


def test_handcrafted_route_waits_batches_and_is_late() -> None:
    orders, riders, travel = two_order_world()
    routes = Routes.from_lists([[(0, PICKUP), (1, PICKUP), (0, DROPOFF), (1, DROPOFF)]], 4)
    ev, tot = evaluate_routes(orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, SINGLE_SITE)
    arrive, depart, load, onboard, late, cum_metres, cum_late, slack = ev
    # P0: 500 m at 5 m/s, waits for ready (+200), 60 s service; P1 at the same site: no service of its own.
    np.testing.assert_allclose(arrive[0] - NOW, [100.0, 260.0, 460.0, 690.0])
    np.testing.assert_allclose(depart[0] - NOW, [260.0, 260.0, 490.0, 720.0])
    np.testing.assert_array_equal(load[0], [1, 2, 1, 0])
    np.testing.assert_array_equal(onboard[0], [1, 2, 1, 0])
    np.testing.assert_allclose(late[0], [0.0, 0.0, 60.0, 0.0])
    np.testing.assert_allclose(cum_metres[0], [500.0, 500.0, 1500.0, 2500.0])
    np.testing.assert_allclose(cum_late[0], [0.0, 0.0, 60.0, 60.0])
    np.testing.assert_allclose(slack[0], [-60.0, -60.0, -60.0, 310.0])
    end, metres, lateness, cost, feasible = tot
    assert end[0] == pytest.approx(NOW + 720.0)
    assert metres[0] == pytest.approx(2500.0)
    assert lateness[0] == pytest.approx(60.0)
    assert cost[0] == pytest.approx(720.0 + 0.05 * 2500.0 + 20.0 * 60.0)
    assert bool(feasible[0])


def test_handcrafted_route_hard_rules() -> None:
    orders, _riders, travel = two_order_world()
    o, tr = orders.as_tuple(), travel

    def feasible(seq, frozen=0, mode=SINGLE_SITE, capacity=2, shift_end=NOW + 3600.0):  # type: ignore[no-untyped-def]
        rd = RiderTable.build(x=[0.0], y=[0.0], avail=[NOW], shift_end=[shift_end], capacity=[capacity])
        routes = Routes.from_lists([seq], 4, [frozen])
        _, tot = evaluate_routes(o, rd.as_tuple(), routes.as_tuple(), tr, WEIGHTS, mode)
        return bool(tot[4][0])

    one_bag = [(0, PICKUP), (1, PICKUP), (0, DROPOFF), (1, DROPOFF)]
    interleaved = [(0, PICKUP), (0, DROPOFF), (1, PICKUP), (1, DROPOFF)]
    carrying = [(0, PICKUP), (0, DROPOFF), (1, DROPOFF)]  # order 1 on board from the start
    assert feasible(one_bag)
    assert not feasible(one_bag, capacity=1)
    assert feasible(interleaved, capacity=1)
    # Single site: the second pickup comes with nothing on board, fine.
    assert feasible(interleaved)
    assert not feasible(carrying, mode=MIXED, capacity=1)  # order 1 on board from the start: 1 + 1 > 1
    assert feasible(carrying, mode=MIXED)
    assert not feasible(carrying, mode=SINGLE_SITE)  # picks order 0 up with order 1 on board
    assert feasible(carrying, mode=SINGLE_SITE, frozen=1)  # ... unless that pickup is frozen
    # Shift end: the pickups are reached at NOW + 100 and NOW + 260; a frozen pickup is exempt.
    assert not feasible(one_bag, shift_end=NOW + 99.0)
    assert not feasible(one_bag, shift_end=NOW + 259.0, frozen=1)
    assert feasible(one_bag, shift_end=NOW + 259.0, frozen=2)
    assert feasible(one_bag, shift_end=NOW + 260.0)


def test_evaluate_routes_flags_dropoff_before_pickup() -> None:
    orders, riders, travel = two_order_world()
    routes = Routes.from_lists([[(0, DROPOFF), (0, PICKUP)]], 2)
    _, tot = evaluate_routes(orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, MIXED)
    assert not bool(tot[4][0])


@pytest.mark.parametrize(
    "seq",
    [[(0, PICKUP), (0, PICKUP), (0, DROPOFF)], [(0, PICKUP), (0, DROPOFF), (0, DROPOFF)]],
    ids=["pickup-twice", "dropoff-twice"],
)
def test_sequence_cost_rejects_repeated_stops(seq) -> None:  # type: ignore[no-untyped-def]
    orders, riders, travel = two_order_world()
    so, sk = seq_arrays(seq)
    c = sequence_cost(orders.as_tuple(), rider_tuple(riders, 0), travel, WEIGHTS, MIXED, so, sk, len(seq), 0, 5)
    assert c == np.inf


# ----------------------------------------------------------------------------------------------------------------
# Random routes against the oracle
# ----------------------------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(seed=seeds, mode=modes, kind=st.sampled_from(["constant", "matrix", "profile", "minutes"]))
def test_evaluate_routes_matches_oracle(seed: int, mode: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 5))
    inst = random_instance(rng, 4 * m, m, kind=kind)
    seqs, frozen = random_routes(rng, inst, list(range(inst.orders.n)), mode=mode, feasible_only=False)
    routes = routes_of(seqs, frozen, 10)
    ev, tot = evaluate(inst, routes, mode)
    assert_matches_oracle(inst, routes, mode, ev, tot)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, mode=modes)
def test_slack_is_a_delay_that_adds_no_lateness(seed: int, mode: int) -> None:
    """Starting stop s later by slack[s] (when >= 0) adds no lateness. When no drop-off from s on is late, the
    slack is tight: 1 s more makes a drop-off 1 s late. A negative slack means a drop-off from s on is late
    already; +inf means no drop-off follows."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 4))
    inst = random_instance(rng, 4 * m, m, kind="constant")
    seqs, frozen = random_routes(rng, inst, list(range(inst.orders.n)), mode=mode, feasible_only=False)
    routes = routes_of(seqs, frozen, 10)
    ev, _ = evaluate(inst, routes, mode)
    slack = ev[7]
    for r, seq in enumerate(seqs):
        base = simulate(inst.orders, inst.riders, r, seq, travel=inst.travel, mode=mode)

        def delayed(s: int, d: float, r: int = r, seq: list = seq):  # type: ignore[type-arg]
            return simulate(inst.orders, inst.riders, r, seq, travel=inst.travel, mode=mode, delay=(s, d))

        for s in range(len(seq)):
            sl = float(slack[r, s])
            tail_late = max(base.late[s:])
            if math.isinf(sl):
                assert sl > 0 and all(k == PICKUP for _, k in seq[s:])
                continue
            if sl < 0:
                assert tail_late > 0.0
                continue
            assert delayed(s, sl).lateness - base.lateness <= 1e-6, (r, s, sl)
            if tail_late == 0.0:
                assert max(delayed(s, sl).late[s:]) <= 1e-6
                assert delayed(s, sl + 1.0).lateness - base.lateness >= 1.0 - 1e-6, (r, s, sl)


def waiting_then_late_world() -> tuple[OrderTable, RiderTable, Routes, tuple]:  # type: ignore[type-arg]
    """Mixed trip: pick order 1 up at (0, 500), then wait ~800 s at (500, 0) for order 0, which is then delivered
    60 s late; order 1 is delivered last, on time."""
    orders = OrderTable.build(
        pick_x=[500.0, 0.0],
        pick_y=[0.0, 500.0],
        drop_x=[500.0, 0.0],
        drop_y=[1000.0, 1500.0],
        site=[0, 1],
        ready=[NOW + 1000.0, NOW],
        promised=[NOW + 1140.0, NOW + 3600.0],
    )
    riders = RiderTable.build(x=[0.0], y=[0.0], avail=[NOW], shift_end=[NOW + 3600.0], capacity=[2])
    routes = Routes.from_lists([[(1, PICKUP), (0, PICKUP), (0, DROPOFF), (1, DROPOFF)]], 4)
    travel = ProfileTravelTime(profile=SpeedProfile.constant(5.0), detour=1.0).arrays()
    return orders, riders, routes, travel


def test_slack_before_a_wait_absorbs_the_delay() -> None:
    orders, riders, routes, travel = waiting_then_late_world()
    ev, _ = evaluate_routes(orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, WEIGHTS, MIXED)
    slack = ev[7][0]
    assert slack[2] == pytest.approx(-60.0)  # order 0 is 60 s late at its drop-off
    model = ConstantTravel(5.0, 1.0)
    base = simulate(orders, riders, 0, routes.stops(0), travel=model, mode=MIXED)
    assert base.lateness == pytest.approx(60.0)
    later = simulate(orders, riders, 0, routes.stops(0), travel=model, mode=MIXED, delay=(0, float(slack[0])))
    assert later.lateness == pytest.approx(base.lateness)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, mode=modes)
def test_sequence_cost_matches_oracle(seed: int, mode: int) -> None:
    """Cost of a sequence (or +inf exactly when a hard rule breaks, precedence and the order limit included)."""
    rng = np.random.default_rng(seed)
    inst = random_instance(rng, 6, 1, kind="constant")
    seqs, frozen = random_routes(rng, inst, list(range(6)), mode=mode, feasible_only=False, max_len=12)
    seq = seqs[0]
    if len(seq) >= 2 and rng.random() < 0.25:
        # Swap a pickup with its own drop-off: precedence broken.
        s = next((i for i, (_, k) in enumerate(seq) if k == PICKUP), None)
        if s is not None:
            o = seq[s][0]
            d = seq.index((o, DROPOFF))
            seq[s], seq[d] = seq[d], seq[s]
    max_orders = int(rng.integers(1, 7))
    so, sk = seq_arrays(seq, width=len(seq) + 3)
    c = sequence_cost(
        inst.orders.as_tuple(), rider_tuple(inst.riders, 0), inst.arrays, WEIGHTS, mode, so, sk, len(seq),
        frozen[0], max_orders,
    )  # fmt: skip
    sim = simulate(
        inst.orders, inst.riders, 0, seq, travel=inst.travel, n_frozen=frozen[0], mode=mode, max_orders=max_orders
    )
    if sim.feasible:
        assert close(c, sim.cost, abs_=1e-5)
    else:
        assert c == np.inf, sim.violations


@settings(max_examples=20, deadline=None)
@given(seed=seeds, mode=modes)
def test_evaluate_subset_updates_only_the_given_riders(seed: int, mode: int) -> None:
    rng = np.random.default_rng(seed)
    inst = random_instance(rng, 12, 4, kind="constant")
    seqs, frozen = random_routes(rng, inst, list(range(12)), mode=mode, feasible_only=False)
    routes = routes_of(seqs, frozen, 10)
    ev, tot = evaluate(inst, routes, mode)
    # Change riders 1 and 3 (reverse their routes), re-evaluate only rider 1.
    changed = routes.copy()
    for r in (1, 3):
        n = int(changed.length[r])
        changed.order[r, :n] = changed.order[r, :n][::-1]
        changed.kind[r, :n] = changed.kind[r, :n][::-1]
        changed.frozen[r] = 0
    ev2 = tuple(a.copy() for a in ev)
    tot2 = tuple(a.copy() for a in tot)
    evaluate_subset(
        inst.orders.as_tuple(), inst.riders.as_tuple(), changed.as_tuple(), inst.arrays, WEIGHTS, mode,
        np.array([1], dtype=np.int64), ev2, tot2,
    )  # fmt: skip
    fresh_ev, fresh_tot = evaluate(inst, changed, mode)
    n1 = int(changed.length[1])
    for a, b in zip(ev2, fresh_ev, strict=True):
        np.testing.assert_array_equal(a[1, :n1], b[1, :n1])
    for a, b in zip(tot2, fresh_tot, strict=True):
        assert a[1] == b[1]
    for r in (0, 2, 3):  # untouched, rider 3 included although its route changed
        for a, b in zip(ev2, ev, strict=True):
            np.testing.assert_array_equal(a[r], b[r])
        for a, b in zip(tot2, tot, strict=True):
            assert a[r] == b[r]


# ----------------------------------------------------------------------------------------------------------------
# The time-dependent default profile
# ----------------------------------------------------------------------------------------------------------------


def test_pure_python_profile_matches_geo_seconds() -> None:
    """The oracle's own integration of the default e-bike day equals ProfileTravelTime.seconds, legs crossing
    hour bins and midnight included, and a later departure never arrives earlier (FIFO)."""
    geo = ProfileTravelTime()
    model = ProfileTravel(geo.profile.speed_mps, geo.profile.bin_seconds, geo.detour, geo.utc_offset_s)
    rng = np.random.default_rng(7)
    n = 400
    xa, ya = rng.uniform(-5e3, 5e3, n), rng.uniform(-5e3, 5e3, n)
    scale = rng.choice([1.0, 10.0, 100.0], n)  # up to ~1,000 km: many bins and several days
    xb, yb = xa + scale * rng.uniform(-5e3, 5e3, n), ya + scale * rng.uniform(-5e3, 5e3, n)
    depart = NOW + rng.uniform(0.0, 2 * 86400.0, n)
    sf = rng.uniform(0.7, 1.3, n)
    got = geo.seconds(xa, ya, xb, yb, depart, sf)
    want = np.array([model.leg((xa[i], ya[i], -1), (xb[i], yb[i], -1), depart[i], sf[i])[1] for i in range(n)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)
    # FIFO: leaving 1..600 s later never arrives earlier.
    later = depart + rng.uniform(1.0, 600.0, n)
    assert np.all(later + geo.seconds(xa, ya, xb, yb, later, sf) >= depart + got - 1e-6)
    # Constant profile: seconds are metres / speed.
    flat = ProfileTravelTime(profile=SpeedProfile.constant(4.0), detour=1.2)
    const = ConstantTravel(4.0, 1.2)
    want_c = [const.leg((xa[i], ya[i], -1), (xb[i], yb[i], -1), depart[i], sf[i])[1] for i in range(n)]
    np.testing.assert_allclose(flat.seconds(xa, ya, xb, yb, depart, sf), want_c, rtol=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=seeds, mode=modes, start_hour=st.integers(0, 23))
def test_evaluate_routes_time_dependent_matches_geo_seconds(seed: int, mode: int, start_hour: int) -> None:
    """With the default (time-of-day) profile, every leg of the evaluation equals geo's seconds() for its
    departure time; start hours are spread over the day so that legs fall in every bin."""
    rng = np.random.default_rng(seed)
    t0 = NOW - (NOW % 3600.0) + start_hour * 3600.0 + 3000.0  # ten minutes before an hour ends
    m = int(rng.integers(1, 4))
    inst = random_instance(rng, 4 * m, m, kind="profile", t0=t0)
    seqs, frozen = random_routes(rng, inst, list(range(inst.orders.n)), mode=mode, feasible_only=False)
    routes = routes_of(seqs, frozen, 10)
    ev, tot = evaluate(inst, routes, mode)
    assert_matches_oracle(inst, routes, mode, ev, tot, travel=ProviderTravel(ProfileTravelTime()))


def test_bag_mates_need_the_same_site_point_and_a_free_leg() -> None:
    """Pickups count as one bag's (priced once per bag by the insertion, left unpermuted by local search) only
    when the leg between them is free: the same site and point, and in matrix mode a zero diagonal."""
    orders = OrderTable.build(
        pick_x=[0.0, 0.0, 0.0, 5.0], pick_y=[0.0, 0.0, 0.0, 0.0], drop_x=[1.0, 2.0, 3.0, 4.0],
        drop_y=[0.0, 0.0, 0.0, 0.0], site=[0, 0, 1, 0], ready=[NOW] * 4, promised=[NOW + 3600.0] * 4,
        pick_loc=[0, 0, 0, 0], drop_loc=[1, 2, 3, 4],
    ).as_tuple()  # fmt: skip
    line = ProfileTravelTime(profile=SpeedProfile.constant(5.0), detour=1.3).arrays()
    assert bag_mates(orders, line, 0, 1)
    assert not bag_mates(orders, line, 0, 2)  # another site
    assert not bag_mates(orders, line, 0, 3)  # the same site, another point
    params = np.array([86_400.0, 1.0, 0.0, 1.0, 0.0])
    free = np.zeros((5, 5))
    slow = np.eye(5) * 20.0
    assert bag_mates(orders, (params, np.ones(1), free, free), 0, 1)
    assert not bag_mates(orders, (params, np.ones(1), slow, free), 0, 1)
    assert not bag_mates(orders, (params, np.ones(1), free, slow), 0, 1)
