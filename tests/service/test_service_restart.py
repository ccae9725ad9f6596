"""The SIGKILL restart: ``dispatch serve`` in a subprocess under a stream of orders is killed with SIGKILL mid-load,
restarted on the same journal, and every order it acknowledged must still be known and then dispatched."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from svc_fixtures import SITES, online, order, report, wait_for

from dispatch.v1 import dispatch_pb2 as pb
from dispatch.v1 import dispatch_pb2_grpc as pbg

SRC = Path(__file__).resolve().parents[2] / "src"


def _write_config(tmp: Path) -> Path:
    sites = ", ".join(f'{{ id = "{s["id"]}", lat = {s["lat"]}, lng = {s["lng"]} }}' for s in SITES[:2])
    cfg = tmp / "serve.toml"
    cfg.write_text(
        f"""listen = "127.0.0.1:0"
insecure = true
policy_process = false
journal = "journal.sqlite"
log_level = "warning"
[sites]
list = [{sites}]
[dispatch]
tick_s = 0.25
hold_s = 0.0
""",
        encoding="utf-8",
    )
    return cfg


def _start(cfg: Path) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatch.cli", "serve", "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on port" in line, line
    return proc, int(line.rsplit(" ", 1)[1])


def test_sigkill_mid_load_loses_no_acknowledged_order(tmp_path: Path):
    cfg = _write_config(tmp_path)
    proc, port = _start(cfg)
    acked: list[str] = []
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pbg.DispatchServiceStub(ch)
        rng = random.Random(5)
        riders = [
            online(f"r{i}", 31.2317 + rng.uniform(-0.01, 0.01), 121.4726 + rng.uniform(-0.01, 0.01)) for i in range(80)
        ]
        assert report(stub, *riders, timeout=30).accepted == 80

        def orders():
            for i in range(300):
                yield pb.SubmitOrdersRequest(order=order(f"k{i}", site=SITES[i % 2]["id"]))
                time.sleep(0.002)

        def load() -> None:
            try:
                for ack in stub.SubmitOrders(orders(), timeout=60):
                    if ack.WhichOneof("result") == "accepted":
                        acked.append(ack.order_id)
            except grpc.RpcError:
                pass  # the server was killed

        t = threading.Thread(target=load)
        t.start()
        wait_for(lambda: len(acked) >= 100, timeout=30, every=0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        t.join(30)
        ch.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 100 <= len(acked) < 300, len(acked)  # killed mid-load
    proc, port = _start(cfg)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pbg.DispatchServiceStub(ch)
            for oid in acked:
                assert stub.GetOrder(pb.GetOrderRequest(order_id=oid), timeout=10).order.id == oid

            def dispatched() -> bool:
                states = [stub.GetOrder(pb.GetOrderRequest(order_id=o), timeout=10).order.state for o in acked]
                return all(s == pb.ORDER_STATE_ASSIGNED for s in states)

            wait_for(dispatched, timeout=60, every=0.2)
            stats = stub.GetStats(pb.GetStatsRequest(), timeout=10)
            assert stats.riders_online == 80
            # The assignment log survived too: sequences from 1 with no gap.
            seqs: list[int] = []
            stream = stub.WatchAssignments(pb.WatchAssignmentsRequest(from_sequence=1), timeout=30)
            for batch in stream:
                seqs.extend(e.sequence for e in batch.events)
                if seqs[-1] >= stats.last_sequence:
                    break
            stream.cancel()
            assert seqs == list(range(1, len(seqs) + 1))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
