"""Proto -> model checks at the edge: every refusal names the offending field as a path from the item's message
(``order.dropoff.lat``, ``shift.capacity``) and carries the gRPC status code it maps to.

Only checks that need no state live here (types, ranges, required fields, consistency within one message); the
store checks the rest (unknown site or rider, ownership, life-cycle state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dispatch.v1 import dispatch_pb2 as pb

# gRPC status numbers (equal to the RejectionCode values of the proto).
INVALID_ARGUMENT = 3
NOT_FOUND = 5
ALREADY_EXISTS = 6
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
OUT_OF_RANGE = 11

MAX_ID_LEN = 128
# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
_TS_MIN = -62_135_596_800
_TS_MAX = 253_402_300_799
_MAX_SERVICE_S = 86_400.0


class RefusalError(Exception):
    """An input refused: ``code`` (a gRPC status number), ``field`` (a path, may be empty) and a message."""

    def __init__(self, code: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.code = code
        self.field = field
        self.message = message

    def rejection(self) -> pb.Rejection:
        return pb.Rejection(code=self.code, field=self.field, message=self.message)  # type: ignore[arg-type]


def invalid(field: str, message: str) -> RefusalError:
    return RefusalError(INVALID_ARGUMENT, field, message)


def check_id(value: str, field: str) -> str:
    if not value:
        raise invalid(field, "required (a non-empty id)")
    if len(value) > MAX_ID_LEN:
        raise invalid(field, f"at most {MAX_ID_LEN} characters, got {len(value)}")
    if not value.isprintable():
        raise invalid(field, "must be printable characters only")
    return value


def timestamp_s(ts: Any, field: str) -> float:
    """A google.protobuf.Timestamp as epoch seconds, checked to be in the Timestamp's valid range."""
    if not _TS_MIN <= ts.seconds <= _TS_MAX:
        raise invalid(field, f"seconds must be within years 1..9999, got {ts.seconds}")
    if not 0 <= ts.nanos < 1_000_000_000:
        raise invalid(field, f"nanos must be in [0, 1e9), got {ts.nanos}")
    return ts.seconds + ts.nanos * 1e-9


def duration_s(d: Any, field: str, lo: float, hi: float) -> float:
    """A google.protobuf.Duration as seconds within [lo, hi]."""
    if not -999_999_999 <= d.nanos <= 999_999_999 or (d.seconds > 0 > d.nanos) or (d.seconds < 0 < d.nanos):
        raise invalid(field, f"not a valid duration (seconds {d.seconds}, nanos {d.nanos})")
    v = d.seconds + d.nanos * 1e-9
    if not lo <= v <= hi:
        raise invalid(field, f"must be in [{lo:g}, {hi:g}] seconds, got {v:g}")
    return float(v)


def latlng(p: pb.LatLng, field: str) -> tuple[float, float]:
    lat, lng = p.lat, p.lng
    if not math.isfinite(lat):
        raise invalid(f"{field}.lat", f"must be a finite number, got {lat}")
    if not math.isfinite(lng):
        raise invalid(f"{field}.lng", f"must be a finite number, got {lng}")
    if abs(lat) > 90.0:
        raise invalid(f"{field}.lat", f"must be in [-90, 90], got {lat}")
    if abs(lng) > 180.0:
        raise invalid(f"{field}.lng", f"must be in [-180, 180], got {lng}")
    return float(lat), float(lng)


@dataclass(frozen=True)
class OrderIn:
    """A checked order: positions in degrees, instants in epoch seconds."""

    id: str
    site_id: str
    lat: float
    lng: float
    placed: float
    ready: float
    promised: float
    size: int
    service_drop: float
    pinned: str


def order(o: pb.Order, prefix: str = "order") -> OrderIn:
    """Check an Order (its ``state`` is ignored)."""
    oid = check_id(o.id, f"{prefix}.id")
    site = check_id(o.site_id, f"{prefix}.site_id")
    if not o.HasField("dropoff"):
        raise invalid(f"{prefix}.dropoff", "required")
    lat, lng = latlng(o.dropoff, f"{prefix}.dropoff")
    if not o.HasField("placed_at"):
        raise invalid(f"{prefix}.placed_at", "required")
    placed = timestamp_s(o.placed_at, f"{prefix}.placed_at")
    ready = placed
    if o.HasField("ready_at"):
        ready = timestamp_s(o.ready_at, f"{prefix}.ready_at")
        if ready < placed:
            raise invalid(f"{prefix}.ready_at", "must not be before placed_at")
    if not o.HasField("promised_by"):
        raise invalid(f"{prefix}.promised_by", "required")
    promised = timestamp_s(o.promised_by, f"{prefix}.promised_by")
    if promised <= placed:
        raise invalid(f"{prefix}.promised_by", "must be after placed_at")
    if promised <= ready:
        raise invalid(f"{prefix}.promised_by", "must be after ready_at")
    if o.size <= 0:
        raise invalid(f"{prefix}.size", f"must be > 0, got {o.size}")
    service = 0.0
    if o.HasField("dropoff_service"):
        service = duration_s(o.dropoff_service, f"{prefix}.dropoff_service", 0.0, _MAX_SERVICE_S)
    pinned = ""
    if o.pinned_rider_id:
        pinned = check_id(o.pinned_rider_id, f"{prefix}.pinned_rider_id")
    return OrderIn(oid, site, lat, lng, placed, ready, promised, int(o.size), service, pinned)


def canonical(o: pb.Order) -> bytes:
    """The bytes that decide whether two submissions are the same order (the output-only state cleared)."""
    if o.state == 0:
        return o.SerializeToString(deterministic=True)
    c = pb.Order()
    c.CopyFrom(o)
    c.ClearField("state")
    return c.SerializeToString(deterministic=True)


