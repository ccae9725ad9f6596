"""The dispatch loop: every ``tick_s`` of wall clock, every owned site is dispatched once, in slots.

**Slots.** The owned sites are split into ``tick_slots`` groups of neighbours (``site_slots``), and every ``tick_s /
slots`` seconds the next group's pending orders are dispatched. Each site is still dispatched once per ``tick_s``,
but an order waits for its own site's turn plus one small dispatch, not for a whole city's: at the session 6 replay
load one tick over a city took 2-10 s, so an order placed just after a tick started was assigned 17-25 s later
(benchmarks/RESULTS.md, "Service, session 9"). The slots keep to a fixed schedule (``next_slot_at``): one that
runs over its share delays the next ones only until they have caught up. The first slot of each cycle also
refreshes every route's ETAs, the at-risk count and the promise engine.

**The mirror.** The policy keeps the dispatch state between calls (``dispatch.service.mirror``, in the policy
worker when there is one), and each call sends only what changed (``_delta``): under the store's lock the pending
order ids, the new rider records and the special orders are taken (and the dirty marks are cleared); outside it,
every rider's position and, for the riders whose route or fields changed since the last call, their route and
fields; the rows of orders the mirror has not seen. The mirror dispatches and answers with proposals: the changed
riders' routes, their ETAs and ready-made Route messages (``routemsg.route_messages``), which the apply parses
outside the lock. A rider whose route changed while the policy ran (a pickup, a delivery, a rejection, going
offline, a cancel of one of its orders) keeps its current route: the proposal for it is dropped, and its new orders
stay pending for the next turn of their site. Every applied change becomes an assignment event with the next
sequence number, journaled and, once committed, published to watchers. The mirror never takes its own proposals:
what the store kept comes back with the next delta.

An order that a rider rejected is never left on that rider's route: it is taken out of the proposal (the rest of
the route stays as proposed) and waits for the next turn.

**Pacing.** The loop's own Python work in the server (the delta, the apply) shares one GIL with the request
threads. Held in long runs, it made every request wait: a thread that wants the GIL gets it only after the 5 ms
switch interval, and an order needs several hand-overs. The loop therefore works in slices (``Pacer``): after each
``SLICE_S`` of work it sleeps ``tick_pause_ms`` (the service's configuration; 0 turns the pauses off), which lets the
request threads run, and every lock hold covers at most ``CHUNK`` riders (benchmarks/RESULTS.md, "Service, session
5").
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.policy import Policy, Reason, make_policy, warm_up
from dispatch.service.mirror import RIDER_FIELDS, ROW, Delta, Mirror, MirrorResult
from dispatch.service.store import ASSIGNED, CANCELLED, DELIVERED, PENDING, RiderRec, Store, ts
from dispatch.service.worker import PolicyProcess
from dispatch.sim.shard import travel_arrays
from dispatch.v1 import dispatch_pb2 as pb

log = logging.getLogger("dispatch.service.loop")

# A proposal as the apply takes it: (rider id, stops, ETAs, frozen count, new order ids, Route, orders moved in as
# (order id, the rider id they left)).
_Taken = tuple[str, list[tuple[str, int]], list[float], int, list[str], pb.Route, list[tuple[str, str]]]

CHUNK = 64  # riders applied per lock hold
BLOCK = 2048  # riders (or order rows) read between two checks of the pacer
SLICE_S = 0.002  # the tick's longest stretch of Python work between two pauses
PAUSE_S = 0.001  # each pause, by default (``tick_pause_ms``; a sleep: the request threads take the GIL meanwhile)


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
    # seconds: snapshot (the delta), policy (the mirror's call), apply, promise (the engine's update), mirror_* and
    # policy_* (the mirror's and the policy's own phases)
    phases: dict[str, float] = field(default_factory=dict)
    slot: int = -1  # the slot dispatched (``DispatchLoop.slots``), -1 for every site


class DispatchLoop:
    """Runs ticks on a thread of its own until ``stop`` (which lets the tick in progress finish).

    The thread cuts each tick into *slots* (``ServiceConfig.tick_slots``): the owned sites are split into that
    many groups of neighbours, and every ``tick_s / slots`` seconds one group's pending orders are dispatched,
    so that each site is still dispatched once per ``tick_s`` but an order waits for its own site's turn plus one
    small dispatch, not for a whole city's. ``tick(now)`` (the tests' and tools' call) dispatches every site at
    once."""

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
        self.mirror = Mirror() if self.remote is None else None  # (in the worker otherwise)
        self.freeze_gc = False  # see ``_gc_after_slot``; ``serve`` turns it on for its own process
        # The tick's pacing (``Pacer``); pause_s 0 turns it off.
        self.slice_s, self.pause_s = SLICE_S, store.cfg.tick_pause_ms / 1e3
        self._pace = Pacer(self.slice_s, self.pause_s)
        self.slots = site_slots(store, store.cfg.tick_slots)
        # What the mirror holds (``_delta``): riders by row and the orders it knows.
        self._recs: list[RiderRec] = []
        self._row: dict[str, int] = {}
        self._known: set[str] = set()
        self._resend: set[str] = set()  # riders whose proposals the last apply took (the mirror does not take them)
        self._pending_delta: list[str] = []
        self._sent_pending: set[str] = set()  # the pending ids the mirror holds (as of the last call it took)
        self._pending_now: set[str] = set()  # the pending ids of the delta in flight
        self._site_xy = np.array([(st.x, st.y) for st in store.sites], dtype=np.float64).reshape(-1, 2)
        self._epoch: int | None = None
        self._reset = True
        self.last: MirrorResult | None = None  # the last call's answer (for tests and debugging)

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
        k = 0
        while not self._stop.is_set():
            n = len(self.slots)
            try:
                st = self.tick(time.time(), slot=k % n)
                if self._on_tick is not None and st is not None:
                    self._on_tick(st)
            except Exception:  # never let one bad tick stop dispatching
                log.exception("dispatch tick failed")
            k = (k + 1) % n
            self._gc_after_slot()
            now = time.monotonic()
            next_at = next_slot_at(next_at, now, self.store.params.tick_s, n)
            self._stop.wait(max(0.0, next_at - now))

    def _gc_after_slot(self) -> None:
        """With ``freeze_gc``: move every object alive now out of the cyclic garbage collector's reach
        (``gc.freeze``), so that a full collection scans only what was made since. The service's state (orders,
        riders, routes) only grows, and Python's full collections, which come whenever the older generation has grown
        by a quarter, scanned all of it: at 60,000 orders a collection held the GIL for ~0.1 s, twice a tick, and
        stalled every request. Frozen once a tick (session 4), the state made since the last freeze still grew for a
        whole tick: in the city replay a full collection came every 2-2.5 s, found nothing to free, and held the GIL
        for 27 ms early in the window and 74-133 ms later, which was the server's longest pause (session 14); so it is
        frozen after every slot. Nothing is handed back: what freezing keeps from the collector is only cyclic
        garbage whose objects were frozen while alive (all else is freed by reference counting), and in the city
        replay, handing everything back every 30 s and collecting at once found 0 to 7 such objects each time, in
        200-360 ms holding the GIL over half a million objects (session 15). The hourly hand-back this replaces made
        that pause, growing with the state, whenever a full collection came before the next slot froze the heap
        again, and achieved nothing otherwise."""
        if self.freeze_gc:
            gc.freeze()

    def _policy_now(self) -> Policy:
        with self.store.lock:
            version, params = self.store.params_version, self.store.params
        if self._policy is None or version != self._version:
            self._policy = make_policy(self.policy_name, params)
            self._version = version
        return self._policy

    # -- one tick -----------------------------------------------------------------------------------------------

    def _add_riders(self, recs: list[RiderRec]) -> None:
        for r in recs:
            self._row[r.id] = len(self._recs)
            self._recs.append(r)

    def _delta(self, sites: npt.NDArray[np.bool_] | None, full: bool) -> Delta:
        """What the mirror needs since the last call. Under the store's lock the pending order ids, the new rider
        records, the special orders and the riders marked dirty since the last call are taken (and the dirty marks
        are cleared); the riders' fields are read outside it: a rider whose route or state changes from here on is
        marked dirty again (routes are replaced, never changed in place), so the proposal for it is dropped and
        the next delta carries it; a position newer than the delta is harmless. Everything from here on is paced
        (see the module docstring)."""
        s = self.store
        with s.lock:
            touched = set(s.dirty_riders)
            s.dirty_riders.clear()
            s.dirty_orders.clear()
            if len(s.riders) > len(self._recs):
                touched.update(list(s.riders)[len(self._recs) :])
                self._add_riders(list(s.riders.values())[len(self._recs) :])
            pending: list[str] = list(s.pending)
            special: dict[str, tuple[str, set[str]]] = {}
            for oid in list(s.special):
                o = s.orders[oid]
                if o.state in (DELIVERED, CANCELLED):
                    s.special.discard(oid)
                else:
                    special[oid] = (o.pinned, set(o.banned or ()))
            touched |= self._resend
            self._resend = set()
            xy = s.rider_xy()  # (by row: the loop's rows are the store's, riders are only ever added)
        reset = self._reset
        self._reset = True  # until the mirror has taken this delta (``_call``): a failure here resends everything
        if reset:
            self._known = set()
            self._sent_pending = set()
        pace = self._pace
        recs = self._recs
        m = len(recs)
        rows = list(range(m)) if reset else sorted(self._row[rid] for rid in touched if rid in self._row)
        keys = [
            (r.stops, r.frozen, r.online, r.shift_start, r.shift_end, r.capacity, r.speed)
            for r in map(recs.__getitem__, rows)
        ]
        pace()
        known = self._known
        sent = self._sent_pending
        now_pending = set(pending)
        pending_add = [oid for oid in pending if oid not in sent]
        pending_drop = [oid for oid in sent if oid not in now_pending]
        new_ids = [oid for oid in pending_add if oid not in known]
        seen = set(new_ids)
        for key in keys:
            for oid, _k in key[0]:
                if oid not in known and oid not in seen:
                    seen.add(oid)
                    new_ids.append(oid)
        pace()
        orders = s.orders  # a dict read without the lock: entries are only ever added
        new_rows: list[tuple[Any, ...]] = []
        for b in range(0, len(new_ids), BLOCK):
            new_rows.extend(orders[oid].row for oid in new_ids[b : b + BLOCK])
            pace()
        fields = np.array([(k[3], k[4], k[5], k[6], 1.0 if k[2] else 0.0) for k in keys], dtype=np.float64)
        pinned: dict[str, int] = {}
        banned: dict[str, list[int]] = {}
        for oid, (pin_id, bans) in special.items():
            if pin_id:
                pinned[oid] = self._row.get(pin_id, -1)
            if bans:
                banned[oid] = [self._row[rid] for rid in bans if rid in self._row]
        self._pending_delta = new_ids
        self._pending_now = now_pending
        return Delta(
            reset=reset,
            order_ids=new_ids,
            order_rows=np.array(new_rows, dtype=np.float64).reshape(len(new_rows), ROW),
            n_riders=m,
            rider_rows=np.array(rows, dtype=np.int64),
            rider_fields=fields.reshape(len(keys), RIDER_FIELDS),
            rider_stops=[list(k[0]) for k in keys],
            rider_frozen=[min(k[1], len(k[0])) for k in keys],
            x=np.ascontiguousarray(xy[:, 0]),
            y=np.ascontiguousarray(xy[:, 1]),
            pending_add=pending_add,
            pending_drop=pending_drop,
            n_sites=len(s.sites),
            sites=sites,
            site_xy=self._site_xy,
            pinned=pinned,
            banned=banned,
            full=full,
        )

    def _call(self, policy: Policy, delta: Delta, now: float) -> MirrorResult:
        """The mirror's tick (in the worker when there is one). Any failure makes the next call send everything
        again; so does an answer from a mirror that is not the one the loop fed (a new worker)."""
        try:
            if self.remote is not None:
                try:
                    res = self.remote.mirror_tick(self.policy_name, policy.params, delta, now, self.travel)
                except BrokenProcessPool:
                    log.error("the policy worker died; starting a new one (this tick is skipped)")
                    self.remote.close()
                    self.remote = PolicyProcess(self.store.cfg.policy_nice)
                    raise
            else:
                assert self.mirror is not None
                res = self.mirror.tick(self.policy_name, policy.params, delta, now, self.travel)
        except Exception:
            self._reset = True
            raise
        if not delta.reset and res.epoch != self._epoch:
            self._reset = True
            raise RuntimeError("the policy's state was lost (a new worker): this tick is skipped, the next resends it")
        self._epoch = res.epoch
        self._reset = False
        self._known.update(self._pending_delta)
        self._known.difference_update(res.forgotten)
        self._sent_pending = self._pending_now
        return res

    def tick(self, now: float, slot: int | None = None) -> TickStats | None:
        """One tick at ``now`` (epoch seconds): every site's pending orders, or with ``slot`` (0 .. slots - 1)
        those of the sites of ``self.slots[slot]`` (slot 0 also refreshes every route's ETAs, the at-risk count
        and the promise engine). None when there was nothing to dispatch."""
        t0 = time.perf_counter()
        self._pace = Pacer(self.slice_s, self.pause_s)
        policy = self._policy_now()
        s = self.store
        full = slot is None or slot == 0
        with s.lock:
            nothing = not s.pending and (not full or not s.riders)
            if nothing and full:
                s.ticks += 1
                s.last_tick_at = now
                s.last_tick_s = time.perf_counter() - t0
                s.at_risk = 0
        if nothing:
            return None  # (a slot with nothing pending anywhere: its positions go with the next call)
        # A slot's own orders are dispatched and published first; slot 0's refresh of every route's ETAs, the late
        # risk and the promise engine comes after, in a second call that dispatches nothing.
        delta = self._delta(None if slot is None else self.slots[slot], full and slot is None)
        t_snap = time.perf_counter()
        res = self._call(policy, delta, now)
        self.last = res
        t_policy = time.perf_counter()
        reasons = dict(res.reasons)
        events, dropped, assigned = self._apply(res, reasons, now)
        t_apply = time.perf_counter()
        timings = dict(res.timings_ms)
        if full and slot is not None:
            refresh = self._call(policy, self._delta(np.zeros(len(s.sites), dtype=bool), True), now)
            events += self._apply(refresh, dict(refresh.reasons), now)[0]
            timings.update({f"refresh_{k}": v for k, v in refresh.timings_ms.items() if k.startswith("mirror")})
            res.at_risk, res.promise = refresh.at_risk, refresh.promise
        t_refresh = time.perf_counter()
        if self.promise is not None and res.promise is not None:
            try:
                pi = res.promise
                self.promise.set_params(s.promise)
                self.promise.update_from_ends(pi.riders, pi.end_t, pi.end_x, pi.end_y, pi.waiting, now)
            except Exception:
                log.exception("promise engine update failed")
        t_promise = time.perf_counter()
        dt = time.perf_counter() - t0
        with s.lock:
            s.ticks += 1
            s.last_tick_at = now
            s.last_tick_s = dt
            if res.at_risk is not None:
                s.at_risk = res.at_risk
            at_risk = s.at_risk
        phases = {"snapshot": t_snap - t0, "policy": t_policy - t_snap, "apply": t_apply - t_policy,
                  "refresh": t_refresh - t_apply, "promise": t_promise - t_refresh}  # fmt: skip
        phases.update({k: v / 1e3 for k, v in timings.items()})
        return TickStats(now, dt, res.dispatched, res.riders, assigned, dropped, events, at_risk, phases,
                         slot=-1 if slot is None else slot)  # fmt: skip

    def _stale(self, item: _Taken) -> bool:
        """The proposal was built on what has changed since (its rider, or an order it takes); under the lock."""
        s = self.store
        rid = item[0]
        return s.riders.get(rid) is None or rid in s.dirty_riders or any(s.orders[o].state != PENDING for o in item[4])

    def _take(self, item: _Taken, batch: pb.WatchAssignmentsResponse, at: Any) -> int:
        """Give the rider its proposed route and the orders it gained, as events in ``batch``; under the lock.
        Returns how many pending orders it took."""
        s = self.store
        rid, stops, eta, fz, new_ids, route, moved = item
        rec = s.riders[rid]
        rec.stops = stops
        rec.etas = eta
        rec.frozen = fz
        self._resend.add(rid)
        add = batch.events.add
        for oid in new_ids:
            orec = s.orders[oid]
            s._set_state(orec, ASSIGNED)
            orec.rider = rid
            orec.reason = 0
            s.pending.pop(oid, None)
            ev = add(kind=pb.ASSIGNMENT_EVENT_KIND_ASSIGNED, order_id=oid, rider_id=rid)
            ev.at.CopyFrom(at)
            ev.route.CopyFrom(route)
        for oid, _src in moved:  # already assigned, to the rider it left: the event names its new rider
            s.orders[oid].rider = rid
            ev = add(kind=pb.ASSIGNMENT_EVENT_KIND_ASSIGNED, order_id=oid, rider_id=rid)
            ev.at.CopyFrom(at)
            ev.route.CopyFrom(route)
        if not new_ids and not moved:
            ev = add(kind=pb.ASSIGNMENT_EVENT_KIND_ROUTE_UPDATED, rider_id=rid)
            ev.at.CopyFrom(at)
            ev.route.CopyFrom(route)
        return len(new_ids)

    def _apply(self, res: MirrorResult, reasons: dict[str, int], now: float) -> tuple[int, int, int]:
        """Take the proposals whose riders did not change meanwhile (as assignment events, journaled and
        published), the ETAs of the other routes (a full call) and the reasons of the orders left over. Proposals
        linked by an order that moved between their riders are taken together or not at all."""
        s = self.store
        n_events = dropped = assigned = 0
        at = pb.AssignmentEvent().at
        ts(now, at)
        pace = self._pace
        recs = self._recs
        proposals = res.proposals
        losers = {f for p in proposals for _oid, f in p[6]}  # riders an order moved away from
        linked: list[_Taken] = []
        for c in range(0, len(proposals), CHUNK):
            pace()
            # The new routes are parsed (or built) before the lock is taken (they read only what never changes in
            # an order), so that requests wait for the lock only while the chunk is checked and applied.
            chunk: list[_Taken] = []
            for r, stops, eta, frozen, new, msg, moved in proposals[c : c + CHUNK]:
                fz = max(frozen, 1) if stops else 0
                route = pb.Route.FromString(msg) if msg is not None else s.route_of(stops, eta, fz)
                item = (recs[r].id, stops, eta, fz, new, route, [(oid, recs[f].id) for oid, f in moved])
                (linked if moved or r in losers else chunk).append(item)
            pace()
            with s.lock:
                batch = pb.WatchAssignmentsResponse()
                for item in chunk:
                    if self._stale(item):
                        dropped += 1
                        for oid in item[4]:
                            reasons.setdefault(oid, int(Reason.RIDERS_BUSY))
                    else:
                        assigned += self._take(item, batch, at)
                s.emit_batch(batch)
                n_events += len(batch.events)
        for group in _linked_groups(linked):
            pace()
            with s.lock:
                batch = pb.WatchAssignmentsResponse()
                by_rider = {item[0] for item in group}
                ok = all(not self._stale(item) for item in group) and all(
                    s.orders[oid].state == ASSIGNED and s.orders[oid].rider == src and src in by_rider
                    for item in group
                    for oid, src in item[6]
                )
                if ok:
                    for item in group:
                        assigned += self._take(item, batch, at)
                else:
                    dropped += len(group)
                    for item in group:
                        for oid in item[4]:
                            reasons.setdefault(oid, int(Reason.RIDERS_BUSY))
                s.emit_batch(batch)
                n_events += len(batch.events)
        if res.eta_rows is not None and res.eta_len is not None and res.etas is not None:
            # ETAs of the riders with stops whose routes the call did not change (converted a block at a time).
            rows_l = res.eta_rows.tolist()
            lens = res.eta_len.tolist()
            starts = (np.cumsum(res.eta_len) - res.eta_len).tolist()
            step = 4 * CHUNK
            for c in range(0, len(rows_l), step):
                pace()
                e = min(c + step, len(rows_l))
                lo, hi = starts[c], starts[e - 1] + lens[e - 1]
                vals = res.etas[lo:hi].tolist()  # (one block at a time: a long C call holds the GIL)
                with s.lock:
                    for i in range(c, e):
                        rec = recs[rows_l[i]]
                        if rec.id in s.dirty_riders or len(rec.stops) != lens[i]:
                            continue
                        a = starts[i] - lo
                        rec.etas = vals[a : a + lens[i]]
        unassigned = pb.ASSIGNMENT_EVENT_KIND_UNASSIGNED
        items = list(reasons.items())
        for c in range(0, len(items), 4 * CHUNK):
            pace()
            with s.lock:
                events = []
                for oid, why in items[c : c + 4 * CHUNK]:
                    rec_o = s.orders.get(oid)
                    if rec_o is not None and rec_o.state == PENDING and rec_o.reason != why:
                        rec_o.reason = why
                        events.append(pb.AssignmentEvent(kind=unassigned, order_id=oid, at=at, reason=why))  # type: ignore[arg-type]
                s._emit(events)
                n_events += len(events)
        return n_events, dropped, assigned


def _linked_groups(items: list[_Taken]) -> list[list[_Taken]]:
    """The proposals in groups that an order moved between (connected through ``item[6]``), in their order."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for item in items:
        for _oid, src in item[6]:
            parent[find(src)] = find(item[0])
    groups: dict[str, list[_Taken]] = {}
    for item in items:
        groups.setdefault(find(item[0]), []).append(item)
    return list(groups.values())


