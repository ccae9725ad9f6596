"""The changed riders' Route messages built from the tick's arrays (``routemsg.route_messages``, in the policy
worker) are exactly the store's (``Store.route_of``), and a tick with the policy in its worker publishes them."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from svc_fixtures import make_config, online, order, report, running

from dispatch.service import validate as v
from dispatch.service.routemsg import route_messages
from dispatch.service.store import Store
from dispatch.state import PICKUP, Routes
from dispatch.v1 import dispatch_pb2 as pb


def _store(tmp: Path) -> tuple[Store, list[str]]:
    """A store (no journal) with 6 orders at the two Shanghai sites."""
    store = Store(make_config(tmp))
    ids = []
    for i in range(6):
        p = order(f"m{i}", site="s1" if i % 2 else "s2", lat=31.2400 + 0.003 * i, lng=121.4800 - 0.002 * i)
        store.submit(v.order(p), p)
        ids.append(p.id)
    return store, ids


route_rows = st.lists(
    st.tuples(
        st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), max_size=6),  # (order index, kind) per stop
        st.integers(0, 7),  # frozen as the policy returned it
        st.lists(st.one_of(st.floats(1.7e9, 1.9e9), st.just(math.nan), st.just(0.0)), min_size=6, max_size=6),
    ),
    min_size=1,
    max_size=5,
)


def _routes(rows, etas, n_orders):
    """Routes (width 6) from ``route_rows``' stops and frozen counts (order indices modulo ``n_orders``), and
    their ETAs (``etas``: one list of 6 per route)."""
    m, width = len(rows), 6
    routes = Routes.empty(m, width)
    arrive = np.full((m, width), np.nan)
    for r, (stops, frozen, _etas) in enumerate(rows):
        routes.length[r] = len(stops)
        routes.frozen[r] = min(frozen, len(stops))
        for s, (o, k) in enumerate(stops):
            routes.order[r, s], routes.kind[r, s] = o % n_orders, k
        arrive[r] = etas[r]
    return routes, arrive


@settings(max_examples=60, deadline=None)
@given(route_rows, st.booleans())
def test_route_messages_are_the_stores_route_of(tmp_path_factory, rows, with_etas):
    store, ids = _store(tmp_path_factory.mktemp("rm"))
    m = len(rows)
    routes, arrive = _routes(rows, [etas for _s, _f, etas in rows], n_orders=6)
    latlng = np.array([o.row[11:15] for o in (store.orders[i] for i in ids)], dtype=np.float64)
    pick = np.arange(m, dtype=np.int64)[::-1].copy()  # any order of rows
    got = route_messages(ids, latlng, routes, arrive if with_etas else np.zeros((0, 0)), pick)
    assert len(got) == m
    for j, r in enumerate(pick.tolist()):
        n = int(routes.length[r])
        stops = [(ids[int(routes.order[r, s])], int(routes.kind[r, s])) for s in range(n)]
        etas = arrive[r, :n].tolist() if with_etas else [math.nan] * n
        fz = max(min(int(routes.frozen[r]), n), 1) if n else 0
        assert got[j] == store.route_of(stops, etas, fz).SerializeToString()


def _by_protobuf(ids, latlng, routes, arrive, rows):
    """The same messages through the protobuf API, stop by stop (the oracle)."""
    out = []
    for r in rows.tolist():
        n = int(routes.length[r])
        fz = max(min(int(routes.frozen[r]), n), 1) if n else 0
        route = pb.Route()
        for s in range(n):
            o, k = int(routes.order[r, s]), int(routes.kind[r, s])
            st_ = route.stops.add(kind=pb.STOP_KIND_PICKUP if k == PICKUP else pb.STOP_KIND_DROPOFF,
                                  order_id=ids[o], frozen=s < fz)  # fmt: skip
            c = 0 if k == PICKUP else 2
            st_.position.lat, st_.position.lng = float(latlng[o, c]), float(latlng[o, c + 1])
            if arrive.size and math.isfinite(arrive[r, s]):
                sec = math.floor(arrive[r, s])
                st_.eta.seconds, st_.eta.nanos = sec, min(999_999_999, round((arrive[r, s] - sec) * 1e9))
        out.append(route.SerializeToString())
    return out


edge_etas = st.one_of(
    st.floats(-1e12, 1e12), st.just(math.nan), st.just(math.inf), st.sampled_from([0.0, -0.0, 0.5, -0.5, 1.0 + 5e-10,
    1.7e9 + 0.25, 2.0**52 + 0.5, 2.0**53, -(2.0**53), 1e18, 123.0000000005, 0.9999999999, -0.9999999999]),
)  # fmt: skip
edge_degrees = st.one_of(st.floats(-180, 180), st.sampled_from([0.0, -0.0, 5e-324, -180.0, 90.0]))
edge_ids = st.text(min_size=1, max_size=150)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(edge_ids, min_size=4, max_size=4, unique=True),
    st.lists(st.lists(edge_degrees, min_size=4, max_size=4), min_size=4, max_size=4),
    route_rows,
    st.lists(edge_etas, min_size=6, max_size=6),
)
def test_route_messages_are_protobufs_own_bytes_at_the_edges(ids, latlng, rows, etas):
    """Written directly, the bytes equal protobuf's for any order id (non-ASCII, longer than 127 bytes), any
    position (0.0 is left out, -0.0 kept) and any ETA (0, negative, half a nanosecond, beyond 2**53)."""
    m = len(rows)
    routes, arrive = _routes(rows, [etas[r:] + etas[:r] for r in range(m)], n_orders=4)
    ll = np.array(latlng, dtype=np.float64)
    pick = np.arange(m, dtype=np.int64)
    assert route_messages(ids, ll, routes, arrive, pick) == _by_protobuf(ids, ll, routes, arrive, pick)
    no_etas = np.zeros((0, 0))
    assert route_messages(ids, ll, routes, no_etas, pick) == _by_protobuf(ids, ll, routes, no_etas, pick)


def test_a_tick_with_the_policy_in_its_worker_publishes_the_stores_routes(tmp_path: Path):
    with running(make_config(tmp_path, policy_process=True), start_loop=False) as (srv, stub):
        now = time.time()
        report(stub, *[online(f"r{i}", lat=31.2320 + 0.002 * i, now=now) for i in range(3)])
        for i in range(8):
            stub.SubmitOrder(pb.SubmitOrderRequest(order=order(f"w{i}", lat=31.2400 + 0.002 * i, now=now)))
        st_ = srv.loop.tick(now + 1.0)
        assert st_ is not None and st_.assigned == 8
        last = srv.loop.last
        assert last is not None and last.proposals
        assert all(p[5] is not None for p in last.proposals), "the worker built no Route messages"
        last = stub.GetStats(pb.GetStatsRequest()).last_sequence
        events = []
        stream = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=1), timeout=20)
        for batch in stream:
            events.extend(batch.events)
            if events[-1].sequence >= last:
                break
        stream.cancel()
        routed = {e.rider_id: e.route for e in events if e.kind == pb.ASSIGNMENT_EVENT_KIND_ASSIGNED}
        assert routed
        with srv.store.lock:
            for rid, route in routed.items():
                assert route == srv.store.route_proto(srv.store.riders[rid])
                assert len(route.stops) == len(srv.store.riders[rid].stops) > 0
