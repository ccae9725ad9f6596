"""A Python client of the dispatch service (``dispatch.v1.DispatchService``).

:class:`DispatchClient` wraps the generated stubs with typed methods that take and return plain Python values:
instants are UTC epoch seconds (float), spans are seconds (float), positions are WGS84 degrees, enums are lower-case
names without their prefix (``"pending"``, ``"picked_up"``, ``"single_site"``). Every failed call raises
:class:`DispatchError`, which carries the gRPC status code and the server's message; nothing else escapes from a
call (a refused item of a stream is not an error: it comes back as a :class:`Rejection` and the stream goes on).

Example::

    with DispatchClient("127.0.0.1:50051", insecure=True, token="t0ken") as c:
        ack = c.submit_order(Order("o1", "1", 31.23, 121.47, placed_at=now, promised_by=now + 1800))
        for ev in c.watch_assignments(from_sequence=1):
            print(ev.sequence, ev.kind, ev.order_id, ev.rider_id)

Transport: ``insecure=True`` opens a plaintext channel (local testing only); otherwise TLS, with the system's root
certificates unless ``root_certificates`` (PEM bytes or a file path) is given, and mutual TLS when
``certificate_chain`` and ``private_key`` are given. A bearer ``token`` is sent as ``authorization: Bearer TOKEN``
metadata on every call (also on a plaintext channel, which is what a local server in insecure mode expects).

Streams:

- :meth:`DispatchClient.submit_orders` sends orders on one bidirectional stream and yields one :class:`OrderAck`
  per order, in request order, as soon as each is journaled;
- :meth:`DispatchClient.report_rider_events` sends batches of :class:`RiderEvent` and returns the counts when the
  batches run out;
- :meth:`DispatchClient.watch_assignments` yields :class:`AssignmentEvent` in sequence order and, when the stream
  drops (server restart, network), reconnects from the last sequence seen + 1, so that no event is missed or
  repeated.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2  # type: ignore[import-untyped]
from google.protobuf.descriptor import Descriptor, FieldDescriptor  # type: ignore[import-untyped]
from google.protobuf.message import Message  # type: ignore[import-untyped]

from dispatch.v1 import dispatch_pb2 as pb
from dispatch.v1 import dispatch_pb2_grpc as pb_grpc

__all__ = [
    "AssignmentEvent",
    "AssignmentWatch",
    "DispatchClient",
    "DispatchError",
    "Order",
    "OrderAck",
    "OrderStatus",
    "Quote",
    "QuoteOption",
    "Rejection",
    "Rider",
    "RiderEvent",
    "RiderEventsResult",
    "Shift",
    "Site",
    "Stats",
    "Stop",
    "params_from_proto",
    "params_to_proto",
]

T = TypeVar("T")

# Codes on which WatchAssignments reconnects (the stream broke; the server or the network will be back).
RESUMABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.ABORTED,
     grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)  # fmt: skip


class DispatchError(Exception):
    """A call failed. ``code`` is the gRPC status code (``grpc.StatusCode``), ``message`` the server's details
    (for INVALID_ARGUMENT it names the offending field), ``method`` the RPC (e.g. ``"SubmitOrder"``).

    The codes the service uses (see the proto): INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
    RESOURCE_EXHAUSTED (overload: retry later), UNAUTHENTICATED, PERMISSION_DENIED, OUT_OF_RANGE; UNAVAILABLE and
    DEADLINE_EXCEEDED come from the transport (server down, unreachable, too slow)."""

    def __init__(self, code: grpc.StatusCode, message: str, method: str = "") -> None:
        self.code = code
        self.message = message
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code.name}: {message}")

    @classmethod
    def from_rpc_error(cls, exc: grpc.RpcError, method: str) -> DispatchError:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return cls(code if code is not None else grpc.StatusCode.UNKNOWN, details or "", method)


# --------------------------------------------------------------------------------------------------------------
# Plain values and their conversion
# --------------------------------------------------------------------------------------------------------------


def ts_to_proto(t: float) -> timestamp_pb2.Timestamp:
    """Epoch seconds -> Timestamp (to the nanosecond)."""
    if not math.isfinite(t):
        raise ValueError(f"a time must be a finite number of epoch seconds, got {t!r}")
    s = math.floor(t)
    return timestamp_pb2.Timestamp(seconds=int(s), nanos=min(round((t - s) * 1e9), 999_999_999))


def ts_from_proto(ts: timestamp_pb2.Timestamp) -> float:
    """Timestamp -> epoch seconds."""
    return ts.seconds + ts.nanos * 1e-9


def dur_to_proto(s: float) -> duration_pb2.Duration:
    """Seconds -> Duration."""
    if not math.isfinite(s):
        raise ValueError(f"a duration must be a finite number of seconds, got {s!r}")
    whole = math.trunc(s)
    return duration_pb2.Duration(seconds=int(whole), nanos=round((s - whole) * 1e9))


def dur_from_proto(d: duration_pb2.Duration) -> float:
    """Duration -> seconds."""
    return d.seconds + d.nanos * 1e-9


def _enum_name(enum: Any, prefix: str, value: int) -> str:
    """``ORDER_STATE_PENDING`` -> ``"pending"``; an unknown number -> its digits."""
    try:
        name: str = enum.Name(value)
    except ValueError:
        return str(value)
    return name[len(prefix) :].lower() if name.startswith(prefix) else name.lower()


def _enum_full_name(enum: Any, prefix: str, name: str, what: str) -> str:
    """``"picked_up"`` -> ``"RIDER_EVENT_KIND_PICKED_UP"`` after checking that the value exists."""
    full = prefix + name.upper()
    if full in enum.keys():  # noqa: SIM118 (an enum wrapper, not a dict)
        return full
    names = [n[len(prefix) :].lower() for n in enum.keys() if not n.endswith("_UNSPECIFIED")]  # noqa: SIM118
    raise ValueError(f"{what}: unknown value {name!r} (expected one of {', '.join(names)})")


@dataclass(frozen=True)
class Order:
    """A delivery order. ``lat``/``lng``: the drop-off; times are epoch seconds (``ready_at`` None: ready when
    placed); ``state`` is set by the server on every order it returns (``"pending"``, ``"assigned"``,
    ``"picked_up"``, ``"delivered"``, ``"cancelled"``) and ignored on submit."""

    id: str
    site_id: str
    lat: float
    lng: float
    placed_at: float
    promised_by: float
    ready_at: float | None = None
    size: int = 1
    dropoff_service_s: float = 0.0
    pinned_rider_id: str = ""
    state: str = ""

    def to_proto(self) -> pb.Order:
        o = pb.Order(
            id=self.id,
            site_id=self.site_id,
            dropoff=pb.LatLng(lat=self.lat, lng=self.lng),
            placed_at=ts_to_proto(self.placed_at),
            promised_by=ts_to_proto(self.promised_by),
            size=self.size,
            dropoff_service=dur_to_proto(self.dropoff_service_s),
            pinned_rider_id=self.pinned_rider_id,
        )
        if self.ready_at is not None:
            o.ready_at.CopyFrom(ts_to_proto(self.ready_at))
        return o

    @classmethod
    def from_proto(cls, o: pb.Order) -> Order:
        return cls(
            id=o.id,
            site_id=o.site_id,
            lat=o.dropoff.lat,
            lng=o.dropoff.lng,
            placed_at=ts_from_proto(o.placed_at),
            promised_by=ts_from_proto(o.promised_by),
            ready_at=ts_from_proto(o.ready_at) if o.HasField("ready_at") else None,
            size=o.size,
            dropoff_service_s=dur_from_proto(o.dropoff_service),
            pinned_rider_id=o.pinned_rider_id,
            state=_enum_name(pb.OrderState, "ORDER_STATE_", o.state),
        )


_REJECTION_NAMES = {v.number: v.name.removeprefix("REJECTION_CODE_") for v in pb.RejectionCode.DESCRIPTOR.values}


def _order_proto(o: Order | pb.Order) -> pb.Order:
    return o if isinstance(o, pb.Order) else o.to_proto()


@dataclass(frozen=True)
class Rejection:
    """Why one stream item was refused: ``code`` is the status code name (``"INVALID_ARGUMENT"`` ...), ``field``
    the offending field path (may be empty), ``message`` the explanation."""

    code: str
    field: str
    message: str

    @classmethod
    def from_proto(cls, r: pb.Rejection) -> Rejection:
        return cls(_REJECTION_NAMES.get(r.code, str(r.code)), r.field, r.message)


@dataclass(frozen=True)
class OrderAck:
    """The answer for one order: accepted (``order`` is the order as held, ``duplicate`` true for a retry of an
    identical order) or refused (``rejection`` set, ``order`` None)."""

    order_id: str
    order: Order | None = None
    duplicate: bool = False
    rejection: Rejection | None = None

    @property
    def accepted(self) -> bool:
        return self.rejection is None

    @classmethod
    def from_proto(cls, r: pb.SubmitOrdersResponse) -> OrderAck:
        if r.WhichOneof("result") == "accepted":
            return cls(r.order_id, Order.from_proto(r.accepted.order), r.accepted.duplicate)
        if r.WhichOneof("result") == "rejection":
            return cls(r.order_id, rejection=Rejection.from_proto(r.rejection))
        return cls(r.order_id, rejection=Rejection("UNKNOWN", "", "the server sent an ack with no result"))


@dataclass(frozen=True)
class Shift:
    """A rider's shift: ``start``/``end`` epoch seconds, ``capacity`` units, ``speed_factor`` (1.0 nominal)."""

    start: float
    end: float
    capacity: int
    speed_factor: float = 1.0

    def to_proto(self) -> pb.RiderShift:
        return pb.RiderShift(
            start=ts_to_proto(self.start), end=ts_to_proto(self.end), capacity=self.capacity,
            speed_factor=self.speed_factor,
        )  # fmt: skip

    @classmethod
    def from_proto(cls, s: pb.RiderShift) -> Shift:
        return cls(ts_from_proto(s.start), ts_from_proto(s.end), s.capacity, s.speed_factor)


