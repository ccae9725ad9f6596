"""The replay's order streams, in a process of their own.

``dispatch replay`` simulates the riders (positions, stops, batches of events), watches the assignments and submits
the orders. In one process, the threads that read the order acks wait for the GIL behind the riders' simulation
(session 13 measured the client's GIL held 36% of the time, a third of that by the riders), and that wait was
counted in ``ack_ms``: the client saw an ack p99 of 304 ms where the server's own histogram put it under 100 ms.
So the scheduler and the SubmitOrders streams run in a child process (``multiprocessing`` with ``spawn``: gRPC's
channels do not survive a fork), as coroutines on one ``grpc.aio`` event loop (see ``_Sender``). Parent and child
share, in shared memory, each order's send and ack times, whether it was accepted, and how many orders were handed
to a stream; the child's errors and CPU time come back through a pipe at the end. Both read the same clock
(``time.time``), so the parent can set the acks beside the assignments it sees on its watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import pickle
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from dispatch.client import DispatchClient, Rejection, dur_to_proto, ts_to_proto
from dispatch.v1 import dispatch_pb2 as pb
from dispatch.v1 import dispatch_pb2_grpc as pb_grpc

F64 = npt.NDArray[np.float64]

# SubmitOrders streams reconnect on these codes, at most this many times in a row without an ack in between.
_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN,
                          grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED})  # fmt: skip
_RECONNECTS = 12
_LOST_STATUS = "the stream ended while an order was being written; grpc.aio lost the server's status"
_START_S = 120.0  # how long the child may take to start (a fresh interpreter imports numpy and grpc)
_SAMPLES = 3  # error messages kept per code


class OrderSideError(RuntimeError):
    """The order process failed to start, or failed while running (the message holds its traceback)."""


@dataclass(frozen=True)
class OrderPlan:
    """The orders of the window, in send order, with their times in the log's (simulated) seconds.

    ``placed`` float64[n] simulated placement times; ``ready_after`` and ``promise_after`` float64[n] seconds from
    placement to ready (>= 0) and to the promise; ``lat``, ``lng`` the drop-offs; ``size`` int64[n];
    ``service_drop`` float64[n] seconds. An order is sent at wall ``wall_t0 + (placed - sim_t0) / speed``."""

    ids: list[str]
    site_ids: list[str]
    lat: F64
    lng: F64
    placed: F64
    ready_after: F64
    promise_after: F64
    size: npt.NDArray[np.int64]
    service_drop: F64
    sim_t0: float
    speed: float

    def schedule(self, wall_t0: float) -> F64:
        """Each order's wall send time."""
        return wall_t0 + (self.placed - self.sim_t0) / self.speed

    def proto(self, i: int, placed_wall: float) -> pb.Order:
        return pb.Order(
            id=self.ids[i],
            site_id=self.site_ids[i],
            dropoff=pb.LatLng(lat=float(self.lat[i]), lng=float(self.lng[i])),
            placed_at=ts_to_proto(placed_wall),
            ready_at=ts_to_proto(placed_wall + float(self.ready_after[i])),
            promised_by=ts_to_proto(placed_wall + float(self.promise_after[i])),
            size=int(self.size[i]),
            dropoff_service=dur_to_proto(float(self.service_drop[i])),
        )


class _Shared:
    """The times both processes see: ``t_send``, ``t_ack`` float64[n] (NaN until set), ``accepted`` bool[n], and
    ``sent`` int64[1] (orders handed to a stream so far), over ``multiprocessing`` shared arrays."""

    def __init__(self, raw: tuple[Any, Any, Any, Any]) -> None:
        self.raw = raw
        self.t_send: F64 = np.frombuffer(raw[0], dtype=np.float64)
        self.t_ack: F64 = np.frombuffer(raw[1], dtype=np.float64)
        self.accepted: npt.NDArray[np.bool_] = np.frombuffer(raw[2], dtype=np.bool_)
        self.sent: npt.NDArray[np.int64] = np.frombuffer(raw[3], dtype=np.int64)

    @classmethod
    def create(cls, ctx: Any, n: int) -> _Shared:
        m = max(n, 1)
        shared = cls((ctx.RawArray("d", m), ctx.RawArray("d", m), ctx.RawArray("b", m), ctx.RawArray("q", 1)))
        shared.t_send[:] = np.nan
        shared.t_ack[:] = np.nan
        return shared


