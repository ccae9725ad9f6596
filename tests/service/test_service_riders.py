"""Rider events over real sockets: the life cycle of an order, rejections back to the pool, offline, refusals."""

from __future__ import annotations

import math
from pathlib import Path

import grpc
import pytest
from svc_fixtures import make_config, online, order, report, rider_event, running, wait_for

from dispatch.v1 import dispatch_pb2 as pb


def _state(stub, oid):
    return stub.GetOrder(pb.GetOrderRequest(order_id=oid))


def test_pickup_delivery_life_cycle(tmp_path: Path):
    with running(make_config(tmp_path)) as (_srv, stub):
        assert report(stub, online("r1")).accepted == 1
        stub.SubmitOrder(pb.SubmitOrderRequest(order=order("o1")))
        got = wait_for(lambda: (g := _state(stub, "o1")).order.state == pb.ORDER_STATE_ASSIGNED and g)
        assert got.rider_id == "r1" and got.HasField("pickup_eta") and got.HasField("dropoff_eta")
        # Delivered before picked up: refused, nothing changes.
        r = report(stub, rider_event("r1", pb.RIDER_EVENT_KIND_DELIVERED, "o1"))
        assert r.accepted == 0 and r.rejections[0].rejection.code == pb.REJECTION_CODE_FAILED_PRECONDITION
        assert _state(stub, "o1").order.state == pb.ORDER_STATE_ASSIGNED
        r = report(
            stub,
            rider_event("r1", pb.RIDER_EVENT_KIND_PICKED_UP, "o1"),
            rider_event("r1", pb.RIDER_EVENT_KIND_DELIVERED, "o1"),
        )
        assert r.accepted == 2 and not r.rejections
        done = _state(stub, "o1")
        assert done.order.state == pb.ORDER_STATE_DELIVERED
        assert done.HasField("picked_up_at") and done.HasField("delivered_at")
        assert not stub.GetRider(pb.GetRiderRequest(rider_id="r1")).rider.route.stops


def test_rejected_order_goes_back_to_the_pool_and_to_another_rider(tmp_path: Path):
    with running(make_config(tmp_path)) as (_srv, stub):
        report(stub, online("r1"))
        stub.SubmitOrder(pb.SubmitOrderRequest(order=order("o1")))
        wait_for(lambda: _state(stub, "o1").order.state == pb.ORDER_STATE_ASSIGNED)
        first = _state(stub, "o1").rider_id
        assert report(stub, rider_event(first, pb.RIDER_EVENT_KIND_REJECTED, "o1")).accepted == 1
        back = _state(stub, "o1")
        assert back.order.state in (pb.ORDER_STATE_PENDING, pb.ORDER_STATE_ASSIGNED)
        assert back.rider_id != first
        report(stub, online("r2", lat=31.2330, lng=121.4740))
        got = wait_for(lambda: (g := _state(stub, "o1")).order.state == pb.ORDER_STATE_ASSIGNED and g)
        assert got.rider_id == "r2"


def test_offline_rider_returns_orders_not_picked_up(tmp_path: Path):
    with running(make_config(tmp_path)) as (_srv, stub):
        report(stub, online("r1"))
        for oid in ("o1", "o2"):
            stub.SubmitOrder(pb.SubmitOrderRequest(order=order(oid)))
        wait_for(lambda: all(_state(stub, i).order.state == pb.ORDER_STATE_ASSIGNED for i in ("o1", "o2")))
        report(stub, rider_event("r1", pb.RIDER_EVENT_KIND_PICKED_UP, "o1"))
        r = report(stub, rider_event("r1", pb.RIDER_EVENT_KIND_OFFLINE))
        assert r.accepted == 1
        assert _state(stub, "o1").order.state == pb.ORDER_STATE_PICKED_UP
        assert _state(stub, "o2").order.state == pb.ORDER_STATE_PENDING
        rider = stub.GetRider(pb.GetRiderRequest(rider_id="r1")).rider
        assert rider.status == pb.RIDER_STATUS_OFFLINE
        assert [(s.order_id, s.kind) for s in rider.route.stops] == [("o1", pb.STOP_KIND_DROPOFF)]
        stats = stub.GetStats(pb.GetStatsRequest())
        assert stats.riders_online == 0