RIDER_EVENT_KINDS = ("location", "online", "offline", "picked_up", "delivered", "rejected")


@dataclass(frozen=True)
class RiderEvent:
    """Something a rider did: ``kind`` one of ``location``, ``online``, ``offline``, ``picked_up``,
    ``delivered``, ``rejected``; ``at`` epoch seconds; ``lat``/``lng`` (required for location and online);
    ``order_id`` (picked_up, delivered, rejected); ``shift`` (online)."""

    rider_id: str
    kind: str
    at: float
    lat: float | None = None
    lng: float | None = None
    order_id: str = ""
    shift: Shift | None = None

    def to_proto(self) -> pb.RiderEvent:
        e = pb.RiderEvent(
            rider_id=self.rider_id,
            kind=_enum_full_name(pb.RiderEventKind, "RIDER_EVENT_KIND_", self.kind, "RiderEvent.kind"),
            at=ts_to_proto(self.at),
            order_id=self.order_id,
        )
        if (self.lat is None) != (self.lng is None):
            raise ValueError(f"RiderEvent of rider {self.rider_id!r}: give both lat and lng, or neither")
        if self.lat is not None and self.lng is not None:
            e.position.lat = self.lat
            e.position.lng = self.lng
        if self.shift is not None:
            e.shift.CopyFrom(self.shift.to_proto())
        return e