class _Errors:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.samples: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def add(self, code: str, n: int = 1, what: str = "") -> None:
        with self.lock:
            self.counts[code] += n
            kept = self.samples.setdefault(code, [])
            if what and len(kept) < _SAMPLES:
                kept.append(what)


class _Sender:
    """The child's side: the scheduler and one SubmitOrders stream per ``streams``, as coroutines on one event loop
    (``grpc.aio``). The synchronous client's streams cost two threads each and a hand-over between them per message;
    at 2,000 orders/s that made this process the client's largest CPU user (27 s of CPU in a 60 s replay, against 9 s
    for the riders' simulation)."""

    def __init__(
        self, plan: OrderPlan, connect: Callable[[], DispatchClient], shared: _Shared, streams: int, batch: int = 1,
        linger_s: float = 0.0,
    ) -> None:  # fmt: skip
        self.plan = plan
        self.connect = connect
        self.shared = shared
        self.streams = streams
        self.batch = batch
        self.linger_s = linger_s
        self.messages = 0  # SubmitOrders messages written
        self.errors = _Errors()
        self.done = [math.nan] * streams

    def run(self, wall_t0: float, duration_s: float, drain_s: float) -> None:
        asyncio.run(self._run(wall_t0, duration_s, drain_s))

    async def _run(self, wall_t0: float, duration_s: float, drain_s: float) -> None:
        plan, sent = self.plan, self.shared.sent
        with self.connect() as settings:  # the connection settings (its own channel stays unused)
            qs: list[asyncio.Queue[list[tuple[int, pb.Order]] | None]] = [asyncio.Queue() for _ in range(self.streams)]
            tasks = [asyncio.create_task(self._stream(k, qs[k], settings)) for k in range(self.streams)]
            sched = plan.schedule(wall_t0)
            n = len(plan.ids)
            i = 0
            turn = 0
            while i < n:  # each order at its compressed placed_at; what is due goes in chunks, round robin
                now = time.time()
                chunk: list[tuple[int, pb.Order]] = []
                while i < n and sched[i] <= now:
                    chunk.append((i, plan.proto(i, float(sched[i]))))
                    i += 1
                    if len(chunk) == self.batch or not (i < n and sched[i] <= now):
                        qs[turn % len(qs)].put_nowait(chunk)
                        turn += 1
                        chunk = []
                sent[0] = i
                if i < n:
                    # (with a linger, what falls due within it waits for the next wake, so goes in one chunk)
                    await asyncio.sleep(max(self.linger_s, min(max(0.0, float(sched[i]) - time.time()), 0.05)))
            await asyncio.sleep(max(0.0, wall_t0 + duration_s - time.time()))
            for q in qs:
                q.put_nowait(None)
            _, late = await asyncio.wait(tasks, timeout=drain_s)
            for t in late:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _stream(
        self, k: int, q: asyncio.Queue[list[tuple[int, pb.Order]] | None], settings: DispatchClient
    ) -> None:
        """One SubmitOrders stream fed from its queue. Each message carries what has queued up meanwhile, at most
        ``batch`` orders (a batch message when more than one, else the one-order form): no order waits for a batch
        to fill. When the stream breaks (server restart), the orders sent but not acknowledged are sent again on a
        new stream (SubmitOrders is idempotent by order id), up to ``_RECONNECTS`` times in a row without an ack in
        between."""
        fifo: deque[tuple[int, pb.Order]] = deque()
        retry: deque[tuple[int, pb.Order]] = deque()
        held: deque[tuple[int, pb.Order]] = deque()  # taken from the queue, not yet written
        t_send, t_ack, accepted = self.shared.t_send, self.shared.t_ack, self.shared.accepted
        state = {"finished": False, "failures": 0}
        batch = self.batch

        async def send(call: Any, items: list[tuple[int, pb.Order]]) -> None:
            fifo.extend(items)
            now = time.time()
            for row, _ in items:
                t_send[row] = now
            self.messages += 1
            if len(items) == 1:
                await call.write(pb.SubmitOrdersRequest(order=items[0][1]))
            else:
                await call.write(pb.SubmitOrdersRequest(orders=[o for _, o in items]))

        async def write(call: Any) -> None:
            while retry:
                await send(call, [retry.popleft() for _ in range(min(batch, len(retry)))])
            while True:
                while not state["finished"] and len(held) < batch and (not held or not q.empty()):
                    got = await q.get() if not held else q.get_nowait()
                    if got is None:
                        state["finished"] = True
                    else:
                        held.extend(got)
                if not held:
                    break
                await send(call, [held.popleft() for _ in range(min(batch, len(held)))])
            await call.done_writing()

        async def read(call: Any) -> None:
            async for resp in call:
                for ack in resp.acks or (resp,):
                    if not fifo or fifo[0][1].id != ack.order_id:
                        nxt = repr(fifo[0][1].id) if fifo else "no order"
                        raise _AckMismatchError(
                            f"the server acknowledged order {ack.order_id!r} where {nxt} was next; a server that "
                            "does not take batches of orders answers so (replay with --batch-orders 1)"
                        )
                    row, _ = fifo.popleft()
                    t_ack[row] = time.time()
                    state["failures"] = 0
                    if ack.HasField("rejection"):
                        r = Rejection.from_proto(ack.rejection)
                        self.errors.add(r.code, 1, f"order {ack.order_id}: {r.field}: {r.message}")
                    else:
                        accepted[row] = True

        async with settings.aio_channel() as channel:
            stub = pb_grpc.DispatchServiceStub(channel)
            while True:
                call = stub.SubmitOrders(metadata=settings.metadata)
                parts = [asyncio.create_task(write(call)), asyncio.create_task(read(call))]
                try:
                    await asyncio.gather(*parts)
                    if fifo:  # a clean end that left orders without their acks
                        self.errors.add("INTERNAL", len(fifo), f"SubmitOrders: the stream ended with {len(fifo)} "
                                        "orders not acknowledged")  # fmt: skip
                    break
                except _AckMismatchError as exc:  # acks no longer tell which order they are for: stop this stream
                    call.cancel()
                    for part in parts:
                        part.cancel()
                    await asyncio.gather(*parts, return_exceptions=True)
                    self.errors.add("INTERNAL", 1, f"SubmitOrders: {exc}")
                    break
                except (grpc.RpcError, asyncio.InvalidStateError) as exc:
                    # a write to a call that has ended raises InvalidStateError; its reader then has the status
                    code, details = await _status(exc, parts[1])
                    call.cancel()
                    for part in parts:
                        part.cancel()
                    await asyncio.gather(*parts, return_exceptions=True)
                    self.errors.add(code.name, 1, f"SubmitOrders: {code.name}: {details}")
                    retry.extendleft(reversed(fifo))  # not acknowledged: send again, in the same order
                    fifo.clear()
                    retry.extend(held)  # taken from the queue but not written: after those
                    held.clear()
                    state["failures"] += 1
                    if code not in _RETRY_CODES or state["failures"] > _RECONNECTS or (state["finished"] and not retry):
                        break
                    await asyncio.sleep(min(2.0, 0.1 * 2 ** (state["failures"] - 1)))
        if not state["finished"]:
            while await q.get() is not None:  # give up: drain the queue (nothing more will be sent)
                pass
        self.done[k] = time.time()


