"""dispatch.client against a fake server on port 0: conversions both ways, the error type, bearer metadata, and
WatchAssignments resuming after the server drops the stream."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from dispatch.client import (
    DispatchClient,
    DispatchError,
    Order,
    RiderEvent,
    Shift,
    dur_from_proto,
    dur_to_proto,
    params_from_proto,
    params_to_proto,
    ts_from_proto,
    ts_to_proto,
)
from dispatch.v1 import dispatch_pb2 as pb
from dispatch.v1 import dispatch_pb2_grpc as pb_grpc

TOKEN = "s3cret"
T0 = 1_750_000_000.25


def _ts(t: float) -> timestamp_pb2.Timestamp:
    return ts_to_proto(t)


def _event(seq: int) -> pb.AssignmentEvent:
    route = pb.Route(
        stops=[
            pb.Stop(kind=pb.STOP_KIND_PICKUP, order_id=f"o{seq}", position=pb.LatLng(lat=31.2, lng=121.4),
                    eta=_ts(T0 + seq), frozen=True),
            pb.Stop(kind=pb.STOP_KIND_DROPOFF, order_id=f"o{seq}", position=pb.LatLng(lat=31.3, lng=121.5),
                    eta=_ts(T0 + seq + 600)),
        ]
    )  # fmt: skip
    return pb.AssignmentEvent(
        sequence=seq, at=_ts(T0), kind=pb.ASSIGNMENT_EVENT_KIND_ASSIGNED, order_id=f"o{seq}", rider_id="r1",
        route=route,
    )  # fmt: skip


class FakeServicer(pb_grpc.DispatchServiceServicer):
    """Just enough of the service for the client's tests. ``drops``: how many WatchAssignments calls are cut after
    ``drop_after`` events (``drop_code`` None: the server just ends the stream)."""

    def __init__(self, n_events: int = 10) -> None:
        self.orders: dict[str, pb.Order] = {}
        self.events = [_event(s) for s in range(1, n_events + 1)]
        self.drops = 0
        self.drop_after = 3
        self.drop_code: grpc.StatusCode | None = grpc.StatusCode.UNAVAILABLE
        self.watch_calls: list[int] = []
        self.order_messages: list[int] = []  # orders in each SubmitOrders message received
        self.last_update: pb.UpdateParamsRequest | None = None
        self.lock = threading.Lock()

    def _auth(self, context: Any) -> None:
        md = dict(context.invocation_metadata())
        if md.get("authorization") != f"Bearer {TOKEN}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

    def _accept(self, o: pb.Order, context: Any) -> pb.SubmitOrderResponse | pb.Rejection:
        if o.size <= 0:
            return pb.Rejection(code=pb.REJECTION_CODE_INVALID_ARGUMENT, field="order.size", message="must be > 0")
        with self.lock:
            old = self.orders.get(o.id)
            if old is not None:
                return pb.SubmitOrderResponse(order=old, duplicate=True)
            held = pb.Order()
            held.CopyFrom(o)
            held.state = pb.ORDER_STATE_PENDING
            self.orders[o.id] = held
        return pb.SubmitOrderResponse(order=held)

    def SubmitOrder(self, request: pb.SubmitOrderRequest, context: Any) -> pb.SubmitOrderResponse:  # noqa: N802
        self._auth(context)
        r = self._accept(request.order, context)
        if isinstance(r, pb.Rejection):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{r.field}: {r.message}")
        return r

    def SubmitOrders(self, request_iterator: Iterator[pb.SubmitOrdersRequest], context: Any) -> Iterator[Any]:  # noqa: N802
        self._auth(context)
        for req in request_iterator:
            self.order_messages.append(len(req.orders) or 1)
            resp = pb.SubmitOrdersResponse()
            for o in [req.order] if not req.orders else req.orders:  # one order, or a batch (acks together)
                ack = resp.acks.add() if req.orders else resp
                ack.order_id = o.id
                r = self._accept(o, context)
                if isinstance(r, pb.Rejection):
                    ack.rejection.CopyFrom(r)
                else:
                    ack.accepted.CopyFrom(r)
            yield resp

    def CancelOrder(self, request: pb.CancelOrderRequest, context: Any) -> pb.CancelOrderResponse:  # noqa: N802
        self._auth(context)
        o = self.orders.get(request.order_id)
        if o is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id!r} is unknown")
        o.state = pb.ORDER_STATE_CANCELLED
        return pb.CancelOrderResponse(order=o)

    def GetOrder(self, request: pb.GetOrderRequest, context: Any) -> pb.GetOrderResponse:  # noqa: N802
        self._auth(context)
        o = self.orders.get(request.order_id)
        if o is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id!r} is unknown")
        return pb.GetOrderResponse(
            order=o, unassigned_reason=pb.UNASSIGNED_REASON_HELD_FOR_BATCHING, pickup_eta=_ts(T0 + 60)
        )

    def ReportRiderEvents(self, request_iterator: Iterator[Any], context: Any) -> pb.ReportRiderEventsResponse:  # noqa: N802
        self._auth(context)
        accepted, rejections, i = 0, [], 0
        for batch in request_iterator:
            for e in batch.events:
                if e.kind == pb.RIDER_EVENT_KIND_ONLINE and not e.HasField("shift"):
                    rej = pb.Rejection(code=pb.REJECTION_CODE_INVALID_ARGUMENT, field="shift", message="required")
                    rejections.append(pb.RiderEventRejection(index=i, rider_id=e.rider_id, rejection=rej))
                else:
                    accepted += 1
                i += 1
        return pb.ReportRiderEventsResponse(accepted=accepted, rejections=rejections)

    def WatchAssignments(self, request: pb.WatchAssignmentsRequest, context: Any) -> Iterator[Any]:  # noqa: N802
        self._auth(context)
        start = request.from_sequence
        with self.lock:
            self.watch_calls.append(start)
            drop = self.drops > 0
            self.drops -= 1
        if start > len(self.events) + 1:
            context.abort(grpc.StatusCode.OUT_OF_RANGE, f"from_sequence {start} is in the future")
        sent = 0
        for i in range(max(start, 1) - 1, len(self.events), 2):  # two events per message
            if drop and sent >= self.drop_after:
                if self.drop_code is None:
                    return
                context.abort(self.drop_code, "going away")
            yield pb.WatchAssignmentsResponse(events=self.events[i : i + 2])
            sent += len(self.events[i : i + 2])
        # then idle until the client goes away
        while context.is_active():
            threading.Event().wait(0.02)

    def Quote(self, request: pb.QuoteRequest, context: Any) -> pb.QuoteResponse:  # noqa: N802
        self._auth(context)
        if request.address.lat > 80:
            return pb.QuoteResponse(quoted_at=_ts(T0), decline_reason=pb.QUOTE_DECLINE_REASON_OUTSIDE_EVERY_ZONE)
        opt = pb.QuoteOption(
            site_id=request.site_id or "s1", promised_by=_ts(T0 + 1800), estimated_delivery=_ts(T0 + 1500),
            on_time_probability=0.97, tier=duration_pb2.Duration(seconds=1800), deferred=request.size > 2,
        )  # fmt: skip
        return pb.QuoteResponse(quoted_at=_ts(T0), options=[opt])

    def GetRider(self, request: pb.GetRiderRequest, context: Any) -> pb.GetRiderResponse:  # noqa: N802
        self._auth(context)
        shift = pb.RiderShift(start=_ts(T0), end=_ts(T0 + 8 * 3600), capacity=8, speed_factor=1.1)
        rider = pb.Rider(
            id=request.rider_id, status=pb.RIDER_STATUS_ONLINE, position=pb.LatLng(lat=31.0, lng=121.0),
            position_at=_ts(T0 + 5), shift=shift, route=self.events[0].route,
        )  # fmt: skip
        return pb.GetRiderResponse(rider=rider)

    def GetSite(self, request: pb.GetSiteRequest, context: Any) -> pb.GetSiteResponse:  # noqa: N802
        self._auth(context)
        if request.site_id == "poly":
            ring = [pb.LatLng(lat=0, lng=0), pb.LatLng(lat=0, lng=1), pb.LatLng(lat=1, lng=0)]
            zone = pb.ServiceZone(polygon=pb.Polygon(exterior=ring))
        else:
            zone = pb.ServiceZone(radius_m=3000.0)
        site = pb.Site(
            id=request.site_id, position=pb.LatLng(lat=31.23, lng=121.47),
            pickup_service=duration_pb2.Duration(seconds=90, nanos=500_000_000), zone=zone,
        )  # fmt: skip
        return pb.GetSiteResponse(site=site)

    def GetStats(self, request: pb.GetStatsRequest, context: Any) -> pb.GetStatsResponse:  # noqa: N802
        self._auth(context)
        return pb.GetStatsResponse(
            at=_ts(T0), site_ids=["s1", "s2"], riders_online=4, ticks=7, last_sequence=len(self.events),
            orders_by_state=[pb.OrderStateCount(state=pb.ORDER_STATE_PENDING, count=3)],
            last_tick_duration=duration_pb2.Duration(nanos=250_000_000),
        )  # fmt: skip

    def _params(self) -> pb.Params:
        p = pb.Params()
        p.dispatch.tick.CopyFrom(duration_pb2.Duration(seconds=15))
        p.dispatch.max_orders_per_rider = 5
        p.dispatch.trip_mode = pb.TRIP_MODE_SINGLE_SITE
        p.dispatch.routing.trigger = pb.ROUTING_TRIGGER_ON_ROUTE_CHANGE
        p.promise.mode = pb.PROMISE_MODE_TIERS
        p.promise.tiers.extend([duration_pb2.Duration(seconds=1800), duration_pb2.Duration(seconds=2700)])
        p.promise.min_on_time_probability = 0.9
        return p

    def GetParams(self, request: pb.GetParamsRequest, context: Any) -> pb.GetParamsResponse:  # noqa: N802
        self._auth(context)
        return pb.GetParamsResponse(params=self._params(), version=1)

    def UpdateParams(self, request: pb.UpdateParamsRequest, context: Any) -> pb.UpdateParamsResponse:  # noqa: N802
        self._auth(context)
        self.last_update = request
        p = self._params()
        if "dispatch.tick" in request.update_mask.paths:
            p.dispatch.tick.CopyFrom(request.params.dispatch.tick)
        return pb.UpdateParamsResponse(params=p, version=2)


@pytest.fixture()
def fake() -> Iterator[tuple[FakeServicer, str]]:
    servicer = FakeServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_DispatchServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@pytest.fixture()
def client(fake: tuple[FakeServicer, str]) -> Iterator[DispatchClient]:
    with DispatchClient(fake[1], token=TOKEN, insecure=True, timeout=5) as c:
        yield c


def _order(oid: str = "o1", size: int = 2) -> Order:
    return Order(oid, "s1", 31.25, 121.48, placed_at=T0, promised_by=T0 + 1800, ready_at=T0 + 300, size=size,
                 dropoff_service_s=90.5)  # fmt: skip


def test_submit_order_round_trips_every_field_and_reports_duplicates(client: DispatchClient) -> None:
    ack = client.submit_order(_order())
    assert ack.accepted and not ack.duplicate
    assert ack.order == Order("o1", "s1", 31.25, 121.48, T0, T0 + 1800, T0 + 300, 2, 90.5, state="pending")
    assert client.submit_order(_order()).duplicate
    # ready_at None stays unset on the wire and comes back None
    assert client.submit_order(Order("o2", "s1", 31.0, 121.0, T0, T0 + 600)).order.ready_at is None  # type: ignore[union-attr]


def test_a_failed_call_raises_dispatch_error_with_code_and_message(client: DispatchClient) -> None:
    with pytest.raises(DispatchError) as e:
        client.get_order("nope")
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert "'nope'" in e.value.message and e.value.method == "GetOrder"
    with pytest.raises(DispatchError) as e2:
        client.submit_order(_order(size=0))
    assert e2.value.code == grpc.StatusCode.INVALID_ARGUMENT and "order.size" in e2.value.message


def test_the_token_travels_as_bearer_metadata(fake: tuple[FakeServicer, str]) -> None:
    with DispatchClient(fake[1], insecure=True) as anon, pytest.raises(DispatchError) as e:
        anon.get_stats()
    assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    with DispatchClient(fake[1], token="wrong", insecure=True) as bad, pytest.raises(DispatchError) as e:
        bad.quote(31.0, 121.0)
    assert e.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_an_aio_channel_reaches_the_same_server_with_the_same_token(fake: tuple[FakeServicer, str]) -> None:
    async def submit(c: DispatchClient) -> pb.SubmitOrderResponse:
        async with c.aio_channel() as channel:
            stub = pb_grpc.DispatchServiceStub(channel)
            req = pb.SubmitOrderRequest(order=_order("aio-1").to_proto())
            return await stub.SubmitOrder(req, metadata=c.metadata, timeout=5)

    with DispatchClient(fake[1], token=TOKEN, insecure=True) as c:
        assert c.metadata == (("authorization", f"Bearer {TOKEN}"),)
        assert asyncio.run(submit(c)).order.id == "aio-1"
    assert "aio-1" in fake[0].orders
    with DispatchClient(fake[1], insecure=True) as anon, pytest.raises(grpc.RpcError) as e:
        asyncio.run(submit(anon))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_unreachable_server_is_unavailable() -> None:
    with DispatchClient("127.0.0.1:1", insecure=True, timeout=2) as c, pytest.raises(DispatchError) as e:
        c.get_stats()
    assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_bad_options_are_value_errors(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        DispatchClient("localhost")
    with pytest.raises(ValueError, match="plaintext"):
        DispatchClient("h:1", insecure=True, root_certificates=b"pem")
    with pytest.raises(ValueError, match="cannot read"):
        DispatchClient("h:1", root_certificates=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="both"):
        DispatchClient("h:1", certificate_chain=b"x")


def test_submit_orders_acks_each_order_in_order_with_rejections(client: DispatchClient) -> None:
    orders = [_order("a"), _order("b", size=0), _order("c"), _order("a")]
    acks = list(client.submit_orders(orders))
    assert [a.order_id for a in acks] == ["a", "b", "c", "a"]
    assert [a.accepted for a in acks] == [True, False, True, True]
    assert acks[1].rejection is not None and acks[1].rejection.code == "INVALID_ARGUMENT"
    assert acks[1].rejection.field == "order.size" and acks[1].order is None
    assert acks[3].duplicate and acks[2].order is not None and acks[2].order.state == "pending"


def test_submit_order_batches_sends_a_message_a_batch_and_yields_an_ack_an_order(
    fake: tuple[FakeServicer, str], client: DispatchClient
) -> None:
    batches = [[_order("a"), _order("b", size=0)], [_order("c")], [], [_order("a"), _order("d"), _order("e")]]
    acks = list(client.submit_order_batches(iter(batches)))
    assert [a.order_id for a in acks] == ["a", "b", "c", "a", "d", "e"]
    assert [a.accepted for a in acks] == [True, False, True, True, True, True]
    assert acks[1].rejection is not None and acks[1].rejection.field == "order.size"
    assert acks[3].duplicate and not acks[4].duplicate
    assert fake[0].order_messages == [2, 1, 3]  # (the empty batch is not sent: nothing to acknowledge)
    # the raw path takes a batch's acks out of their message too
    raw = list(client.submit_orders_raw([_order("f")]))
    assert [r.order_id for r in raw] == ["f"] and raw[0].WhichOneof("result") == "accepted"


def test_cancel_and_get_order(client: DispatchClient) -> None:
    client.submit_order(_order())
    st_ = client.get_order("o1")
    assert st_.order.id == "o1" and st_.unassigned_reason == "held_for_batching"
    assert st_.pickup_eta == pytest.approx(T0 + 60) and st_.dropoff_eta is None and st_.delivered_at is None
    assert client.cancel_order("o1", "customer").state == "cancelled"


def test_report_rider_events_counts_and_indexes_refusals(client: DispatchClient) -> None:
    shift = Shift(T0, T0 + 3600, 8, 1.2)
    batches = [
        [RiderEvent("r1", "online", T0, 31.0, 121.0, shift=shift), RiderEvent("r1", "location", T0 + 10, 31.0, 121.0)],
        [RiderEvent("r2", "online", T0, 31.0, 121.0), RiderEvent("r1", "picked_up", T0 + 20, order_id="o1")],
    ]
    res = client.report_rider_events(batches)
    assert res.accepted == 3
    assert len(res.rejections) == 1
    index, rider, rej = res.rejections[0]
    assert (index, rider, rej.code, rej.field) == (2, "r2", "INVALID_ARGUMENT", "shift")


def test_rider_event_to_proto_checks_kind_and_position() -> None:
    e = RiderEvent("r", "picked_up", T0, order_id="o").to_proto()
    assert e.kind == pb.RIDER_EVENT_KIND_PICKED_UP and not e.HasField("position")
    with pytest.raises(ValueError, match="unknown value 'teleport'"):
        RiderEvent("r", "teleport", T0).to_proto()
    with pytest.raises(ValueError, match="both lat and lng"):
        RiderEvent("r", "location", T0, lat=1.0).to_proto()


def _collect(watch: Any, n: int) -> list[Any]:
    out = []
    for ev in watch:
        out.append(ev)
        if len(out) == n:
            watch.cancel()
    return out


@pytest.mark.parametrize("drop_code", [grpc.StatusCode.UNAVAILABLE, None])
def test_watch_resumes_from_the_last_sequence_after_the_server_drops_the_stream(
    fake: tuple[FakeServicer, str], client: DispatchClient, drop_code: grpc.StatusCode | None
) -> None:
    servicer, _ = fake
    servicer.drops = 2
    servicer.drop_code = drop_code
    watch = client.watch_assignments(from_sequence=1, backoff_s=(0.01, 0.05))
    events = _collect(watch, 10)
    assert [e.sequence for e in events] == list(range(1, 11))  # none missed, none repeated
    assert servicer.watch_calls == [1, 5, 9]  # resumed from the last sequence seen + 1
    assert watch.reconnects == 2 and watch.last_sequence == 10
    e = events[0]
    assert (e.kind, e.order_id, e.rider_id, e.reason) == ("assigned", "o1", "r1", "")
    assert e.route is not None and [s.kind for s in e.route] == ["pickup", "dropoff"]
    assert e.route[0].frozen and e.route[1].eta == pytest.approx(T0 + 601)


def test_watch_without_resume_raises_and_out_of_range_is_not_retried(
    fake: tuple[FakeServicer, str], client: DispatchClient
) -> None:
    servicer, _ = fake
    servicer.drops = 1
    with pytest.raises(DispatchError) as e:
        list(client.watch_assignments(from_sequence=1, resume=False))
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(DispatchError) as e:
        list(client.watch_assignments(from_sequence=99))
    assert e.value.code == grpc.StatusCode.OUT_OF_RANGE
    assert servicer.watch_calls[-1] == 99 and servicer.watch_calls.count(99) == 1


def test_watch_live_only_starts_after_the_current_last_sequence(
    fake: tuple[FakeServicer, str], client: DispatchClient
) -> None:
    servicer, _ = fake
    watch = client.watch_assignments(from_sequence=0)
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.extend(watch))
    t.start()
    while not servicer.watch_calls:
        threading.Event().wait(0.01)
    watch.cancel()
    t.join(5)
    assert not t.is_alive()
    assert servicer.watch_calls == [11] and got == []


def test_quote_conversion_and_decline(client: DispatchClient) -> None:
    q = client.quote(31.2, 121.4, size=3, site_id="s9")
    assert q.quoted_at == pytest.approx(T0) and q.decline_reason == ""
    (o,) = q.options
    assert (o.site_id, o.tier_s, o.deferred, o.on_time_probability) == ("s9", 1800.0, True, 0.97)
    assert o.promised_by == pytest.approx(T0 + 1800) and o.estimated_delivery == pytest.approx(T0 + 1500)
    d = client.quote(89.0, 0.0)
    assert d.options == () and d.decline_reason == "outside_every_zone"


def test_get_rider_site_and_stats(client: DispatchClient) -> None:
    r = client.get_rider("r7")
    assert (r.id, r.status, r.lat, r.lng) == ("r7", "online", 31.0, 121.0)
    assert r.shift is not None and (r.shift.capacity, r.shift.speed_factor) == (8, pytest.approx(1.1))
    assert r.shift.end - r.shift.start == pytest.approx(8 * 3600) and len(r.route) == 2
    s = client.get_site("s1")
    assert (s.zone_radius_m, s.zone_polygon, s.pickup_service_s) == (3000.0, None, 90.5)
    p = client.get_site("poly")
    assert p.zone_radius_m is None and p.zone_polygon == ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0))
    stats = client.get_stats()
    assert stats.site_ids == ("s1", "s2") and stats.orders_by_state == {"pending": 3}
    assert (stats.riders_online, stats.ticks, stats.last_sequence, stats.last_tick_at) == (4, 7, 10, None)
    assert stats.last_tick_duration_s == pytest.approx(0.25)


def test_params_read_and_update_send_a_field_mask(fake: tuple[FakeServicer, str], client: DispatchClient) -> None:
    params, version = client.get_params()
    assert version == 1
    assert params["dispatch"]["tick"] == 15.0 and params["dispatch"]["trip_mode"] == "single_site"
    assert params["dispatch"]["routing"]["trigger"] == "on_route_change"
    assert params["promise"]["tiers"] == [1800.0, 2700.0] and params["promise"]["mode"] == "tiers"
    new, version = client.update_params({"dispatch": {"tick": 5.5}})
    assert version == 2 and new["dispatch"]["tick"] == 5.5
    sent = fake[0].last_update
    assert sent is not None and list(sent.update_mask.paths) == ["dispatch.tick"]
    with pytest.raises(ValueError, match=r"unknown field 'dispatch\.tik'"):
        client.update_params({"dispatch": {"tik": 5}})
    with pytest.raises(ValueError, match="unknown value 'zigzag'"):
        client.update_params({"dispatch": {"trip_mode": "zigzag"}})


def test_params_dict_round_trip() -> None:
    d = {"dispatch": {"tick": 2.5, "trip_mode": "mixed", "cost_weights": {"per_metre": 0.1}},
         "promise": {"tiers": [600.0, 1200.0], "mode": "slots"}}  # fmt: skip
    msg, mask = params_to_proto(d)
    assert sorted(mask) == ["dispatch.cost_weights.per_metre", "dispatch.tick", "dispatch.trip_mode",
                            "promise.mode", "promise.tiers"]  # fmt: skip
    back = params_from_proto(msg)
    assert back["dispatch"]["tick"] == 2.5 and back["dispatch"]["trip_mode"] == "mixed"
    assert back["dispatch"]["cost_weights"]["per_metre"] == 0.1 and back["promise"]["tiers"] == [600.0, 1200.0]


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_timestamp_round_trip(t: float) -> None:
    p = ts_to_proto(t)
    assert 0 <= p.nanos < 1_000_000_000
    assert abs(ts_from_proto(p) - t) <= 1e-6


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_duration_round_trip(s: float) -> None:
    assert abs(dur_from_proto(dur_to_proto(s)) - s) <= 1e-6