@dataclass(frozen=True)
class RiderEventsResult:
    """The answer of a ReportRiderEvents stream: events accepted, and the refused ones as ``(index, rider_id,
    rejection)`` with ``index`` counting events from 0 across the stream."""

    accepted: int
    rejections: tuple[tuple[int, str, Rejection], ...] = ()


@dataclass(frozen=True)
class Stop:
    """One stop of a route: ``kind`` ``"pickup"`` or ``"dropoff"``, position in degrees, ``eta`` epoch seconds."""

    kind: str
    order_id: str
    lat: float
    lng: float
    eta: float
    frozen: bool = False

    @classmethod
    def from_proto(cls, s: pb.Stop) -> Stop:
        return cls(
            _enum_name(pb.StopKind, "STOP_KIND_", s.kind), s.order_id, s.position.lat, s.position.lng,
            ts_from_proto(s.eta), s.frozen,
        )  # fmt: skip


def _route(r: pb.Route) -> tuple[Stop, ...]:
    return tuple(Stop.from_proto(s) for s in r.stops)


@dataclass(frozen=True)
class AssignmentEvent:
    """One change of who carries what. ``kind``: ``"assigned"``, ``"unassigned"`` or ``"route_updated"``;
    ``route``: the rider's whole route after the change (None when ``rider_id`` is empty); ``reason``: why an
    unassigned order is off a route (``"riders_busy"``, ``"cancelled"`` ...; empty for other kinds)."""

    sequence: int
    at: float
    kind: str
    order_id: str
    rider_id: str
    route: tuple[Stop, ...] | None
    reason: str = ""

    @classmethod
    def from_proto(cls, e: pb.AssignmentEvent) -> AssignmentEvent:
        return cls(
            sequence=e.sequence,
            at=ts_from_proto(e.at),
            kind=_enum_name(pb.AssignmentEventKind, "ASSIGNMENT_EVENT_KIND_", e.kind),
            order_id=e.order_id,
            rider_id=e.rider_id,
            route=_route(e.route) if e.HasField("route") else None,
            reason=_enum_name(pb.UnassignedReason, "UNASSIGNED_REASON_", e.reason) if e.reason else "",
        )


@dataclass(frozen=True)
class OrderStatus:
    """GetOrder: the order with its progress; ETAs and event times are epoch seconds or None when unset."""

    order: Order
    rider_id: str
    pickup_eta: float | None
    dropoff_eta: float | None
    unassigned_reason: str
    picked_up_at: float | None
    delivered_at: float | None


def _opt_ts(msg: Message, name: str) -> float | None:
    return ts_from_proto(getattr(msg, name)) if msg.HasField(name) else None


