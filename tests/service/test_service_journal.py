"""The journal on its own: order kept across reopen, group commit, the bounded queue, assignment reads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dispatch.service import journal as jr
from dispatch.v1 import dispatch_pb2 as pb


def test_records_come_back_in_order_and_many_acks_share_commits(tmp_path: Path):
    path = str(tmp_path / "j.sqlite")
    j = jr.Journal(path, "full", 100_000)
    j.start()
    tickets: list[int] = []
    lock = threading.Lock()

    def writer(k: int) -> None:
        for i in range(200):
            with lock:
                t = j.append(jr.ORDER, f"{k}-{i}".encode())
                tickets.append(t)
            j.wait(t)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    commits = j.commits
    j.close()
    assert j.records == 1600
    assert commits < 1600  # concurrent waiters shared commits
    again = jr.Journal(path)
    got = [r.payload for r in again.replay()]
    again.close()
    assert len(got) == 1600
    assert sorted(tickets) == list(range(1, 1601))
    for k in range(8):  # each writer's records in its own order
        mine = [p for p in got if p.startswith(f"{k}-".encode())]
        assert mine == [f"{k}-{i}".encode() for i in range(200)]


def test_queue_bound_and_assignment_reads(tmp_path: Path):
    j = jr.Journal(str(tmp_path / "j.sqlite"), "normal", queue_limit=3)
    for i in range(3):
        j.append(jr.ORDER, b"x%d" % i)
    with pytest.raises(jr.JournalFullError):
        j.append(jr.ORDER, b"too many")
    with pytest.raises(jr.JournalFullError):
        j.check_room()
    j.start()
    j.wait(3)
    seq = 1
    for size in (2, 3, 1):
        batch = pb.WatchAssignmentsResponse(
            events=[pb.AssignmentEvent(sequence=seq + k, order_id=f"o{seq + k}") for k in range(size)]
        )
        t = j.append(jr.ASSIGN, batch.SerializeToString(), seq)
        seq += size
    j.wait(t)
    rows = j.read_assignments(4, 5)  # sequences 3..5 are in the second batch, 6 in the third
    assert [s for s, _ in rows] == [3]
    rows = j.read_assignments(2, 6)
    assert [s for s, _ in rows] == [1, 3, 6]
    j.close()
