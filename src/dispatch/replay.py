"""Replay an order log into a running dispatch server and measure it: ``dispatch replay``.

What is sent. The log's clock is mapped onto the wall clock: the replay window starts at ``sim_t0`` (the log's first
order, or ``--start HH:MM`` local time of the log's day) and runs ``speed`` simulated seconds per wall second for
``duration_s`` wall seconds. An event of the log at simulated time ``t`` is sent at wall time
``wall_t0 + (t - sim_t0) / speed``.

- Orders are submitted at their (compressed) ``placed_at`` on ``order_streams`` concurrent SubmitOrders streams
  (what falls due together goes to one stream, round robin; with ``batch_orders`` > 1 a stream's message carries
  what queued for it meanwhile, up to that many, else one order a message). Each is sent with ``placed_at`` = its
  wall send time and with the log's *durations* kept: ``ready_at`` and ``promised_by`` are the same number of
  seconds after ``placed_at`` as in the log (the server dispatches on the wall clock, so promises and travel run
  at real speed; only arrivals are compressed). Ids are
  ``<id_prefix><order_id>`` and ``<id_prefix><rider_id>``; sites keep their log ids (as strings), which is what a
  server configured with ``[sites] log_dir`` knows.
- Riders: those on shift at ``sim_t0`` come online before the clock starts (a setup phase, not counted in the
  rates); the others at their compressed shift start; each goes offline at its compressed shift end. An ONLINE event
  declares the shift as [now, now + the shift's remaining real length]. Every online rider sends a location ping every
  ``ping_s`` simulated seconds (``ping_s / speed`` wall seconds), staggered, in batches of up to ``batch_events`` per
  message on ``rider_streams`` concurrent ReportRiderEvents streams (each rider always on the same stream, so its
  events stay in time order), each stream closed and reopened every ``flush_s`` wall seconds to collect the server's
  counts.
- Rider movement follows the **server's ETAs** (no model of its own): the replay watches WatchAssignments, keeps each
  rider's latest route, and reports PICKED_UP when the wall clock reaches the first stop's ETA (and the order's
  ready time), DELIVERED at a drop-off's ETA, one stop after another in route order. Between stops a rider's pings
  interpolate linearly from where it was to the next stop, arriving at its ETA. With ``reject_rate`` p > 0, the
  rider of an order's first assignment rejects it with probability p (seeded). A rider going offline drops the
  pickups it has not made (the server takes those orders back) and still delivers what it carries.

Failures. A SubmitOrders stream that breaks (a server restart) is reopened and the orders sent but not acknowledged
are sent again (SubmitOrders is idempotent by order id); rider streams reopen every ``flush_s`` anyway; the
assignment watch resumes from the last sequence seen. With ``verify``, every acknowledged order is read back with
GetOrder at the end: ``verify_missing`` counts those the server does not know (the journal promises 0, also across a
SIGKILL and restart of the server during the replay).

What is measured (``ReplayResult.to_dict``):

- ``ack_ms_*``: an order handed to its stream -> its ack; ``send_lag_ms_p99``: its scheduled time -> handed over
  (large when the client or the stream's flow control holds orders back); ``due_to_ack_ms_p99``: its scheduled
  time -> its ack, the two together (an order waiting in its stream's queue for a message counts here);
- ``assign_ms_*``: the ack -> the first ASSIGNED event for the order on the watch stream;
- ``orders_per_s``: orders accepted / max(duration, window start -> last ack); ``rider_events_per_s``: events
  accepted on the rider streams opened in the window / max(duration, window start -> the last one's answer); the
  ``*_offered_per_s`` figures are what the log asked for;
- ``errors``: counts by status code (refused orders and events, failed streams), with ``error_samples``;
- ``unassigned_at_end``: accepted orders without an ASSIGNED event when the drain period ends (by the last
  unassigned reason seen, ``not_seen`` when none);
- ``client_cpu_util``: CPU seconds of the client (this process and its order process, ``client_cpu_s_orders`` of
  them) per wall second (the client's own cost; with ``send_lag_ms_p99`` small it was not the bottleneck);
  ``server_tick_ms_*``: durations of the server's ticks sampled with GetStats.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from dispatch.client import DispatchClient, DispatchError, ts_to_proto
from dispatch.replay_orders import OrderPlan, OrderProcess, OrderSideError
from dispatch.sim.log import OrderLog, read_log
from dispatch.v1 import dispatch_pb2 as pb

F64 = npt.NDArray[np.float64]

__all__ = ["ReplayError", "ReplayOptions", "ReplayResult", "parse_hhmm", "run_replay"]

_LOCATION = pb.RIDER_EVENT_KIND_LOCATION
_ONLINE = pb.RIDER_EVENT_KIND_ONLINE
_OFFLINE = pb.RIDER_EVENT_KIND_OFFLINE
_PICKED_UP = pb.RIDER_EVENT_KIND_PICKED_UP
_DELIVERED = pb.RIDER_EVENT_KIND_DELIVERED
_REJECTED = pb.RIDER_EVENT_KIND_REJECTED
_ASSIGNED = pb.ASSIGNMENT_EVENT_KIND_ASSIGNED
_UNASSIGNED = pb.ASSIGNMENT_EVENT_KIND_UNASSIGNED
_PICKUP = pb.STOP_KIND_PICKUP


class ReplayError(ValueError):
    """A replay cannot run: bad options, a log it cannot replay, no server, a server without the log's sites."""


