"""Orders over real sockets: acceptance, idempotency, bad input (each named), cancel, the stream, overload."""

from __future__ import annotations

import math
import time
from pathlib import Path

import grpc
import pytest
from svc_fixtures import make_config, online, order, report, rider_event, running, wait_for

from dispatch.v1 import dispatch_pb2 as pb


def _code(stub, req):
    with pytest.raises(grpc.RpcError) as ei:
        stub.SubmitOrder(req)
    return ei.value.code(), ei.value.details()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = make_config(tmp_path_factory.mktemp("orders"))
    with running(cfg, start_loop=False) as (srv, stub):
        yield srv, stub


def test_submit_is_idempotent_and_conflicts_are_already_exists(server):
    _srv, stub = server
    o = order("idem-1")
    first = stub.SubmitOrder(pb.SubmitOrderRequest(order=o))
    assert not first.duplicate
    assert first.order.state == pb.ORDER_STATE_PENDING
    again = stub.SubmitOrder(pb.SubmitOrderRequest(order=o))
    assert again.duplicate
    assert again.order == first.order
    other = pb.Order()
    other.CopyFrom(o)
    other.size = 2
    code, details = _code(stub, pb.SubmitOrderRequest(order=other))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert "idem-1" in details
    assert stub.GetOrder(pb.GetOrderRequest(order_id="idem-1")).order.size == 1


def _bad(field_setter):
    o = order("bad-x")
    field_setter(o)
    return o


