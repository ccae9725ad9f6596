"""The policy's state kept between ticks (``dispatch.service.mirror``) and the loop's slots.

- a mirror fed many small deltas holds what one fed a single full delta holds (hypothesis);
- a slot's call, on only the riders ``Mirror.near`` keeps, assigns exactly like the policy on every rider;
- the owned sites are split into slots that cover each exactly once, and slots keep to their schedule;
- a policy worker that dies loses its mirror: the loop skips that tick and sends everything again;
- ticks in a row keep every earlier order on its route; a full call's promise inputs give the engine's own summary.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from svc_fixtures import make_config, online, order, report, running, ts

from dispatch.policy import DispatchParams, Reason, Snapshot, TickResult, make_policy
from dispatch.promise import PromiseEngine, PromiseSites
from dispatch.promise_params import PromiseParams
from dispatch.service import mirror as mirror_mod
from dispatch.service.loop import next_slot_at, site_slots
from dispatch.service.mirror import RIDER_FIELDS, ROW, Delta, Mirror
from dispatch.service.store import Store
from dispatch.state import DROPOFF, PICKUP, Routes
from dispatch.synthetic import NOW, CitySpec, city_snapshot
from dispatch.v1 import dispatch_pb2 as pb
from dispatch.zones import disc_zones

N_SITES = 4


def _row(i: int) -> np.ndarray:
    """An order row (``OrderRec.row``) that depends only on the order's number."""
    r = np.zeros(ROW)
    r[0], r[1] = 100.0 * (i % N_SITES), 0.0  # pickup at its site
    r[2], r[3] = 50.0 * i, 30.0 * (i % 7)
    r[4] = i % N_SITES
    r[5], r[6], r[7] = NOW, NOW + 3600.0, 1
    r[8], r[9], r[10] = 60.0, 60.0, NOW - 10.0
    r[11:15] = (31.0, 121.0, 31.01, 121.01)
    return r


def _fields(j: int, online_: bool) -> tuple[float, ...]:
    return (NOW - 600.0, NOW + 7200.0 + j, 4.0 + j % 3, 1.0 + 0.1 * (j % 2), 1.0 if online_ else 0.0)


class Model:
    """A tiny stand-in for the store: orders pending or on routes, riders with routes, fields and positions."""

    def __init__(self) -> None:
        self.n_orders = 0
        self.pending: list[str] = []
        self.routes: list[list[tuple[str, int]]] = []
        self.fields: list[tuple[float, ...]] = []
        self.pos: list[tuple[float, float]] = []
        self.sent: set[str] = set()  # the pending ids the last delta left the mirror with

    def delta(self, reset: bool, rows: list[int], new_orders: list[str]) -> Delta:
        sent = set() if reset else self.sent
        now = set(self.pending)
        self.sent = now
        return Delta(
            reset=reset,
            order_ids=new_orders,
            order_rows=np.array([_row(int(o[1:])) for o in new_orders]).reshape(len(new_orders), ROW),
            n_riders=len(self.routes),
            rider_rows=np.array(rows, dtype=np.int64),
            rider_fields=np.array([self.fields[r] for r in rows]).reshape(len(rows), RIDER_FIELDS),
            rider_stops=[list(self.routes[r]) for r in rows],
            rider_frozen=[min(1, len(self.routes[r])) for r in rows],
            x=np.array([p[0] for p in self.pos]),
            y=np.array([p[1] for p in self.pos]),
            pending_add=[o for o in self.pending if o not in sent],
            pending_drop=sorted(sent - now),
            n_sites=N_SITES,
            sites=np.zeros(N_SITES, dtype=bool),  # (dispatch nothing: only the state is compared)
        )


def _state(
    m: Mirror,
) -> tuple[dict[str, tuple[float, ...]], list[list[tuple[str, int]]], np.ndarray, np.ndarray, set[str]]:
    orders = {oid: tuple(m.rows[i]) for oid, i in m.row_of.items()}
    pending = {m.ids[i] for i in np.flatnonzero(m.is_pending[: len(m.ids)])}
    routes = [
        [(m.ids[int(m.routes.order[r, s])], int(m.routes.kind[r, s])) for s in range(int(m.routes.length[r]))]
        for r in range(m.m)
    ]
    return orders, routes, m.fields[: m.m].copy(), np.column_stack([m.x[: m.m], m.y[: m.m]]), pending