def parse_hhmm(text: str) -> float:
    """``"HH:MM"`` (local time of day) -> seconds after midnight. Raises ReplayError."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ReplayError(f"--start: expected HH:MM, got {text!r}")
    h, m = int(parts[0]), int(parts[1])
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ReplayError(f"--start: {text!r} is not a time of day (00:00 to 23:59)")
    return h * 3600.0 + m * 60.0


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay (see the module docstring). Checked on construction (ReplayError naming the option).

    Attributes:
        speed: simulated seconds per wall second, > 0.
        duration_s: wall seconds of the window, > 0.
        start_s: local seconds after midnight where the window starts (None: the log's first order).
        ping_s: simulated seconds between two location pings of an online rider, > 0.
        reject_rate: probability that a rider rejects an order assigned to it, in [0, 1].
        seed: seeds the rejections.
        order_streams, rider_streams: concurrent streams, >= 1.
        batch_orders: most orders per SubmitOrders message, >= 1. A stream's message carries the orders that
            queued for it while it wrote the last one (never waiting for more), up to this many; 1 sends every
            order in a message of its own (for a server older than batches).
        linger_ms: the order scheduler wakes at most once per this many milliseconds (>= 0), so that what falls
            due meanwhile goes out together: larger batches, each order up to that much later (``send_lag_ms``).
        batch_events: most rider events per message, >= 1.
        flush_s: wall seconds a ReportRiderEvents stream stays open, > 0.
        drain_s: wall seconds to wait after the window for acks and assignments (None: 3 ticks + batching hold
            + 5 s, from the server's params).
        id_prefix: prepended to order and rider ids (None: a tag made from the start time, so that replays against
            one server do not collide).
        keep_online: leave the riders online at the end (default: an OFFLINE for each).
        verify: after the drain, GetOrder every accepted order and count those the server does not know
            (``verify_missing``; 0 is the journal's promise, also across a server restart during the replay).
    """

    speed: float
    duration_s: float
    start_s: float | None = None
    ping_s: float = 10.0
    reject_rate: float = 0.0
    seed: int = 0
    order_streams: int = 4
    rider_streams: int = 2
    batch_orders: int = 64
    linger_ms: float = 2.0
    batch_events: int = 1000
    flush_s: float = 1.0
    drain_s: float | None = None
    id_prefix: str | None = None
    keep_online: bool = False
    verify: bool = False

    def __post_init__(self) -> None:
        def num(name: str, v: Any, lo: float, strict: bool) -> None:
            ok = not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
            if not ok or (v <= lo if strict else v < lo):
                raise ReplayError(f"{name}: must be a finite number {'>' if strict else '>='} {lo:g}, got {v!r}")

        num("speed", self.speed, 0, True)
        num("duration", self.duration_s, 0, True)
        num("ping_s", self.ping_s, 0, True)
        num("flush_s", self.flush_s, 0, True)
        num("linger_ms", self.linger_ms, 0, False)
        num("reject_rate", self.reject_rate, 0, False)
        if self.reject_rate > 1:
            raise ReplayError(f"reject_rate: must be in [0, 1], got {self.reject_rate!r}")
        if self.drain_s is not None:
            num("drain", self.drain_s, 0, False)
        if self.start_s is not None:
            num("start", self.start_s, 0, False)
        for name in ("order_streams", "rider_streams", "batch_orders", "batch_events"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ReplayError(f"{name}: must be an integer >= 1, got {v!r}")


@dataclass
class ReplayResult:
    """The figures of one replay; ``to_dict`` is what ``dispatch replay --json`` prints. ``assign_ms`` counts 0 for
    an order whose assignment was seen before its ack (``assigned_before_ack`` of them: a server slow to ack)."""

    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.figures)


def _pct(a: F64, q: float) -> float | None:
    return None if a.size == 0 else round(float(np.percentile(a, q)), 2)


# --------------------------------------------------------------------------------------------------------------
# The riders
# --------------------------------------------------------------------------------------------------------------


