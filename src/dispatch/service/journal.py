"""The journal: every accepted order, cancel, rider-event batch, assignment event and parameter change, in the
order the store applied them, in SQLite (WAL mode) before it is acknowledged.

Writers (request threads, the dispatch loop) ``append`` a record under the store's lock, so that the journal's
order is the order in which the state changed, and get a ticket; they release the lock and ``wait`` for the
ticket to be committed before they answer. One writer thread takes everything queued, inserts it in one
transaction and commits: many concurrent acknowledgements share one fsync (group commit). After each commit it
hands the committed records to ``on_commit`` (the service publishes assignment events to watchers from there, so a
watcher never sees an event that a crash could take back).

Request handlers on an asyncio loop (the ``grpc.aio`` front end) wait with ``wait_async`` instead: a future that the
writer resolves, for all the waiters a commit covers at once, with one ``call_soon_threadsafe`` per loop.

The queue is bounded: ``append`` raises :class:`JournalFullError` beyond ``queue_limit`` records (RESOURCE_EXHAUSTED at
the API). ``replay`` reads every record back in order at startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("dispatch.service.journal")

# Record kinds.
ORDER = 1  # a dispatch.v1.Order as accepted
CANCEL = 2  # a dispatch.v1.CancelOrderRequest
EVENTS = 3  # a dispatch.v1.ReportRiderEventsRequest holding only accepted events
ASSIGN = 4  # a dispatch.v1.AssignmentEvent (seq = its sequence)
PARAMS = 5  # a dispatch.v1.UpdateParamsResponse (the parameters in force and their version)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, seq INTEGER, "
    "at REAL NOT NULL, payload BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS journal_seq ON journal (seq) WHERE seq IS NOT NULL",
)
_BATCH = 20_000


class JournalFullError(Exception):
    """The journal's queue is at its bound."""


class JournalError(Exception):
    """The journal cannot write (disk full, file removed ...); nothing more can be acknowledged."""


@dataclass(frozen=True)
class Record:
    kind: int
    payload: bytes
    seq: int | None = None
    obj: Any = None  # the decoded message, handed to on_commit (not written)


def _resolve(futs: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futs:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)