class _AckMismatchError(Exception):
    """An ack that is not for the next order sent on its stream."""


async def _status(exc: BaseException, reader: asyncio.Task[None]) -> tuple[grpc.StatusCode, str]:
    """Why a stream failed: the status the reader ends with (waited for at most a second), else ``exc``'s.

    When the server ends a stream while an order is being written, grpc.aio may replace the server's status with
    its own INTERNAL "Internal error from Core" (a failed local write), for the writer and the reader alike; the
    server's status is then lost, and the failure is reported as INTERNAL with that said plainly.
    """
    done, _ = await asyncio.wait([reader], timeout=1.0)
    got = reader.exception() if done and not reader.cancelled() else None
    candidates = [e for e in (got, exc) if isinstance(e, grpc.aio.AioRpcError)]
    for rpc in candidates:
        if not _lost_status(rpc):
            return rpc.code(), rpc.details() or str(rpc)
    if candidates:
        return grpc.StatusCode.INTERNAL, _LOST_STATUS
    return grpc.StatusCode.UNAVAILABLE, str(exc) or type(exc).__name__


def _lost_status(rpc: grpc.aio.AioRpcError) -> bool:
    """Whether ``rpc`` carries grpc.aio's own status for a failed local write rather than the server's."""
    return rpc.code() == grpc.StatusCode.INTERNAL and rpc.details() == "Internal error from Core"


