"""Both gRPC front ends (``grpc_server = "threads"``, the default, and ``"aio"``) answer the hot calls alike:
acknowledgements after the journal, statuses and per-item rejections, the assignment stream; and the journal's
asyncio wait."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from svc_fixtures import make_config, online, order, report, running, wait_for

from dispatch.service.journal import ORDER, Journal, JournalError
from dispatch.v1 import dispatch_pb2 as pb


@pytest.mark.parametrize("front", ["aio", "threads"])
def test_the_hot_calls_behave_the_same_on_both_front_ends(tmp_path: Path, front: str):
    cfg = make_config(tmp_path, grpc_server=front, limits={"max_events_per_message": 3})
    now = time.time()
    with running(cfg) as (srv, stub):
        # unary: acknowledged once journaled; a retry is a duplicate; a bad order gets its status
        got = stub.SubmitOrder(pb.SubmitOrderRequest(order=order("u-1", now=now)))
        assert got.order.id == "u-1" and not got.duplicate
        assert srv.journal._committed >= srv.store.orders["u-1"].ticket > 0
        assert stub.SubmitOrder(pb.SubmitOrderRequest(order=order("u-1", now=now))).duplicate
        with pytest.raises(grpc.RpcError) as ei:
            stub.SubmitOrder(pb.SubmitOrderRequest(order=order("u-2", site="nowhere")))
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND and "order.site_id" in ei.value.details()
        # stream: one answer per order, in order, a refusal as a rejection without ending the stream
        reqs = [pb.SubmitOrdersRequest(order=order(f"s-{i}", site="nowhere" if i == 2 else "s1")) for i in range(5)]
        acks = list(stub.SubmitOrders(iter(reqs)))
        assert [a.order_id for a in acks] == [f"s-{i}" for i in range(5)]
        assert [a.WhichOneof("result") for a in acks] == ["accepted"] * 2 + ["rejection"] + ["accepted"] * 2
        assert acks[2].rejection.field == "order.site_id"
        # rider events: a refused event by its index, the rest applied; an oversized message fails the call
        bad = online("r-bad", lat=95.0)
        res = report(stub, online("r-1"), bad, online("r-2"))
        assert res.accepted == 2 and [r.index for r in res.rejections] == [1]
        with pytest.raises(grpc.RpcError) as ei:
            stub.ReportRiderEvents(
                iter([pb.ReportRiderEventsRequest(events=[online("r-3")]),
                      pb.ReportRiderEventsRequest(events=[online(f"r-{i}") for i in range(4, 8)])])
            )  # fmt: skip
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "1 earlier events accepted" in ei.value.details()
        assert "r-3" in srv.store.riders
        # the assignment stream carries the tick's assignments
        wait_for(lambda: srv.store.orders["u-1"].state == pb.ORDER_STATE_ASSIGNED)
        stream = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=1), timeout=10)
        seen = set()
        for batch in stream:
            seen.update(e.order_id for e in batch.events if e.kind == pb.ASSIGNMENT_EVENT_KIND_ASSIGNED)
            if "u-1" in seen:
                break
        stream.cancel()
        assert "u-1" in seen


def test_journal_wait_async_completes_at_the_commit(tmp_path: Path):
    journal = Journal(str(tmp_path / "j.sqlite"), "normal")

    async def scenario() -> tuple[bool, float]:
        ticket = journal.append(ORDER, b"x")
        fut = journal.wait_async(ticket)
        assert fut is not None and not fut.done()  # the writer has not started yet
        t0 = time.perf_counter()
        journal.start()
        await asyncio.wait_for(fut, 10.0)
        return journal.wait_async(ticket) is None, time.perf_counter() - t0

    try:
        again_none, _ = asyncio.run(scenario())
    finally:
        journal.close()
    assert again_none  # once committed, no future is needed


def test_journal_wait_async_fails_when_the_journal_cannot_write(tmp_path: Path):
    journal = Journal(str(tmp_path / "j.sqlite"), "normal")

    journal.start()
    journal._db.execute("DROP TABLE journal")  # the writer's next insert fails

    async def scenario() -> None:
        ticket = journal.append(ORDER, b"x")
        fut = journal.wait_async(ticket)
        assert fut is not None
        await asyncio.wait_for(fut, 10.0)

    with pytest.raises(JournalError):
        asyncio.run(scenario())
    with pytest.raises(JournalError):
        journal.wait_async(10**9)
    journal.close()


@pytest.mark.parametrize("front", ["aio", "threads"])
def test_the_server_side_ack_time_is_observed_once_per_accepted_order(tmp_path: Path, front: str):
    with running(make_config(tmp_path, grpc_server=front)) as (srv, stub):
        stub.SubmitOrder(pb.SubmitOrderRequest(order=order("m-1")))
        reqs = [pb.SubmitOrdersRequest(order=order(f"m-s{i}", site="nowhere" if i == 1 else "s1")) for i in range(4)]
        assert len(list(stub.SubmitOrders(iter(reqs)))) == 4
        with pytest.raises(grpc.RpcError):
            stub.SubmitOrder(pb.SubmitOrderRequest(order=order("m-2", site="nowhere")))
        count = srv.metrics.registry.get_sample_value("dispatch_ack_seconds_count")
        total = srv.metrics.registry.get_sample_value("dispatch_ack_seconds_sum")
        assert count == 4  # 1 unary + 3 of the stream's 4 (the refused ones are not acks)
        assert total is not None and 0.0 < total < 30.0
