"""WatchAssignments: sequence numbers without gaps, resume from a sequence (also across a restart), live events."""

from __future__ import annotations

import threading
from pathlib import Path

from svc_fixtures import make_config, online, order, report, running, wait_for

from dispatch.v1 import dispatch_pb2 as pb


def _read(stub, first: int, last: int) -> list[pb.AssignmentEvent]:
    out: list[pb.AssignmentEvent] = []
    stream = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=first), timeout=20)
    for batch in stream:
        out.extend(batch.events)
        if out[-1].sequence >= last:
            break
    stream.cancel()
    return out


def _stops(stub, rider: str) -> list[tuple[str, int]]:
    return [(s.order_id, s.kind) for s in stub.GetRider(pb.GetRiderRequest(rider_id=rider)).rider.route.stops]


def _all_assigned(stub, ids):
    return all(stub.GetOrder(pb.GetOrderRequest(order_id=i)).order.state == pb.ORDER_STATE_ASSIGNED for i in ids)


def test_resume_from_a_sequence_misses_nothing_even_across_a_restart(tmp_path: Path):
    cfg = make_config(tmp_path)
    ids = [f"o{i}" for i in range(6)]
    with running(cfg) as (_srv, stub):
        report(stub, online("r1"), online("r2", lat=31.2290, lng=121.4490))
        for oid in ids:
            stub.SubmitOrder(pb.SubmitOrderRequest(order=order(oid)))
        wait_for(lambda: _all_assigned(stub, ids))
        last = stub.GetStats(pb.GetStatsRequest()).last_sequence
        everything = _read(stub, 1, last)
        assert [e.sequence for e in everything] == list(range(1, last + 1))
        assigned = {e.order_id for e in everything if e.kind == pb.ASSIGNMENT_EVENT_KIND_ASSIGNED}
        assert assigned == set(ids)
        k = max(1, last // 2)
        tail = _read(stub, k + 1, last)
        assert tail == everything[k:]
        routes = {r: _stops(stub, r) for r in ("r1", "r2")}
        assert sum(len(v) for v in routes.values()) == 2 * len(ids)
    with running(cfg, start_loop=False) as (srv2, stub2):
        assert srv2.store.seq == last
        assert {r: _stops(stub2, r) for r in ("r1", "r2")} == routes
    with running(cfg) as (srv2, stub2):
        again = _read(stub2, k + 1, last)
        assert again == everything[k:]
        assert _all_assigned(stub2, ids)
        # New events continue the sequence.
        stub2.SubmitOrder(pb.SubmitOrderRequest(order=order("after")))
        wait_for(lambda: _all_assigned(stub2, ["after"]))
        more = _read(stub2, last + 1, last + 1)
        assert more[0].sequence == last + 1


def test_live_watcher_sees_new_events(tmp_path: Path):
    with running(make_config(tmp_path)) as (srv, stub):
        report(stub, online("r1"))
        got: list[pb.AssignmentEvent] = []
        stream = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=0), timeout=30)
        ready = threading.Event()

        def consume() -> None:
            ready.set()
            for batch in stream:
                got.extend(batch.events)
                if any(e.order_id == "live-1" and e.kind == pb.ASSIGNMENT_EVENT_KIND_ASSIGNED for e in got):
                    return

        t = threading.Thread(target=consume)
        t.start()
        ready.wait()
        wait_for(lambda: srv.hub.watchers == 1)
        stub.SubmitOrder(pb.SubmitOrderRequest(order=order("live-1")))
        t.join(30)
        stream.cancel()
        assert any(e.order_id == "live-1" and e.rider_id == "r1" for e in got)
        seqs = [e.sequence for e in got]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