@dataclass(frozen=True)
class Rider:
    """GetRider: ``status`` ``"online"``/``"offline"``, last position and when, shift, route."""

    id: str
    status: str
    lat: float
    lng: float
    position_at: float | None
    shift: Shift | None
    route: tuple[Stop, ...]


@dataclass(frozen=True)
class Site:
    """GetSite: position, pickup service seconds, and the zone: a radius in metres or a polygon of (lat, lng)."""

    id: str
    lat: float
    lng: float
    pickup_service_s: float
    zone_radius_m: float | None
    zone_polygon: tuple[tuple[float, float], ...] | None


@dataclass(frozen=True)
class QuoteOption:
    """One promise: ``promised_by`` / ``estimated_delivery`` epoch seconds, ``tier_s`` the tier (or slot) in
    seconds, ``deferred`` true when admission moved it later on purpose."""

    site_id: str
    promised_by: float
    estimated_delivery: float
    on_time_probability: float
    tier_s: float
    deferred: bool


@dataclass(frozen=True)
class Quote:
    """A quote: options (earliest first) or, when there are none, ``decline_reason`` (``"outside_every_zone"``,
    ``"outside_site_zone"``, ``"saturated"``, ``"too_large"``)."""

    quoted_at: float
    options: tuple[QuoteOption, ...]
    decline_reason: str = ""

    @classmethod
    def from_proto(cls, r: pb.QuoteResponse) -> Quote:
        opts = tuple(
            QuoteOption(
                o.site_id,
                ts_from_proto(o.promised_by),
                ts_from_proto(o.estimated_delivery),
                o.on_time_probability,
                dur_from_proto(o.tier),
                o.deferred,
            )
            for o in r.options
        )
        reason = (
            _enum_name(pb.QuoteDeclineReason, "QUOTE_DECLINE_REASON_", r.decline_reason) if r.decline_reason else ""
        )
        return cls(ts_from_proto(r.quoted_at), opts, reason)


@dataclass(frozen=True)
class Stats:
    """GetStats: ``orders_by_state`` maps state names to counts; times are epoch seconds (None when unset)."""

    at: float
    site_ids: tuple[str, ...]
    orders_by_state: dict[str, int]
    riders_online: int
    orders_at_risk: int
    ticks: int
    last_tick_at: float | None
    last_tick_duration_s: float
    last_sequence: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at, "site_ids": list(self.site_ids), "orders_by_state": dict(self.orders_by_state),
            "riders_online": self.riders_online, "orders_at_risk": self.orders_at_risk, "ticks": self.ticks,
            "last_tick_at": self.last_tick_at, "last_tick_duration_s": self.last_tick_duration_s,
            "last_sequence": self.last_sequence,
        }  # fmt: skip


# Params <-> nested dicts. Keys are the proto's field names; Durations are seconds (float), enums lower-case names
# without their prefix, repeated fields lists. ``update_params({"dispatch": {"tick": 5.0}})`` sends the mask
# "dispatch.tick".


def _repeated(f: FieldDescriptor) -> bool:
    rep = getattr(f, "is_repeated", None)  # protobuf >= 6.31; ``label`` is deprecated there
    return bool(rep) if rep is not None else bool(f.label == FieldDescriptor.LABEL_REPEATED)


def _msg_to_dict(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in msg.DESCRIPTOR.fields:
        v = getattr(msg, f.name)
        if _repeated(f):
            out[f.name] = [_value_to_py(f, x) for x in v]
        else:
            out[f.name] = _value_to_py(f, v)
    return out


def _value_to_py(f: FieldDescriptor, v: Any) -> Any:
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        if f.message_type.full_name == "google.protobuf.Duration":
            return dur_from_proto(v)
        return _msg_to_dict(v)
    if f.type == FieldDescriptor.TYPE_ENUM:
        et = f.enum_type
        prefix = _enum_prefix(et.name)
        name = et.values_by_number[v].name if v in et.values_by_number else str(v)
        return name.removeprefix(prefix).lower()
    return v


def _enum_prefix(enum_name: str) -> str:
    """``TripMode`` -> ``TRIP_MODE_``."""
    out = "".join(("_" + c if c.isupper() and i else c) for i, c in enumerate(enum_name)).upper()
    return out + "_"


def _dict_to_msg(d: Mapping[str, Any], desc: Descriptor, msg: Message, path: str, mask: list[str]) -> None:
    for key, v in d.items():
        f = desc.fields_by_name.get(key)
        where = f"{path}.{key}" if path else key
        if f is None:
            known = ", ".join(x.name for x in desc.fields)
            raise ValueError(f"params: unknown field {where!r} (known here: {known})")
        if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.full_name != "google.protobuf.Duration":
            if _repeated(f) or not isinstance(v, Mapping):
                raise ValueError(f"params: {where} must be a mapping of its fields")
            _dict_to_msg(v, f.message_type, getattr(msg, key), where, mask)
            continue
        mask.append(where)
        if _repeated(f):
            if isinstance(v, str | bytes) or not isinstance(v, Iterable):
                raise ValueError(f"params: {where} must be a list")
            rep = getattr(msg, key)
            del rep[:]
            for x in v:
                _append_value(f, rep, x, where)
        else:
            _set_value(f, msg, key, v, where)


def _py_to_scalar(f: FieldDescriptor, v: Any, where: str) -> Any:
    if f.type == FieldDescriptor.TYPE_MESSAGE:  # a Duration
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"params: {where} must be a number of seconds, got {v!r}")
        return dur_to_proto(float(v))
    if f.type == FieldDescriptor.TYPE_ENUM:
        et = f.enum_type
        prefix = _enum_prefix(et.name)
        ev = et.values_by_name.get(prefix + str(v).upper())
        if ev is None:
            names = [x.name.removeprefix(prefix).lower() for x in et.values if not x.name.endswith("UNSPECIFIED")]
            raise ValueError(f"params: {where}: unknown value {v!r} (expected one of {', '.join(names)})")
        return ev.number
    return v