op = st.one_of(
    st.tuples(st.just("order"), st.integers(1, 3)),  # new pending orders
    st.tuples(st.just("rider"), st.booleans()),  # a new rider, online or not
    st.tuples(st.just("assign"), st.integers(0, 50), st.integers(0, 50)),  # a pending order onto a rider's route
    st.tuples(st.just("deliver"), st.integers(0, 50)),  # a rider's first order leaves its route
    st.tuples(st.just("move"), st.integers(0, 50)),
    st.tuples(st.just("offline"), st.integers(0, 50)),
)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.lists(op, max_size=6), min_size=1, max_size=8))
def test_many_small_deltas_hold_what_one_full_delta_holds(steps):
    model = Model()
    inc = Mirror()
    params = DispatchParams(hold_s=0.0)
    travel = city_snapshot(CitySpec(n_orders=1, n_riders=1, n_sites=1)).travel
    known: set[str] = set()
    first = True
    for ops in steps:
        touched: set[int] = set()
        for o in ops:
            if o[0] == "order":
                for _ in range(o[1]):
                    model.pending.append(f"o{model.n_orders}")
                    model.n_orders += 1
            elif o[0] == "rider":
                model.routes.append([])
                model.fields.append(_fields(len(model.fields), o[1]))
                model.pos.append((10.0 * len(model.pos), 5.0))
                touched.add(len(model.routes) - 1)
            elif model.routes and o[0] == "assign" and model.pending:
                r = o[2] % len(model.routes)
                oid = model.pending.pop(o[1] % len(model.pending))
                model.routes[r] = [*model.routes[r], (oid, PICKUP), (oid, DROPOFF)]
                touched.add(r)
            elif model.routes and o[0] == "deliver":
                r = o[1] % len(model.routes)
                if model.routes[r]:
                    gone = model.routes[r][0][0]
                    model.routes[r] = [s for s in model.routes[r] if s[0] != gone]
                    touched.add(r)
            elif model.routes and o[0] == "move":
                r = o[1] % len(model.routes)
                model.pos[r] = (model.pos[r][0] + 7.0, model.pos[r][1] - 3.0)  # (positions go with every delta)
            elif model.routes and o[0] == "offline":
                r = o[1] % len(model.routes)
                model.fields[r] = (*model.fields[r][:4], 0.0)
                touched.add(r)
        live = list(model.pending) + [oid for route in model.routes for oid, k in route if k == PICKUP]
        new = [oid for oid in dict.fromkeys(live) if oid not in known]
        rows = list(range(len(model.routes))) if first else sorted(touched)
        res = inc.tick("kernel", params, model.delta(first, rows, new), NOW, travel)
        known.update(new)
        known.difference_update(res.forgotten)
        first = False
    whole = Mirror()
    everything = list(dict.fromkeys(list(model.pending) + [o for rt in model.routes for o, k in rt if k == PICKUP]))
    whole.tick("kernel", params, model.delta(True, list(range(len(model.routes))), everything), NOW, travel)
    a, b = _state(inc), _state(whole)
    assert a[0] == b[0]  # the same orders (only the live ones), the same rows
    assert a[1] == b[1]
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[3], b[3])
    assert set(a[0]) == set(everything)
    assert a[4] == b[4] == set(model.pending)  # the pending set, from its changes alone


SPEC = CitySpec(n_orders=300, n_riders=900, n_sites=12, radius_m=20_000.0, busy_share=0.6, seed=5)


def _city() -> tuple[Snapshot, np.ndarray]:
    """The test city and its sites' positions (a pickup is at its site)."""
    snap = city_snapshot(SPEC)
    site_xy = np.zeros((SPEC.n_sites, 2))
    site_xy[snap.orders.site, 0], site_xy[snap.orders.site, 1] = snap.orders.pick_x, snap.orders.pick_y
    return snap, site_xy