@pytest.mark.parametrize(
    ("event", "code", "field"),
    [
        (rider_event("ghost", pb.RIDER_EVENT_KIND_OFFLINE), pb.REJECTION_CODE_NOT_FOUND, "rider_id"),
        (rider_event("r1", pb.RIDER_EVENT_KIND_UNSPECIFIED), pb.REJECTION_CODE_INVALID_ARGUMENT, "kind"),
        (rider_event("r1", pb.RIDER_EVENT_KIND_LOCATION), pb.REJECTION_CODE_INVALID_ARGUMENT, "position"),
        (rider_event("r1", pb.RIDER_EVENT_KIND_PICKED_UP), pb.REJECTION_CODE_INVALID_ARGUMENT, "order_id"),
        (rider_event("r1", pb.RIDER_EVENT_KIND_PICKED_UP, "nope"), pb.REJECTION_CODE_NOT_FOUND, "order_id"),
        (rider_event("", pb.RIDER_EVENT_KIND_OFFLINE), pb.REJECTION_CODE_INVALID_ARGUMENT, "rider_id"),
    ],
)
def test_refused_events_are_reported_by_index_and_the_rest_applied(tmp_path: Path, event, code, field):
    with running(make_config(tmp_path), start_loop=False) as (_srv, stub):
        first = online("r1")
        loc = rider_event("r1", pb.RIDER_EVENT_KIND_LOCATION, now=first.at.seconds + 1.0)
        loc.position.lat, loc.position.lng = 31.2400, 121.4800
        r = report(stub, first, event, loc)
        assert r.accepted == 2
        assert [x.index for x in r.rejections] == [1]
        assert r.rejections[0].rejection.code == code
        assert r.rejections[0].rejection.field == field
        assert stub.GetRider(pb.GetRiderRequest(rider_id="r1")).rider.position.lat == pytest.approx(31.24)


def test_bad_positions_and_shifts_are_named(tmp_path: Path):
    with running(make_config(tmp_path), start_loop=False) as (srv, stub):
        bad_nan = online("r1")
        bad_nan.position.lng = math.nan
        bad_cap = online("r2", capacity=0)
        bad_end = online("r3")
        bad_end.shift.end.CopyFrom(bad_end.shift.start)
        far = online("r4", lat=39.90, lng=116.40)  # nearest site (Beijing) is not owned here
        r = report(stub, bad_nan, bad_cap, bad_end, far)
        assert r.accepted == 0
        got = [(x.index, x.rejection.field, x.rejection.code) for x in r.rejections]
        assert got == [
            (0, "position.lng", pb.REJECTION_CODE_INVALID_ARGUMENT),
            (1, "shift.capacity", pb.REJECTION_CODE_INVALID_ARGUMENT),
            (2, "shift.end", pb.REJECTION_CODE_INVALID_ARGUMENT),
            (3, "position", pb.REJECTION_CODE_FAILED_PRECONDITION),
        ]
        assert not srv.store.riders


def test_pinned_orders_go_to_their_rider_or_wait(tmp_path: Path):
    with running(make_config(tmp_path)) as (_srv, stub):
        report(stub, online("near"), online("far", lat=31.2500, lng=121.5000))
        pinned = order("p-1")
        pinned.pinned_rider_id = "far"
        stub.SubmitOrder(pb.SubmitOrderRequest(order=pinned))
        got = wait_for(lambda: (g := _state(stub, "p-1")).order.state == pb.ORDER_STATE_ASSIGNED and g)
        assert got.rider_id == "far"
        report(stub, rider_event("far", pb.RIDER_EVENT_KIND_REJECTED, "p-1"))
        report(stub, rider_event("far", pb.RIDER_EVENT_KIND_OFFLINE))
        again = order("p-2")
        again.pinned_rider_id = "far"
        stub.SubmitOrder(pb.SubmitOrderRequest(order=again))
        wait_for(lambda: _state(stub, "p-2").unassigned_reason == pb.UNASSIGNED_REASON_PINNED_RIDER_UNAVAILABLE)
        assert _state(stub, "p-2").order.state == pb.ORDER_STATE_PENDING


def test_oversized_event_message_is_invalid_argument_after_the_earlier_ones(tmp_path: Path):
    with running(make_config(tmp_path, limits={"max_events_per_message": 3}), start_loop=False) as (srv, stub):
        first = pb.ReportRiderEventsRequest(events=[online("r1")])
        big = pb.ReportRiderEventsRequest(events=[online(f"x{i}") for i in range(4)])
        with pytest.raises(grpc.RpcError) as ei:
            stub.ReportRiderEvents(iter([first, big]))
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ei.value.details().startswith("events:") and "1 earlier events accepted" in ei.value.details()
        assert set(srv.store.riders) == {"r1"}


def test_rider_positions_survive_a_restart(tmp_path: Path):
    cfg = make_config(tmp_path)
    first = online("r1")
    moves = []
    for dt, lat in ((1.0, 31.2400), (2.0, 31.2410), (0.5, 31.2000)):  # the last fix is older: ignored
        e = rider_event("r1", pb.RIDER_EVENT_KIND_LOCATION, now=first.at.seconds + dt)
        e.position.lat, e.position.lng = lat, 121.4800
        moves.append(e)
    with running(cfg, start_loop=False) as (srv, stub):
        assert report(stub, first, *moves).accepted == 4
        before = srv.store.riders["r1"]
        assert before.lat == pytest.approx(31.2410)
        xy = (before.x, before.y)
    with running(cfg, start_loop=False) as (srv, stub):
        after = srv.store.riders["r1"]
        assert (after.lat, after.lng) == (pytest.approx(31.2410), pytest.approx(121.48))
        assert (after.x, after.y) == (pytest.approx(xy[0]), pytest.approx(xy[1]))
        assert stub.GetRider(pb.GetRiderRequest(rider_id="r1")).rider.status == pb.RIDER_STATUS_ONLINE