def _set_value(f: FieldDescriptor, msg: Message, key: str, v: Any, where: str) -> None:
    x = _py_to_scalar(f, v, where)
    try:
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(msg, key).CopyFrom(x)
        else:
            setattr(msg, key, x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params: {where}: {exc}") from None


def _append_value(f: FieldDescriptor, rep: Any, v: Any, where: str) -> None:
    x = _py_to_scalar(f, v, where)
    try:
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            rep.add().CopyFrom(x)
        else:
            rep.append(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params: {where}: {exc}") from None


def params_from_proto(p: pb.Params) -> dict[str, Any]:
    """Params -> nested dict (field names of the proto; durations in seconds; enums as lower-case names)."""
    return _msg_to_dict(p)


def params_to_proto(d: Mapping[str, Any]) -> tuple[pb.Params, list[str]]:
    """Nested dict -> (Params, the field mask paths of the leaves given). Raises ValueError naming a bad field."""
    msg = pb.Params()
    mask: list[str] = []
    _dict_to_msg(d, pb.Params.DESCRIPTOR, msg, "", mask)
    return msg, mask


# --------------------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------------------


def _read_pem(v: bytes | str | os.PathLike[str] | None, what: str) -> bytes | None:
    if v is None or isinstance(v, bytes):
        return v
    try:
        with open(v, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {os.fspath(v)!r} ({exc.strerror})") from None


class AssignmentWatch:
    """An iterator over assignment events that survives disconnects (see :meth:`DispatchClient.watch_assignments`).

    ``last_sequence`` is the sequence of the last event yielded (0 before any), ``reconnects`` how many times the
    stream was reopened. :meth:`cancel` (from any thread) ends the iteration."""

    def __init__(
        self,
        client: DispatchClient,
        from_sequence: int,
        *,
        resume: bool,
        max_retries: int,
        backoff_s: tuple[float, float],
    ) -> None:
        self._client = client
        self._next = from_sequence
        self._resume = resume
        self._max_retries = max_retries
        self._backoff = backoff_s
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self.last_sequence = from_sequence - 1 if from_sequence > 0 else 0
        self.reconnects = 0

    def cancel(self) -> None:
        """Stop watching; the iteration ends (from another thread: at once; the current call is cancelled)."""
        self._cancelled.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def batches(self) -> Iterator[list[AssignmentEvent]]:
        """The events as the server sends them: one list per message (usually one tick's events)."""
        for raw in self.raw_batches():
            yield [AssignmentEvent.from_proto(e) for e in raw]

    def raw_batches(self) -> Iterator[list[pb.AssignmentEvent]]:
        """As :meth:`batches`, with the events as the generated ``AssignmentEvent`` messages (no conversion: the
        fast path for a watcher that reads a few fields of many events)."""
        c = self._client
        if self._next == 0 and self._resume:
            # "Live only" made resumable: start after the last event that exists now.
            with contextlib.suppress(DispatchError):
                self._next = c.get_stats().last_sequence + 1
        failures = 0
        while not self._cancelled.is_set():
            with self._lock:
                if self._cancelled.is_set():
                    return
                try:
                    self._call = c._stub.WatchAssignments(
                        pb.WatchAssignmentsRequest(from_sequence=self._next), metadata=c._metadata
                    )
                except ValueError:  # the channel was closed under us: the client is done
                    return
                call = self._call
            try:
                for msg in call:
                    out = []
                    for e in msg.events:
                        if e.sequence < self._next and self._next > 0:
                            continue  # already seen (a server resending after a reconnect)
                        out.append(e)
                        self._next = e.sequence + 1
                        self.last_sequence = e.sequence
                    if out:
                        failures = 0
                        yield out
                code: grpc.StatusCode | None = grpc.StatusCode.OK
                error: DispatchError | None = None
            except grpc.RpcError as exc:
                error = DispatchError.from_rpc_error(exc, "WatchAssignments")
                code = error.code
            if self._cancelled.is_set():
                return
            if not self._resume or (code not in RESUMABLE_CODES and code != grpc.StatusCode.OK):
                if error is not None:
                    raise error
                return
            failures += 1
            if failures > self._max_retries:
                if error is not None:
                    raise error
                raise DispatchError(grpc.StatusCode.UNAVAILABLE, "the stream kept ending", "WatchAssignments")
            lo, hi = self._backoff
            if self._cancelled.wait(min(hi, lo * 2 ** (failures - 1))):
                return
            self.reconnects += 1

    def __iter__(self) -> Iterator[AssignmentEvent]:
        for batch in self.batches():
            yield from batch


class DispatchClient:
    """A connection to a dispatch server; a context manager that closes its channel.

    Args:
        target: ``HOST:PORT``.
        token: bearer token sent on every call (None: none).
        root_certificates: PEM bytes or a path: the CA that signed the server's certificate (None: system roots).
        certificate_chain, private_key: PEM bytes or paths: the client's certificate and key for mutual TLS.
        insecure: a plaintext channel (no TLS); the TLS options must then be None.
        timeout: seconds allowed for each unary call (streams have no deadline).
        options: extra channel options (``grpc`` channel arguments).

    Raises:
        ValueError: a bad option (a missing certificate file, TLS options with ``insecure``, a bad timeout).
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        root_certificates: bytes | str | os.PathLike[str] | None = None,
        certificate_chain: bytes | str | os.PathLike[str] | None = None,
        private_key: bytes | str | os.PathLike[str] | None = None,
        insecure: bool = False,
        timeout: float = 10.0,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if not target or ":" not in target:
            raise ValueError(f"target must be HOST:PORT, got {target!r}")
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if (certificate_chain is None) != (private_key is None):
            raise ValueError("mutual TLS needs both certificate_chain and private_key")
        opts = [("grpc.max_receive_message_length", 64 << 20), *options]
        self._options = opts
        self._creds: grpc.ChannelCredentials | None = None
        if insecure:
            if root_certificates is not None or certificate_chain is not None:
                raise ValueError("insecure=True opens a plaintext channel: do not give TLS certificates")
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            self._creds = grpc.ssl_channel_credentials(
                root_certificates=_read_pem(root_certificates, "root_certificates"),
                private_key=_read_pem(private_key, "private_key"),
                certificate_chain=_read_pem(certificate_chain, "certificate_chain"),
            )
            self._channel = grpc.secure_channel(target, self._creds, options=opts)
        self.target = target
        self.timeout = float(timeout)
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        self._stub = pb_grpc.DispatchServiceStub(self._channel)

    # -- plumbing ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel (open streams end with CANCELLED)."""
        self._channel.close()

    def aio_channel(self) -> grpc.aio.Channel:
        """A new ``grpc.aio`` channel to the same server with the same credentials and options, for asyncio callers
        (call on the event loop that will use it; send ``metadata`` with each call)."""
        if self._creds is None:
            return grpc.aio.insecure_channel(self.target, options=self._options)
        return grpc.aio.secure_channel(self.target, self._creds, options=self._options)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata (the bearer token, when there is one)."""
        return self._metadata

    def __enter__(self) -> DispatchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the channel is connected. Raises DispatchError(UNAVAILABLE) after ``timeout`` seconds."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise DispatchError(
                grpc.StatusCode.UNAVAILABLE, f"no server reachable at {self.target} within {timeout:g} s"
            ) from None

    def _unary(self, method: str, request: Message) -> Any:
        fn: Callable[..., Any] = getattr(self._stub, method)
        try:
            return fn(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise DispatchError.from_rpc_error(exc, method) from None

    # -- orders ------------------------------------------------------------------------------------------------

    def submit_order(self, order: Order) -> OrderAck:
        """SubmitOrder: the order as accepted (``duplicate`` for an identical retry). Raises DispatchError
        (INVALID_ARGUMENT naming the field, ALREADY_EXISTS, NOT_FOUND for an unknown site, ...)."""
        r = self._unary("SubmitOrder", pb.SubmitOrderRequest(order=order.to_proto()))
        return OrderAck(order.id, Order.from_proto(r.order), r.duplicate)

    def submit_orders(self, orders: Iterable[Order | pb.Order]) -> Iterator[OrderAck]:
        """SubmitOrders: sends ``orders`` (which may be a blocking generator: the stream stays open until it ends)
        on one stream and yields one ack per order in request order. A refused order comes back as an ack with a
        rejection; DispatchError only when the whole stream fails."""
        for r in self.submit_orders_raw(orders):
            yield OrderAck.from_proto(r)

    def submit_order_batches(self, batches: Iterable[Sequence[Order | pb.Order]]) -> Iterator[OrderAck]:
        """SubmitOrders with several orders per message: each batch (``batches`` may be a blocking generator) goes
        as one message, which saves gRPC's per-message cost on both sides when orders come faster than one at a
        time; yields one ack per order, in request order, as :meth:`submit_orders` does (the acks of a batch come
        together, once all its accepted orders are journaled). Keep a batch under the server's
        ``max_message_bytes`` and ``max_orders_per_message`` (1 MiB and 1,000 orders by default): beyond them every
        order of the batch is refused. An empty batch is skipped (it has nothing to acknowledge)."""
        requests = (pb.SubmitOrdersRequest(orders=[_order_proto(o) for o in b]) for b in batches if len(b))
        for r in self._submit_raw(requests):
            yield OrderAck.from_proto(r)

    def submit_orders_raw(self, orders: Iterable[Order | pb.Order]) -> Iterator[pb.SubmitOrdersResponse]:
        """As :meth:`submit_orders`, yielding the generated ``SubmitOrdersResponse`` messages unconverted (the fast
        path for a caller that only looks at ``order_id`` and whether ``rejection`` is set)."""
        return self._submit_raw(pb.SubmitOrdersRequest(order=_order_proto(o)) for o in orders)

    def _submit_raw(self, requests: Iterator[pb.SubmitOrdersRequest]) -> Iterator[pb.SubmitOrdersResponse]:
        """A SubmitOrders stream of ``requests``: one response per order (a batch's acks taken out of their
        message)."""
        call = self._stub.SubmitOrders(requests, metadata=self._metadata)
        try:
            for resp in call:
                if resp.acks:
                    yield from resp.acks
                else:
                    yield resp
        except grpc.RpcError as exc:
            raise DispatchError.from_rpc_error(exc, "SubmitOrders") from None
        finally:
            call.cancel()

    def cancel_order(self, order_id: str, reason: str = "") -> Order:
        """CancelOrder: the order after cancellation. FAILED_PRECONDITION once picked up; NOT_FOUND if unknown."""
        return Order.from_proto(
            self._unary("CancelOrder", pb.CancelOrderRequest(order_id=order_id, reason=reason)).order
        )

    def get_order(self, order_id: str) -> OrderStatus:
        """GetOrder: the order and its progress. NOT_FOUND for an unknown id."""
        r = self._unary("GetOrder", pb.GetOrderRequest(order_id=order_id))
        reason = (
            _enum_name(pb.UnassignedReason, "UNASSIGNED_REASON_", r.unassigned_reason) if r.unassigned_reason else ""
        )
        return OrderStatus(
            Order.from_proto(r.order), r.rider_id, _opt_ts(r, "pickup_eta"), _opt_ts(r, "dropoff_eta"), reason,
            _opt_ts(r, "picked_up_at"), _opt_ts(r, "delivered_at"),
        )  # fmt: skip

    # -- riders ------------------------------------------------------------------------------------------------

    def report_rider_events(
        self, batches: Iterable[Sequence[RiderEvent] | pb.ReportRiderEventsRequest]
    ) -> RiderEventsResult:
        """ReportRiderEvents: sends each batch as one message; when ``batches`` ends, returns what the server
        accepted and refused. A batch may also be a ready-made ``ReportRiderEventsRequest`` (the fast path the
        replay uses)."""

        def requests() -> Iterator[pb.ReportRiderEventsRequest]:
            for b in batches:
                if isinstance(b, pb.ReportRiderEventsRequest):
                    yield b
                else:
                    yield pb.ReportRiderEventsRequest(events=[e.to_proto() for e in b])

        try:
            r = self._stub.ReportRiderEvents(requests(), metadata=self._metadata)
        except grpc.RpcError as exc:
            raise DispatchError.from_rpc_error(exc, "ReportRiderEvents") from None
        rej = tuple((x.index, x.rider_id, Rejection.from_proto(x.rejection)) for x in r.rejections)
        return RiderEventsResult(r.accepted, rej)

    def get_rider(self, rider_id: str) -> Rider:
        """GetRider: the rider with its position, shift and route. NOT_FOUND for an unknown id."""
        r = self._unary("GetRider", pb.GetRiderRequest(rider_id=rider_id)).rider
        return Rider(
            r.id, _enum_name(pb.RiderStatus, "RIDER_STATUS_", r.status), r.position.lat, r.position.lng,
            _opt_ts(r, "position_at"), Shift.from_proto(r.shift) if r.HasField("shift") else None, _route(r.route),
        )  # fmt: skip

    # -- assignments -------------------------------------------------------------------------------------------

    def watch_assignments(
        self,
        from_sequence: int = 0,
        *,
        resume: bool = True,
        max_retries: int = 8,
        backoff_s: tuple[float, float] = (0.05, 2.0),
    ) -> AssignmentWatch:
        """WatchAssignments from ``from_sequence`` (0: live only, 1: all the journal holds), as an iterable of
        :class:`AssignmentEvent` (or of per-message lists with ``.batches()``).

        With ``resume`` (the default) a stream that ends or breaks (UNAVAILABLE, CANCELLED by the server, ...)
        is reopened from the last sequence seen + 1, after a backoff growing from ``backoff_s[0]`` to
        ``backoff_s[1]`` seconds; after ``max_retries`` failures in a row without a new event the last error is
        raised. With ``from_sequence`` 0 and ``resume``, the starting point is fixed by GetStats (its
        last_sequence + 1) so that a reconnect misses nothing. Errors that a retry cannot fix (OUT_OF_RANGE,
        UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT) raise DispatchError at once."""
        if isinstance(from_sequence, bool) or not isinstance(from_sequence, int) or from_sequence < 0:
            raise ValueError(f"from_sequence must be an integer >= 0, got {from_sequence!r}")
        return AssignmentWatch(self, from_sequence, resume=resume, max_retries=max_retries, backoff_s=backoff_s)

    # -- promises ----------------------------------------------------------------------------------------------

    def quote(self, lat: float, lng: float, size: int = 1, site_id: str = "") -> Quote:
        """Quote: promise options for ``size`` units to (lat, lng), from ``site_id`` only when given."""
        return Quote.from_proto(
            self._unary("Quote", pb.QuoteRequest(address=pb.LatLng(lat=lat, lng=lng), size=size, site_id=site_id))
        )

    # -- sites, stats, params ----------------------------------------------------------------------------------

    def get_site(self, site_id: str) -> Site:
        """GetSite: position, pickup service time and zone. NOT_FOUND for an unknown id."""
        s = self._unary("GetSite", pb.GetSiteRequest(site_id=site_id)).site
        shape = s.zone.WhichOneof("shape")
        radius = s.zone.radius_m if shape == "radius_m" else None
        poly = tuple((p.lat, p.lng) for p in s.zone.polygon.exterior) if shape == "polygon" else None
        return Site(s.id, s.position.lat, s.position.lng, dur_from_proto(s.pickup_service), radius, poly)

    def get_stats(self) -> Stats:
        """GetStats: a snapshot of the instance."""
        r = self._unary("GetStats", pb.GetStatsRequest())
        by_state = {_enum_name(pb.OrderState, "ORDER_STATE_", c.state): int(c.count) for c in r.orders_by_state}
        return Stats(
            ts_from_proto(r.at), tuple(r.site_ids), by_state, r.riders_online, r.orders_at_risk, r.ticks,
            _opt_ts(r, "last_tick_at"), dur_from_proto(r.last_tick_duration), r.last_sequence,
        )  # fmt: skip

    def get_params(self) -> tuple[dict[str, Any], int]:
        """GetParams: (the parameters in force as a nested dict, see :func:`params_from_proto`; the version)."""
        r = self._unary("GetParams", pb.GetParamsRequest())
        return params_from_proto(r.params), int(r.version)

    def update_params(self, changes: Mapping[str, Any], *, replace_all: bool = False) -> tuple[dict[str, Any], int]:
        """UpdateParams: changes the fields given in ``changes`` (a nested dict as :meth:`get_params` returns; only
        the leaves given are sent, as the update mask). ``replace_all`` sends an empty mask: ``changes`` is then the
        whole new parameter set. Returns (the parameters in force from the next tick, the new version).

        Raises:
            ValueError: a field that Params does not have, or a value of the wrong kind (before any call).
            DispatchError: INVALID_ARGUMENT naming the field the server refused, PERMISSION_DENIED, ...
        """
        msg, paths = params_to_proto(changes)
        mask = field_mask_pb2.FieldMask(paths=[] if replace_all else paths)
        r = self._unary("UpdateParams", pb.UpdateParamsRequest(params=msg, update_mask=mask))
        return params_from_proto(r.params), int(r.version)


def retry_unavailable(fn: Callable[[], T], *, attempts: int = 5, delay_s: float = 0.2) -> T:
    """Call ``fn`` until it does not fail with UNAVAILABLE (at most ``attempts`` times, ``delay_s`` doubling)."""
    for i in range(attempts):
        try:
            return fn()
        except DispatchError as exc:
            if exc.code != grpc.StatusCode.UNAVAILABLE or i == attempts - 1:
                raise
            time.sleep(delay_s * 2**i)
    raise AssertionError("unreachable")
