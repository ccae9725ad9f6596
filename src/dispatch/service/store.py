"""The authoritative in-memory state of one service instance: sites, orders, riders and their routes, the
assignment sequence and the parameters in force.

Every change happens under ``lock`` and is appended to the journal under the same lock, so the journal's order is
the order of the changes; callers wait for the returned ticket outside the lock before they acknowledge. The same
methods replay the journal at startup (``journal`` None while replaying), so a restart restores exactly the state
that was acknowledged.

Planar frames: sites closer than ``group_link_m`` (single linkage) form a group with one azimuthal equidistant
projection; groups are laid ``FRAME_GAP_M`` apart along x, far beyond any reach, so one dispatch tick covers every
owned site and no rider is ever a candidate for another group's orders. A rider joins the group of the site
nearest to it when it comes online.

Route changes that the service makes on its own (a cancel, a rejection, a rider going offline) are announced as
assignment events, like a tick's; completed stops (picked up, delivered) are simply removed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.geo import EARTH_RADIUS_M, Projection, haversine_m
from dispatch.policy import DispatchParams
from dispatch.promise_params import PromiseParams
from dispatch.service import journal as jr
from dispatch.service.config import ServiceConfig, SiteDef
from dispatch.service.validate import (
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    RESOURCE_EXHAUSTED,
    EventIn,
    EventItem,
    LocationRun,
    OrderIn,
    RefusalError,
    canonical,
)
from dispatch.state import DROPOFF, PICKUP
from dispatch.v1 import dispatch_pb2 as pb

log = logging.getLogger("dispatch.service.store")

FRAME_GAP_M = 1e6
MAX_FROM_GROUP_M = 400_000.0  # a rider farther than this from its group's centre would leave the frame
_FAR = "more than 400 km from the rider's area; go OFFLINE and ONLINE there"

PENDING = pb.ORDER_STATE_PENDING
ASSIGNED = pb.ORDER_STATE_ASSIGNED
PICKED_UP = pb.ORDER_STATE_PICKED_UP
DELIVERED = pb.ORDER_STATE_DELIVERED
CANCELLED = pb.ORDER_STATE_CANCELLED
STATES = (PENDING, ASSIGNED, PICKED_UP, DELIVERED, CANCELLED)

_KIND_TO_PB = {PICKUP: pb.STOP_KIND_PICKUP, DROPOFF: pb.STOP_KIND_DROPOFF}
_PB_TO_KIND = {pb.STOP_KIND_PICKUP: PICKUP, pb.STOP_KIND_DROPOFF: DROPOFF}


def ts(seconds: float, out: Any) -> Any:
    """Write epoch seconds into the google.protobuf.Timestamp ``out``; returns it."""
    s = math.floor(seconds)
    out.seconds = int(s)
    out.nanos = min(999_999_999, round((seconds - s) * 1e9))
    return out


def _haversine(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle metres (as ``geo.haversine_m``, scalar)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, max(0.0, h))))


@dataclass(frozen=True)
class SiteState:
    """A site with its group and its position in the group's frame (metres)."""

    index: int
    spec: SiteDef
    group: int
    x: float
    y: float
    owned: bool


@dataclass(slots=True)
class OrderRec:
    id: str
    key: bytes
    proto: pb.Order
    site: int
    lat: float
    lng: float
    drop_x: float
    drop_y: float
    placed: float
    ready: float
    promised: float
    size: int
    service_drop: float
    pinned: str
    state: int = PENDING
    rider: str = ""
    reason: int = 0
    pickup_eta: float = math.nan
    drop_eta: float = math.nan
    picked_at: float = math.nan
    delivered_at: float = math.nan
    banned: set[str] | None = None
    ticket: int = 0
    # The dispatch tables' row: pick_x, pick_y, drop_x, drop_y, site, ready, promised, size, service_pick,
    # service_drop, placed; then the stops' positions in degrees for the Route messages: pick_lat, pick_lng,
    # drop_lat, drop_lng.
    row: tuple[float, ...] = ()


@dataclass(slots=True)
class RiderRec:
    id: str
    group: int
    lat: float
    lng: float
    at: float
    x: float
    y: float
    shift_start: float
    shift_end: float
    capacity: int
    speed: float
    online: bool = True
    stops: list[tuple[str, int]] = field(default_factory=list)
    etas: list[float] = field(default_factory=list)
    frozen: int = 0
    row: int = -1  # the rider's place in ``Store.riders`` (insertion order), its row of ``Store.rider_xy``