class Journal:
    """An append-only SQLite journal with a group-commit writer thread (see the module docstring)."""

    def __init__(
        self,
        path: str,
        sync: str = "full",
        queue_limit: int = 100_000,
        on_commit: Callable[[list[Record]], None] | None = None,
    ) -> None:
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._sync = sync
        self._limit = queue_limit
        self._on_commit = on_commit
        self._db = self._connect()
        for stmt in _SCHEMA:
            self._db.execute(stmt)
        self._db.commit()
        row = self._db.execute("SELECT MIN(seq) FROM journal WHERE seq IS NOT NULL").fetchone()
        self._first_seq = int(row[0]) if row and row[0] is not None else 0
        self._queue: deque[tuple[int, Record]] = deque()
        # One lock, two conditions: appends wake only the writer (and only when it sleeps), a commit wakes the
        # acknowledgers; a wake-up of every waiting request thread at every append costs GIL hand-overs.
        self._cond = threading.Lock()
        self._work = threading.Condition(self._cond)
        self._done = threading.Condition(self._cond)
        self._writer_idle = False
        self._ticket = 0
        self._committed = 0
        self._closing = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        # (ticket, n, loop, future) of the asyncio waiters, a heap by ticket (n breaks ties).
        self._async: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._n = itertools.count()
        self.commits = 0
        self.records = 0

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self._sync == 'full' else 'NORMAL'}")
        return db

    # -- startup ------------------------------------------------------------------------------------------------

    def replay(self) -> Iterator[Record]:
        """Every record, in the order written (call before ``start``)."""
        last = 0
        while True:
            rows = self._db.execute(
                "SELECT id, kind, seq, payload FROM journal WHERE id > ? ORDER BY id LIMIT ?", (last, _BATCH)
            ).fetchall()
            if not rows:
                return
            for _rid, kind, seq, payload in rows:
                yield Record(int(kind), bytes(payload), None if seq is None else int(seq))
            last = int(rows[-1][0])

    def first_sequence(self) -> int:
        """The oldest assignment sequence held (the journal is never truncated, so 1 once there is any; read at
        startup, so that request threads never touch the writer's connection)."""
        return self._first_seq or 1

    def start(self) -> None:
        self._db.execute("BEGIN")
        self._db.execute("COMMIT")
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    # -- writing ------------------------------------------------------------------------------------------------

    def append(self, kind: int, payload: bytes, seq: int | None = None, obj: Any = None) -> int:
        """Queue a record; returns its ticket for ``wait``. Raises JournalFullError at the bound, JournalError after a
        write failure."""
        with self._cond:
            if self._error is not None:
                raise JournalError(str(self._error))
            if self._closing:
                raise JournalError("the journal is closing")
            if len(self._queue) >= self._limit:
                raise JournalFullError(f"journal queue at its bound of {self._limit} records")
            self._ticket += 1
            self._queue.append((self._ticket, Record(kind, payload, seq, obj)))
            if self._writer_idle:
                self._work.notify()
            return self._ticket

    def check_room(self, n: int = 1) -> None:
        """Raise JournalFullError when ``n`` more records would not fit (checked before a change is made)."""
        if len(self._queue) + n > self._limit:
            raise JournalFullError(f"journal queue at its bound of {self._limit} records")

    def wait(self, ticket: int, timeout: float = 30.0) -> None:
        """Block until ``ticket`` is committed. Raises JournalError on a write failure or a timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._committed < ticket:
                if self._error is not None:
                    raise JournalError(str(self._error))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JournalError(f"not committed within {timeout:g} s")
                self._done.wait(left)

    def wait_async(self, ticket: int) -> asyncio.Future[None] | None:
        """``wait`` for a caller on an asyncio loop: None when ``ticket`` is committed already, else a future of the
        running loop that completes when it is (or fails with JournalError). Raises JournalError after a write
        failure."""
        with self._cond:
            if self._committed >= ticket:
                return None
            if self._error is not None:
                raise JournalError(str(self._error))
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            heapq.heappush(self._async, (ticket, next(self._n), loop, fut))
            return fut

    def _wake_async(self, upto: int | None, error: BaseException | None = None) -> None:
        """Resolve the async waiters whose tickets are <= ``upto`` (every one when ``upto`` is None, with
        ``error``); called with ``_cond`` held."""
        ready: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        while self._async and (upto is None or self._async[0][0] <= upto):
            _t, _n, loop, fut = heapq.heappop(self._async)
            ready.setdefault(loop, []).append(fut)
        for loop, futs in ready.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
                loop.call_soon_threadsafe(_resolve, futs, None if error is None else JournalError(str(error)))

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def last_ticket(self) -> int:
        return self._ticket

    def _run(self) -> None:
        db = self._db
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._writer_idle = True
                    self._work.wait(0.5)
                    self._writer_idle = False
                if not self._queue and self._closing:
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), _BATCH))]
            now = time.time()
            try:
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO journal (kind, seq, at, payload) VALUES (?, ?, ?, ?)",
                    [(r.kind, r.seq, now, r.payload) for _, r in batch],
                )
                db.execute("COMMIT")
            except Exception as exc:  # a disk or database failure: stop acknowledging anything
                log.error("journal write failed", extra={"error": str(exc)})
                with self._cond:
                    self._error = exc
                    self._done.notify_all()
                    self._wake_async(None, exc)
                return
            self.commits += 1
            self.records += len(batch)
            with self._cond:
                self._committed = batch[-1][0]
                self._done.notify_all()
                if self._async:
                    self._wake_async(self._committed)
            if self._on_commit is not None:
                try:
                    self._on_commit([r for _, r in batch])
                except Exception:
                    log.exception("on_commit failed")

    def close(self) -> None:
        """Write everything queued, stop the writer and close the file."""
        with self._cond:
            self._closing = True
            self._work.notify_all()
        if self._thread is not None:
            self._thread.join()
        self._db.close()

    # -- reading assignments (watchers catching up) ---------------------------------------------------------------

    def read_assignments(self, first: int, last: int, limit: int = 2000) -> list[tuple[int, bytes]]:
        """The ASSIGN records (first sequence, WatchAssignmentsResponse bytes) that hold sequences ``first`` ..
        ``last``, in order, at most ``limit`` records (on a connection of its own, so that a catching-up watcher
        never blocks the writer)."""
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            rows = db.execute(
                "SELECT seq, payload FROM journal WHERE seq IS NOT NULL AND seq <= ? AND seq >= "
                "(SELECT COALESCE(MAX(seq), 0) FROM journal WHERE seq IS NOT NULL AND seq <= ?) ORDER BY seq LIMIT ?",
                (last, first, limit),
            ).fetchall()
        finally:
            db.close()
        return [(int(s), bytes(p)) for s, p in rows]
