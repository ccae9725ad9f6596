"""The asyncio front end stops cleanly: a WatchAssignments (or Health.Watch) stream open or cancelled at stop leaves
no pool thread behind, so the process exits; a plain streaming handler blocked on its ended call is unblocked; and
the hub's coroutine reads (``Subscription.get_async``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import pytest
from svc_fixtures import make_config, online, order, report, running, wait_for

from dispatch.service.aio import AioServer
from dispatch.service.hub import Hub, SlowWatcherError
from dispatch.service.journal import Journal
from dispatch.v1 import dispatch_pb2 as pb

SRC = Path(__file__).resolve().parents[2] / "src"
HERE = Path(__file__).resolve().parent


def _assign_rounds(stub, rounds: int) -> None:
    """``rounds`` ticks that each assign one new order (one journal batch of events each)."""
    report(stub, online("r1"))
    for i in range(rounds):
        stub.SubmitOrder(pb.SubmitOrderRequest(order=order(f"o{i}")))
        wait_for(lambda i=i: stub.GetOrder(pb.GetOrderRequest(order_id=f"o{i}")).order.state == pb.ORDER_STATE_ASSIGNED)


def test_a_cancelled_watch_and_an_open_one_leave_no_pool_thread_at_stop(tmp_path: Path):
    cfg = make_config(tmp_path, grpc_server="aio")
    with running(cfg) as (srv, stub):
        _assign_rounds(stub, 4)
        last = stub.GetStats(pb.GetStatsRequest()).last_sequence
        assert last >= 4
        # A watcher that reads one batch of a long catch-up, then goes away (a threaded handler here kept
        # producing and blocked its pool thread for good).
        cancelled = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=1), timeout=20)
        first = next(cancelled)
        assert first.events[0].sequence == 1
        cancelled.cancel()
        # A live watcher that is still open when the server stops: its stream ends.
        live = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=0), timeout=20)
        wait_for(lambda: srv.hub.watchers >= 1)
        stub.SubmitOrder(pb.SubmitOrderRequest(order=order("late")))
        wait_for(lambda: srv.store.seq > last)
        got = next(live)
        assert got.events[0].sequence == last + 1
        wait_for(lambda: srv.server.busy_handlers == 0, timeout=5)
        srv.stop(grace=1.0)
        t0 = time.monotonic()
        list(live)  # the open stream ends with OK at the stop (it would raise DEADLINE_EXCEEDED after 20 s)
        assert time.monotonic() - t0 < 10
        server = srv.server
    assert isinstance(server, AioServer)
    assert server.join(15), "the aio server's pool or loop did not finish after stop"
    assert srv.hub.watchers == 0


def test_a_plain_streaming_handler_blocked_on_its_ended_call_is_unblocked_at_stop():
    def forever(request: bytes, context: grpc.ServicerContext):
        while True:  # never looks at the call: only the pool's way out can end it
            yield b"x" * 8
            time.sleep(0.001)

    server = AioServer(4, [], 16, [])
    handler = grpc.method_handlers_generic_handler("t.Forever", {"Run": grpc.unary_stream_rpc_method_handler(forever)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stream = channel.unary_stream("/t.Forever/Run")(b"", timeout=20)
        assert next(stream) == b"x" * 8
        stream.cancel()
        time.sleep(0.3)
        assert server.busy_handlers == 1  # blocked: grpc.aio waits for the loop to take an item nobody takes
    finally:
        channel.close()
        server.stop(0.5).wait()
    assert server.join(20), "the blocked handler thread was not released"
    assert server.busy_handlers == 0


def test_a_process_with_watch_streams_open_exits_after_stop(tmp_path: Path):
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(SRC)!r}, {str(HERE)!r}]
        from pathlib import Path
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        from svc_fixtures import make_config, online, order, report, running, wait_for
        from dispatch.v1 import dispatch_pb2 as pb
        from test_service_aio_stop import _assign_rounds

        with running(make_config(Path({str(tmp_path)!r}), grpc_server="aio")) as (srv, stub):
            _assign_rounds(stub, 3)
            gone = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=1), timeout=30)
            next(gone)
            gone.cancel()
            open_ = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=1), timeout=30)
            next(open_)
            health = health_pb2_grpc.HealthStub(__import__("grpc").insecure_channel(f"127.0.0.1:{{srv.port}}"))
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        print("stopped", flush=True)
        """
    )
    t0 = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the process did not exit within 90 s: {exc.stdout!r} {exc.stderr!r}") from None
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped" in done.stdout
    assert time.monotonic() - t0 < 90


def test_get_async_is_woken_by_a_put_from_another_thread_and_reports_overflow_and_wakes(tmp_path: Path):
    journal = Journal(str(tmp_path / "j.sqlite"), "normal", 100, None)
    hub = Hub(journal, 0, buffer=3)

    def batch(*seqs: int) -> pb.WatchAssignmentsResponse:
        return pb.WatchAssignmentsResponse(events=[pb.AssignmentEvent(sequence=s) for s in seqs])

    async def scenario() -> None:
        sub, last = hub.subscribe()
        assert last == 0
        assert await sub.get_async(0.01) is None  # nothing yet: times out
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, lambda: threading.Thread(target=sub.put, args=(batch(1, 2),)).start())
        got = await sub.get_async(5.0)
        assert got is not None and [e.sequence for e in got.events] == [1, 2]
        # a wake without an item returns None at once, well before the timeout
        loop.call_later(0.05, lambda: threading.Thread(target=hub.wake_all).start())
        t0 = time.monotonic()
        assert await sub.get_async(5.0) is None
        assert time.monotonic() - t0 < 4.0
        sub.put(batch(3, 4))
        sub.put(batch(5, 6))  # 4 events held > buffer 3
        with pytest.raises(SlowWatcherError):
            await sub.get_async(0.01)
        sub.close()
        assert hub.watchers == 0

    try:
        asyncio.run(scenario())
    finally:
        journal.close()