def _child(
    plan: OrderPlan, connect: Callable[[], DispatchClient], raw: tuple[Any, Any, Any, Any], streams: int,
    batch: int, linger_s: float, conn: Connection,
) -> None:  # fmt: skip
    """The order process: says it is ready, waits for the clock (wall_t0, duration, drain), sends, reports."""
    try:
        sender = _Sender(plan, connect, _Shared(raw), streams, batch, linger_s)
        conn.send(("ready", None))
        msg = conn.recv()
        if msg[0] != "go":
            return
        cpu0 = time.process_time()
        sender.run(*msg[1])
        errors = sender.errors
        with errors.lock:
            out = (dict(errors.counts), {k: list(v) for k, v in errors.samples.items()}, list(sender.done))
        conn.send(("done", (*out, time.process_time() - cpu0, sender.messages)))
    except BaseException:  # the parent reports it (a closed pipe: the parent has gone)
        with contextlib.suppress(OSError, ValueError):
            conn.send(("failed", traceback.format_exc()))


@dataclass
class OrderResult:
    """What the order process reports at its end: errors by code with samples, the time each stream finished
    (NaN: it did not), its CPU seconds from the clock's start, and the SubmitOrders messages it wrote."""

    errors: dict[str, int]
    samples: dict[str, list[str]]
    done: list[float]
    cpu_s: float
    messages: int


class OrderProcess:
    """The parent's handle on the order process: ``start`` (returns once the child is ready to send), ``go`` (the
    clock), ``result`` (after the drain). ``t_send``, ``t_ack``, ``accepted`` and ``sent`` are live views of the
    shared arrays."""

    def __init__(
        self,
        plan: OrderPlan,
        connect: Callable[[], DispatchClient],
        streams: int,
        batch: int = 1,
        linger_s: float = 0.0,
    ) -> None:
        self._ctx = mp.get_context("spawn")
        self._shared = _Shared.create(self._ctx, len(plan.ids))
        n = len(plan.ids)
        self.t_send, self.t_ack = self._shared.t_send[:n], self._shared.t_ack[:n]
        self.accepted = self._shared.accepted[:n]
        self._plan = plan
        self._connect = connect
        self._streams = streams
        self._batch = batch
        self._linger_s = linger_s
        self._conn: Connection | None = None
        self._proc: Any = None

    @property
    def sent(self) -> int:
        return int(self._shared.sent[0])

    def start(self) -> None:
        """Start the child and wait until it is ready. Raises OrderSideError (also when ``connect`` cannot be
        pickled: it must be, e.g. ``functools.partial(DispatchClient, target, ...)``)."""
        ours, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_child,
            args=(self._plan, self._connect, self._shared.raw, self._streams, self._batch, self._linger_s, theirs),
            name="replay-orders", daemon=True,
        )  # fmt: skip
        try:
            proc.start()
        except (pickle.PicklingError, AttributeError, TypeError) as exc:  # pickling the arguments failed
            raise OrderSideError(
                f"cannot start the order process ({exc}); connect must be picklable, e.g. "
                "functools.partial(DispatchClient, target, ...)"
            ) from None
        theirs.close()
        self._proc, self._conn = proc, ours
        msg = self._receive(_START_S, "start")
        if msg[0] != "ready":
            raise OrderSideError(f"the order process did not start:\n{msg[1]}")

    def go(self, wall_t0: float, duration_s: float, drain_s: float) -> None:
        assert self._conn is not None
        self._conn.send(("go", (wall_t0, duration_s, drain_s)))

    def result(self, timeout: float) -> OrderResult:
        """Wait (at most ``timeout`` seconds) for the child's report, then for it to exit."""
        msg = self._receive(timeout, "finish")
        self.close()
        if msg[0] != "done":
            raise OrderSideError(f"the order process failed:\n{msg[1]}")
        errors, samples, done, cpu, messages = msg[1]
        return OrderResult(errors, samples, done, cpu, messages)

    def _receive(self, timeout: float, what: str) -> tuple[str, Any]:
        assert self._conn is not None and self._proc is not None
        deadline = time.monotonic() + timeout
        while not self._conn.poll(0.2):
            if not self._proc.is_alive() and not self._conn.poll(0):
                raise OrderSideError(f"the order process exited with code {self._proc.exitcode} before it could {what}")
            if time.monotonic() > deadline:
                self.close()
                raise OrderSideError(f"the order process did not {what} within {timeout:g} s")
        try:
            msg: tuple[str, Any] = self._conn.recv()
        except EOFError:
            raise OrderSideError(f"the order process exited before it could {what}") from None
        return msg

    def close(self) -> None:
        """End the child (it is done, or being given up on)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(5.0)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5.0)
            self._proc = None