def _full_delta(snap: Snapshot, site_xy: np.ndarray) -> tuple[Delta, list[str]]:
    o, r, rt = snap.orders, snap.riders, snap.routes
    rows = np.zeros((o.n, ROW))
    cols = (o.pick_x, o.pick_y, o.drop_x, o.drop_y, o.site, o.ready, o.promised, o.size, o.service_pick,
            o.service_drop, o.placed)  # fmt: skip
    for j, c in enumerate(cols):
        rows[:, j] = c
    rows[:, 11:15] = (31.0, 121.0, 31.01, 121.01)
    ids = [f"o{i}" for i in range(o.n)]
    stops = [[(ids[int(rt.order[i, s])], int(rt.kind[i, s])) for s in range(int(rt.length[i]))] for i in range(r.m)]
    fields = np.column_stack([r.shift_start, r.shift_end, r.capacity, r.speed, r.online.astype(float)])
    d = Delta(True, ids, rows, r.m, np.arange(r.m), fields, stops, rt.frozen.tolist(), r.x, r.y,
              [ids[i] for i in snap.pending.tolist()], [], SPEC.n_sites, site_xy=site_xy)  # fmt: skip
    return d, ids


@pytest.mark.parametrize("reach_m", [8000.0, 1500.0])
def test_a_slot_on_the_riders_near_its_sites_assigns_like_the_policy_on_every_rider(reach_m):
    params = DispatchParams(hold_s=0.0, max_reach_m=reach_m)
    snap, site_xy = _city()
    slot = np.zeros(SPEC.n_sites, dtype=bool)
    slot[[0, 3, 7]] = True
    d, ids = _full_delta(snap, site_xy)
    d.sites = slot
    mirror = Mirror()
    got = mirror.tick("kernel", params, d, NOW, snap.travel)
    assert 0 < got.riders < SPEC.n_riders  # only some riders took part
    pend = snap.pending[slot[snap.orders.site[snap.pending]]]
    want = make_policy("kernel", params).tick(
        Snapshot(snap.orders, snap.riders, snap.routes.copy(), pend, snap.travel), NOW
    )
    assert got.dispatched == pend.size
    want_assigned = {ids[o]: int(r) for o, r in zip(want.assigned_order, want.assigned_rider, strict=True)}
    got_assigned = {oid: p[0] for p in got.proposals for oid in p[4]}
    assert want_assigned and got_assigned == want_assigned
    assert {p[0] for p in got.proposals} == set(want.changed.tolist()) | set(want.assigned_rider.tolist())
    for r, stops, _eta, _fz, _new, msg, moved in got.proposals:
        n = int(want.routes.length[r])
        assert stops == [(ids[int(want.routes.order[r, s])], int(want.routes.kind[r, s])) for s in range(n)]
        assert msg is not None and moved == []  # the kernel moves no order between riders
    want_left = {ids[o]: int(why) for o, why in zip(want.unassigned_order, want.unassigned_reason, strict=True)}
    assert dict(got.reasons) == want_left


@pytest.mark.parametrize("brute_force", [True, False])  # (a few sites: brute force; many: a k-d tree)
@pytest.mark.parametrize("reach_m", [8000.0, 1500.0])
def test_near_keeps_the_riders_in_reach_and_the_visitors(reach_m, brute_force, monkeypatch):
    if not brute_force:
        monkeypatch.setattr(mirror_mod, "BRUTE_FORCE_SITES", 0)
    params = DispatchParams(hold_s=0.0, max_reach_m=reach_m)
    snap, site_xy = _city()
    d, _ids = _full_delta(snap, site_xy)
    d.sites = np.zeros(SPEC.n_sites, dtype=bool)
    mirror = Mirror()
    mirror.tick("kernel", params, d, NOW, snap.travel)
    slot = np.zeros(SPEC.n_sites, dtype=bool)
    slot[[2, 5]] = True
    orders, _riders = mirror.tables(NOW)
    got = set(mirror.near(orders, slot, site_xy, params.max_reach_m).tolist())
    rt, o = snap.routes, snap.orders
    want = set()
    visitors_only = 0
    for r in range(snap.riders.m):
        n = int(rt.length[r])
        if n:
            last, kind = int(rt.order[r, n - 1]), int(rt.kind[r, n - 1])
            fx, fy = (o.pick_x[last], o.pick_y[last]) if kind == PICKUP else (o.drop_x[last], o.drop_y[last])
        else:
            fx, fy = snap.riders.x[r], snap.riders.y[r]
        in_reach = np.min(np.hypot(site_xy[slot, 0] - fx, site_xy[slot, 1] - fy)) <= params.max_reach_m
        visits = any(rt.kind[r, s] == PICKUP and slot[o.site[rt.order[r, s]]] for s in range(n))
        if in_reach or visits:
            want.add(r)
        visitors_only += int(visits and not in_reach)
    assert want and got == want
    if reach_m < 2000.0:
        assert visitors_only > 0  # (the case is exercised)


