"""dispatch.replay_orders: the replay's order streams in a child process (the end-to-end replays are in
test_replay.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import multiprocessing as mp
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest

from dispatch.client import DispatchClient, ts_from_proto
from dispatch.replay_orders import _LOST_STATUS, OrderPlan, OrderProcess, OrderSideError, _Sender, _Shared, _status
from dispatch.v1 import dispatch_pb2 as pb
from dispatch.v1 import dispatch_pb2_grpc as pb_grpc


def _plan(n: int = 3) -> OrderPlan:
    return OrderPlan(
        ids=[f"o{i}" for i in range(n)],
        site_ids=[str(7 + i) for i in range(n)],
        lat=np.linspace(31.2, 31.3, n),
        lng=np.linspace(121.4, 121.5, n),
        placed=np.array([1000.0 + 60 * i for i in range(n)]),
        ready_after=np.array([300.0 + i for i in range(n)]),
        promise_after=np.full(n, 3600.0),
        size=np.arange(1, n + 1, dtype=np.int64),
        service_drop=np.full(n, 90.0),
        sim_t0=1000.0,
        speed=60.0,
    )


def test_plan_compresses_arrivals_and_keeps_the_durations() -> None:
    plan = _plan()
    sched = plan.schedule(5000.0)
    assert sched.tolist() == [5000.0, 5001.0, 5002.0]  # 60 simulated seconds apart at speed 60
    o = plan.proto(2, float(sched[2]))
    assert (o.id, o.site_id, o.size) == ("o2", "9", 3)
    assert (o.dropoff.lat, o.dropoff.lng) == (31.3, 121.5)
    placed = ts_from_proto(o.placed_at)
    assert math.isclose(placed, 5002.0)
    assert math.isclose(ts_from_proto(o.ready_at) - placed, 302.0)
    assert math.isclose(ts_from_proto(o.promised_by) - placed, 3600.0)
    assert o.dropoff_service.seconds == 90


def test_a_connect_that_cannot_be_pickled_is_named() -> None:
    proc = OrderProcess(_plan(), lambda: DispatchClient("127.0.0.1:1", insecure=True), 1)
    with pytest.raises(OrderSideError, match="picklable"):
        proc.start()


def test_a_failure_in_the_child_comes_back_with_its_traceback() -> None:
    # a plan whose arrays are shorter than its ids fails in the child's scheduler, at the first order
    plan = dataclasses.replace(_plan(), lat=np.zeros(0))
    proc = OrderProcess(plan, functools.partial(DispatchClient, "127.0.0.1:1", insecure=True, timeout=1), 1)
    proc.start()
    assert np.isnan(proc.t_send).all() and proc.sent == 0
    proc.go(0.0, 0.1, 0.1)  # a clock in the past: every order is due at once
    with pytest.raises(OrderSideError, match="IndexError"):
        proc.result(60.0)


def _rpc(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


LOST = _rpc(grpc.StatusCode.INTERNAL, "Internal error from Core")  # what grpc.aio says after a failed local write
CUT = _rpc(grpc.StatusCode.UNAVAILABLE, "stream cut")


@pytest.mark.parametrize(
    ("writer", "reader", "want"),
    [
        (LOST, CUT, (grpc.StatusCode.UNAVAILABLE, "stream cut")),  # the reader has the server's status
        (CUT, LOST, (grpc.StatusCode.UNAVAILABLE, "stream cut")),  # the writer has it
        (asyncio.InvalidStateError("finished"), CUT, (grpc.StatusCode.UNAVAILABLE, "stream cut")),
        (LOST, LOST, (grpc.StatusCode.INTERNAL, _LOST_STATUS)),  # lost on both sides: said so
        (_rpc(grpc.StatusCode.INTERNAL, "server bug"), None, (grpc.StatusCode.INTERNAL, "server bug")),
        (asyncio.InvalidStateError("finished"), None, (grpc.StatusCode.UNAVAILABLE, "finished")),
    ],
)
def test_a_failed_stream_reports_the_servers_status_where_grpc_kept_it(
    writer: BaseException, reader: BaseException | None, want: tuple[grpc.StatusCode, str]
) -> None:
    async def run() -> tuple[grpc.StatusCode, str]:
        async def read() -> None:
            if reader is None:
                await asyncio.sleep(30)  # a reader that never ends: the writer's status after the wait
            else:
                raise reader

        task = asyncio.create_task(read())
        await asyncio.sleep(0)
        try:
            return await asyncio.wait_for(_status(writer, task), 5.0)
        finally:
            task.cancel()

    assert asyncio.run(run()) == want


class _Acker(pb_grpc.DispatchServiceServicer):
    """Acknowledges every order as accepted, in the form it came in; records the orders of each message. With
    ``old``, as a server that predates batches: it sees only ``order`` (a batch is a message without an order)."""

    def __init__(self) -> None:
        self.messages: list[list[str]] = []
        self.old = False

    def SubmitOrders(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        for req in request_iterator:
            if self.old:
                if not req.HasField("order"):
                    rej = pb.Rejection(code=pb.REJECTION_CODE_INVALID_ARGUMENT, field="order", message="required")
                    yield pb.SubmitOrdersResponse(rejection=rej)
                    continue
                req = pb.SubmitOrdersRequest(order=req.order)
            orders = [req.order, *req.orders] if req.HasField("order") else list(req.orders)
            self.messages.append([o.id for o in orders])
            resp = pb.SubmitOrdersResponse()
            for o in orders:
                ack = resp.acks.add() if req.orders else resp
                ack.order_id = o.id
                ack.accepted.order.CopyFrom(o)
            yield resp


@pytest.fixture()
def acker() -> Iterator[tuple[_Acker, Callable[[], DispatchClient]]]:
    """An ``_Acker`` on port 0, and a connect for it."""
    servicer = _Acker()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_DispatchServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, functools.partial(DispatchClient, f"127.0.0.1:{port}", insecure=True, timeout=5)
    finally:
        server.stop(grace=None)


@pytest.mark.parametrize(("batch", "streams", "expect"), [
    (8, 1, [[8, 8, 4]]),  # all 20 due at once: chunks of 8 on the one stream, a message each
    (8, 2, [[8, 4], [8]]),  # the chunks round robin over the streams
    (1, 1, [[1] * 20]),  # one order a message
    (32, 1, [[20]]),
])  # fmt: skip
def test_orders_due_together_go_in_messages_of_at_most_batch_orders(
    acker: tuple[_Acker, Callable[[], DispatchClient]], batch: int, streams: int, expect: list[list[int]]
) -> None:
    servicer, connect = acker
    n = 20
    plan = dataclasses.replace(_plan(n), placed=np.full(n, 1000.0))  # every order due at the window's start
    shared = _Shared.create(mp.get_context("spawn"), n)
    sender = _Sender(plan, connect, shared, streams, batch)
    sender.run(time.time(), 0.2, 5.0)
    # every order acknowledged once, in order within its stream; the messages as the batching rule makes them
    assert not np.isnan(shared.t_ack).any() and shared.accepted.all() and sender.errors.counts == {}
    got = sorted(servicer.messages, key=lambda m: int(m[0][1:]))
    assert [int(x[1:]) for m in got for x in m] == list(range(n))  # each message in order, none twice
    if streams == 1:
        assert servicer.messages == got  # one stream: the messages went in order
    by_stream: list[list[int]] = [[] for _ in range(streams)]
    for m in got:  # chunk c (of at most ``batch`` orders) went to stream c % streams
        by_stream[(int(m[0][1:]) // batch) % streams].append(len(m))
    assert by_stream == expect and sender.messages == len(got)


def test_a_linger_puts_the_orders_due_within_it_in_one_message(
    acker: tuple[_Acker, Callable[[], DispatchClient]],
) -> None:
    servicer, connect = acker
    n = 20
    # due 5 ms apart (speed 60: 0.3 simulated seconds), all within 100 ms; the scheduler wakes every 300 ms
    plan = dataclasses.replace(_plan(n), placed=1000.0 + 0.3 * np.arange(n))
    shared = _Shared.create(mp.get_context("spawn"), n)
    sender = _Sender(plan, connect, shared, 1, 64, linger_s=0.3)
    t0 = time.time()
    sender.run(t0, 0.6, 5.0)
    assert shared.accepted.all() and sender.errors.counts == {}
    # the first wake takes what is due at the start, the next (300 ms on) all the rest: at most two messages
    assert sum(len(m) for m in servicer.messages) == n and len(servicer.messages) <= 2
    assert (shared.t_send - plan.schedule(t0)).max() >= 0.15  # the first not taken at once waited for the linger


def test_acks_that_do_not_match_the_orders_sent_stop_the_stream_with_an_error(
    acker: tuple[_Acker, Callable[[], DispatchClient]],
) -> None:
    servicer, connect = acker
    servicer.old = True  # a server from before batches: a batch is a message with no order to it
    n = 20
    plan = dataclasses.replace(_plan(n), placed=np.full(n, 1000.0))
    shared = _Shared.create(mp.get_context("spawn"), n)
    sender = _Sender(plan, connect, shared, 1, 8)
    sender.run(time.time(), 0.2, 5.0)
    # the first ack (a refusal of "no order") is not for o0: nothing is taken as acknowledged, and the error says why
    assert np.isnan(shared.t_ack).all() and not shared.accepted.any()
    assert sender.errors.counts == {"INTERNAL": 1}
    (sample,) = sender.errors.samples["INTERNAL"]
    assert "acknowledged order '' where 'o0' was next" in sample and "--batch-orders 1" in sample
