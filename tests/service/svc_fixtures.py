"""Shared helpers of the service tests: a small site set, configs, a running server on port 0, message builders."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

from dispatch.service.config import ServiceConfig, parse_config
from dispatch.service.server import RunningServer, create_server
from dispatch.v1 import dispatch_pb2 as pb
from dispatch.v1 import dispatch_pb2_grpc as pbg

# Two sites in central Shanghai (one group) and one in Beijing (another group, not owned unless asked).
SITES = [
    {"id": "s1", "lat": 31.2317, "lng": 121.4726, "service_s": 60.0, "zone_m": 3000.0},
    {"id": "s2", "lat": 31.2286, "lng": 121.4484, "service_s": 60.0, "zone_m": 3000.0},
    {"id": "bj", "lat": 39.9042, "lng": 116.4074, "service_s": 60.0, "zone_m": 3000.0},
]
TOKENS = {"orders-token": ["orders"], "riders-token": ["riders"], "ops-token": ["ops"]}


def config_data(tmp: Path, **top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "insecure": True,
        "journal": str(tmp / "journal.sqlite"),
        "journal_sync": "normal",
        "log_level": "warning",
        "policy_process": False,  # in-process policy: a server starts in milliseconds (the restart test uses both)
        "sites": {"list": SITES, "owned": ["s1", "s2"]},
        "dispatch": {"tick_s": 0.2, "hold_s": 0.0},
    }
    data.update(top)
    return data


def make_config(tmp: Path, **top: Any) -> ServiceConfig:
    return parse_config(config_data(tmp, **top), tmp)


@contextmanager
def running(cfg: ServiceConfig, start_loop: bool = True) -> Iterator[tuple[RunningServer, pbg.DispatchServiceStub]]:
    srv = create_server(cfg, start_loop=start_loop)
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    try:
        yield srv, pbg.DispatchServiceStub(channel)
    finally:
        channel.close()
        srv.stop(grace=1.0)


def ts(seconds: float) -> Any:
    t = pb.Order().placed_at
    t.seconds = int(seconds)
    t.nanos = int((seconds - int(seconds)) * 1e9)
    return t


def order(oid: str, site: str = "s1", lat: float = 31.2400, lng: float = 121.4800, now: float | None = None,
          promise_s: float = 3600.0, size: int = 1) -> pb.Order:  # fmt: skip
    now = time.time() if now is None else now
    o = pb.Order(id=oid, site_id=site, size=size)
    o.dropoff.lat, o.dropoff.lng = lat, lng
    o.placed_at.CopyFrom(ts(now))
    o.promised_by.CopyFrom(ts(now + promise_s))
    return o


def online(rider: str, lat: float = 31.2320, lng: float = 121.4730, now: float | None = None,
           capacity: int = 8) -> pb.RiderEvent:  # fmt: skip
    now = time.time() if now is None else now
    e = pb.RiderEvent(rider_id=rider, kind=pb.RIDER_EVENT_KIND_ONLINE)
    e.at.CopyFrom(ts(now))
    e.position.lat, e.position.lng = lat, lng
    e.shift.start.CopyFrom(ts(now - 60))
    e.shift.end.CopyFrom(ts(now + 8 * 3600))
    e.shift.capacity = capacity
    e.shift.speed_factor = 1.0
    return e


def rider_event(rider: str, kind: int, order_id: str = "", now: float | None = None) -> pb.RiderEvent:
    now = time.time() if now is None else now
    e = pb.RiderEvent(rider_id=rider, kind=kind, order_id=order_id)  # type: ignore[arg-type]
    e.at.CopyFrom(ts(now))
    return e


def report(stub: pbg.DispatchServiceStub, *events: pb.RiderEvent, **kw: Any) -> pb.ReportRiderEventsResponse:
    return stub.ReportRiderEvents(iter([pb.ReportRiderEventsRequest(events=list(events))]), **kw)


def wait_for(fn: Any, timeout: float = 15.0, every: float = 0.05) -> Any:
    """Poll ``fn`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)
