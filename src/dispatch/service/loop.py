"""The dispatch loop: every ``tick_s`` of wall clock, one policy tick over every owned site.

A tick takes a snapshot: under the store's lock only the pending order ids and the rider records (and the dirty marks
are cleared); the riders' fields, the order rows (immutable tuples) and the tables are read outside it. It runs the
policy outside the lock, then applies the result under the lock in chunks of riders. A
rider whose route changed while the policy ran (a pickup, a delivery, a rejection, going offline, a cancel of one of
its orders) keeps its current route: the tick's proposal for it is dropped, and its new orders stay pending for the
next tick. Every applied change becomes an assignment event with the next sequence number, journaled and, once
committed, published to watchers. The events' Route messages come ready-made from the policy worker
(``routemsg.route_messages``) when there is one; the apply only parses them, outside the lock.

An order that a rider rejected is never left on that rider's route: it is taken out of the tick's proposal (the
rest of the route stays as proposed) and waits for the next tick.

The tick's own Python work in the server (reading the state, building the tables, applying the result: seconds of
interpreter time at 40,000 riders and 100,000 orders on routes) shares one GIL with the request threads. Held in
long runs, it made every request wait: a thread that wants the GIL gets it only after the 5 ms switch interval, and
an order needs several hand-overs, so during a tick the server took in orders far slower than they came. The loop
therefore works in slices (``Pacer``): after each ``SLICE_S`` of work it sleeps ``tick_pause_ms`` (the service's
configuration; 0 turns the pauses off), which lets the request threads run, and every lock hold covers at most
``CHUNK`` riders. The tick takes longer in wall-clock time. Below the server's capacity this lowered the worst ack
during a tick in all 5 measured pairs and its p99 in 4 (e.g. 23 against 72 ms); at capacity it does not help (the
requests need the time the tick takes either way): benchmarks/RESULTS.md, "Service, session 5".
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.policy import Policy, Reason, Snapshot, make_policy, warm_up
from dispatch.service.store import ASSIGNED, CANCELLED, DELIVERED, PENDING, Store, ts
from dispatch.service.worker import PolicyProcess
from dispatch.sim.shard import travel_arrays
from dispatch.state import DROPOFF, OrderTable, RiderTable, Routes
from dispatch.v1 import dispatch_pb2 as pb

log = logging.getLogger("dispatch.service.loop")

F64 = npt.NDArray[np.float64]
CHUNK = 64  # riders applied per lock hold
BLOCK = 2048  # riders (or order rows) converted between two checks of the pacer
SLICE_S = 0.002  # the tick's longest stretch of Python work between two pauses
PAUSE_S = 0.001  # each pause, by default (``tick_pause_ms``; a sleep: the request threads take the GIL meanwhile)
GC_UNFREEZE_TICKS = 240  # with freeze_gc, ticks between two hand-backs of the frozen objects (1 h at 15 s)


class Pacer:
    """Call it between small pieces of the tick's work: once ``slice_s`` seconds have passed since the last pause,
    it sleeps ``pause_s`` (releasing the GIL to whoever waits for it). ``pauses`` counts them."""

    def __init__(self, slice_s: float = SLICE_S, pause_s: float = PAUSE_S) -> None:
        if not (slice_s >= 0.0 and pause_s >= 0.0):
            raise ValueError(f"slice_s and pause_s must be >= 0, got {slice_s}, {pause_s}")
        self.slice_s = slice_s
        self.pause_s = pause_s
        self.pauses = 0
        self._since = time.perf_counter()

    def __call__(self) -> None:
        if self.pause_s <= 0.0:
            return
        if time.perf_counter() - self._since >= self.slice_s:
            time.sleep(self.pause_s)
            self.pauses += 1
            self._since = time.perf_counter()


def table_rows(rows: list[tuple[Any, ...]], k: int, pace: Callable[[], None]) -> npt.NDArray[np.float64]:
    """Rows of ``k`` numbers each (order rows: ``OrderRec.row``, 15; rider rows, 7) as float64[n, k], converted
    ``BLOCK`` rows at a time with ``pace()`` between blocks (one conversion of 100,000 rows holds the GIL for
    ~0.1 s)."""
    n = len(rows)
    cols = np.empty((n, k), dtype=np.float64)
    for b in range(0, n, BLOCK):
        cols[b : b + BLOCK] = rows[b : b + BLOCK]
        pace()
    return cols


def routes_from_stops(
    stops: list[list[tuple[int, int]]], width: int, frozen: list[int], pace: Callable[[], None]
) -> Routes:
    """``Routes.from_lists`` converted ``BLOCK`` riders at a time (whole blocks as arrays), with ``pace()`` between
    blocks. ``stops``: per rider ``(order index, kind)`` pairs; ``frozen``: per rider, at most its route length."""
    m = len(stops)
    length = np.fromiter((len(x) for x in stops), dtype=np.int64, count=m)
    r = Routes.empty(m, max(width, int(length.max(initial=0))))
    r.length[:] = length
    for b in range(0, m, BLOCK):
        e = min(m, b + BLOCK)
        flat = [pair for seq in stops[b:e] for pair in seq]
        if flat:
            pairs = np.array(flat, dtype=np.int64).reshape(-1, 2)
            lens = length[b:e]
            rows = np.repeat(np.arange(b, e, dtype=np.int64), lens)
            cols = np.arange(rows.size, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
            r.order[rows, cols] = pairs[:, 0]
            r.kind[rows, cols] = pairs[:, 1]
        pace()
    r.frozen[:] = np.asarray(frozen, dtype=np.int64)
    if np.any(r.frozen > r.length) or np.any(r.frozen < 0):
        raise ValueError("routes.frozen: must be between 0 and the route length")
    return r


@dataclass
class TickStats:
    """What one tick did (for metrics and logs)."""

    at: float
    seconds: float
    orders: int
    riders: int
    assigned: int
    dropped_riders: int
    events: int
    at_risk: int
    # seconds: snapshot, policy (with tables), apply, promise (the engine's update), policy_* (the policy's phases)
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class _Snap:
    order_ids: list[str]
    rows: list[tuple[Any, ...]]
    pending: list[int]
    rider_ids: list[str]
    riders: list[tuple[Any, ...]]
    stops: list[list[tuple[int, int]]]
    frozen: list[int]
    banned: dict[int, set[str]]
    pinned_out: list[int]
    pinned: dict[int, int]


class DispatchLoop:
    """Runs ticks on a thread of its own until ``stop`` (which lets the tick in progress finish)."""

    def __init__(self, store: Store, on_tick: Callable[[TickStats], None] | None = None, promise: Any = None) -> None:
        self.store = store
        self.promise = promise
        self.travel = travel_arrays(store.cfg.travel, store.cfg.utc_offset_s)
        self.policy_name = store.cfg.policy
        self._version = -1
        self._policy: Policy | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_tick = on_tick
        self.remote = PolicyProcess(store.cfg.policy_nice) if store.cfg.policy_process else None
        self.freeze_gc = False  # see ``_gc_after_tick``; ``serve`` turns it on for its own process
        # The tick's pacing (``Pacer``); pause_s 0 turns it off.
        self.slice_s, self.pause_s = SLICE_S, store.cfg.tick_pause_ms / 1e3
        self._pace = Pacer(self.slice_s, self.pause_s)
        self._route_end: F64 | None = None  # the last policy call's route ends (``worker.route_ends``), if remote
        self._msgs: dict[int, bytes] = {}  # the last policy call's Route messages by rider row (``_call``), if remote
        self._frozen_ticks = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dispatch-loop", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.remote is not None:
            self.remote.close()

    def warm(self) -> float:
        """Compile or load the policy's kernels before the first tick (``dispatch.policy.warm_up``), in the worker
        process when there is one; returns the seconds it took."""
        policy = self._policy_now()
        if self.remote is not None:
            return self.remote.warm(self.policy_name, policy.params)
        return warm_up(policy)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                st = self.tick(time.time())
                if self._on_tick is not None and st is not None:
                    self._on_tick(st)
            except Exception:  # never let one bad tick stop dispatching
                log.exception("dispatch tick failed")
            self._gc_after_tick()
            next_at += self.store.params.tick_s
            now = time.monotonic()
            if next_at < now:  # a tick longer than tick_s: start the next one at once, do not pile up
                next_at = now
            self._stop.wait(next_at - now)

    def _gc_after_tick(self) -> None:
        """With ``freeze_gc``: move every object alive now out of the cyclic garbage collector's reach
        (``gc.freeze``), so that a full collection scans only what was made since. The service's state (orders,
        riders, routes) only grows, and Python's full collections, which come whenever the older generation has grown
        by a quarter, scanned all of it: at 60,000 orders a collection held the GIL for ~0.1 s, twice a tick, and
        stalled every request. Every ``GC_UNFREEZE_TICKS`` ticks everything is handed back once, so that garbage
        cycles frozen while still alive are freed by the next full collection."""
        if not self.freeze_gc:
            return
        self._frozen_ticks += 1
        if self._frozen_ticks >= GC_UNFREEZE_TICKS:
            self._frozen_ticks = 0
            gc.unfreeze()
        else:
            gc.freeze()

    def _policy_now(self) -> Policy:
        with self.store.lock:
            version, params = self.store.params_version, self.store.params
        if self._policy is None or version != self._version:
            self._policy = make_policy(self.policy_name, params)
            self._version = version
        return self._policy

    # -- one tick -----------------------------------------------------------------------------------------------

    def _snapshot(self) -> _Snap | None:
        """Under the lock only references are taken (route lists are replaced, never changed in place, and order
        rows are immutable tuples); the tables are indexed outside it."""
        s = self.store
        with s.lock:
            s.dirty_riders.clear()
            s.dirty_orders.clear()
            recs = list(s.riders.values())
            order_ids: list[str] = list(s.pending)
            special: dict[str, tuple[str, set[str]]] = {}
            for oid in list(s.special):
                o = s.orders[oid]
                if o.state in (DELIVERED, CANCELLED):
                    s.special.discard(oid)
                else:
                    special[oid] = (o.pinned, set(o.banned or ()))
        # The riders' fields are read outside the lock: a rider whose route or state changes from here on is marked
        # dirty (routes are replaced, never changed in place), so the tick's proposal for it is dropped; a position
        # newer than the snapshot is harmless. Everything from here on is paced (see the module docstring).
        pace = self._pace
        active: list[tuple[str, list[tuple[str, int]], int, tuple[Any, ...]]] = []
        for b in range(0, len(recs), BLOCK):
            active.extend(
                (r.id, r.stops, r.frozen, (r.x, r.y, r.shift_start, r.shift_end, r.capacity, r.speed, r.online))
                for r in recs[b : b + BLOCK]
                if r.online or r.stops
            )
            pace()
        if not order_ids and not active:
            return None  # (online riders with nothing to do still make a tick: the promise engine needs them)
        n_pending = len(order_ids)
        index = {oid: i for i, oid in enumerate(order_ids)}
        pace()
        stops: list[list[tuple[int, int]]] = []
        for j, (_rid, route, _f, _row) in enumerate(active):
            seq = []
            for oid, k in route:
                i = index.get(oid)
                if i is None:
                    i = index[oid] = len(order_ids)
                    order_ids.append(oid)
                seq.append((i, k))
            stops.append(seq)
            if j % 256 == 255:
                pace()
        rider_ids = [a[0] for a in active]
        rider_pos = {rid: i for i, rid in enumerate(rider_ids)}
        riders = [a[3] for a in active]
        frozen = [min(a[2], len(a[1])) for a in active]
        orders = s.orders  # a dict read without the lock: entries are only ever added
        rows: list[tuple[Any, ...]] = []
        for b in range(0, len(order_ids), BLOCK):
            rows.extend(orders[oid].row for oid in order_ids[b : b + BLOCK])
            pace()
        banned: dict[int, set[str]] = {}
        pinned: dict[int, int] = {}
        pinned_out: list[int] = []
        for oid, (pin_id, bans) in special.items():
            i = index.get(oid, -1)
            if i < 0:
                continue
            if bans:
                banned[i] = bans
            if pin_id:
                pin = rider_pos.get(pin_id, -1)
                pinned[i] = pin
                if pin < 0 and i < n_pending:
                    pinned_out.append(i)
        out_set = set(pinned_out)
        pending = [i for i in range(n_pending) if i not in out_set] if out_set else list(range(n_pending))
        return _Snap(order_ids, rows, pending, rider_ids, riders, stops, frozen, banned, pinned_out, pinned)

    def tick(self, now: float) -> TickStats | None:
        """One tick at ``now`` (epoch seconds); None when there was nothing to dispatch."""
        t0 = time.perf_counter()
        self._pace = pace = Pacer(self.slice_s, self.pause_s)
        policy = self._policy_now()
        snap = self._snapshot()
        s = self.store
        if snap is None:
            with s.lock:
                s.ticks += 1
                s.last_tick_at = now
                s.last_tick_s = time.perf_counter() - t0
                s.at_risk = 0
            return None
        t_snap = time.perf_counter()
        n, m = len(snap.rows), len(snap.riders)
        cols = table_rows(snap.rows, 15, pace)
        latlng = np.ascontiguousarray(cols[:, 11:15])  # the stops' positions in degrees (for the Route messages)
        pinned = np.full(n, -1, dtype=np.int64)
        for i, r in snap.pinned.items():
            pinned[i] = r
        orders = OrderTable.build(
            pick_x=cols[:, 0], pick_y=cols[:, 1], drop_x=cols[:, 2], drop_y=cols[:, 3],
            site=cols[:, 4].astype(np.int64), ready=cols[:, 5], promised=cols[:, 6], size=cols[:, 7].astype(np.int64),
            service_pick=cols[:, 8], service_drop=cols[:, 9], placed=cols[:, 10], pinned=pinned,
        )  # fmt: skip
        rc = table_rows(snap.riders, 7, pace)
        riders = RiderTable.build(
            x=rc[:, 0], y=rc[:, 1], avail=np.full(m, now), shift_start=rc[:, 2], shift_end=rc[:, 3],
            capacity=rc[:, 4].astype(np.int64), speed=rc[:, 5], online=rc[:, 6].astype(bool),
        )  # fmt: skip
        width = max(2 * policy.params.max_orders_per_rider + 2, max((len(x) for x in snap.stops), default=0))
        routes = routes_from_stops(snap.stops, width, snap.frozen, pace)
        pend = np.array(snap.pending, dtype=np.int64)
        if m == 0 or (pend.size == 0 and not any(snap.stops)):
            res = None
        else:
            res = self._run_policy(policy, snap, orders, riders, routes, pend, now, latlng)
        t_policy = time.perf_counter()
        reasons: dict[int, int] = dict.fromkeys(snap.pinned_out, int(Reason.PINNED_RIDER_UNAVAILABLE))
        if res is None:
            for i in snap.pending:
                reasons[i] = int(Reason.NO_RIDER_IN_REACH)
            proposals: list[tuple[int, list[tuple[int, int]], list[float], int, list[int], bytes | None]] = []
            etas: F64 = np.zeros((0, 0))
            out_routes = routes
        else:
            for o, why in zip(res.unassigned_order.tolist(), res.unassigned_reason.tolist(), strict=True):
                reasons[o] = int(why)
            proposals, etas, out_routes = self._proposals(snap, res, reasons)
        at_risk = self._at_risk(orders, out_routes, etas, pend, now)
        events, dropped, assigned = self._apply(snap, proposals, reasons, etas, out_routes, now)
        t_apply = time.perf_counter()
        if self.promise is not None:
            left = np.array(sorted(reasons), dtype=np.int64)
            try:
                self.promise.set_params(s.promise)
                ends = self._route_end if res is not None else None  # (from the worker, for the final routes)
                self.promise.update(orders, riders, out_routes, now, pending=left, route_end=ends)
            except Exception:
                log.exception("promise engine update failed")
        t_promise = time.perf_counter()
        dt = time.perf_counter() - t0
        with s.lock:
            s.ticks += 1
            s.last_tick_at = now
            s.last_tick_s = dt
            s.at_risk = at_risk
        phases = {"snapshot": t_snap - t0, "policy": t_policy - t_snap, "apply": t_apply - t_policy,
                  "promise": t_promise - t_apply}  # fmt: skip
        if res is not None:  # the policy's own phases (in the worker), for the tick's log line
            phases.update({f"policy_{k}": v / 1e3 for k, v in getattr(res, "timings_ms", {}).items()})
        return TickStats(now, dt, n, m, assigned, dropped, events, at_risk, phases)

    def _call(
        self, policy: Policy, snap: Snapshot, now: float, order_ids: list[str] | None = None,
        latlng: F64 | None = None,
    ) -> Any:  # fmt: skip
        """The policy's tick, in the worker when there is one. With ``order_ids`` and ``latlng`` (float64[n, 4]) the
        worker also builds the changed riders' Route messages (``self._msgs``: rider row -> serialized Route)."""
        self._route_end = None
        self._msgs = {}
        if self.remote is not None:
            try:
                if order_ids is not None and latlng is not None:
                    res, self._route_end, rows, msgs = self.remote.tick_routes(
                        self.policy_name, policy.params, snap, now, order_ids, latlng
                    )
                    self._msgs = dict(zip(rows.tolist(), msgs, strict=True))
                    return res
                res, self._route_end = self.remote.tick_ends(self.policy_name, policy.params, snap, now)
                return res
            except BrokenProcessPool:
                log.error("the policy worker died; starting a new one (this tick is skipped)")
                self.remote.close()
                self.remote = PolicyProcess(self.store.cfg.policy_nice)
                raise
        return policy.tick(snap, now)

    def _run_policy(
        self,
        policy: Policy,
        snap: _Snap,
        orders: OrderTable,
        riders: RiderTable,
        routes: Routes,
        pend: npt.NDArray[np.int64],
        now: float,
        latlng: F64,
    ) -> Any:
        """The policy's tick; orders that some rider rejected are dispatched in a second pass on the first pass's
        routes with the riders who rejected them taken offline, so that they go to someone else (then the server
        builds the Route messages itself)."""
        banned = np.array([i in snap.banned for i in pend.tolist()], dtype=bool)
        if not banned.any():
            return self._call(policy, Snapshot(orders, riders, routes, pend, self.travel), now, snap.order_ids, latlng)
        first = self._call(policy, Snapshot(orders, riders, routes, pend[~banned], self.travel), now)
        who = {rid for i in pend[banned].tolist() for rid in snap.banned[i]}
        online = riders.online.copy()
        online[[r for r, rid in enumerate(snap.rider_ids) if rid in who]] = False
        second = self._call(
            policy, Snapshot(orders, replace(riders, online=online), first.routes, pend[banned], self.travel), now
        )
        self._msgs = {}
        return replace(
            second,
            assigned_order=np.concatenate([first.assigned_order, second.assigned_order]),
            assigned_rider=np.concatenate([first.assigned_rider, second.assigned_rider]),
            unassigned_order=np.concatenate([first.unassigned_order, second.unassigned_order]),
            unassigned_reason=np.concatenate([first.unassigned_reason, second.unassigned_reason]),
            changed=np.union1d(first.changed, second.changed).astype(np.int64),
        )

    def _proposals(
        self, snap: _Snap, res: Any, reasons: dict[int, int]
    ) -> tuple[list[tuple[int, list[tuple[int, int]], list[float], int, list[int], bytes | None]], F64, Routes]:
        """Per changed rider: (rider, new stops, their ETAs, frozen, new orders, its Route message from the worker
        or None), banned pairs taken out."""
        out = res.routes
        arrive = res.arrive
        new_by_rider: dict[int, list[int]] = {}
        for o, r in zip(res.assigned_order.tolist(), res.assigned_rider.tolist(), strict=True):
            new_by_rider.setdefault(r, []).append(o)
        changed = np.array(sorted(set(res.changed.tolist()) | set(new_by_rider)), dtype=np.int64)
        proposals = []
        # The used stops of the changed rows, converted at once (per-element numpy indexing costs ~100x a list's).
        length = out.length[changed]
        ends_a = np.cumsum(length)
        rr = np.repeat(changed, length)
        kk = np.arange(rr.size) - np.repeat(ends_a - length, length)
        pace = self._pace
        pace()
        orders = out.order[rr, kk].tolist()
        pace()
        kinds = out.kind[rr, kk].tolist()
        pace()
        etas = arrive[rr, kk].tolist() if arrive.size else [math.nan] * rr.size
        pace()
        ends = ends_a.tolist()
        frozen = out.frozen[changed].tolist()
        start = 0
        for j, r in enumerate(changed.tolist()):
            if j % 128 == 127:
                pace()
            rid = snap.rider_ids[r]
            end = ends[j]
            seq = list(zip(orders[start:end], kinds[start:end], strict=True))
            eta = etas[start:end]
            start = end
            new = new_by_rider.get(r, [])
            bad = [o for o in new if rid in snap.banned.get(o, ())]
            msg = self._msgs.get(r)
            if bad:
                msg = None  # (the worker built the route with them)
                keep = [k for k in range(len(seq)) if seq[k][0] not in bad]
                seq = [seq[k] for k in keep]
                eta = [eta[k] for k in keep]
                new = [o for o in new if o not in bad]
                for o in bad:
                    reasons[o] = int(Reason.RIDERS_BUSY)
            proposals.append((r, seq, eta, min(frozen[j], len(seq)), new, msg))
        return proposals, arrive, out

    def _apply(
        self,
        snap: _Snap,
        proposals: list[tuple[int, list[tuple[int, int]], list[float], int, list[int], bytes | None]],
        reasons: dict[int, int],
        etas: F64,
        out_routes: Routes,
        now: float,
    ) -> tuple[int, int, int]:
        s = self.store
        ids = snap.order_ids
        n_events = dropped = assigned = 0
        changed = {p[0] for p in proposals}
        at = pb.AssignmentEvent().at
        ts(now, at)
        ASSIGNED_K, UPDATED_K = pb.ASSIGNMENT_EVENT_KIND_ASSIGNED, pb.ASSIGNMENT_EVENT_KIND_ROUTE_UPDATED
        pace = self._pace
        for c in range(0, len(proposals), CHUNK):
            pace()
            # The new routes and their messages are built before the lock is taken (they read only what never
            # changes in an order), so that requests wait for the lock only while the chunk is checked and applied.
            chunk = []
            for r, seq, eta, frozen, new, msg in proposals[c : c + CHUNK]:
                stops = [(ids[o], k) for o, k in seq]
                fz = max(frozen, 1) if seq else 0
                route = pb.Route.FromString(msg) if msg is not None else s.route_of(stops, eta, fz)
                chunk.append((r, stops, eta, fz, new, route))
            pace()
            with s.lock:
                batch = pb.WatchAssignmentsResponse()
                add = batch.events.add
                for r, stops, eta, fz, new, route in chunk:
                    rid = snap.rider_ids[r]
                    rec = s.riders.get(rid)
                    new_ids = [ids[o] for o in new]
                    if rec is None or rid in s.dirty_riders or any(s.orders[oid].state != PENDING for oid in new_ids):
                        dropped += 1
                        for o in new:
                            reasons.setdefault(o, int(Reason.RIDERS_BUSY))
                        continue
                    rec.stops = stops
                    rec.etas = eta
                    rec.frozen = fz
                    for oid in new_ids:
                        orec = s.orders[oid]
                        s._set_state(orec, ASSIGNED)
                        orec.rider = rid
                        orec.reason = 0
                        s.pending.pop(oid, None)
                        ev = add(kind=ASSIGNED_K, order_id=oid, rider_id=rid)
                        ev.at.CopyFrom(at)
                        ev.route.CopyFrom(route)
                    assigned += len(new_ids)
                    if not new_ids:
                        ev = add(kind=UPDATED_K, rider_id=rid)
                        ev.at.CopyFrom(at)
                        ev.route.CopyFrom(route)
                s.emit_batch(batch)
                n_events += len(batch.events)
        if etas.size:
            # ETAs of the riders with stops whose routes the tick did not change (rows converted at once, outside
            # the lock).
            keep = out_routes.length > 0
            keep[list(changed)] = False
            rows = np.flatnonzero(keep)
            lens = out_routes.length[rows].tolist()
            rows_l = rows.tolist()
            step = 4 * CHUNK
            for c in range(0, len(rows_l), step):
                pace()
                vals = etas[rows[c : c + step]].tolist()  # (one block at a time: a long C call holds the GIL)
                with s.lock:
                    for i in range(c, min(c + step, len(rows_l))):
                        rid = snap.rider_ids[rows_l[i]]
                        if rid in s.dirty_riders:
                            continue
                        rec = s.riders.get(rid)
                        if rec is not None and len(rec.stops) == lens[i]:
                            rec.etas = vals[i - c][: lens[i]]
        unassigned = pb.ASSIGNMENT_EVENT_KIND_UNASSIGNED
        items = list(reasons.items())
        for c in range(0, len(items), 4 * CHUNK):
            pace()
            with s.lock:
                events = []
                for o, why in items[c : c + 4 * CHUNK]:
                    oid = ids[o]
                    rec_o = s.orders[oid]
                    if rec_o.state == PENDING and rec_o.reason != why:
                        rec_o.reason = why
                        events.append(pb.AssignmentEvent(kind=unassigned, order_id=oid, at=at, reason=why))  # type: ignore[arg-type]
                s._emit(events)
                n_events += len(events)
        return n_events, dropped, assigned

    @staticmethod
    def _at_risk(orders: OrderTable, routes: Routes, etas: F64, pending: npt.NDArray[np.int64], now: float) -> int:
        """Orders whose estimated delivery is after promised_by: routed ones by their drop-off ETA, pending ones by
        a direct ride at 4.5 m/s from now (a lower bound)."""
        late = 0
        if etas.size:
            width = min(routes.width, etas.shape[1])
            live = np.arange(width)[None, :] < routes.length[:, None]
            drop = live & (routes.kind[:, :width] == DROPOFF)
            o = routes.order[:, :width][drop]
            late += int(np.sum(etas[:, :width][drop] > orders.promised[o]))
        if pending.size:
            d = np.hypot(
                orders.drop_x[pending] - orders.pick_x[pending], orders.drop_y[pending] - orders.pick_y[pending]
            )
            best = np.maximum(now, orders.ready[pending]) + orders.service_pick[pending] + d / 4.5
            late += int(np.sum(best > orders.promised[pending]))
        return late