class _Accepted:
    """The accepted events of one request message, journaled as one record (or several, split where an event
    emits an assignment event, so that the journal keeps the order of changes)."""

    def __init__(self, whole: pb.ReportRiderEventsRequest | None) -> None:
        self.events: list[pb.RiderEvent] = []
        self.whole = whole
        self.flushed = False

    def payload(self) -> bytes:
        if not self.flushed and self.whole is not None and len(self.events) == len(self.whole.events):
            return self.whole.SerializeToString()
        return pb.ReportRiderEventsRequest(events=self.events).SerializeToString()


class Store:
    """See the module docstring. Thread-safe: every public method takes ``lock``."""

    def __init__(self, cfg: ServiceConfig, journal: jr.Journal | None = None) -> None:
        self.cfg = cfg
        self.lock = threading.RLock()
        self.journal = journal
        self.limits = cfg.limits
        self.sites: list[SiteState] = []
        self.site_index: dict[str, int] = {}
        self.projections: list[Projection] = []
        self._build_sites(cfg)
        self.orders: dict[str, OrderRec] = {}
        self.riders: dict[str, RiderRec] = {}
        self._xy = np.zeros((0, 2), dtype=np.float64)  # every rider's frame position by row (``rider_xy``)
        self.pending: dict[str, None] = {}
        self.special: set[str] = set()  # orders pinned to a rider or rejected by one (the tick treats them apart)
        self.counts: dict[int, int] = {int(st): 0 for st in STATES}
        self.riders_online = 0
        self.seq = 0
        self.params = cfg.dispatch
        self.promise = PromiseParams()
        self.params_version = 1
        self.dirty_riders: set[str] = set()
        self.dirty_orders: set[str] = set()
        # Filled by the dispatch loop.
        self.ticks = 0
        self.last_tick_at = math.nan
        self.last_tick_s = 0.0
        self.at_risk = 0

    def rider_xy(self) -> npt.NDArray[np.float64]:
        """Every rider's frame position (x, y), by row (``RiderRec.row``): a copy, float64[riders, 2]."""
        return self._xy[: len(self.riders)].copy()

    # -- sites and frames ---------------------------------------------------------------------------------------

    def _build_sites(self, cfg: ServiceConfig) -> None:
        defs = cfg.sites
        lat = np.array([s.lat for s in defs], dtype=np.float64)
        lng = np.array([s.lng for s in defs], dtype=np.float64)
        n = len(defs)
        parent = list(range(n))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in range(n):
            d = haversine_m(lat[i], lng[i], lat, lng)
            for j in np.flatnonzero(d <= cfg.group_link_m).tolist():
                a, b = find(i), find(int(j))
                if a != b:
                    parent[max(a, b)] = min(a, b)
        roots = sorted({find(i) for i in range(n)})
        gid = {r: g for g, r in enumerate(roots)}
        groups = [gid[find(i)] for i in range(n)]
        for g in range(len(roots)):
            members = [i for i in range(n) if groups[i] == g]
            self.projections.append(Projection(float(lat[members].mean()), float(lng[members].mean())))
        owned = cfg.owned_ids
        for i, s in enumerate(defs):
            x, y = self.to_frame(groups[i], s.lat, s.lng)
            self.sites.append(SiteState(i, s, groups[i], x, y, s.id in owned))
            self.site_index[s.id] = i
        self._site_lat = lat
        self._site_lng = lng
        self._frame_phi0 = np.radians(np.array([p.lat0 for p in self.projections], dtype=np.float64))
        self._frame_lng0 = np.array([p.lng0 for p in self.projections], dtype=np.float64)

    def to_frame(self, group: int, lat: float, lng: float) -> tuple[float, float]:
        """WGS84 degrees -> metres in the group's frame: ``Projection.to_xy`` in scalar math (a request's hot
        path; numpy's per-call overhead on scalars is ~20x this), plus the group's offset."""
        p = self.projections[group]
        phi0 = math.radians(p.lat0)
        phi = math.radians(lat)
        dlam = math.radians(lng - p.lng0)
        cos_phi = math.cos(phi)
        a = cos_phi * math.sin(dlam)
        b = math.cos(phi0) * math.sin(phi) - math.sin(phi0) * cos_phi * math.cos(dlam)
        c_cos = math.sin(phi0) * math.sin(phi) + math.cos(phi0) * cos_phi * math.cos(dlam)
        c_sin = math.hypot(a, b)
        c = math.atan2(c_sin, c_cos)
        k = c / c_sin if c_sin > 0.0 else 1.0
        return EARTH_RADIUS_M * k * a + group * FRAME_GAP_M, EARTH_RADIUS_M * k * b

    def to_frame_many(
        self, group: npt.NDArray[np.int64], lat: npt.NDArray[np.float64], lng: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``to_frame`` for many points: group int64[n], lat and lng float64[n] degrees -> x, y float64[n] metres."""
        phi0 = self._frame_phi0[group]
        sin0, cos0 = np.sin(phi0), np.cos(phi0)
        phi = np.radians(lat)
        dlam = np.radians(lng - self._frame_lng0[group])
        cos_phi, sin_phi, cos_dlam = np.cos(phi), np.sin(phi), np.cos(dlam)
        a = cos_phi * np.sin(dlam)
        b = cos0 * sin_phi - sin0 * cos_phi * cos_dlam
        c_cos = sin0 * sin_phi + cos0 * cos_phi * cos_dlam
        c_sin = np.hypot(a, b)
        c = np.arctan2(c_sin, c_cos)
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.where(c_sin > 0.0, c / c_sin, 1.0)
        return EARTH_RADIUS_M * k * a + group * FRAME_GAP_M, EARTH_RADIUS_M * k * b

    def address_xy(self, lat: float, lng: float, site: int | None = None) -> tuple[float, float]:
        """An address in the frame of ``site``'s group, or of the nearest site's group (a site's zone lies in its
        own group's frame: sites whose zones could overlap are within the link distance, so in one group)."""
        group = self.sites[site if site is not None else self.nearest_site(lat, lng)[0]].group
        return self.to_frame(group, lat, lng)

    def nearest_site(self, lat: float, lng: float) -> tuple[int, float]:
        d = haversine_m(lat, lng, self._site_lat, self._site_lng)
        i = int(np.argmin(d))
        return i, float(d[i])

    @property
    def owned_site_ids(self) -> list[str]:
        return [s.spec.id for s in self.sites if s.owned]

    # -- journal helpers ----------------------------------------------------------------------------------------

    def _append(self, kind: int, payload: bytes, seq: int | None = None, obj: Any = None) -> int:
        if self.journal is None:
            return 0
        return self.journal.append(kind, payload, seq, obj)

    def _room(self, n: int = 1) -> None:
        if self.journal is not None:
            try:
                self.journal.check_room(n)
            except jr.JournalFullError as exc:
                raise RefusalError(RESOURCE_EXHAUSTED, "", f"overloaded: {exc}; retry later") from None

    def _set_state(self, o: OrderRec, state: int) -> None:
        self.counts[o.state] -= 1
        self.counts[state] += 1
        o.state = state

    # -- orders -------------------------------------------------------------------------------------------------

    def submit(self, oi: OrderIn, proto: pb.Order) -> tuple[OrderRec, bool, int]:
        """Accept an order (or recognise a retry). Returns (order, duplicate, journal ticket to wait for)."""
        key = canonical(proto)
        with self.lock:
            old = self.orders.get(oi.id)
            if old is not None:
                if old.key == key:
                    return old, True, old.ticket
                raise RefusalError(ALREADY_EXISTS, "order.id", f"a different order {oi.id!r} already exists")
            rec = self._new_order(oi, proto, key)
            if self.journal is not None:
                if len(self.pending) >= self.limits.max_pending_orders:
                    raise RefusalError(
                        RESOURCE_EXHAUSTED, "", f"overloaded: {len(self.pending)} orders wait for dispatch; retry later"
                    )
                self._room()
            if proto.state:
                stored = pb.Order()
                stored.CopyFrom(proto)
                stored.ClearField("state")
                rec.proto = stored
            rec.ticket = self._append(jr.ORDER, key)
            self.orders[rec.id] = rec
            if rec.pinned:
                self.special.add(rec.id)
            self.counts[PENDING] += 1
            self.pending[rec.id] = None
            return rec, False, rec.ticket

    def _new_order(self, oi: OrderIn, proto: pb.Order, key: bytes) -> OrderRec:
        si = self.site_index.get(oi.site_id)
        if si is None:
            raise RefusalError(NOT_FOUND, "order.site_id", f"unknown site {oi.site_id!r}")
        site = self.sites[si]
        if not site.owned:
            raise RefusalError(FAILED_PRECONDITION, "order.site_id", f"site {oi.site_id!r} is not dispatched here")
        if oi.pinned and oi.pinned not in self.riders:
            raise RefusalError(NOT_FOUND, "order.pinned_rider_id", f"unknown rider {oi.pinned!r}")
        d = _haversine(site.spec.lat, site.spec.lng, oi.lat, oi.lng)
        if d > self.limits.max_dropoff_m:
            raise RefusalError(
                INVALID_ARGUMENT,
                "order.dropoff",
                f"{d / 1000:.1f} km from site {oi.site_id!r}; at most {self.limits.max_dropoff_m / 1000:g} km",
            )
        dx, dy = self.to_frame(site.group, oi.lat, oi.lng)
        rec = OrderRec(
            oi.id, key, proto, si, oi.lat, oi.lng, dx, dy, oi.placed, oi.ready, oi.promised, oi.size,
            oi.service_drop, oi.pinned,
        )  # fmt: skip
        rec.row = (site.x, site.y, dx, dy, float(si), oi.ready, oi.promised, float(oi.size), site.spec.service_s,
                   oi.service_drop, oi.placed, site.spec.lat, site.spec.lng, oi.lat, oi.lng)  # fmt: skip
        return rec

    def cancel(self, order_id: str, reason: str, now: float) -> tuple[OrderRec, int]:
        with self.lock:
            o = self.orders.get(order_id)
            if o is None:
                raise RefusalError(NOT_FOUND, "order_id", f"unknown order {order_id!r}")
            if o.state == CANCELLED:
                return o, o.ticket
            if o.state in (PICKED_UP, DELIVERED):
                raise RefusalError(FAILED_PRECONDITION, "order_id", f"order {order_id!r} is already picked up")
            self._room(2)
            ticket = self._append(
                jr.CANCEL, pb.CancelOrderRequest(order_id=order_id, reason=reason).SerializeToString()
            )
            ticket = self._apply_cancel(o, now) or ticket
            o.ticket = ticket
            return o, ticket

    def _apply_cancel(self, o: OrderRec, now: float) -> int:
        ticket = 0
        rider = o.rider
        self.pending.pop(o.id, None)
        self.dirty_orders.add(o.id)
        self._set_state(o, CANCELLED)
        if rider:
            r = self.riders[rider]
            self.dirty_riders.add(rider)
            self._drop_stops(r, o.id)
            ticket = self._emit(
                [self._event(pb.ASSIGNMENT_EVENT_KIND_UNASSIGNED, now, o.id, r, pb.UNASSIGNED_REASON_CANCELLED)]
            )
            o.rider = ""
        return ticket

    # -- rider events -------------------------------------------------------------------------------------------

    def rider_events(
        self,
        items: Sequence[LocationRun | EventItem],
        now: float,
        whole: pb.ReportRiderEventsRequest | None = None,
    ) -> tuple[int, list[tuple[int, str, RefusalError]], int]:
        """Apply checked events in order under one hold of the lock: ``items`` are runs of plain LOCATION events
        (applied as a batch) and single events (``(index, event, raw)``). Returns (accepted, [(index, rider_id,
        refusal)], last ticket). ``whole``: the request message when ``items`` hold all of its events (then, when
        every one is accepted, its bytes are journaled as they are, without a copy)."""
        accepted = 0
        refused: list[tuple[int, str, RefusalError]] = []
        ticket = 0
        with self.lock:
            acc = _Accepted(whole)
            for item in items:
                if isinstance(item, LocationRun):
                    accepted += self._locations(item, acc, refused)
                    continue
                idx, ev, raw = item
                try:
                    if self.journal is not None:
                        self._room(3)
                    emitted = self._apply_rider_event(ev, now, acc, raw)
                except RefusalError as exc:
                    refused.append((idx, ev.rider_id, exc))
                    continue
                accepted += 1
                if emitted:
                    ticket = emitted
            if acc.events:
                ticket = self._append(jr.EVENTS, acc.payload()) or ticket
        return accepted, refused, ticket

    def _locations(self, run: LocationRun, acc: _Accepted, refused: list[tuple[int, str, RefusalError]]) -> int:
        """Apply a run of LOCATION events (as ``_apply_rider_event`` would one by one, with the frame positions
        computed for the whole run at once); returns how many were accepted."""
        if self.journal is not None:
            try:
                self._room(3)
            except RefusalError as exc:
                refused.extend(zip(run.index, run.rider_id, [exc] * len(run.index), strict=True))
                return 0
        riders = self.riders
        recs = [riders.get(rid) for rid in run.rider_id]
        group = np.fromiter((0 if r is None else r.group for r in recs), dtype=np.int64, count=len(recs))
        xa, ya = self.to_frame_many(group, np.asarray(run.lat, dtype=np.float64), np.asarray(run.lng, np.float64))
        far = ((np.abs(xa - group * FRAME_GAP_M) > MAX_FROM_GROUP_M) | (np.abs(ya) > MAX_FROM_GROUP_M)).tolist()
        xs, ys = xa.tolist(), ya.tolist()
        accepted = 0
        events = acc.events
        moved: list[int] = []  # (the events that moved their rider)
        for k, r in enumerate(recs):
            if r is None:
                rid = run.rider_id[k]
                why = f"unknown rider {rid!r} (a rider is known from its first ONLINE)"
                refused.append((run.index[k], rid, RefusalError(NOT_FOUND, "rider_id", why)))
                continue
            at = run.at[k]
            if at >= r.at:
                if far[k]:
                    refused.append((run.index[k], r.id, RefusalError(FAILED_PRECONDITION, "position", _FAR)))
                    continue
                r.lat, r.lng, r.at, r.x, r.y = run.lat[k], run.lng[k], at, xs[k], ys[k]
                moved.append(k)
            events.append(run.raw[k])
            accepted += 1
        if moved:  # each moved rider's last position in the run
            rows = np.fromiter((recs[k].row for k in moved), dtype=np.int64, count=len(moved))  # type: ignore[union-attr]
            rows, last = np.unique(rows[::-1], return_index=True)
            ks = np.array(moved, dtype=np.int64)[::-1][last]
            self._xy[rows, 0] = xa[ks]
            self._xy[rows, 1] = ya[ks]
        return accepted

    def _flush(self, acc: _Accepted) -> None:
        if acc.events:
            self._append(jr.EVENTS, acc.payload())
            acc.events.clear()
            acc.flushed = True

    def _apply_rider_event(self, ev: EventIn, now: float, acc: _Accepted | None, raw: pb.RiderEvent | None) -> int:
        """Apply one event; returns the ticket of an emitted assignment event (0 if none). ``acc`` collects the
        accepted events for the journal (None while replaying)."""
        kind = ev.kind
        r = self.riders.get(ev.rider_id)
        emitted = 0

        def accept() -> None:
            if acc is not None and raw is not None:
                acc.events.append(raw)

        if kind == pb.RIDER_EVENT_KIND_ONLINE:
            assert ev.lat is not None and ev.lng is not None and ev.shift is not None
            si, _d = self.nearest_site(ev.lat, ev.lng)
            site = self.sites[si]
            if not site.owned:
                raise RefusalError(
                    FAILED_PRECONDITION, "position", f"nearest site {site.spec.id!r} is not dispatched here"
                )
            x, y = self.to_frame(site.group, ev.lat, ev.lng)
            sh = ev.shift
            if r is None:
                r = RiderRec(ev.rider_id, site.group, ev.lat, ev.lng, ev.at, x, y, sh.start, sh.end, sh.capacity,
                             sh.speed, online=False, row=len(self.riders))  # fmt: skip
                self.riders[r.id] = r
                if r.row >= self._xy.shape[0]:
                    grown = np.zeros((max(1024, 2 * self._xy.shape[0]), 2), dtype=np.float64)
                    grown[: self._xy.shape[0]] = self._xy
                    self._xy = grown
            elif r.stops and r.group != site.group:
                raise RefusalError(
                    FAILED_PRECONDITION, "position", "a rider with stops cannot come online in another area"
                )
            if not r.online:
                self.riders_online += 1
            r.online = True
            r.group = site.group
            r.lat, r.lng, r.at, r.x, r.y = ev.lat, ev.lng, ev.at, x, y
            self._xy[r.row] = x, y
            r.shift_start, r.shift_end, r.capacity, r.speed = sh.start, sh.end, sh.capacity, sh.speed
            self.dirty_riders.add(r.id)
            accept()
            return 0
        if r is None:
            raise RefusalError(
                NOT_FOUND, "rider_id", f"unknown rider {ev.rider_id!r} (a rider is known from its first ONLINE)"
            )
        if ev.lat is not None and ev.lng is not None and ev.at >= r.at:
            x, y = self.to_frame(r.group, ev.lat, ev.lng)
            if abs(x - r.group * FRAME_GAP_M) > MAX_FROM_GROUP_M or abs(y) > MAX_FROM_GROUP_M:
                raise RefusalError(FAILED_PRECONDITION, "position", _FAR)
            r.lat, r.lng, r.at, r.x, r.y = ev.lat, ev.lng, ev.at, x, y
            self._xy[r.row] = x, y
        if kind == pb.RIDER_EVENT_KIND_LOCATION:
            accept()
            return 0
        if kind == pb.RIDER_EVENT_KIND_OFFLINE:
            accept()
            if r.online:
                r.online = False
                self.riders_online -= 1
                self.dirty_riders.add(r.id)
                back = [oid for oid, k in r.stops if k == PICKUP]
                if back:
                    if acc is not None:
                        self._flush(acc)
                    evs = []
                    for oid in back:
                        self._drop_stops(r, oid)
                    for oid in back:
                        back_o = self.orders[oid]
                        self._unassign(back_o)
                        evs.append(
                            self._event(
                                pb.ASSIGNMENT_EVENT_KIND_UNASSIGNED, now, oid, r, pb.UNASSIGNED_REASON_RIDER_OFFLINE
                            )
                        )
                    emitted = self._emit(evs)
            return emitted
        o = self.orders.get(ev.order_id)
        if o is None:
            raise RefusalError(NOT_FOUND, "order_id", f"unknown order {ev.order_id!r}")
        if kind == pb.RIDER_EVENT_KIND_PICKED_UP:
            if o.state != ASSIGNED or o.rider != r.id:
                raise RefusalError(
                    FAILED_PRECONDITION,
                    "order_id",
                    f"order {o.id!r} is not assigned to rider {r.id!r} (state {pb.OrderState.Name(o.state)})",
                )
            self._drop_stops(r, o.id, PICKUP)
            self._set_state(o, PICKED_UP)
            o.picked_at = ev.at
            self.dirty_riders.add(r.id)
            accept()
            return 0
        if kind == pb.RIDER_EVENT_KIND_DELIVERED:
            if o.state != PICKED_UP or o.rider != r.id:
                raise RefusalError(
                    FAILED_PRECONDITION,
                    "order_id",
                    f"order {o.id!r} is not picked up by rider {r.id!r} (state {pb.OrderState.Name(o.state)})",
                )
            self._drop_stops(r, o.id)
            self._set_state(o, DELIVERED)
            o.delivered_at = ev.at
            self.dirty_riders.add(r.id)
            accept()
            return 0
        # REJECTED
        if o.state != ASSIGNED or o.rider != r.id:
            raise RefusalError(
                FAILED_PRECONDITION,
                "order_id",
                f"order {o.id!r} is not assigned to rider {r.id!r} (state {pb.OrderState.Name(o.state)})",
            )
        accept()
        if acc is not None:
            self._flush(acc)
        if o.banned is None:
            o.banned = set()
        o.banned.add(r.id)
        self.special.add(o.id)
        self._drop_stops(r, o.id)
        self._unassign(o)
        self.dirty_riders.add(r.id)
        return self._emit(
            [self._event(pb.ASSIGNMENT_EVENT_KIND_UNASSIGNED, now, o.id, r, pb.UNASSIGNED_REASON_REJECTED_BY_RIDER)]
        )

    def _unassign(self, o: OrderRec) -> None:
        o.rider = ""
        o.pickup_eta = o.drop_eta = math.nan
        self._set_state(o, PENDING)
        self.pending[o.id] = None
        self.dirty_orders.add(o.id)

    def _drop_stops(self, r: RiderRec, order_id: str, kind: int | None = None) -> None:
        gone = [i for i, (oid, k) in enumerate(r.stops) if oid == order_id and (kind is None or k == kind)]
        if not gone:
            return
        keep = [i for i in range(len(r.stops)) if i not in gone]
        r.etas = [r.etas[i] if i < len(r.etas) else math.nan for i in keep]
        r.stops = [r.stops[i] for i in keep]
        r.frozen = max(0, r.frozen - sum(1 for i in gone if i < r.frozen))

    # -- assignment events --------------------------------------------------------------------------------------

    def route_proto(self, r: RiderRec, out: pb.Route | None = None) -> pb.Route:
        return self.route_of(r.stops, r.etas, r.frozen, out)

    def route_of(
        self, stops: list[tuple[str, int]], etas: list[float], frozen: int, out: pb.Route | None = None
    ) -> pb.Route:
        """The Route message of a route given by its parts (a rider's ``stops``, ``etas`` and ``frozen``). It reads
        only what never changes once an order is in the store (its site and drop-off), so the dispatch loop builds
        these outside the lock."""
        route = pb.Route() if out is None else out
        add = route.stops.add
        orders, sites, n_eta = self.orders, self.sites, len(etas)
        for s, (oid, k) in enumerate(stops):
            o = orders[oid]
            st = add(kind=_KIND_TO_PB[k], order_id=oid, frozen=s < frozen)
            pos = st.position
            if k == PICKUP:
                site = sites[o.site].spec
                pos.lat, pos.lng = site.lat, site.lng
            else:
                pos.lat, pos.lng = o.lat, o.lng
            eta = etas[s] if s < n_eta else math.nan
            if math.isfinite(eta):
                ts(eta, st.eta)
        return route

    def _event(self, kind: int, now: float, order_id: str, r: RiderRec | None, reason: int = 0) -> pb.AssignmentEvent:
        ev = pb.AssignmentEvent(kind=kind, order_id=order_id, reason=reason)  # type: ignore[arg-type]
        ts(now, ev.at)
        if r is not None:
            ev.rider_id = r.id
            self.route_proto(r, ev.route)
        return ev

    def _emit(self, events: list[pb.AssignmentEvent]) -> int:
        """Number, journal and (after commit) publish events whose effects are already applied."""
        if not events:
            return 0
        if self.journal is None:
            # Replaying: the events that followed this change are in the journal (and applied from there); an
            # event that never reached the journal was never published, so it takes no sequence number.
            return 0
        batch = pb.WatchAssignmentsResponse()
        batch.events.extend(events)
        return self.emit_batch(batch)

    def emit_batch(self, batch: pb.WatchAssignmentsResponse) -> int:
        """``_emit`` for events already built in one message (numbered in place); 0 when it holds none."""
        if not batch.events or self.journal is None:
            return 0
        first = self.seq + 1
        for ev in batch.events:
            self.seq += 1
            ev.sequence = self.seq
        return self._append(jr.ASSIGN, batch.SerializeToString(), first, batch)

    def apply_event(self, ev: pb.AssignmentEvent) -> None:
        """Replay: set the rider's route from the event and the order's state (idempotent)."""
        self.seq = max(self.seq, int(ev.sequence))
        r = self.riders.get(ev.rider_id) if ev.rider_id else None
        if r is not None and ev.HasField("route"):
            r.stops = [
                (s.order_id, _PB_TO_KIND.get(s.kind, DROPOFF)) for s in ev.route.stops if s.order_id in self.orders
            ]
            r.etas = [s.eta.seconds + s.eta.nanos * 1e-9 if s.HasField("eta") else math.nan for s in ev.route.stops]
            r.frozen = 0
            for s in ev.route.stops:
                if not s.frozen:
                    break
                r.frozen += 1
        o = self.orders.get(ev.order_id) if ev.order_id else None
        if o is None:
            return
        if ev.kind == pb.ASSIGNMENT_EVENT_KIND_ASSIGNED and o.state == PENDING:
            self._set_state(o, ASSIGNED)
            o.rider = ev.rider_id
            self.pending.pop(o.id, None)
            o.reason = 0
        elif ev.kind == pb.ASSIGNMENT_EVENT_KIND_ASSIGNED and o.state == ASSIGNED:
            o.rider = ev.rider_id  # moved to another rider's route by re-optimisation
        elif ev.kind == pb.ASSIGNMENT_EVENT_KIND_UNASSIGNED:
            o.reason = int(ev.reason)
            if ev.rider_id and o.rider == ev.rider_id:
                o.rider = ""
                if o.state == ASSIGNED:
                    self._set_state(o, PENDING)
                    self.pending[o.id] = None

    # -- replay -------------------------------------------------------------------------------------------------

    def replay(self, records: Iterable[jr.Record]) -> int:
        """Apply journal records (``journal`` must be None). Returns how many were applied."""
        from dispatch.service import validate as v

        n = skipped = 0
        moved: set[str] = set()  # riders whose frame position is still to compute from lat/lng
        for rec in records:
            n += 1
            if rec.kind == jr.ORDER:
                proto = pb.Order.FromString(rec.payload)
                oi = v.order(proto)
                try:
                    new = self._new_order(oi, proto, rec.payload) if oi.id not in self.orders else None
                except RefusalError as exc:  # the configuration changed (a site no longer owned here): say so
                    skipped += 1
                    log.warning("journal: order not restored", extra={"order_id": oi.id, "why": str(exc)})
                    continue
                if new is not None:
                    new.proto = proto
                    self.orders[new.id] = new
                    if new.pinned:
                        self.special.add(new.id)
                    self.counts[PENDING] += 1
                    self.pending[new.id] = None
            elif rec.kind == jr.CANCEL:
                req = pb.CancelOrderRequest.FromString(rec.payload)
                gone = self.orders.get(req.order_id)
                if gone is not None and gone.state in (PENDING, ASSIGNED):
                    rider = gone.rider
                    self.pending.pop(gone.id, None)
                    self._set_state(gone, CANCELLED)
                    if rider:
                        self._drop_stops(self.riders[rider], gone.id)
                        gone.rider = ""
            elif rec.kind == jr.EVENTS:
                batch = pb.ReportRiderEventsRequest.FromString(rec.payload)
                for raw in batch.events:
                    if raw.kind == pb.RIDER_EVENT_KIND_LOCATION:  # the bulk of a journal: a fast path
                        r = self.riders.get(raw.rider_id)
                        at = raw.at.seconds + raw.at.nanos * 1e-9
                        if r is not None and at >= r.at:
                            r.lat, r.lng, r.at = raw.position.lat, raw.position.lng, at
                            moved.add(r.id)
                        continue
                    # A refusal cannot happen for a journal written by this code; skip rather than refuse to start.
                    with contextlib.suppress(RefusalError):
                        self._apply_rider_event(v.rider_event(raw), 0.0, None, None)
            elif rec.kind == jr.ASSIGN:
                for ev in pb.WatchAssignmentsResponse.FromString(rec.payload).events:
                    self.apply_event(ev)
            elif rec.kind == jr.PARAMS:
                from dispatch.service.params import from_proto

                resp = pb.UpdateParamsResponse.FromString(rec.payload)
                self.params, self.promise = from_proto(resp.params, self.params, self.promise)
                self.params_version = int(resp.version)
        if moved:
            recs = [self.riders[rid] for rid in moved]
            xs, ys = self.to_frame_many(
                np.array([r.group for r in recs], dtype=np.int64),
                np.array([r.lat for r in recs], dtype=np.float64),
                np.array([r.lng for r in recs], dtype=np.float64),
            )
            for r, x, y in zip(recs, xs.tolist(), ys.tolist(), strict=True):
                r.x, r.y = x, y
            self._xy[[r.row for r in recs]] = np.stack([xs, ys], axis=1)
        self.dirty_riders.clear()
        self.dirty_orders.clear()
        if skipped:
            log.warning("journal: orders not restored", extra={"count": skipped})
        return n

    def update_params(
        self, params: pb.Params, dp: DispatchParams, pp: PromiseParams
    ) -> tuple[pb.UpdateParamsResponse, int]:
        """Put validated parameters in force from the next tick on (journaled)."""
        with self.lock:
            self._room()
            resp = pb.UpdateParamsResponse(params=params, version=self.params_version + 1)
            ticket = self._append(jr.PARAMS, resp.SerializeToString())
            self.params, self.promise = dp, pp
            self.params_version += 1
            return resp, ticket

    # -- reads --------------------------------------------------------------------------------------------------

    def order_proto(self, o: OrderRec) -> pb.Order:
        out = pb.Order()
        out.CopyFrom(o.proto)
        out.state = o.state  # type: ignore[assignment]
        return out

    def get_order(self, order_id: str) -> pb.GetOrderResponse:
        with self.lock:
            o = self.orders.get(order_id)
            if o is None:
                raise RefusalError(NOT_FOUND, "order_id", f"unknown order {order_id!r}")
            resp = pb.GetOrderResponse(order=self.order_proto(o), rider_id=o.rider)
            if o.state in (ASSIGNED, PICKED_UP) and o.rider:
                r = self.riders[o.rider]
                for s, (oid, k) in enumerate(r.stops):
                    if oid == o.id and s < len(r.etas) and math.isfinite(r.etas[s]):
                        ts(r.etas[s], resp.pickup_eta if k == PICKUP else resp.dropoff_eta)
            if o.state == PENDING and o.reason:
                resp.unassigned_reason = o.reason  # type: ignore[assignment]
            if math.isfinite(o.picked_at):
                ts(o.picked_at, resp.picked_up_at)
            if math.isfinite(o.delivered_at):
                ts(o.delivered_at, resp.delivered_at)
            return resp

    def get_rider(self, rider_id: str) -> pb.GetRiderResponse:
        with self.lock:
            r = self.riders.get(rider_id)
            if r is None:
                raise RefusalError(NOT_FOUND, "rider_id", f"unknown rider {rider_id!r}")
            out = pb.Rider(id=r.id, status=pb.RIDER_STATUS_ONLINE if r.online else pb.RIDER_STATUS_OFFLINE)
            out.position.lat, out.position.lng = r.lat, r.lng
            ts(r.at, out.position_at)
            ts(r.shift_start, out.shift.start)
            ts(r.shift_end, out.shift.end)
            out.shift.capacity = r.capacity
            out.shift.speed_factor = r.speed
            self.route_proto(r, out.route)
            return pb.GetRiderResponse(rider=out)

    def get_site(self, site_id: str) -> pb.GetSiteResponse:
        i = self.site_index.get(site_id)
        if i is None:
            raise RefusalError(NOT_FOUND, "site_id", f"unknown site {site_id!r}")
        s = self.sites[i].spec
        site = pb.Site(id=s.id)
        site.position.lat, site.position.lng = s.lat, s.lng
        site.pickup_service.FromNanoseconds(int(s.service_s * 1e9))
        site.zone.radius_m = s.zone_m
        return pb.GetSiteResponse(site=site)

    def stats(self, now: float) -> pb.GetStatsResponse:
        with self.lock:
            out = pb.GetStatsResponse(
                site_ids=self.owned_site_ids, riders_online=self.riders_online, orders_at_risk=self.at_risk,
                ticks=self.ticks, last_sequence=self.seq,
            )  # fmt: skip
            ts(now, out.at)
            for st in STATES:
                out.orders_by_state.add(state=st, count=self.counts[st])
            if math.isfinite(self.last_tick_at):
                ts(self.last_tick_at, out.last_tick_at)
                out.last_tick_duration.FromNanoseconds(int(self.last_tick_s * 1e9))
            return out