class _Riders:
    """The replay's riders: who is online, where each is, and the route each follows (the server's, by ETA).

    Arrays are indexed by the rider's row among the replayed riders (m of them): ``online_at``, ``offline_at`` wall
    seconds float64[m] (inf: never in the window); ``lat``, ``lng`` float64[m] the last fixed point and ``fix_t``
    float64[m] when the rider was there; ``next_ping`` float64[m] wall seconds."""

    def __init__(
        self,
        log: OrderLog,
        rows: npt.NDArray[np.int64],
        ids: list[str],
        sim_t0: float,
        wall_t0: float,
        opts: ReplayOptions,
    ) -> None:
        r = log.riders
        self.ids = ids
        self.index = {rid: j for j, rid in enumerate(ids)}
        self.stream_of = np.arange(len(ids)) % opts.rider_streams
        self.shift_start = r.shift_start[rows]
        self.shift_end = r.shift_end[rows]
        self.capacity = r.capacity[rows]
        self.speed_factor = r.speed_factor[rows]
        self.lat = r.start_y[rows].astype(np.float64)
        self.lng = r.start_x[rows].astype(np.float64)
        self.fix_t = np.full(len(ids), wall_t0)
        self.sim_t0 = sim_t0
        self.speed = opts.speed
        self.online = np.zeros(len(ids), dtype=bool)
        self.ping_wall = opts.ping_s / opts.speed
        self.next_ping = np.full(len(ids), np.inf)
        self.next_due = np.full(len(ids), np.inf)
        self.ready_of: Callable[[str], float] = lambda oid: -np.inf
        self.routes: dict[int, list[tuple[int, str, float, float, float]]] = {}
        self.picked: set[str] = set()
        self.delivered: set[str] = set()
        self.rejected: set[tuple[int, str]] = set()
        self.pending_rejects: list[tuple[int, str]] = []
        self.lock = threading.Lock()
        self.set_clock(wall_t0)

    def set_clock(self, wall_t0: float) -> None:
        w = wall_t0 + (self.shift_start - self.sim_t0) / self.speed
        self.online_at = np.where(self.shift_start <= self.sim_t0, -np.inf, w)
        self.offline_at = wall_t0 + (self.shift_end - self.sim_t0) / self.speed
        self.on_order = np.argsort(self.online_at, kind="stable")
        self.off_order = np.argsort(self.offline_at, kind="stable")
        self.on_ptr = 0
        self.off_ptr = 0

    def position(self, j: int, now: float) -> tuple[float, float]:
        route = self.routes.get(j)
        if not route:
            return float(self.lat[j]), float(self.lng[j])
        _, _, lat, lng, eta = route[0]
        t0 = float(self.fix_t[j])
        f = 1.0 if eta <= t0 else min(1.0, max(0.0, (now - t0) / (eta - t0)))
        return float(self.lat[j] + (lat - self.lat[j]) * f), float(self.lng[j] + (lng - self.lng[j]) * f)

    def fix(self, j: int, now: float) -> None:
        """Make the current interpolated position the new fixed point (before the route changes)."""
        self.lat[j], self.lng[j] = self.position(j, now)
        self.fix_t[j] = now

    def update_due(self, j: int) -> None:
        """When rider j's first stop is due (wall seconds; inf without a route): its ETA, and for a pickup not
        before the order is ready."""
        route = self.routes.get(j)
        if not route:
            self.next_due[j] = np.inf
            return
        kind, oid, _, _, eta = route[0]
        self.next_due[j] = max(eta, self.ready_of(oid)) if kind == _PICKUP else eta

    def set_route(self, j: int, stops: list[tuple[int, str, float, float, float]], now: float) -> None:
        self.fix(j, now)
        self.routes[j] = stops
        self.update_due(j)

    def online_event(self, j: int, now: float) -> pb.RiderEvent:
        remaining = float(self.shift_end[j] - max(self.shift_start[j], self.sim_t0))
        shift = pb.RiderShift(
            start=ts_to_proto(now),
            end=ts_to_proto(now + remaining),
            capacity=int(self.capacity[j]),
            speed_factor=float(self.speed_factor[j]),
        )
        self.online[j] = True
        self.fix_t[j] = now
        return pb.RiderEvent(
            rider_id=self.ids[j],
            kind=_ONLINE,
            at=ts_to_proto(now),
            position=pb.LatLng(lat=float(self.lat[j]), lng=float(self.lng[j])),
            shift=shift,
        )


class _Batcher:
    """Rider events of one stream, built in place in ReportRiderEventsRequest messages of at most ``size`` events
    (no copy of each event into its batch)."""

    def __init__(self, q: queue.Queue[pb.ReportRiderEventsRequest | None], size: int) -> None:
        self.q = q
        self.size = size
        self.full: list[pb.ReportRiderEventsRequest] = []
        self.req = pb.ReportRiderEventsRequest()

    def add(self, rider_id: str, kind: int, sec: int, nanos: int, lat: float | None, lng: float | None,
            order_id: str) -> None:  # fmt: skip
        e = self.req.events.add(rider_id=rider_id, kind=kind, order_id=order_id)
        e.at.seconds = sec
        e.at.nanos = nanos
        if lat is not None and lng is not None:
            e.position.lat = lat
            e.position.lng = lng
        if len(self.req.events) >= self.size:
            self.full.append(self.req)
            self.req = pb.ReportRiderEventsRequest()

    def append(self, e: pb.RiderEvent) -> None:
        self.req.events.append(e)
        if len(self.req.events) >= self.size:
            self.full.append(self.req)
            self.req = pb.ReportRiderEventsRequest()

    def flush(self) -> int:
        """Queue every batch (the last, partial one too); returns the number of events queued."""
        if len(self.req.events):
            self.full.append(self.req)
            self.req = pb.ReportRiderEventsRequest()
        n = 0
        for r in self.full:
            n += len(r.events)
            self.q.put(r)
        self.full = []
        return n


# --------------------------------------------------------------------------------------------------------------
# The replay
# --------------------------------------------------------------------------------------------------------------