def test_the_owned_sites_are_split_into_slots_that_cover_each_once(tmp_path: Path):
    store = Store(make_config(tmp_path))
    owned = [s.index for s in store.sites if s.owned]
    for k in (1, 2, 5):
        masks = site_slots(store, k)
        assert len(masks) == min(k, len(owned))
        counts = np.sum(masks, axis=0)
        assert np.all(counts == 1)  # every site in exactly one slot
        for s in store.sites:
            if not s.owned:
                assert masks[0][s.index]


def test_a_dead_worker_loses_one_tick_and_the_next_sends_everything_again(tmp_path: Path):
    with running(make_config(tmp_path, policy_process=True), start_loop=False) as (srv, stub):
        now = time.time()
        report(stub, *[online(f"r{i}", lat=31.2320 + 0.002 * i, now=now) for i in range(3)])
        for i in range(3):
            stub.SubmitOrder(pb.SubmitOrderRequest(order=order(f"a{i}", lat=31.2400 + 0.002 * i, now=now)))
        st1 = srv.loop.tick(now + 1.0)
        assert st1 is not None and st1.assigned == 3
        assert srv.loop.remote is not None
        os.kill(srv.loop.remote.pid(), signal.SIGKILL)
        for i in range(3):
            stub.SubmitOrder(pb.SubmitOrderRequest(order=order(f"b{i}", lat=31.2410 + 0.002 * i, now=now)))
        lost = 0
        for _ in range(3):  # the call that meets the dead worker fails; a new worker gets the whole state
            try:
                st2 = srv.loop.tick(now + 2.0)
                break
            except Exception:
                lost += 1
        assert lost >= 1
        assert st2 is not None and st2.assigned == 3
        with srv.store.lock:
            for i in range(3):
                rec = srv.store.orders[f"b{i}"]
                assert rec.state == pb.ORDER_STATE_ASSIGNED
                # The new worker knew the routes the first tick left: the riders' old orders are still on them.
                assert len(srv.store.riders[rec.rider].stops) >= 2
            assert sum(len(r.stops) for r in srv.store.riders.values()) == 12


def test_ticks_in_a_row_keep_every_earlier_order_on_its_route(tmp_path: Path):
    """The mirror never takes its own proposals: the routes the store kept must come back with the next delta, or
    a later proposal would be built on a route without the orders the last tick gave."""
    with running(make_config(tmp_path), start_loop=False) as (srv, stub):
        now = time.time()
        report(stub, *[online(f"r{i}", lat=31.2320 + 0.001 * i, now=now) for i in range(2)])
        for batch in range(3):
            for i in range(3):
                o = order(f"t{batch}-{i}", lat=31.2400 + 0.002 * i, now=now)
                stub.SubmitOrder(pb.SubmitOrderRequest(order=o))
            st_ = srv.loop.tick(now + 1.0 + batch)
            assert st_ is not None and st_.assigned == 3
        with srv.store.lock:
            on_routes = {oid for r in srv.store.riders.values() for oid, _k in r.stops}
            assert sum(len(r.stops) for r in srv.store.riders.values()) == 2 * 9
            for oid, rec in srv.store.orders.items():
                assert rec.state == pb.ORDER_STATE_ASSIGNED and oid in on_routes


