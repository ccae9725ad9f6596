"""dispatch.replay and the client commands: against a small fake dispatcher on port 0 (it assigns every order to an
online rider at its next 0.1 s tick, with ETAs a fraction of a second ahead, and checks the riders' events), and
end to end against the real server when dispatch.service is importable."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from dispatch.cli import main
from dispatch.client import DispatchClient, ts_from_proto, ts_to_proto
from dispatch.replay import ReplayError, ReplayOptions, parse_hhmm, run_replay
from dispatch.replay_orders import _LOST_STATUS
from dispatch.sim.log import write_log
from dispatch.v1 import dispatch_pb2 as pb
from dispatch.v1 import dispatch_pb2_grpc as pb_grpc

_spec = importlib.util.spec_from_file_location("daylogs", Path(__file__).parent / "sim" / "daylogs.py")
assert _spec is not None and _spec.loader is not None
daylogs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(daylogs)

FIELDS = ("ack_ms_p50", "ack_ms_p99", "assign_ms_p50", "assign_ms_p99", "orders_per_s", "rider_events_per_s",
          "errors", "orders_sent", "orders_acked", "unassigned_at_end")  # fmt: skip


class FakeDispatcher(pb_grpc.DispatchServiceServicer):
    """Assigns each pending order to the online rider with the fewest stops (never one that rejected it) every
    ``tick`` seconds; each assignment adds a pickup ETA 0.2 s and a drop-off ETA 0.4 s after the rider's last stop.
    Refuses (FAILED_PRECONDITION) a pickup of an order not on the rider's route, a delivery of an order the rider
    has not picked up, and any event of a rider that is not online; counts events that go back in time per rider."""

    def __init__(self, site_ids: list[str], tick: float = 0.1) -> None:
        self.site_ids = site_ids
        self.tick = tick
        self.lock = threading.Condition()
        self.events: list[pb.AssignmentEvent] = []
        self.pending: list[str] = []
        self.known: set[str] = set()
        self.submitted = 0
        self.break_after: int | None = None
        self.batches: list[int] = []  # orders in each SubmitOrders message
        self.routes: dict[str, list[tuple[int, str, float]]] = {}
        self.online: set[str] = set()
        self.ever_online: set[str] = set()
        self.went_offline: set[str] = set()
        self.refused_by: dict[str, set[str]] = defaultdict(set)
        self.carrier: dict[str, str] = {}
        self.picked: dict[str, str] = {}
        self.delivered: set[str] = set()
        self.last_at: dict[str, float] = {}
        self.backwards = 0
        self.kinds: dict[int, int] = defaultdict(int)
        self.refusals: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _emit(self, kind: int, order_id: str, rider_id: str, now: float, reason: int = 0) -> None:
        seq = len(self.events) + 1
        e = pb.AssignmentEvent(sequence=seq, at=ts_to_proto(now), kind=kind, order_id=order_id, rider_id=rider_id,
                               reason=reason)  # fmt: skip
        for k, oid, eta in self.routes.get(rider_id, []):
            e.route.stops.add(kind=k, order_id=oid, position=pb.LatLng(lat=31.2, lng=121.4), eta=ts_to_proto(eta))
        self.events.append(e)

    def _loop(self) -> None:
        import time

        while not self.stop.wait(self.tick):
            with self.lock:
                now = time.time()
                left = []
                for oid in self.pending:
                    riders = [r for r in sorted(self.online) if r not in self.refused_by[oid]]
                    if not riders:
                        left.append(oid)
                        continue
                    r = min(riders, key=lambda x: len(self.routes.get(x, [])))
                    route = self.routes.setdefault(r, [])
                    t = max([now] + [s[2] for s in route])
                    route += [(pb.STOP_KIND_PICKUP, oid, t + 0.2), (pb.STOP_KIND_DROPOFF, oid, t + 0.4)]
                    self.carrier[oid] = r
                    self._emit(pb.ASSIGNMENT_EVENT_KIND_ASSIGNED, oid, r, now)
                self.pending = left
                self.lock.notify_all()

    def SubmitOrders(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:  # noqa: N802
        for req in request_iterator:
            resp = pb.SubmitOrdersResponse()
            orders = [req.order, *req.orders] if req.HasField("order") else list(req.orders)
            self.batches.append(len(orders))
            for o in orders:  # one order, or a batch acknowledged in one message
                ack = resp.acks.add() if req.orders else resp
                ack.order_id = o.id
                if o.site_id not in self.site_ids or not (ts_from_proto(o.promised_by) > ts_from_proto(o.placed_at)):
                    ack.rejection.CopyFrom(
                        pb.Rejection(code=pb.REJECTION_CODE_INVALID_ARGUMENT, field="order", message="bad order")
                    )
                    continue
                with self.lock:
                    dup = o.id in self.known
                    if not dup:
                        self.known.add(o.id)
                        self.pending.append(o.id)
                    self.submitted += 1
                    cut = self.break_after is not None and self.submitted >= self.break_after
                    if cut:
                        self.break_after = None
                if cut:  # the order is in, its ack (and its batch's) is lost with the stream
                    context.abort(grpc.StatusCode.UNAVAILABLE, "stream cut after an accepted order")
                ack.accepted.CopyFrom(pb.SubmitOrderResponse(order=o, duplicate=dup))
            yield resp

    def ReportRiderEvents(self, request_iterator: Iterator[Any], context: Any) -> Any:  # noqa: N802
        accepted, rejections, i = 0, [], 0
        for batch in request_iterator:
            with self.lock:
                for e in batch.events:
                    why = self._apply(e)
                    if why:
                        self.refusals.append(why)
                        rej = pb.Rejection(code=pb.REJECTION_CODE_FAILED_PRECONDITION, message=why)
                        rejections.append(pb.RiderEventRejection(index=i, rider_id=e.rider_id, rejection=rej))
                    else:
                        accepted += 1
                        self.kinds[e.kind] += 1
                    i += 1
        return pb.ReportRiderEventsResponse(accepted=accepted, rejections=rejections)

    def _apply(self, e: pb.RiderEvent) -> str:
        r, oid, at = e.rider_id, e.order_id, ts_from_proto(e.at)
        if at < self.last_at.get(r, -1.0):
            self.backwards += 1
        self.last_at[r] = at
        if e.kind == pb.RIDER_EVENT_KIND_ONLINE:
            if not e.HasField("shift") or not e.HasField("position"):
                return "online without shift or position"
            self.online.add(r)
            self.ever_online.add(r)
            return ""
        if r not in self.online:
            return f"rider {r} is not online"
        route = self.routes.get(r, [])
        if e.kind == pb.RIDER_EVENT_KIND_OFFLINE:
            self.online.discard(r)
            self.went_offline.add(r)
        elif e.kind == pb.RIDER_EVENT_KIND_PICKED_UP:
            if not route or route[0][:2] != (pb.STOP_KIND_PICKUP, oid):
                return f"pickup of {oid} is not {r}'s next stop"
            route.pop(0)
            self.picked[oid] = r
        elif e.kind == pb.RIDER_EVENT_KIND_DELIVERED:
            if self.picked.get(oid) != r or not route or route[0][1] != oid:
                return f"{r} delivers {oid} it has not picked up"
            route.pop(0)
            self.delivered.add(oid)
        elif e.kind == pb.RIDER_EVENT_KIND_REJECTED:
            if oid in self.picked or self.carrier.get(oid) != r:
                return f"{r} rejects {oid} that it does not carry"
            self.routes[r] = [s for s in route if s[1] != oid]
            self.refused_by[oid].add(r)
            self.carrier.pop(oid)
            self.pending.append(oid)
            self._emit(pb.ASSIGNMENT_EVENT_KIND_UNASSIGNED, oid, r, at, pb.UNASSIGNED_REASON_REJECTED_BY_RIDER)
        elif e.kind == pb.RIDER_EVENT_KIND_LOCATION and not e.HasField("position"):
            return "location without position"
        return ""

    def WatchAssignments(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        nxt = max(request.from_sequence, 1)
        while context.is_active():
            with self.lock:
                self.lock.wait_for(lambda n=nxt: len(self.events) >= n or not context.is_active(), timeout=0.2)
                batch = self.events[nxt - 1 :]
            if batch:
                nxt += len(batch)
                yield pb.WatchAssignmentsResponse(events=batch)

    def GetOrder(self, request: Any, context: Any) -> Any:  # noqa: N802
        with self.lock:
            if request.order_id not in self.known:
                context.abort(grpc.StatusCode.NOT_FOUND, f"unknown order {request.order_id!r}")
        return pb.GetOrderResponse(order=pb.Order(id=request.order_id))

    def GetStats(self, request: Any, context: Any) -> Any:  # noqa: N802
        with self.lock:
            return pb.GetStatsResponse(site_ids=self.site_ids, last_sequence=len(self.events),
                                       riders_online=len(self.online))  # fmt: skip

    def GetParams(self, request: Any, context: Any) -> Any:  # noqa: N802
        p = pb.Params()
        p.dispatch.tick.FromNanoseconds(int(self.tick * 1e9))
        return pb.GetParamsResponse(params=p, version=1)

    def Quote(self, request: Any, context: Any) -> Any:  # noqa: N802
        opt = pb.QuoteOption(site_id=self.site_ids[0], promised_by=ts_to_proto(2e9), estimated_delivery=ts_to_proto(
            2e9 - 300), on_time_probability=0.95)  # fmt: skip
        opt.tier.FromSeconds(1800)
        return pb.QuoteResponse(quoted_at=ts_to_proto(2e9 - 1800), options=[opt])


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = daylogs.tiny_log(seed=3, n=300, m=12)
    # ready when placed, so that riders pick up at the fake's ETAs (a fraction of a second), not minutes later
    orders = dataclasses.replace(log.orders, ready_at=log.orders.placed_at.copy())
    out = tmp_path_factory.mktemp("replay") / "log"
    write_log(out, log.meta, log.sites, orders, log.riders)
    return out


@pytest.fixture()
def fake(log_dir: Path) -> Iterator[tuple[FakeDispatcher, str]]:
    log = daylogs.tiny_log(seed=3, n=300, m=12)
    servicer = FakeDispatcher([str(int(s)) for s in log.sites.site_id])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    pb_grpc.add_DispatchServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        servicer.stop.set()
        server.stop(grace=None)


def _connect(target: str) -> Any:
    return functools.partial(DispatchClient, target, insecure=True, timeout=5)


def _orders_in_window(log_dir: Path, start: str, speed: float, duration: float) -> int:
    from dispatch.sim.log import read_log

    log = read_log(log_dir)
    t0 = log.meta.day_start + parse_hhmm(start)
    p = log.orders.placed_at
    return int(np.count_nonzero((p >= t0) & (p < t0 + speed * duration)))


def test_replay_sends_the_window_and_every_acked_order_is_assigned_picked_up_and_delivered(
    log_dir: Path, fake: tuple[FakeDispatcher, str]
) -> None:
    servicer, target = fake
    opts = ReplayOptions(speed=1800.0, duration_s=2.0, start_s=parse_hhmm("11:30"), ping_s=120.0, drain_s=5.0,
                         id_prefix="t-")  # fmt: skip
    res = run_replay(log_dir, _connect(target), opts).to_dict()
    n = _orders_in_window(log_dir, "11:30", 1800.0, 2.0)
    assert n > 20
    for k in FIELDS:
        assert k in res
    assert res["orders_sent"] == res["orders_acked"] == res["orders_accepted"] == n
    assert res["unassigned_at_end"] == 0 and res["orders_assigned"] == n
    assert res["errors"] == {} and servicer.refusals == [] and servicer.backwards == 0
    assert 0 <= res["ack_ms_p50"] <= res["ack_ms_p99"] <= res["ack_ms_max"]
    assert res["ack_ms_p99"] <= res["due_to_ack_ms_p99"]  # each order is handed over once it is due, not before
    # the ack p99 per second of sending: one entry per wall second of the window, none above the overall max
    by_s = res["ack_ms_p99_by_s"]
    assert 2 <= len(by_s) <= 3 and res["window_start_epoch"] > 0
    assert all(v is None or 0 <= v <= res["ack_ms_max"] for v in by_s) and any(v is not None for v in by_s)
    assert 0 <= res["assign_ms_p50"] <= res["assign_ms_p99"] <= res["assign_ms_max"]
    assert res["orders_per_s"] > 0 and res["rider_events_per_s"] > 0
    assert res["riders_online_at_start"] == 12 and servicer.ever_online == {f"t-{i}" for i in range(5000, 5012)}
    # riders followed the routes to the end (the fake's ETAs are < 1 s ahead and the drain lasts until every order
    # is assigned, so most are delivered), and went offline at the end
    by_kind = res["rider_events_by_kind"]
    assert by_kind["picked_up"] == servicer.kinds[pb.RIDER_EVENT_KIND_PICKED_UP] > 0
    assert by_kind["delivered"] == len(servicer.delivered) > 0
    assert by_kind["location"] == servicer.kinds[pb.RIDER_EVENT_KIND_LOCATION] > 0
    assert servicer.went_offline == servicer.ever_online and servicer.online == set()


def test_replay_rejections_go_back_to_the_pool_and_are_reassigned(
    log_dir: Path, fake: tuple[FakeDispatcher, str]
) -> None:
    servicer, target = fake
    opts = ReplayOptions(speed=1800.0, duration_s=1.0, start_s=parse_hhmm("12:00"), ping_s=600.0, drain_s=5.0,
                         reject_rate=1.0, id_prefix="j-")  # fmt: skip
    res = run_replay(log_dir, _connect(target), opts).to_dict()
    n = res["orders_accepted"]
    assert n > 0 and res["unassigned_at_end"] == 0 and servicer.refusals == []
    # riders reject first assignments only (at most once per order), every rejection reaches the server as a
    # legal event, and a rejected order is never on the rejecting rider's route again
    rejected = {oid: rs for oid, rs in servicer.refused_by.items() if rs}
    assert res["rider_events_by_kind"]["rejected"] == servicer.kinds[pb.RIDER_EVENT_KIND_REJECTED] == len(rejected)
    assert len(rejected) > n // 2 and all(len(rs) == 1 for rs in rejected.values())
    assert all(servicer.carrier.get(oid) not in rs for oid, rs in rejected.items())


def test_order_streams_resend_unacknowledged_orders_after_the_stream_breaks(
    log_dir: Path, fake: tuple[FakeDispatcher, str]
) -> None:
    servicer, target = fake
    servicer.break_after = 10
    opts = ReplayOptions(speed=1800.0, duration_s=1.0, start_s=parse_hhmm("11:30"), ping_s=600.0, drain_s=5.0,
                         order_streams=1, batch_orders=1, id_prefix="b-", verify=True)  # fmt: skip
    res = run_replay(log_dir, _connect(target), opts).to_dict()
    n = _orders_in_window(log_dir, "11:30", 1800.0, 1.0)
    assert n > 10
    # the server's status, unless grpc.aio lost it to a write racing the end of the stream (then said so)
    lost = {"INTERNAL": [f"SubmitOrders: INTERNAL: {_LOST_STATUS}"]}
    assert res["errors"] == {"UNAVAILABLE": 1} or (res["errors"], res["error_samples"]) == ({"INTERNAL": 1}, lost)
    # the 10th order was accepted but its ack was lost: it was sent again and acknowledged as a duplicate
    assert res["orders_acked"] == res["orders_accepted"] == n and res["unassigned_at_end"] == 0
    assert servicer.submitted == n + 1 and len([o for o in servicer.known if o.startswith("b-")]) == n
    assert (res["verify_checked"], res["verify_missing"]) == (n, 0)


def test_batched_order_streams_ack_every_order_and_resend_a_broken_batch(
    log_dir: Path, fake: tuple[FakeDispatcher, str]
) -> None:
    servicer, target = fake
    servicer.break_after = 40
    # 10 simulated hours in 0.5 s: orders fall due faster than a stream writes, so messages carry several
    opts = ReplayOptions(speed=72000.0, duration_s=0.5, start_s=parse_hhmm("10:00"), ping_s=36000.0, drain_s=5.0,
                         order_streams=1, batch_orders=6, id_prefix="q-", verify=True)  # fmt: skip
    res = run_replay(log_dir, _connect(target), opts).to_dict()
    n = _orders_in_window(log_dir, "10:00", 72000.0, 0.5)
    assert n > 100 and res["batch_orders"] == 6
    # (not whether all were assigned: at this speed a shift lasts 0.4 s, so riders may be gone before the orders)
    assert res["orders_acked"] == res["orders_accepted"] == n
    assert (res["verify_checked"], res["verify_missing"]) == (n, 0)
    # the cut lost the acks of the 40th order's message: its orders went again (duplicates for those accepted)
    assert len([o for o in servicer.known if o.startswith("q-")]) == n and servicer.submitted > n
    # at most 6 orders a message, and several in some (at least while the stream opened, orders queued for it)
    assert 1 < max(servicer.batches) <= 6 and len(servicer.batches) <= res["order_messages"] < servicer.submitted


def test_replay_refuses_what_it_cannot_run(log_dir: Path, fake: tuple[FakeDispatcher, str], tmp_path: Path) -> None:
    _, target = fake
    with pytest.raises(ReplayError, match="no orders placed in the window 03:00-04:00"):
        run_replay(log_dir, _connect(target), ReplayOptions(speed=360.0, duration_s=10.0, start_s=3 * 3600.0))
    with pytest.raises(ReplayError, match="none of the log's sites"):
        other = FakeDispatcher(["zz"])
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_DispatchServiceServicer_to_server(other, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            run_replay(log_dir, _connect(f"127.0.0.1:{port}"), ReplayOptions(speed=600.0, duration_s=1.0))
        finally:
            other.stop.set()
            server.stop(grace=None)
    with pytest.raises(ReplayError, match="speed: must be a finite number > 0"):
        ReplayOptions(speed=0.0, duration_s=1.0)
    with pytest.raises(ReplayError, match="HH:MM"):
        parse_hhmm("noon")
    with pytest.raises(ReplayError, match="not a time of day"):
        parse_hhmm("24:10")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--speed", "0"], "must be a finite number > 0"),
        (["--speed", "10", "--start", "25:00"], "not a time of day"),
        (["--speed", "10", "--insecure", "--tls-ca", "x.pem"], "plaintext"),
        (["--speed", "10", "--token-file", "/nonexistent/token"], "cannot read"),
    ],
)
def test_replay_cli_usage_errors_are_one_line(
    log_dir: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["replay", str(log_dir), "--target", "127.0.0.1:1", *argv])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_replay_cli_json_and_quote_cli(
    log_dir: Path, fake: tuple[FakeDispatcher, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, target = fake
    argv = ["replay", str(log_dir), "--target", target, "--insecure", "--speed", "1800", "--duration", "1",
            "--start", "12:30", "--ping-s", "600", "--drain", "5", "--json", "--id-prefix", "c-"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr()
    res = json.loads(out.out)
    assert set(FIELDS) <= set(res) and res["orders_acked"] > 0 and res["unassigned_at_end"] == 0
    assert out.err == ""  # no progress lines with --json
    assert main(["quote", "--target", target, "--insecure", "--lat", "31.2", "--lng", "121.4", "--json"]) == 0
    q = json.loads(capsys.readouterr().out)
    assert q["options"][0]["tier_s"] == 1800.0 and q["options"][0]["promised_by"] == 2e9


def test_quote_and_stats_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["quote", "--target", "127.0.0.1:1", "--insecure", "--lat", "91", "--lng", "0"])
    assert "[-90, 90]" in capsys.readouterr().err
    code = main(["stats", "--target", "127.0.0.1:1", "--insecure", "--timeout", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "UNAVAILABLE" in err and "Traceback" not in err


def _real_server_available() -> bool:
    try:
        importlib.import_module("dispatch.service.server")
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _real_server_available(), reason="dispatch.service is not there")
def test_replay_end_to_end_against_the_real_server(tmp_path: Path) -> None:
    from dispatch.service.config import parse_config
    from dispatch.service.server import create_server

    log = daylogs.tiny_log(seed=5, n=200, m=60)
    orders = dataclasses.replace(log.orders, ready_at=log.orders.placed_at.copy())
    log_dir = write_log(tmp_path / "log", log.meta, log.sites, orders, log.riders)
    cfg = parse_config({"listen": "127.0.0.1:0", "journal": str(tmp_path / "journal.db"), "insecure": True,
                        "log_level": "warning", "sites": {"log_dir": str(log_dir)},
                        "dispatch": {"tick_s": 0.5, "hold_s": 0.0}})  # fmt: skip
    running = create_server(cfg)
    try:
        target = f"127.0.0.1:{running.port}"
        # a long drain limit: it ends as soon as every order is assigned, but the server's first ticks may compile
        # the dispatch kernels (numba) on a cold cache
        opts = ReplayOptions(speed=1800.0, duration_s=2.0, start_s=parse_hhmm("11:30"), ping_s=600.0, drain_s=90.0,
                             id_prefix="e2e-")  # fmt: skip
        res = run_replay(log_dir, _connect(target), opts).to_dict()
        n = _orders_in_window(log_dir, "11:30", 1800.0, 2.0)
        assert n > 20
        # no order refused; a rider event may race with a tick that moved its order (FAILED_PRECONDITION), rarely
        by_kind = res["rider_events_by_kind"]
        assert set(res["errors"]) <= {"FAILED_PRECONDITION"}, res["error_samples"]
        assert res["errors"].get("FAILED_PRECONDITION", 0) <= max(
            2, (by_kind["picked_up"] + by_kind["delivered"]) // 10
        )
        assert res["orders_sent"] == res["orders_acked"] == res["orders_accepted"] == n, res
        assert res["unassigned_at_end"] == 0 and res["orders_assigned"] == n, res  # every acked order was assigned
        assert 0 <= res["ack_ms_p50"] <= res["ack_ms_p99"] and 0 <= res["assign_ms_p50"] <= res["assign_ms_p99"]
        assert res["orders_per_s"] > 0 and res["rider_events_per_s"] > 0 and res["riders_online_at_start"] == 60
        with DispatchClient(target, insecure=True) as c:
            st = c.get_stats()
            assert sum(st.orders_by_state.values()) == n and st.riders_online == 0  # all sent offline at the end
            first = np.flatnonzero(orders.placed_at >= log.meta.day_start + parse_hhmm("11:30"))
            first_id = int(orders.order_id[first[np.argmin(orders.placed_at[first])]])
            got = c.get_order(f"e2e-{first_id}")
            assert got.order.site_id in {str(int(s)) for s in log.sites.site_id} and got.rider_id != ""
    finally:
        running.stop(grace=1.0)
