"""The asyncio gRPC front end (``grpc_server = "aio"``): the same API on a ``grpc.aio`` server.

The threaded server hands every message between its completion-queue thread and a request thread, and a
SubmitOrders stream between a reader thread and the acknowledging generator as well: several thread switches per
order, which at 2,000 orders/s cost more server CPU than the orders' own Python work (session 4 measured 210-440 us
of server CPU per order threaded against 154 us for an asyncio prototype). Here the hot calls (SubmitOrder,
SubmitOrders, ReportRiderEvents) are coroutines on one event loop thread: they check and apply the messages
exactly as the threaded handlers do (same validation, same store calls, so the same statuses and rejections), and
wait for their journal tickets with ``Journal.wait_async`` instead of blocking a thread. WatchAssignments is a
coroutine too (see ``AioServicer.WatchAssignments`` for why it must be), and so are the health service
(``AioHealth``) and reflection. The other calls are unary and keep their threaded handlers, which the asyncio server
runs on its ``migration_thread_pool``.

The store's lock is taken on the loop thread (its holders keep it briefly: the dispatch loop at most 64 riders at
a time), and durability is unchanged: an order is acknowledged only after the journal has committed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent import futures
from typing import Any, ParamSpec, TypeVar

import grpc
from grpc_health.v1 import health

from dispatch.service import validate as v
from dispatch.service.auth import AuthInterceptor, handler_like
from dispatch.service.hub import SlowWatcherError, fresh_events
from dispatch.service.journal import JournalError
from dispatch.service.servicer import _STREAM_WINDOW, RiderEventsCall, Servicer, _status
from dispatch.v1 import dispatch_pb2 as pb

log = logging.getLogger("dispatch.service")

_WAIT_S = 30.0  # as Journal.wait's timeout
_SETTLE_S = 1.0  # after a stop, pool threads get this long to finish on their own before they are unblocked
_UNBLOCK_S = 10.0  # and at most this long to be unblocked

_P = ParamSpec("_P")
_T = TypeVar("_T")


class AioServicer(Servicer):
    """``Servicer`` with its three hot calls as coroutines (see the module docstring)."""

    async def _committed(self, ticket: int) -> None:
        fut = self.journal.wait_async(ticket)
        if fut is not None:
            try:
                await asyncio.wait_for(fut, _WAIT_S)
            except TimeoutError:
                raise JournalError(f"not committed within {_WAIT_S:g} s") from None

    async def _fail(self, name: str, context: grpc.aio.ServicerContext, exc: Exception) -> None:
        """Map a refusal or failure to its status (as ``servicer._guard``) and count it."""
        if isinstance(exc, v.RefusalError):
            code, message = _status(exc.code), str(exc)
        elif isinstance(exc, JournalError):
            code, message = grpc.StatusCode.UNAVAILABLE, f"journal: {exc}"
        elif isinstance(exc, SlowWatcherError):
            code = grpc.StatusCode.RESOURCE_EXHAUSTED
            message = f"watcher too slow: {exc}; reconnect from the last sequence"
        else:
            log.error("%s failed", name, exc_info=exc)
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"
        self._count(name, code.name)
        await context.abort(code, message)

    def _count(self, name: str, code: str) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(name, code).inc()

    async def SubmitOrder(  # noqa: N802
        self, request: pb.SubmitOrderRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitOrderResponse:
        t0 = time.perf_counter()
        try:
            rec, dup, ticket = self._submit(request)
            await self._committed(ticket)
        except Exception as exc:
            await self._fail("SubmitOrder", context, exc)
            raise  # (abort raised already)
        self._count("SubmitOrder", "OK")
        self._acked(t0)
        return pb.SubmitOrderResponse(order=self.store.order_proto(rec), duplicate=dup)

    async def SubmitOrders(  # type: ignore[override]  # noqa: N802
        self, request_iterator: AsyncIterator[pb.SubmitOrdersRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubmitOrdersResponse]:
        """A reader task submits while this generator acknowledges in request order, so that many orders of one
        stream share a group commit (as the threaded handler's reader thread)."""
        acks: asyncio.Queue[Any] = asyncio.Queue(maxsize=_STREAM_WINDOW)
        done = object()

        async def reader() -> None:
            try:
                async for req in request_iterator:
                    # bounded: a client that stops reading its acks stops this reader too
                    await acks.put(self._stream_item(req))
            except Exception as exc:  # the client went away, or an unexpected failure: end the stream
                await acks.put(exc)
            await acks.put(done)

        task = asyncio.get_running_loop().create_task(reader())
        try:
            while True:
                item = await acks.get()
                if item is done:
                    break
                if isinstance(item, Exception):
                    if not isinstance(item, grpc.RpcError | asyncio.CancelledError):
                        log.warning("SubmitOrders stream ended: %s", item)
                    break
                ticket = self._stream_ticket(item)
                if ticket:
                    try:
                        await self._committed(ticket)
                    except JournalError as exc:
                        await context.abort(grpc.StatusCode.UNAVAILABLE, f"journal: {exc}")
                yield self._stream_response(item)
        finally:
            task.cancel()
        self._count("SubmitOrders", "OK")

    async def ReportRiderEvents(  # noqa: N802
        self, request_iterator: AsyncIterator[pb.ReportRiderEventsRequest], context: grpc.aio.ServicerContext
    ) -> pb.ReportRiderEventsResponse:
        call = RiderEventsCall(self)
        try:
            async for msg in request_iterator:
                try:
                    call.take(msg)
                except v.RefusalError:  # the whole call fails; what the earlier messages achieved stands
                    if call.ticket:
                        await self._committed(call.ticket)
                    raise
            if call.ticket:
                await self._committed(call.ticket)
        except Exception as exc:
            await self._fail("ReportRiderEvents", context, exc)
            raise
        self._count("ReportRiderEvents", "OK")
        return call.response()

    async def WatchAssignments(  # type: ignore[override]  # noqa: N802
        self, request: pb.WatchAssignmentsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchAssignmentsResponse]:
        """The threaded handler's stream as a coroutine: the live events come from ``Subscription.get_async`` and
        each journal page of a catch-up is read in a thread, so the loop never blocks.

        It must not be a threaded handler here: grpc.aio runs a plain generator on a pool thread that hands each
        item to the loop through a one-slot queue and waits for the loop to take it. Once the call has ended
        (the client cancelled, or the server stopped) nobody takes it, so that thread blocks for good: the
        generator never runs again to see the end, the pool loses a thread per such watcher, and the interpreter,
        which joins pool threads at exit, never exits."""
        sub = None
        try:
            sub, nxt, live_from = self._watch_start(request)
            loop = asyncio.get_running_loop()
            while nxt <= live_from and not self._stopping.is_set():
                page = await loop.run_in_executor(None, self.hub.catch_up_page, nxt, live_from)
                if not page:  # nothing more in the journal (or a gap)
                    break
                for batch in page:
                    yield batch
                nxt = page[-1].events[-1].sequence + 1
            while not self._stopping.is_set():
                out, nxt = fresh_events(await sub.get_async(0.5), nxt)
                if out is not None:
                    yield out
        except Exception as exc:
            await self._fail("WatchAssignments", context, exc)
            raise  # (abort raised already)
        finally:
            if sub is not None:
                sub.close()
        self._count("WatchAssignments", "OK")


class AioHealth:
    """grpc's asyncio health servicer (a threaded one would block a pool thread per Watch, as WatchAssignments
    would), with the threaded servicer's ``set`` and ``enter_graceful_shutdown`` callable from any other thread."""

    def __init__(self, server: AioServer) -> None:
        self.servicer = health.aio.HealthServicer()
        self._server = server

    def set(self, service: str, status: Any) -> None:
        self._server.run(self.servicer.set(service, status))

    def enter_graceful_shutdown(self) -> None:
        self._server.run(self.servicer.enter_graceful_shutdown())


def _refuse_async(handler: Any, code: grpc.StatusCode, message: str) -> Any:
    """An asyncio handler of the same shape as ``handler`` that fails with ``code``."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    return handler_like(handler, unary, streaming)


class AioAuthInterceptor(grpc.aio.ServerInterceptor):
    """``auth.AuthInterceptor``'s checks for the asyncio server."""

    def __init__(self, auth: AuthInterceptor) -> None:
        self._auth = auth

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:  # fmt: skip
        handler = await continuation(handler_call_details)
        refusal = self._auth.check(handler_call_details)
        if refusal is None:
            return handler
        return _refuse_async(handler, *refusal)


class _Pool(futures.ThreadPoolExecutor):
    """A thread pool that counts its work items not yet done (queued or running)."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._count_lock = threading.Lock()
        self.busy = 0

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> futures.Future[_T]:
        with self._count_lock:
            self.busy += 1
        try:
            fut = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        fut.add_done_callback(self._done)
        return fut

    def _done(self, _fut: Any) -> None:
        with self._count_lock:
            self.busy -= 1


def _cancel_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every task of ``loop`` (run on that loop)."""
    for task in asyncio.all_tasks(loop):
        task.cancel()


class AioServer:
    """A ``grpc.aio`` server on an event loop thread of its own, with the threaded server's ``stop(grace).wait()``
    and ``wait_for_termination()``, so that ``RunningServer`` drives either."""

    def __init__(self, workers: int, interceptors: list[Any], max_concurrent_rpcs: int, options: list[Any]) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="grpc-aio", daemon=True)
        self._thread.start()
        self._pool = _Pool(max_workers=workers, thread_name_prefix="rpc")
        self._closed = threading.Event()

        async def build() -> grpc.aio.Server:
            return grpc.aio.server(
                migration_thread_pool=self._pool,
                interceptors=interceptors,
                maximum_concurrent_rpcs=max_concurrent_rpcs,
                options=options,
            )

        self.server = self.run(build())

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop and return its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def add_insecure_port(self, address: str) -> int:
        return int(self.server.add_insecure_port(address))

    def add_secure_port(self, address: str, credentials: grpc.ServerCredentials) -> int:
        return int(self.server.add_secure_port(address, credentials))

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.server.add_registered_method_handlers(service, handlers)

    def start(self) -> None:
        self.run(self.server.start())

    def stop(self, grace: float | None) -> threading.Event:
        """Stop (calls in progress get ``grace`` seconds), then end the loop once the thread pool is done; returns a
        set event (its ``wait()`` returns at once), for ``stop(grace).wait()`` as with the threaded server."""
        try:
            self.run(self.server.stop(grace))
        finally:
            threading.Thread(target=self._close, name="grpc-aio-close", daemon=True).start()
        ended = threading.Event()
        ended.set()
        return ended

    def _close(self) -> None:
        """End the loop once the pool's threads are done: a threaded handler still running talks to its call
        through the loop, and the interpreter waits for those threads at exit. A pool thread that waits for the
        loop on a call that has ended (grpc.aio's adapter of a plain streaming handler, e.g. a third party's,
        waits for the loop to take an item nobody will take) is unblocked by cancelling what it waits for."""
        try:
            settle = time.monotonic() + _SETTLE_S
            while self._pool.busy and time.monotonic() < settle:
                time.sleep(0.02)
            deadline = time.monotonic() + _UNBLOCK_S
            while self._pool.busy and time.monotonic() < deadline:
                self.loop.call_soon_threadsafe(_cancel_tasks, self.loop)
                time.sleep(0.05)
            if self._pool.busy:
                log.warning("grpc-aio: %d handler(s) still running at stop", self._pool.busy)
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.loop.stop)
            self._closed.set()

    @property
    def busy_handlers(self) -> int:
        """Threaded handlers queued or running on the pool now."""
        return self._pool.busy

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the stopped server's pool is done and its loop has ended; False after ``timeout`` seconds."""
        if not self._closed.wait(timeout):
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_for_termination(self) -> None:
        self._thread.join()