def test_the_promise_inputs_of_a_full_call_give_the_engines_own_summary():
    """``update_from_ends`` on what a full call answers equals ``update`` evaluating the routes the call leaves
    (the proposals in place) itself, with the orders left waiting."""
    params = DispatchParams(hold_s=0.0)
    snap, site_xy = _city()
    d, _ids = _full_delta(snap, site_xy)
    d.full = True
    mirror = Mirror()
    got = mirror.tick("kernel", params, d, NOW, snap.travel)
    assert got.promise is not None and got.proposals
    orders, riders = mirror.tables(NOW)
    routes = Routes.empty(riders.m, mirror.routes.width)
    for a, b in zip(routes.as_tuple(), mirror.routes.as_tuple(), strict=True):
        a[:] = b[: riders.m]
    for r, stops, _eta, fz, _new, _msg, _moved in got.proposals:
        routes.length[r], routes.frozen[r] = len(stops), fz
        routes.order[r, : len(stops)] = [mirror.row_of[oid] for oid, _k in stops]
        routes.kind[r, : len(stops)] = [k for _oid, k in stops]
    taken = {oid for p in got.proposals for oid in p[4]}
    left = np.array(sorted(mirror.row_of[oid] for oid in d.pending_add if oid not in taken), dtype=np.int64)
    sites = PromiseSites.build([str(i) for i in range(SPEC.n_sites)], site_xy[:, 0].tolist(),
                               site_xy[:, 1].tolist(), [120.0] * SPEC.n_sites)  # fmt: skip
    zones = disc_zones(site_xy[:, 0].tolist(), site_xy[:, 1].tolist(), [SPEC.zone_m] * SPEC.n_sites)
    own = PromiseEngine(sites, zones, snap.travel, PromiseParams()).update(orders, riders, routes, NOW, pending=left)
    pi = got.promise
    given = PromiseEngine(sites, zones, snap.travel, PromiseParams()).update_from_ends(
        pi.riders, pi.end_t, pi.end_x, pi.end_y, pi.waiting, NOW
    )
    assert given.free_at.size > 0 and given.waiting.sum() == left.size
    for name in ("free_ptr", "free_at", "waiting", "max_capacity"):
        np.testing.assert_array_equal(getattr(given, name), getattr(own, name), err_msg=name)


def test_slot_zero_dispatches_its_sites_then_refreshes_etas_risk_and_promises(tmp_path: Path):
    with running(make_config(tmp_path), start_loop=False) as (srv, stub):
        now = time.time()
        report(stub, *[online(f"r{i}", lat=31.2320 + 0.001 * i, now=now) for i in range(2)])
        loop = srv.loop
        assert len(loop.slots) == 2  # two owned sites, one a slot
        first = "s1" if loop.slots[0][srv.store.site_index["s1"]] else "s2"
        second = "s2" if first == "s1" else "s1"
        where = {"s1": (31.2400, 121.4800), "s2": (31.2300, 121.4500)}
        for oid, site in (("x0", first), ("x1", second)):
            lat, lng = where[site]
            stub.SubmitOrder(pb.SubmitOrderRequest(order=order(oid, site=site, lat=lat, lng=lng, now=now)))
        st_ = loop.tick(now + 1.0, slot=1)  # only the second slot's site's order
        assert st_ is not None and st_.assigned == 1 and st_.slot == 1
        assert not any(k.startswith("refresh_") for k in st_.phases)
        with srv.store.lock:
            assert srv.store.orders["x1"].state == pb.ORDER_STATE_ASSIGNED
            assert srv.store.orders["x0"].state == pb.ORDER_STATE_PENDING
        st_ = loop.tick(now + 2.0, slot=0)
        assert st_ is not None and st_.assigned == 1
        assert "refresh_mirror_rest" in st_.phases
        assert srv.servicer.promise._summary.at == now + 2.0  # slot 0 refreshed the promise engine
        with srv.store.lock:
            assert srv.store.orders["x0"].state == pb.ORDER_STATE_ASSIGNED
            for rec in srv.store.riders.values():
                assert len(rec.etas) == len(rec.stops)


