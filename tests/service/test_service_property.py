"""Property: random field values never crash the server; every answer is a status, and a refusal changes nothing."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_fixtures import make_config, online, report, running

from dispatch.v1 import dispatch_pb2 as pb

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
NANOS = st.one_of(st.integers(min_value=0, max_value=999_999_999), INT32)
NOW = 1_800_000_000
SECONDS = st.one_of(st.integers(min_value=NOW - 10_000, max_value=NOW + 10_000), INT64)
DEG = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=31.2, max_value=31.3),
                st.floats(min_value=121.4, max_value=121.5))  # fmt: skip
IDS = st.one_of(st.sampled_from(["", "s1", "s2", "bj", "r1", "p-1"]), st.text(max_size=140))
ALLOWED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
}


@st.composite
def orders(draw) -> pb.Order:
    o = pb.Order(
        id=draw(IDS), site_id=draw(IDS), size=draw(INT32), pinned_rider_id=draw(st.sampled_from(["", "r1", "zz"]))
    )
    if draw(st.booleans()):
        o.dropoff.lat, o.dropoff.lng = draw(DEG), draw(DEG)
    for name in ("placed_at", "ready_at", "promised_by"):
        if draw(st.integers(0, 4)):
            t = getattr(o, name)
            t.seconds, t.nanos = draw(SECONDS), draw(NANOS)
    if draw(st.booleans()):
        o.dropoff_service.seconds = draw(st.integers(-100, 100_000))
    o.state = draw(st.sampled_from([0, 1, 5, 99]))  # type: ignore[assignment]
    return o


@st.composite
def events(draw) -> pb.RiderEvent:
    e = pb.RiderEvent(rider_id=draw(IDS), kind=draw(st.integers(-1, 8)), order_id=draw(IDS))  # type: ignore[arg-type]
    if draw(st.integers(0, 4)):
        e.at.seconds, e.at.nanos = draw(SECONDS), draw(NANOS)
    if draw(st.booleans()):
        e.position.lat, e.position.lng = draw(DEG), draw(DEG)
    if draw(st.booleans()):
        e.shift.start.seconds, e.shift.end.seconds = draw(SECONDS), draw(SECONDS)
        e.shift.capacity = draw(INT32)
        e.shift.speed_factor = draw(st.floats(allow_nan=True, allow_infinity=True))
    return e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = make_config(tmp_path_factory.mktemp("prop"))
    with running(cfg, start_loop=False) as (srv, stub):
        report(stub, online("r1"))
        yield srv, stub


def _counts(stub) -> list[int]:
    return [c.count for c in stub.GetStats(pb.GetStatsRequest()).orders_by_state]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(o=orders())
def test_random_orders_get_a_status_and_refusals_change_nothing(server, o):
    srv, stub = server
    before = _counts(stub)
    known = o.id in srv.store.orders
    try:
        resp = stub.SubmitOrder(pb.SubmitOrderRequest(order=o), timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() in ALLOWED, (exc.code(), exc.details())
        assert exc.details()
        assert _counts(stub) == before
        assert (o.id in srv.store.orders) == known
        return
    assert resp.order.id == o.id
    assert resp.duplicate == known
    assert sum(_counts(stub)) == sum(before) + (0 if known else 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(orders(), min_size=1, max_size=5), lead=st.booleans())
def test_random_order_batches_get_an_ack_per_order_and_refusals_change_nothing(server, batch, lead):
    srv, stub = server
    before = sum(_counts(stub))
    known = {o.id for o in batch if o.id in srv.store.orders}
    # the batch alone in `orders`, or led by `order` (which is then its first order)
    req = pb.SubmitOrdersRequest(order=batch[0], orders=batch[1:]) if lead and len(batch) > 1 else None
    got = list(stub.SubmitOrders(iter([req or pb.SubmitOrdersRequest(orders=batch)]), timeout=10))
    assert len(got) == 1 and [a.order_id for a in got[0].acks] == [o.id for o in batch]
    new_ids = set()
    for o, ack in zip(batch, got[0].acks, strict=True):
        if ack.WhichOneof("result") == "rejection":
            assert ack.rejection.code in {c.value[0] for c in ALLOWED} and ack.rejection.message
        else:
            assert ack.accepted.duplicate == (o.id in known or o.id in new_ids)
            assert o.id in srv.store.orders
            new_ids.add(o.id)
    assert sum(_counts(stub)) == before + len(new_ids - known)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(events(), max_size=6))
def test_random_rider_events_get_an_answer_per_event(server, batch):
    _srv, stub = server
    resp = report(stub, *batch, timeout=10)
    assert resp.accepted + len(resp.rejections) == len(batch)
    assert [r.index for r in resp.rejections] == sorted({r.index for r in resp.rejections})
    for r in resp.rejections:
        assert r.rejection.code in (3, 5, 9)
        assert r.rejection.message
    assert stub.GetStats(pb.GetStatsRequest(), timeout=10).site_ids == ["s1", "s2"]
