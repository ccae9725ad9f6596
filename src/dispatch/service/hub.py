"""Watchers of the assignment log: live fan-out of committed events, and catch-up from the journal.

The journal writer calls ``publish`` after each commit, in sequence order. A watcher ``subscribe``s first, notes
the last published sequence, reads what it missed from the journal up to there, then follows its live queue (the
hand-over loses and repeats nothing: events are filtered by sequence). A watcher that falls ``buffer`` events
behind is cut off (it reconnects from its last sequence).

A subscription is read either by a thread (``get``) or by a coroutine (``get_async``, for the asyncio front end:
the publishing thread wakes the coroutine's loop, and nothing blocks a thread while the watcher waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Iterator

from dispatch.service.journal import ASSIGN, Journal, Record
from dispatch.v1 import dispatch_pb2 as pb


class SlowWatcherError(Exception):
    """The watcher's queue overflowed."""


class Subscription:
    def __init__(self, hub: Hub, buffer: int) -> None:
        self._hub = hub
        self._buffer = buffer
        self._items: deque[pb.WatchAssignmentsResponse] = deque()
        self._size = 0
        self._cond = threading.Condition()
        self.overflow = False
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # set by get_async's first call
        self._ready: asyncio.Event | None = None

    def put(self, batch: pb.WatchAssignmentsResponse) -> None:
        with self._cond:
            if self.overflow or self.closed:
                return
            self._size += len(batch.events)
            if self._size > self._buffer:
                self.overflow = True
                self._items.clear()
            else:
                self._items.append(batch)
            self._cond.notify_all()
            self._wake_async()

    def wake(self) -> None:
        """Wake the reader without an item (its ``get`` or ``get_async`` returns None), e.g. for a stop."""
        with self._cond:
            self._cond.notify_all()
            self._wake_async()

    def _wake_async(self) -> None:
        """Set the coroutine reader's event on its loop; called with ``_cond`` held."""
        if self._loop is not None and self._ready is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reads any more
                self._loop.call_soon_threadsafe(self._ready.set)

    def get(self, timeout: float) -> pb.WatchAssignmentsResponse | None:
        """The next batch, or None after ``timeout`` seconds (or once closed). Raises SlowWatcherError on overflow."""
        with self._cond:
            if not self._items and not self.overflow and not self.closed:
                self._cond.wait(timeout)
            if self.overflow:
                raise SlowWatcherError(f"more than {self._buffer} events behind")
            if not self._items:
                return None
            return self._pop()

    async def get_async(self, timeout: float) -> pb.WatchAssignmentsResponse | None:
        """``get`` for a coroutine on a running loop (always the same loop for one subscription)."""
        if self._ready is None:
            self._loop, self._ready = asyncio.get_running_loop(), asyncio.Event()
        with self._cond:
            if self.overflow:
                raise SlowWatcherError(f"more than {self._buffer} events behind")
            if self._items:
                return self._pop()
            if self.closed:
                return None
            self._ready.clear()  # under _cond: a put after this point sets it again (through the loop)
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return None
        with self._cond:
            if self.overflow:
                raise SlowWatcherError(f"more than {self._buffer} events behind")
            return self._pop() if self._items else None

    def _pop(self) -> pb.WatchAssignmentsResponse:
        batch = self._items.popleft()
        self._size -= len(batch.events)
        return batch

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._hub.unsubscribe(self)


class Hub:
    """See the module docstring."""

    def __init__(self, journal: Journal, last_seq: int, buffer: int) -> None:
        self.journal = journal
        self.last_seq = last_seq
        self.buffer = buffer
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()

    @property
    def watchers(self) -> int:
        return len(self._subs)

    def publish(self, records: list[Record]) -> None:
        for rec in records:
            if rec.kind != ASSIGN:
                continue
            batch = rec.obj if rec.obj is not None else pb.WatchAssignmentsResponse.FromString(rec.payload)
            with self._lock:
                self.last_seq = batch.events[-1].sequence
                subs = list(self._subs)
            for sub in subs:
                sub.put(batch)

    def subscribe(self) -> tuple[Subscription, int]:
        """A live subscription and the last sequence published before it started."""
        sub = Subscription(self, self.buffer)
        with self._lock:
            self._subs.add(sub)
            return sub, self.last_seq

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def wake_all(self) -> None:
        """Wake every subscriber's reader (a stop: they check for it when woken)."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.wake()

    def catch_up(self, first: int, last: int) -> Iterator[pb.WatchAssignmentsResponse]:
        """Events ``first`` .. ``last`` from the journal, in batches."""
        nxt = first
        while nxt <= last:
            page = self.catch_up_page(nxt, last)
            if not page:  # nothing more in the journal (or a gap): stop
                return
            yield from page
            nxt = page[-1].events[-1].sequence + 1

    def catch_up_page(self, first: int, last: int) -> list[pb.WatchAssignmentsResponse]:
        """The next batches of events ``first`` .. ``last`` from the journal (one read; empty when there are none
        from ``first`` on). ``catch_up`` reads page after page; a coroutine runs each read in a thread."""
        out: list[pb.WatchAssignmentsResponse] = []
        nxt = first
        for _seq, payload in self.journal.read_assignments(first, last):
            batch = pb.WatchAssignmentsResponse.FromString(payload)
            keep = [e for e in batch.events if nxt <= e.sequence <= last]
            if keep:
                out.append(pb.WatchAssignmentsResponse(events=keep))
                nxt = keep[-1].sequence + 1
        return out


def fresh_events(live: pb.WatchAssignmentsResponse | None, nxt: int) -> tuple[pb.WatchAssignmentsResponse | None, int]:
    """A live batch cut to the events a watcher has not seen (sequence >= ``nxt``): the response to send (None when
    nothing is new) and the watcher's next sequence number. Both front ends' WatchAssignments use it."""
    if live is None:
        return None, nxt
    keep = [e for e in live.events if e.sequence >= nxt]
    if not keep:
        return None, nxt
    return pb.WatchAssignmentsResponse(events=keep), keep[-1].sequence + 1