class _Replay:
    def __init__(
        self,
        log: OrderLog,
        connect: Callable[[], DispatchClient],
        opts: ReplayOptions,
        progress: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.log = log
        self.connect = connect
        self.opts = opts
        self.progress = progress
        self.errors: Counter[str] = Counter()
        self.error_samples: dict[str, list[str]] = {}
        self.err_lock = threading.Lock()
        self.stop_orders = threading.Event()
        self.stop_riders = threading.Event()
        self.stop_stats = threading.Event()
        self.rng = np.random.default_rng(opts.seed)

    def error(self, code: str, n: int = 1, what: str = "") -> None:
        with self.err_lock:
            self.errors[code] += n
            samples = self.error_samples.setdefault(code, [])
            if what and len(samples) < 3:
                samples.append(what)

    def merge_errors(self, counts: dict[str, int], samples: dict[str, list[str]]) -> None:
        with self.err_lock:
            for code, k in counts.items():
                self.errors[code] += k
                kept = self.error_samples.setdefault(code, [])
                kept.extend(samples.get(code, [])[: max(0, 3 - len(kept))])

    # -- setup -------------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        log, opts = self.log, self.opts
        if log.meta.coordinates != "wgs84":
            raise ReplayError(f"the log's coordinates are {log.meta.coordinates!r}; the service takes wgs84 only")
        placed = log.orders.placed_at
        if placed.size == 0:
            raise ReplayError("the log has no orders")
        if opts.start_s is None:
            self.sim_t0 = float(placed[0])
        else:
            self.sim_t0 = log.meta.day_start + opts.start_s
        self.sim_t1 = self.sim_t0 + opts.duration_s * opts.speed
        self.i0 = int(np.searchsorted(placed, self.sim_t0, "left"))
        self.i1 = int(np.searchsorted(placed, self.sim_t1, "left"))
        if self.i1 <= self.i0:
            first, last = (self._local(float(placed[0])), self._local(float(placed[-1])))
            raise ReplayError(
                f"no orders placed in the window {self._local(self.sim_t0)}-{self._local(self.sim_t1)} "
                f"(the log's orders run from {first} to {last}); change --start, --speed or "
                "--duration"
            )
        r = log.riders
        rows = np.flatnonzero((r.shift_start < self.sim_t1) & (r.shift_end > self.sim_t0)).astype(np.int64)
        self.prefix = opts.id_prefix if opts.id_prefix is not None else f"rp{int(time.time()) % 1_000_000:06d}-"
        self.rider_ids = [f"{self.prefix}{int(x)}" for x in r.rider_id[rows]]
        self.rider_rows = rows
        n = self.i1 - self.i0
        o = log.orders
        self.order_ids = [f"{self.prefix}{int(x)}" for x in o.order_id[self.i0 : self.i1]]
        self.row_of = {oid: i for i, oid in enumerate(self.order_ids)}
        sl = slice(self.i0, self.i1)
        placed = o.placed_at[sl].astype(np.float64)
        self.plan = OrderPlan(
            ids=self.order_ids,
            site_ids=[str(int(x)) for x in o.site_id[sl]],
            lat=o.drop_y[sl].astype(np.float64),
            lng=o.drop_x[sl].astype(np.float64),
            placed=placed,
            ready_after=np.maximum(0.0, o.ready_at[sl] - placed),
            promise_after=o.promised_by[sl] - placed,
            size=o.size[sl].astype(np.int64),
            service_drop=o.service_drop_s[sl].astype(np.float64),
            sim_t0=self.sim_t0,
            speed=opts.speed,
        )
        # the order side's arrays until the order process starts (then views of the arrays it shares)
        self.t_send = np.full(n, np.nan)
        self.t_ack = np.full(n, np.nan)
        self.accepted = np.zeros(n, dtype=bool)
        self.t_assign = np.full(n, np.nan)
        self.last_reason: dict[int, int] = {}
        self.ready_wall = np.zeros(n)

    def _local(self, t: float) -> str:
        s = (t - self.log.meta.day_start) % 86400.0
        return f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}"

    def check_server(self, c: DispatchClient) -> None:
        try:
            c.wait_ready(10.0)
            stats = c.get_stats()
        except DispatchError as exc:
            what = "cannot reach the server" if exc.code == grpc.StatusCode.UNAVAILABLE else "the server refused"
            raise ReplayError(f"{what}: {exc}") from None
        have = set(stats.site_ids)
        ours = {str(int(s)) for s in np.unique(self.log.orders.site_id[self.i0 : self.i1])}
        missing = ours - have
        if missing == ours:
            raise ReplayError(
                f"the server dispatches for none of the log's sites (it has {len(have)} sites, e.g. "
                f"{sorted(have)[:5]}; the log's orders use e.g. {sorted(ours)[:5]}): start it with "
                "[sites] log_dir = this log"
            )
        self.missing_sites = sorted(missing)
        self.tick_s, self.hold_s = 15.0, 30.0
        try:
            params, _ = c.get_params()
            self.tick_s = float(params["dispatch"]["tick"]) or self.tick_s
            self.hold_s = float(params["dispatch"]["batching_hold"])
        except (DispatchError, KeyError, TypeError, ValueError):
            pass

    # -- rider streams -----------------------------------------------------------------------------------------

    def rider_stream(
        self, q: queue.Queue[pb.ReportRiderEventsRequest | None], stats: list[tuple[float, float, int, int]]
    ) -> None:
        """One ReportRiderEvents stream after another, each open for flush_s, until the queue's end marker."""
        with self.connect() as c:
            state = {"finished": False, "sent": 0}
            while not state["finished"]:
                state["sent"] = 0
                t_open = time.time()
                try:
                    res = c.report_rider_events(self._batches(q, t_open + self.opts.flush_s, state))
                    for _, rid, rej in res.rejections:
                        self.error(rej.code, 1, f"rider {rid}: {rej.field}: {rej.message}")
                    stats.append((t_open, time.time(), state["sent"], res.accepted))
                except DispatchError as exc:
                    self.error(exc.code.name, max(state["sent"], 1), str(exc))
                    stats.append((t_open, time.time(), state["sent"], 0))
                    time.sleep(0.2)  # the server is away: do not spin

    @staticmethod
    def _batches(
        q: queue.Queue[pb.ReportRiderEventsRequest | None], end: float, state: dict[str, int]
    ) -> Iterator[pb.ReportRiderEventsRequest]:
        while True:
            left = end - time.time()
            if left <= 0:
                return
            try:
                item = q.get(timeout=left)
            except queue.Empty:
                return
            if item is None:
                state["finished"] = True
                return
            state["sent"] += len(item.events)
            yield item

    # -- the watch ---------------------------------------------------------------------------------------------

    def watch_loop(self, watch: Any, riders: _Riders) -> None:
        try:
            for batch in watch.raw_batches():
                now = time.time()
                routes: dict[int, Any] = {}
                rejects: list[tuple[int, str]] = []
                for e in batch:
                    kind = e.kind
                    if kind == _ASSIGNED:
                        row = self.row_of.get(e.order_id)
                        if row is not None:
                            self.last_reason.pop(row, None)
                            if math.isnan(self.t_assign[row]):
                                self.t_assign[row] = now
                                if self.opts.reject_rate > 0 and self.rng.random() < self.opts.reject_rate:
                                    j = riders.index.get(e.rider_id)
                                    if j is not None:
                                        rejects.append((j, e.order_id))
                    elif kind == _UNASSIGNED:
                        row = self.row_of.get(e.order_id)
                        if row is not None:
                            self.last_reason[row] = e.reason
                    if e.rider_id:
                        j = riders.index.get(e.rider_id)
                        if j is not None:
                            routes[j] = e.route
                if routes or rejects:
                    parsed = {
                        j: [
                            (s.kind, s.order_id, s.position.lat, s.position.lng, s.eta.seconds + s.eta.nanos * 1e-9)
                            for s in route.stops
                        ]
                        for j, route in routes.items()
                    }
                    with riders.lock:
                        for j, stops in parsed.items():
                            keep = [
                                s
                                for s in stops
                                if s[1] not in riders.delivered
                                and not (s[0] == _PICKUP and s[1] in riders.picked)
                                and (j, s[1]) not in riders.rejected
                            ]
                            riders.set_route(j, keep, now)
                        for j, oid in rejects:
                            if (j, oid) not in riders.rejected:
                                riders.rejected.add((j, oid))
                                riders.pending_rejects.append((j, oid))
                                route = riders.routes.get(j)
                                if route:
                                    riders.set_route(j, [s for s in route if s[1] != oid], now)
        except DispatchError as exc:
            self.error(exc.code.name, 1, str(exc))

    # -- checks ------------------------------------------------------------------------------------------------

    def verify(self, workers: int = 8) -> tuple[int, int]:
        """GetOrder for every accepted order: (orders checked, orders the server does not know). Other errors count
        in ``errors``."""
        rows = np.flatnonzero(self.accepted).tolist()
        missing = [0] * workers

        def check(w: int) -> None:
            with self.connect() as c:
                for row in rows[w::workers]:
                    try:
                        c.get_order(self.order_ids[row])
                    except DispatchError as exc:
                        if exc.code == grpc.StatusCode.NOT_FOUND:
                            missing[w] += 1
                        else:
                            self.error(exc.code.name, 1, str(exc))

        threads = [threading.Thread(target=check, args=(w,), daemon=True) for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return len(rows), sum(missing)

    # -- the server's ticks --------------------------------------------------------------------------------------

    def stats_loop(self, ticks: dict[float, float]) -> None:
        """GetStats once a second: the duration of each tick seen (by its start time) goes into ``ticks``."""
        with self.connect() as c:
            while not self.stop_stats.wait(1.0):
                try:
                    st = c.get_stats()
                except DispatchError:
                    continue
                if st.last_tick_at is not None:
                    ticks[st.last_tick_at] = st.last_tick_duration_s

    # -- the riders' clock -------------------------------------------------------------------------------------

    def rider_loop(
        self, riders: _Riders, qs: list[queue.Queue[pb.ReportRiderEventsRequest | None]], counts: dict[str, int]
    ) -> None:
        out = [_Batcher(q, self.opts.batch_events) for q in qs]
        step = min(0.05, riders.ping_wall / 4)
        rng = np.random.default_rng(self.opts.seed + 1)
        while not self.stop_riders.is_set():
            now = time.time()
            ts = ts_to_proto(now)
            sec, nan = ts.seconds, ts.nanos
            with riders.lock:
                # online / offline at the compressed shift times
                while riders.on_ptr < len(riders.on_order) and riders.online_at[riders.on_order[riders.on_ptr]] <= now:
                    j = int(riders.on_order[riders.on_ptr])
                    riders.on_ptr += 1
                    if not riders.online[j] and riders.offline_at[j] > now:
                        out[riders.stream_of[j]].append(riders.online_event(j, now))
                        riders.next_ping[j] = now + riders.ping_wall * float(rng.random())
                        counts["online"] += 1
                # stops due, in route order
                for j in np.flatnonzero(riders.next_due <= now).tolist():
                    route = riders.routes[j]
                    while route and riders.next_due[j] <= now:
                        kind, oid, lat, lng, _ = route.pop(0)
                        riders.lat[j], riders.lng[j], riders.fix_t[j] = lat, lng, now
                        if kind == _PICKUP:
                            riders.picked.add(oid)
                            ev_kind = _PICKED_UP
                            counts["picked_up"] += 1
                        else:
                            riders.delivered.add(oid)
                            ev_kind = _DELIVERED
                            counts["delivered"] += 1
                        out[riders.stream_of[j]].add(riders.ids[j], ev_kind, sec, nan, lat, lng, oid)
                        riders.update_due(j)
                for j, oid in riders.pending_rejects:
                    out[riders.stream_of[j]].add(riders.ids[j], _REJECTED, sec, nan, None, None, oid)
                    counts["rejected"] += 1
                riders.pending_rejects.clear()
                # location pings
                due_idx = np.flatnonzero(riders.next_ping <= now)
                for j in due_idx.tolist():
                    lat, lng = riders.position(j, now)
                    out[riders.stream_of[j]].add(riders.ids[j], _LOCATION, sec, nan, lat, lng, "")
                nxt = riders.next_ping[due_idx] + riders.ping_wall
                riders.next_ping[due_idx] = np.where(nxt < now, now + riders.ping_wall, nxt)
                counts["location"] += int(due_idx.size)
                while (
                    riders.off_ptr < len(riders.off_order)
                    and riders.offline_at[riders.off_order[riders.off_ptr]] <= now
                ):
                    j = int(riders.off_order[riders.off_ptr])
                    riders.off_ptr += 1
                    if riders.online[j]:
                        out[riders.stream_of[j]].append(self._offline(riders, j, now, ts))
                        counts["offline"] += 1
            for b in out:  # outside the lock: a full queue must not stall the watch
                counts["sent"] += b.flush()
            self.stop_riders.wait(max(0.0, step - (time.time() - now)))

    def _offline(self, riders: _Riders, j: int, now: float, ts: Any) -> pb.RiderEvent:
        lat, lng = riders.position(j, now)
        riders.online[j] = False
        riders.next_ping[j] = np.inf
        # The server takes back the orders not picked up; the rider still delivers what it carries.
        route = riders.routes.get(j)
        if route:
            riders.set_route(j, [s for s in route if s[1] in riders.picked], now)
        return pb.RiderEvent(rider_id=riders.ids[j], kind=_OFFLINE, at=ts, position=pb.LatLng(lat=lat, lng=lng))

    # -- the run -----------------------------------------------------------------------------------------------

    def run(self) -> ReplayResult:
        opts = self.opts
        self.prepare()
        with self.connect() as admin, contextlib.ExitStack() as cleanup:
            self.check_server(admin)
            wall_setup = time.time()
            riders = _Riders(self.log, self.rider_rows, self.rider_ids, self.sim_t0, wall_setup, opts)
            row_of, ready_wall = self.row_of, self.ready_wall

            def ready_of(oid: str) -> float:
                row = row_of.get(oid)
                return -math.inf if row is None else float(ready_wall[row])

            riders.ready_of = ready_of
            # Setup: the riders on shift at sim_t0 come online before the clock starts.
            counts: dict[str, int] = Counter()
            first = np.flatnonzero(riders.online_at == -np.inf)
            setup_events = [riders.online_event(int(j), wall_setup) for j in first]
            setup_accepted = 0
            for a in range(0, len(setup_events), opts.batch_events * 8):
                chunk = setup_events[a : a + opts.batch_events * 8]
                bs = [
                    pb.ReportRiderEventsRequest(events=chunk[b : b + opts.batch_events])
                    for b in range(0, len(chunk), opts.batch_events)
                ]
                try:
                    res = admin.report_rider_events(bs)
                except DispatchError as exc:
                    raise ReplayError(f"the server refused the riders' ONLINE events: {exc}") from None
                setup_accepted += res.accepted
                for _, rid, rej in res.rejections:
                    self.error(rej.code, 1, f"rider {rid}: {rej.field}: {rej.message}")
            try:
                last_seq = admin.get_stats().last_sequence
            except DispatchError as exc:
                raise ReplayError(f"GetStats failed: {exc}") from None
            watch = admin.watch_assignments(from_sequence=last_seq + 1, max_retries=40)

            n = self.i1 - self.i0
            orders = OrderProcess(self.plan, self.connect, opts.order_streams, opts.batch_orders, opts.linger_ms / 1e3)
            cleanup.callback(orders.close)  # (after a failure below; it is closed by then otherwise)
            try:
                orders.start()
            except OrderSideError as exc:
                watch.cancel()
                raise ReplayError(str(exc)) from None
            self.t_send, self.t_ack, self.accepted = orders.t_send, orders.t_ack, orders.accepted
            drain = opts.drain_s if opts.drain_s is not None else 3 * self.tick_s + self.hold_s + 5.0
            cpu0 = time.process_time()
            wall_t0 = time.time() + 0.2
            riders.set_clock(wall_t0)
            riders.next_ping[first] = wall_t0 + riders.ping_wall * self.rng.random(first.size)
            self.ready_wall[:] = self.plan.schedule(wall_t0) + self.plan.ready_after
            orders.go(wall_t0, opts.duration_s, drain)

            rqs: list[queue.Queue[pb.ReportRiderEventsRequest | None]] = [
                queue.Queue(maxsize=1000) for _ in range(opts.rider_streams)
            ]
            rstats: list[tuple[float, float, int, int]] = []
            rthreads = [
                threading.Thread(target=self.rider_stream, args=(rqs[k], rstats), daemon=True)
                for k in range(opts.rider_streams)
            ]
            wthread = threading.Thread(target=self.watch_loop, args=(watch, riders), daemon=True)
            ticks: dict[float, float] = {}
            sthread = threading.Thread(target=self.stats_loop, args=(ticks,), daemon=True)
            sthread.start()
            ethread = threading.Thread(target=self.rider_loop, args=(riders, rqs, counts), daemon=True)
            for t in (*rthreads, wthread):
                t.start()
            ethread.start()

            # The order process sends each order at its compressed placed_at; here, progress until the window ends.
            last_progress = time.time()
            window_end = wall_t0 + opts.duration_s
            while time.time() < window_end:
                now = time.time()
                if self.progress is not None and now - last_progress >= 2.0:
                    last_progress = now
                    self.progress(self._snapshot(now - wall_t0, orders.sent, counts))
                time.sleep(min(0.05, max(0.0, window_end - now)))
            events_in_window = counts["sent"]
            # Drain: acks of every order sent (the order process ends by then), then the first assignment of
            # every accepted order.
            deadline = time.time() + drain
            try:
                sent = orders.result(drain + 30.0)
            except OrderSideError as exc:
                watch.cancel()
                self.stop_riders.set()
                self.stop_stats.set()
                raise ReplayError(str(exc)) from None
            self.merge_errors(sent.errors, sent.samples)
            while time.time() < deadline:
                waiting = self.accepted & np.isnan(self.t_assign)
                if not waiting.any():
                    break
                if self.progress is not None and time.time() - last_progress >= 2.0:
                    last_progress = time.time()
                    self.progress(self._snapshot(time.time() - wall_t0, n, counts))
                time.sleep(0.05)
            wall_end = time.time()
            cpu = time.process_time() - cpu0 + sent.cpu_s
            verified = self.verify() if opts.verify else None
            self.stop_stats.set()
            sthread.join(5.0)
            watch.cancel()
            wthread.join(5.0)
            self.stop_riders.set()
            ethread.join(5.0)
            offline = 0
            if not opts.keep_online:
                now = time.time()
                ts = ts_to_proto(now)
                with riders.lock:
                    for j in np.flatnonzero(riders.online).tolist():
                        rqs[riders.stream_of[j]].put(
                            pb.ReportRiderEventsRequest(events=[self._offline(riders, j, now, ts)])
                        )
                        offline += 1
            for q2 in rqs:
                q2.put(None)
            for t in rthreads:
                t.join(30.0)
        result = self._result(
            wall_t0, wall_end, rstats, counts, events_in_window, setup_accepted, len(first), offline, cpu, watch
        )
        result.figures["client_cpu_s_orders"] = round(sent.cpu_s, 2)
        result.figures["order_messages"] = sent.messages
        tick_s = np.array([d for t, d in ticks.items() if t >= wall_t0], dtype=np.float64)
        if verified is not None:
            result.figures["verify_checked"], result.figures["verify_missing"] = verified
        result.figures["server_ticks_seen"] = int(tick_s.size)
        result.figures["server_tick_ms_p50"] = _pct(tick_s * 1e3, 50)
        result.figures["server_tick_ms_max"] = _pct(tick_s * 1e3, 100)
        result.figures["server_tick_s_configured"] = self.tick_s
        return result

    def _snapshot(self, t: float, sent: int, counts: dict[str, int]) -> dict[str, Any]:
        return {
            "t_s": round(t, 1),
            "orders_sent": sent,
            "orders_acked": int(np.count_nonzero(~np.isnan(self.t_ack))),
            "orders_assigned": int(np.count_nonzero(~np.isnan(self.t_assign))),
            "rider_events_sent": int(counts["sent"]),
            "errors": sum(self.errors.values()),
        }

    def _result(
        self,
        wall_t0: float,
        wall_end: float,
        rstats: list[tuple[float, float, int, int]],
        counts: dict[str, int],
        events_in_window: int,
        setup_accepted: int,
        setup_riders: int,
        offline: int,
        cpu: float,
        watch: Any,
    ) -> ReplayResult:
        opts = self.opts
        n = self.i1 - self.i0
        acked = ~np.isnan(self.t_ack)
        acc = self.accepted
        ack_ms = (self.t_ack[acked] - self.t_send[acked]) * 1e3
        both = acc & ~np.isnan(self.t_assign)
        assign_ms = np.maximum(0.0, self.t_assign[both] - self.t_ack[both]) * 1e3
        last_ack = float(np.nanmax(self.t_ack)) if acked.any() else wall_end
        order_span = max(opts.duration_s, last_ack - wall_t0)
        win = [s for s in rstats if wall_t0 <= s[0] < wall_t0 + opts.duration_s]
        ev_acc = sum(s[3] for s in win)
        ev_span = max(opts.duration_s, max((s[1] for s in win), default=wall_t0) - wall_t0)
        lag_ms = (
            self.t_send[acked]
            - (wall_t0 + (self.log.orders.placed_at[self.i0 : self.i1][acked] - self.sim_t0) / opts.speed)
        ) * 1e3
        unassigned = acc & np.isnan(self.t_assign)
        reasons: Counter[str] = Counter()
        for row in np.flatnonzero(unassigned).tolist():
            code = self.last_reason.get(row, 0)
            reasons[_reason_name(code) if code else "not_seen"] += 1
        # The ack latency by the wall second the order was sent in (seconds from the window's start): where the slow
        # acks cluster in time (to set beside the server's tick log).
        sec = np.floor(self.t_send[acked] - wall_t0).astype(np.int64)
        by_s = [_pct(ack_ms[sec == k], 99) for k in range(int(sec.max(initial=-1)) + 1)]
        f: dict[str, Any] = {
            "ack_ms_p50": _pct(ack_ms, 50),
            "ack_ms_p99": _pct(ack_ms, 99),
            "ack_ms_max": _pct(ack_ms, 100),
            "ack_ms_p99_by_s": by_s,
            "window_start_epoch": round(wall_t0, 3),
            "assign_ms_p50": _pct(assign_ms, 50),
            "assign_ms_p99": _pct(assign_ms, 99),
            "assign_ms_max": _pct(assign_ms, 100),
            "orders_per_s": round(float(acc.sum()) / order_span, 1),
            "rider_events_per_s": round(ev_acc / ev_span, 1),
            "errors": dict(sorted(self.errors.items())),
            "error_samples": {k: v for k, v in sorted(self.error_samples.items())},
            "orders_sent": int(np.count_nonzero(~np.isnan(self.t_send))),
            "orders_acked": int(acked.sum()),
            "orders_accepted": int(acc.sum()),
            "orders_assigned": int(both.sum()),
            "assigned_before_ack": int(np.count_nonzero(self.t_assign[both] < self.t_ack[both])),
            "unassigned_at_end": int(unassigned.sum()),
            "unassigned_reasons": dict(sorted(reasons.items())),
            "orders_in_window": n,
            "orders_offered_per_s": round(n / opts.duration_s, 1),
            "send_lag_ms_p99": _pct(lag_ms, 99),
            "due_to_ack_ms_p99": _pct(lag_ms + ack_ms, 99),
            "rider_events_sent": int(counts["sent"]),
            "rider_events_offered_per_s": round(events_in_window / opts.duration_s, 1),
            "rider_events_accepted_in_window": int(ev_acc),
            "riders": len(self.rider_ids),
            "riders_online_at_start": setup_riders,
            "riders_online_setup_accepted": setup_accepted,
            "rider_events_by_kind": {
                k: int(counts[k]) for k in ("online", "location", "picked_up", "delivered", "rejected", "offline")
            },
            "riders_sent_offline_at_end": offline,
            "watch_reconnects": watch.reconnects,
            "speed": opts.speed,
            "duration_s": opts.duration_s,
            "sim_start": self._local(self.sim_t0),
            "sim_end": self._local(self.sim_t1),
            "order_span_s": round(order_span, 2),
            "drain_s": round(wall_end - (wall_t0 + opts.duration_s), 2),
            "client_cpu_s": round(cpu, 2),
            "client_cpu_util": round(cpu / max(1e-9, wall_end - wall_t0), 3),
            "order_streams": opts.order_streams,
            "batch_orders": opts.batch_orders,
            "linger_ms": opts.linger_ms,
            "rider_streams": opts.rider_streams,
            "id_prefix": self.prefix,
            "missing_sites": self.missing_sites,
        }
        return ReplayResult(f)


def _reason_name(code: int) -> str:
    try:
        return str(pb.UnassignedReason.Name(code)).removeprefix("UNASSIGNED_REASON_").lower()
    except ValueError:
        return str(code)


def run_replay(
    log_dir: str | Path,
    connect: Callable[[], DispatchClient],
    opts: ReplayOptions,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> ReplayResult:
    """Replay the log in ``log_dir`` into the server that ``connect()`` reaches (called once per stream, so that
    each stream may have its own connection) and measure it. The order streams run in a child process
    (``dispatch.replay_orders``), so ``connect`` must be picklable: e.g. ``functools.partial(DispatchClient, ...)``.

    Raises:
        ReplayError: bad options, a log the service cannot take, no reachable server, a server without the log's
            sites.
        dispatch.sim.log.LogError: a malformed log (naming the file and column).
    """
    log = read_log(log_dir)
    return _Replay(log, connect, opts, progress).run()
