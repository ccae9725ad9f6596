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
from dispatch.state import Routes
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
        st.lists(st.one_of(st.floats(1.7e9, 1.9e9), st.just(math.nan)), min_size=6, max_size=6),  # ETAs
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(route_rows, st.booleans())
def test_route_messages_are_the_stores_route_of(tmp_path_factory, rows, with_etas):
    store, ids = _store(tmp_path_factory.mktemp("rm"))
    m, width = len(rows), 6
    routes = Routes.empty(m, width)
    arrive = np.full((m, width), np.nan)
    for r, (stops, frozen, etas) in enumerate(rows):
        routes.length[r] = len(stops)
        routes.frozen[r] = min(frozen, len(stops))
        for s, (o, k) in enumerate(stops):
            routes.order[r, s], routes.kind[r, s] = o, k
        arrive[r] = etas
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
