"""The dispatch loop's paced work (``Pacer``) and the policy worker's priority."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from svc_fixtures import make_config, online, order, report, running

from dispatch.service import loop as lp
from dispatch.service.worker import PolicyProcess
from dispatch.v1 import dispatch_pb2 as pb


def test_pacer_pauses_once_a_slice_is_used_up():
    pace = lp.Pacer(slice_s=0.0, pause_s=0.0005)
    t0 = time.perf_counter()
    for _ in range(5):
        pace()
    assert pace.pauses == 5
    assert time.perf_counter() - t0 >= 5 * 0.0005


def test_pacer_does_not_pause_within_a_slice_or_when_off():
    within = lp.Pacer(slice_s=60.0, pause_s=0.5)
    off = lp.Pacer(slice_s=0.0, pause_s=0.0)
    for _ in range(100):
        within()
        off()
    assert within.pauses == 0
    assert off.pauses == 0


@pytest.mark.parametrize(("slice_s", "pause_s"), [(-1.0, 0.001), (0.001, -1.0), (float("nan"), 0.001)])
def test_pacer_refuses_bad_settings(slice_s, pause_s):
    with pytest.raises(ValueError, match="slice_s and pause_s"):
        lp.Pacer(slice_s, pause_s)


def test_policy_worker_runs_at_a_lower_priority():
    own = os.getpriority(os.PRIO_PROCESS, 0)
    worker = PolicyProcess(nice=5)
    try:
        pid = worker.pid()
        assert pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, own + 5)
    finally:
        worker.close()


def test_policy_worker_refuses_a_bad_nice():
    with pytest.raises(ValueError, match="nice"):
        PolicyProcess(nice=20)


def test_a_paced_tick_assigns_like_an_unpaced_one(tmp_path: Path):
    """The same orders and riders, one tick paced at every step and one not: the same assignments."""
    got = []
    now = time.time()  # one clock for both (travel times depend on the time of day: near-ties could flip)
    for k, (slice_s, pause_s) in enumerate([(0.0, 0.0001), (0.0, 0.0)]):
        cfg = make_config(tmp_path / str(k))
        with running(cfg, start_loop=False) as (srv, stub):
            report(stub, *[online(f"r{i}", lat=31.2320 + 0.001 * i, now=now) for i in range(4)])
            for i in range(6):
                stub.SubmitOrder(pb.SubmitOrderRequest(order=order(f"o{i}", lat=31.2400 + 0.002 * i, now=now)))
            srv.loop.slice_s, srv.loop.pause_s = slice_s, pause_s
            st_ = srv.loop.tick(now + 1.0)
            assert st_ is not None
            if pause_s:
                assert srv.loop._pace.pauses > 0
            got.append({oid: (rec.state, rec.rider) for oid, rec in srv.store.orders.items()})
    assert got[0] == got[1]
    assert all(state == pb.ORDER_STATE_ASSIGNED for state, _ in got[0].values())


def test_the_configuration_sets_the_pauses_and_the_workers_priority(tmp_path: Path):
    with running(make_config(tmp_path / "a", tick_pause_ms=0.0), start_loop=False) as (srv, _stub):
        assert srv.loop.pause_s == 0.0 and srv.loop.remote is None
    with running(make_config(tmp_path / "b", policy_process=True, policy_nice=7), start_loop=False) as (srv, _stub):
        assert srv.loop.pause_s == lp.PAUSE_S
        assert srv.loop.remote is not None and srv.loop.remote.nice == 7
        pid = srv.loop.remote.pid()
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7)