class _Mover:
    """A policy that moves every order of the riders with a route to the first rider without one, as OR-Tools
    re-optimisation may move an order between riders; it leaves the pending orders alone. ``during`` runs in its
    tick (to change the store meanwhile)."""

    def __init__(self, during: Any = None) -> None:
        self.during = during

    def tick(self, snap: Snapshot, now: float) -> TickResult:
        if self.during is not None:
            self.during()
        rt = snap.routes
        out = Routes(rt.length.copy(), rt.frozen.copy(), rt.order.copy(), rt.kind.copy())
        losers = np.flatnonzero(rt.length > 0)
        gainer = int(np.flatnonzero(rt.length == 0)[0])
        n = 0
        for r in losers.tolist():
            k = int(rt.length[r])
            out.order[gainer, n : n + k] = rt.order[r, :k]
            out.kind[gainer, n : n + k] = rt.kind[r, :k]
            n += k
            out.length[r] = out.frozen[r] = 0
        out.length[gainer], out.frozen[gainer] = n, 0
        none = np.zeros(0, dtype=np.int64)
        left = snap.pending.astype(np.int64)
        why = np.full(left.size, int(Reason.RIDERS_BUSY))
        changed = np.union1d(losers, [gainer]).astype(np.int64)
        return TickResult(out, none, none, left, why, np.full(out.order.shape, NOW), changed, 0.0, 0.0)


def _moved_setup(srv: Any, stub: Any, now: float) -> str:
    """Two riders; order m0 assigned by the kernel; order m1 pending. Returns m0's rider."""
    report(stub, *[online(f"r{i}", lat=31.2320 + 0.001 * i, now=now) for i in range(2)])
    stub.SubmitOrder(pb.SubmitOrderRequest(order=order("m0", now=now)))
    st_ = srv.loop.tick(now + 1.0)
    assert st_ is not None and st_.assigned == 1
    stub.SubmitOrder(pb.SubmitOrderRequest(order=order("m1", now=now)))
    with srv.store.lock:
        return str(srv.store.orders["m0"].rider)


def test_an_order_moved_to_another_riders_route_gets_that_rider(tmp_path: Path):
    """Re-optimisation may move an order between riders: the order's rider follows it (so that the new rider may
    pick it up), the watchers hear an ASSIGNED event naming the new rider, and a restart replays the same."""
    with running(make_config(tmp_path), start_loop=False) as (srv, stub):
        now = time.time()
        was = _moved_setup(srv, stub, now)
        other = "r1" if was == "r0" else "r0"
        srv.loop.mirror._policies[None] = _Mover()  # the whole-city call's policy
        st_ = srv.loop.tick(now + 2.0)
        assert st_ is not None and st_.dropped_riders == 0
        with srv.store.lock:
            assert srv.store.orders["m0"].rider == other
            assert srv.store.orders["m0"].state == pb.ORDER_STATE_ASSIGNED
            assert [oid for oid, _k in srv.store.riders[other].stops] == ["m0", "m0"]
            assert srv.store.riders[was].stops == []
        seen = []
        stream = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=1), timeout=5)
        for resp in stream:
            seen += [(e.kind, e.rider_id) for e in resp.events if e.order_id == "m0"]
            if len(seen) >= 2:
                break
        stream.cancel()
        assert seen == [(pb.ASSIGNMENT_EVENT_KIND_ASSIGNED, was), (pb.ASSIGNMENT_EVENT_KIND_ASSIGNED, other)]
        picked = pb.RiderEvent(rider_id=other, kind=pb.RIDER_EVENT_KIND_PICKED_UP, order_id="m0")
        picked.at.CopyFrom(ts(now + 3.0))
        assert report(stub, picked).accepted == 1
    with running(make_config(tmp_path), start_loop=False) as (srv, _stub):  # the journal replayed
        assert srv.store.orders["m0"].rider == other
        assert srv.store.orders["m0"].state == pb.ORDER_STATE_PICKED_UP


def test_a_moved_order_changes_riders_only_if_both_routes_are_taken(tmp_path: Path):
    """If the rider the order left changed meanwhile, neither proposal is taken: the order stays where it was."""
    with running(make_config(tmp_path), start_loop=False) as (srv, stub):
        now = time.time()
        was = _moved_setup(srv, stub, now)
        before = {rid: list(r.stops) for rid, r in srv.store.riders.items()}

        def mark() -> None:
            with srv.store.lock:
                srv.store.dirty_riders.add(was)

        srv.loop.mirror._policies[None] = _Mover(mark)
        st_ = srv.loop.tick(now + 2.0)
        assert st_ is not None and st_.dropped_riders == 2
        with srv.store.lock:
            assert srv.store.orders["m0"].rider == was
            assert {rid: list(r.stops) for rid, r in srv.store.riders.items()} == before