def next_slot_at(due: float, now: float, tick_s: float, slots: int) -> float:
    """When the slot after the one that was due at ``due`` starts (monotonic seconds; ``now`` is the clock when the
    slot ended). Slots keep to a fixed schedule, one every ``tick_s / slots``: a slot that ran over its share makes
    the next ones start at once until the schedule is caught up, so that each site is still dispatched every
    ``tick_s`` on average. Restarting the schedule at the late end instead stretched every cycle by each overrun:
    in session 10's replays a site waited 15.1-15.4 s (median) between its turns, and up to 16.3 s at the 90th
    percentile (benchmarks/RESULTS.md, "Session 11"). Only when the loop is a whole tick behind (it cannot keep up)
    does the schedule restart from ``now``, so that an overload never piles up slots to run back to back."""
    nxt = due + tick_s / slots
    return now if nxt < now - tick_s else nxt


def site_slots(store: Store, slots: int) -> list[npt.NDArray[np.bool_]]:
    """The owned sites in ``min(slots, owned)`` groups of neighbours (bool masks over all the store's sites):
    sorted by frame group, then along a Z-order curve of their frame positions, and cut into runs of equal
    count. Sites not owned go with the first group (they have no pending orders: the store refuses them)."""
    sites = store.sites
    owned = [st for st in sites if st.owned]
    k = max(1, min(slots, len(owned)))
    masks = [np.zeros(len(sites), dtype=bool) for _ in range(k)]
    if owned:
        xs = np.array([st.x for st in owned])
        ys = np.array([st.y for st in owned])
        qx = ((xs - xs.min()) / max(1.0, float(np.ptp(xs))) * 65535).astype(np.int64)
        qy = ((ys - ys.min()) / max(1.0, float(np.ptp(ys))) * 65535).astype(np.int64)
        z = np.zeros(len(owned), dtype=np.int64)
        for bit in range(16):
            z |= ((qx >> bit) & 1) << (2 * bit) | ((qy >> bit) & 1) << (2 * bit + 1)
        order = np.lexsort((z, np.array([st.group for st in owned])))
        for j, part in enumerate(np.array_split(order, k)):
            for i in part.tolist():
                masks[j][owned[i].index] = True
    for st in sites:
        if not st.owned:
            masks[0][st.index] = True
    return masks