@dataclass(frozen=True)
class ShiftIn:
    start: float
    end: float
    capacity: int
    speed: float


@dataclass(frozen=True)
class EventIn:
    """A checked rider event. ``lat``/``lng`` are None when no position was sent."""

    rider_id: str
    kind: int
    at: float
    lat: float | None
    lng: float | None
    order_id: str
    shift: ShiftIn | None


_KINDS = frozenset(int(k) for k in pb.RiderEventKind.values()) - {int(pb.RIDER_EVENT_KIND_UNSPECIFIED)}
_LOCATION = int(pb.RIDER_EVENT_KIND_LOCATION)
_NEEDS_ORDER = (pb.RIDER_EVENT_KIND_PICKED_UP, pb.RIDER_EVENT_KIND_DELIVERED, pb.RIDER_EVENT_KIND_REJECTED)


def rider_event(e: pb.RiderEvent) -> EventIn:
    """Check a RiderEvent; fields are named from the event (``position.lat``, ``shift.capacity``)."""
    rid = check_id(e.rider_id, "rider_id")
    kind = int(e.kind)
    if kind not in _KINDS:
        raise invalid("kind", f"must be one of LOCATION, ONLINE, OFFLINE, PICKED_UP, DELIVERED, REJECTED, got {kind}")
    if not e.HasField("at"):
        raise invalid("at", "required")
    at = timestamp_s(e.at, "at")
    lat: float | None = None
    lng: float | None = None
    if e.HasField("position"):
        lat, lng = latlng(e.position, "position")
    elif kind in (pb.RIDER_EVENT_KIND_LOCATION, pb.RIDER_EVENT_KIND_ONLINE):
        raise invalid("position", "required for LOCATION and ONLINE")
    oid = ""
    if kind in _NEEDS_ORDER:
        oid = check_id(e.order_id, "order_id")
    elif e.order_id:
        raise invalid("order_id", "only PICKED_UP, DELIVERED and REJECTED name an order")
    shift: ShiftIn | None = None
    if kind == pb.RIDER_EVENT_KIND_ONLINE:
        if not e.HasField("shift"):
            raise invalid("shift", "required for ONLINE")
        s = e.shift
        if not s.HasField("start"):
            raise invalid("shift.start", "required")
        if not s.HasField("end"):
            raise invalid("shift.end", "required")
        start = timestamp_s(s.start, "shift.start")
        end = timestamp_s(s.end, "shift.end")
        if end <= start:
            raise invalid("shift.end", "must be after shift.start")
        if s.capacity <= 0:
            raise invalid("shift.capacity", f"must be > 0, got {s.capacity}")
        if not (math.isfinite(s.speed_factor) and 0.0 < s.speed_factor <= 10.0):
            raise invalid("shift.speed_factor", f"must be a finite number in (0, 10], got {s.speed_factor}")
        shift = ShiftIn(start, end, int(s.capacity), float(s.speed_factor))
    return EventIn(rid, kind, at, lat, lng, oid, shift)


@dataclass(slots=True)
class LocationRun:
    """Consecutive LOCATION events of one message that pass every check of :func:`rider_event` (the bulk of a
    rider gateway's traffic), as columns: the events' positions in the stream, rider ids, instants (epoch seconds),
    positions (degrees) and the events as sent (journaled as they are)."""

    index: list[int]
    rider_id: list[str]
    at: list[float]
    lat: list[float]
    lng: list[float]
    raw: list[pb.RiderEvent]


EventItem = tuple[int, EventIn, pb.RiderEvent]


def rider_events(
    events: Sequence[pb.RiderEvent], first: int
) -> tuple[list[LocationRun | EventItem], list[tuple[int, str, RefusalError]]]:
    """Check the events of one message (stream positions from ``first``): runs of plain LOCATION events checked in
    one pass each (no object per event), every other event by :func:`rider_event`, in message order; and the
    refused events (position, rider id as sent but cut to MAX_ID_LEN, refusal)."""
    out: list[LocationRun | EventItem] = []
    refused: list[tuple[int, str, RefusalError]] = []
    run: LocationRun | None = None
    loc = _LOCATION
    for i, e in enumerate(events, first):
        if e.kind == loc and not e.order_id and e.HasField("at") and e.HasField("position"):
            a = e.at
            p = e.position
            sec, nanos, lat, lng, rid = a.seconds, a.nanos, p.lat, p.lng, e.rider_id
            # The checks of rider_event for a LOCATION, in one expression (NaN fails the range tests).
            if (
                _TS_MIN <= sec <= _TS_MAX
                and 0 <= nanos < 1_000_000_000
                and -90.0 <= lat <= 90.0
                and -180.0 <= lng <= 180.0
                and 0 < len(rid) <= MAX_ID_LEN
                and rid.isprintable()
            ):
                if run is None:
                    run = LocationRun([], [], [], [], [], [])
                    out.append(run)
                run.index.append(i)
                run.rider_id.append(rid)
                run.at.append(sec + nanos * 1e-9)
                run.lat.append(lat)
                run.lng.append(lng)
                run.raw.append(e)
                continue
        try:
            out.append((i, rider_event(e), e))
        except RefusalError as exc:
            refused.append((i, e.rider_id[:MAX_ID_LEN], exc))
            continue
        run = None
    return out, refused


def message_size(msg: object, limit: int, field: str) -> None:
    """INVALID_ARGUMENT naming ``field`` when a message serialises to more than ``limit`` bytes."""
    n = msg.ByteSize()  # type: ignore[attr-defined]
    if n > limit:
        raise invalid(field, f"message of {n} bytes exceeds the limit of {limit} bytes")