def _slot_starts(durations: list[float], tick_s: float = 15.0, slots: int = 15) -> list[float]:
    """When each slot starts, given how long each runs, under the loop's schedule (``next_slot_at``)."""
    due, now, starts = 0.0, 0.0, []
    for d in durations:
        start = max(now, due)
        starts.append(start)
        now = start + d
        due = next_slot_at(due, now, tick_s, slots)
    return starts


def test_a_slot_that_runs_over_delays_the_next_ones_only_until_the_schedule_is_caught_up():
    starts = _slot_starts([0.2] * 3 + [2.5] + [0.2] * 40)
    assert starts[4] == pytest.approx(5.5)  # straight after the long slot
    assert starts[5] == pytest.approx(5.7)
    assert starts[6] == pytest.approx(6.0)  # back on the schedule
    # every site's next turn comes one tick after the last: the overrun does not stretch the cycle
    for k in range(6, 29):
        assert starts[k + 15] - starts[k] == pytest.approx(15.0)
    assert starts[15] == pytest.approx(15.0)


def test_a_loop_a_whole_tick_behind_restarts_its_schedule_instead_of_running_slots_back_to_back():
    starts = _slot_starts([0.2, 40.0] + [0.2] * 5)
    assert starts[1] == pytest.approx(1.0)
    assert starts[2] == pytest.approx(41.0)  # at once
    assert starts[3] == pytest.approx(42.0)  # then one slot a second again, from there
    assert starts[4] == pytest.approx(43.0)


@pytest.mark.parametrize(("policy", "hold_s", "want"), [
    ("kernel", 60.0, Reason.HELD_FOR_BATCHING),  # placed 10 s ago: still held back
    ("kernel", 5.0, Reason.NO_RIDER_IN_REACH),
    ("greedy", 60.0, Reason.NO_RIDER_IN_REACH),  # greedy never holds an order back
])  # fmt: skip
def test_a_slot_with_no_rider_near_reports_held_orders_as_held(policy, hold_s, want):
    model = Model()
    model.pending = [f"o{i}" for i in range(6)]
    model.routes, model.fields, model.pos = [[]], [_fields(0, True)], [(5e6, 5e6)]  # one rider, far away
    d = model.delta(True, [0], list(model.pending))
    d.sites = np.ones(N_SITES, dtype=bool)
    d.site_xy = np.array([(100.0 * s, 0.0) for s in range(N_SITES)])
    travel = city_snapshot(CitySpec(n_orders=1, n_riders=1, n_sites=1)).travel
    res = Mirror().tick(policy, DispatchParams(hold_s=hold_s), d, NOW, travel)
    assert res.riders == 0 and res.dispatched == 6
    assert sorted(res.reasons) == [(f"o{i}", int(want)) for i in range(6)]


def test_ortools_every_ticks_counts_each_slots_own_calls(monkeypatch):
    """With ``ortools_every_ticks = 2``, slots A and B called A, B, A, B are re-optimised on their own second call
    (calls 3 and 4), not on every second call of the mirror (calls 2 and 4)."""
    from dispatch.policy import KernelPolicy

    seen: list[int] = []
    call = [0]
    original = KernelPolicy._reoptimise

    def spy(self, *args):
        seen.append(call[0])
        return original(self, *args)

    monkeypatch.setattr(KernelPolicy, "_reoptimise", spy)
    params = DispatchParams(hold_s=0.0, ortools_every_ticks=2, ortools_time_limit_s=0.05)
    snap, site_xy = _city()
    d, _ids = _full_delta(snap, site_xy)
    a = np.zeros(SPEC.n_sites, dtype=bool)
    a[[0, 3, 7]] = True
    b = np.zeros(SPEC.n_sites, dtype=bool)
    b[[1, 4]] = True
    mirror = Mirror()
    r = snap.riders
    for k, sites in enumerate([a, b, a, b], start=1):
        call[0] = k
        if k > 1:
            d = Delta(False, [], np.zeros((0, ROW)), r.m, np.zeros(0, np.int64), np.zeros((0, RIDER_FIELDS)), [], [],
                      r.x, r.y, [], [], SPEC.n_sites, site_xy=site_xy)  # fmt: skip
        d.sites = sites
        assert mirror.tick("kernel", params, d, NOW, snap.travel).dispatched > 0
    assert seen == [3, 4]