@pytest.mark.parametrize(
    ("mutate", "code", "field"),
    [
        (lambda o: setattr(o.dropoff, "lat", math.nan), grpc.StatusCode.INVALID_ARGUMENT, "order.dropoff.lat"),
        (lambda o: setattr(o.dropoff, "lng", math.inf), grpc.StatusCode.INVALID_ARGUMENT, "order.dropoff.lng"),
        (lambda o: setattr(o.dropoff, "lat", 91.0), grpc.StatusCode.INVALID_ARGUMENT, "order.dropoff.lat"),
        (lambda o: o.ClearField("dropoff"), grpc.StatusCode.INVALID_ARGUMENT, "order.dropoff"),
        (lambda o: setattr(o, "size", 0), grpc.StatusCode.INVALID_ARGUMENT, "order.size"),
        (lambda o: setattr(o, "size", -3), grpc.StatusCode.INVALID_ARGUMENT, "order.size"),
        (lambda o: setattr(o, "id", ""), grpc.StatusCode.INVALID_ARGUMENT, "order.id"),
        (lambda o: o.promised_by.CopyFrom(o.placed_at), grpc.StatusCode.INVALID_ARGUMENT, "order.promised_by"),
        (
            lambda o: setattr(o.promised_by, "seconds", o.placed_at.seconds - 60),
            grpc.StatusCode.INVALID_ARGUMENT,
            "order.promised_by",
        ),
        (lambda o: o.ClearField("placed_at"), grpc.StatusCode.INVALID_ARGUMENT, "order.placed_at"),
        (lambda o: setattr(o.placed_at, "nanos", -1), grpc.StatusCode.INVALID_ARGUMENT, "order.placed_at"),
        (
            lambda o: setattr(o.ready_at, "seconds", o.placed_at.seconds - 10),
            grpc.StatusCode.INVALID_ARGUMENT,
            "order.ready_at",
        ),
        (
            lambda o: setattr(o.dropoff_service, "seconds", -5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "order.dropoff_service",
        ),
        (lambda o: setattr(o, "site_id", "nowhere"), grpc.StatusCode.NOT_FOUND, "order.site_id"),
        (lambda o: setattr(o, "site_id", "bj"), grpc.StatusCode.FAILED_PRECONDITION, "order.site_id"),
        (lambda o: setattr(o, "pinned_rider_id", "ghost"), grpc.StatusCode.NOT_FOUND, "order.pinned_rider_id"),
        (lambda o: setattr(o.dropoff, "lat", 0.0), grpc.StatusCode.INVALID_ARGUMENT, "order.dropoff"),
    ],
)
def test_bad_orders_get_a_status_naming_the_field_and_change_nothing(server, mutate, code, field):
    _srv, stub = server
    before = stub.GetStats(pb.GetStatsRequest())
    got, details = _code(stub, pb.SubmitOrderRequest(order=_bad(mutate)))
    assert got == code
    assert details.startswith(field + ":"), details
    with pytest.raises(grpc.RpcError) as ei:
        stub.GetOrder(pb.GetOrderRequest(order_id="bad-x"))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    after = stub.GetStats(pb.GetStatsRequest())
    assert after.orders_by_state == before.orders_by_state


def test_missing_order_and_oversized_message_are_invalid_argument(server):
    _srv, stub = server
    code, details = _code(stub, pb.SubmitOrderRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("order:")
    big = order("big-1")
    big.pinned_rider_id = "x" * 1_100_000  # over the 1 MiB message limit
    code, details = _code(stub, pb.SubmitOrderRequest(order=big))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("order:") and "exceeds" in details


def test_cancel_pending_then_idempotent_and_unknown(server):
    _srv, stub = server
    stub.SubmitOrder(pb.SubmitOrderRequest(order=order("c-1")))
    got = stub.CancelOrder(pb.CancelOrderRequest(order_id="c-1", reason="customer"))
    assert got.order.state == pb.ORDER_STATE_CANCELLED
    again = stub.CancelOrder(pb.CancelOrderRequest(order_id="c-1"))
    assert again.order.state == pb.ORDER_STATE_CANCELLED
    with pytest.raises(grpc.RpcError) as ei:
        stub.CancelOrder(pb.CancelOrderRequest(order_id="c-unknown"))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as ei:
        stub.CancelOrder(pb.CancelOrderRequest(order_id=""))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_submit_orders_stream_acks_each_in_order(server):
    _srv, stub = server
    good = [order(f"st-{i}") for i in range(50)]
    bad = order("st-bad")
    bad.size = 0
    reqs = [pb.SubmitOrdersRequest(order=o) for o in good[:25]] + [pb.SubmitOrdersRequest(order=bad)]
    reqs += [pb.SubmitOrdersRequest(order=o) for o in good[25:]] + [pb.SubmitOrdersRequest(order=good[0])]
    acks = list(stub.SubmitOrders(iter(reqs)))
    assert [a.order_id for a in acks] == [r.order.id for r in reqs]
    assert acks[25].WhichOneof("result") == "rejection"
    assert acks[25].rejection.code == pb.REJECTION_CODE_INVALID_ARGUMENT
    assert acks[25].rejection.field == "order.size"
    assert all(a.WhichOneof("result") == "accepted" for i, a in enumerate(acks) if i != 25)
    assert acks[-1].accepted.duplicate and not acks[0].accepted.duplicate


@pytest.mark.parametrize("front", ["threads", "aio"])
def test_a_batch_message_is_acknowledged_order_by_order_in_one_response(tmp_path: Path, front: str):
    cfg = make_config(tmp_path, grpc_server=front, limits={"max_message_bytes": 4096, "max_orders_per_message": 10})
    with running(cfg, start_loop=False) as (srv, stub):
        now = time.time()
        stub.SubmitOrder(pb.SubmitOrderRequest(order=order("b-old", now=now)))
        bad = order("b-bad")
        bad.size = 0
        clash = order("b-old", now=now, size=3)  # a different order under an accepted id
        batch = [order("b-0"), bad, order("b-1"), order("b-old", now=now), clash, order("b-2", site="nowhere")]
        reqs = [
            pb.SubmitOrdersRequest(order=order("one-0")),  # the one-order form, between batches
            pb.SubmitOrdersRequest(orders=batch),
            pb.SubmitOrdersRequest(order=order("b-first"), orders=[order("b-3")]),  # `order` leads the batch
            pb.SubmitOrdersRequest(orders=[order(f"big-{i}") for i in range(80)]),  # over 4 KiB: all refused
            pb.SubmitOrdersRequest(orders=[order(f"many-{i}") for i in range(11)]),  # over 10 orders: all refused
        ]
        assert reqs[3].ByteSize() > 4096 > max(reqs[1].ByteSize(), reqs[4].ByteSize())
        got = []
        for resp in stub.SubmitOrders(iter(reqs)):  # each accepted order is committed when its ack arrives
            for a in resp.acks or [resp]:
                if a.WhichOneof("result") == "accepted":
                    assert srv.journal._committed >= srv.store.orders[a.order_id].ticket > 0
            got.append(resp)
        assert len(got) == 5  # one response per request message
        assert got[0].order_id == "one-0" and got[0].WhichOneof("result") == "accepted" and not got[0].acks
        acks = got[1].acks
        assert got[1].order_id == "" and got[1].WhichOneof("result") is None
        assert [a.order_id for a in acks] == [o.id for o in batch]
        assert [a.WhichOneof("result") for a in acks] == ["accepted", "rejection", "accepted", "accepted",
                                                          "rejection", "rejection"]  # fmt: skip
        assert (acks[1].rejection.code, acks[1].rejection.field) == (pb.REJECTION_CODE_INVALID_ARGUMENT, "order.size")
        assert acks[3].accepted.duplicate and not acks[0].accepted.duplicate
        assert acks[4].rejection.code == pb.REJECTION_CODE_ALREADY_EXISTS
        assert (acks[5].rejection.code, acks[5].rejection.field) == (pb.REJECTION_CODE_NOT_FOUND, "order.site_id")
        assert acks[0].accepted.order.state == pb.ORDER_STATE_PENDING and not any(a.acks for a in acks)
        assert acks[0].accepted.order.promised_by == batch[0].promised_by
        assert [a.order_id for a in got[2].acks] == ["b-first", "b-3"]
        assert all(a.WhichOneof("result") == "accepted" for a in got[2].acks)
        big = got[3].acks
        assert len(big) == 80 and {(a.rejection.code, a.rejection.field) for a in big} == {
            (pb.REJECTION_CODE_INVALID_ARGUMENT, "orders")
        }
        many = got[4].acks
        assert [a.order_id for a in many] == [f"many-{i}" for i in range(11)]
        assert all(a.rejection.field == "orders" and "at most 10" in a.rejection.message for a in many)
        # every accepted order is journaled before its ack; a refused one changed nothing
        for oid in ("one-0", "b-0", "b-1", "b-first", "b-3"):
            assert srv.journal._committed >= srv.store.orders[oid].ticket > 0
        assert srv.store.orders["b-old"].proto.size == 1
        assert not any(oid in srv.store.orders for oid in ("b-bad", "b-2", "big-0", "big-79", "many-0"))


def test_overload_is_resource_exhausted(tmp_path: Path):
    cfg = make_config(tmp_path, limits={"max_pending_orders": 3})
    with running(cfg, start_loop=False) as (srv, stub):
        for i in range(3):
            stub.SubmitOrder(pb.SubmitOrderRequest(order=order(f"ov-{i}")))
        code, _details = _code(stub, pb.SubmitOrderRequest(order=order("ov-3")))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        acks = list(stub.SubmitOrders(iter([pb.SubmitOrdersRequest(order=order("ov-4"))])))
        assert acks[0].rejection.code == pb.REJECTION_CODE_RESOURCE_EXHAUSTED
        # A retry of an accepted order is still answered.
        assert stub.SubmitOrder(pb.SubmitOrderRequest(order=srv.store.orders["ov-0"].proto)).duplicate


def test_assigned_order_cancel_is_announced_and_picked_up_cannot_be_cancelled(tmp_path: Path):
    cfg = make_config(tmp_path)
    with running(cfg) as (_srv, stub):
        report(stub, online("r1"))
        stub.SubmitOrder(pb.SubmitOrderRequest(order=order("a-1")))
        stub.SubmitOrder(pb.SubmitOrderRequest(order=order("a-2")))
        wait_for(lambda: all(
            stub.GetOrder(pb.GetOrderRequest(order_id=i)).order.state == pb.ORDER_STATE_ASSIGNED for i in ("a-1", "a-2")
        ))  # fmt: skip
        got = stub.CancelOrder(pb.CancelOrderRequest(order_id="a-1"))
        assert got.order.state == pb.ORDER_STATE_CANCELLED
        rider = stub.GetRider(pb.GetRiderRequest(rider_id="r1")).rider
        assert "a-1" not in {s.order_id for s in rider.route.stops}
        events = list(_drain(stub))
        cancel = [e for e in events if e.order_id == "a-1" and e.kind == pb.ASSIGNMENT_EVENT_KIND_UNASSIGNED]
        assert cancel and cancel[-1].reason == pb.UNASSIGNED_REASON_CANCELLED and cancel[-1].rider_id == "r1"
        r = report(stub, rider_event("r1", pb.RIDER_EVENT_KIND_PICKED_UP, "a-2"))
        assert r.accepted == 1, r
        with pytest.raises(grpc.RpcError) as ei:
            stub.CancelOrder(pb.CancelOrderRequest(order_id="a-2"))
        assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def _drain(stub, timeout: float = 1.0):
    last = stub.GetStats(pb.GetStatsRequest()).last_sequence
    stream = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=1))
    t = time.monotonic() + 10
    for batch in stream:
        yield from batch.events
        if batch.events[-1].sequence >= last or time.monotonic() > t:
            break
    stream.cancel()
