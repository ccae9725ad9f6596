"""The gRPC servicer: proto <-> model, thin. Each call checks its input (``validate``), calls the store, waits for
its journal ticket and answers; a refusal becomes the status it names (or, in a stream, a Rejection), anything
unexpected becomes INTERNAL without taking the server down. ``dispatch.service.aio`` runs the hot calls of this
servicer as coroutines under the asyncio front end (the default); the other calls run these handlers there too."""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from dispatch.service import validate as v
from dispatch.service.hub import Hub, SlowWatcherError, Subscription, fresh_events
from dispatch.service.journal import Journal, JournalError
from dispatch.service.metrics import Metrics
from dispatch.service.params import from_proto, merged, to_proto
from dispatch.service.store import Store, ts
from dispatch.v1 import dispatch_pb2 as pb
from dispatch.v1 import dispatch_pb2_grpc as pbg

log = logging.getLogger("dispatch.service")

_CODES = {c.value[0]: c for c in grpc.StatusCode}
# SubmitOrders messages of one stream between reading and acknowledging (each of at most
# ``limits.max_orders_per_message`` orders; what they hold in memory is bounded by the store's own limits too)
_STREAM_WINDOW = 2000


def _status(code: int) -> grpc.StatusCode:
    return _CODES.get(code, grpc.StatusCode.UNKNOWN)


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map refusals and failures of a unary (or client-streaming) handler to statuses; count them."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(self: Servicer, request: Any, context: grpc.ServicerContext) -> Any:
        code = "OK"
        try:
            return fn(self, request, context)
        except v.RefusalError as exc:
            code = _status(exc.code).name
            context.abort(_status(exc.code), str(exc))
        except JournalError as exc:
            code = "UNAVAILABLE"
            context.abort(grpc.StatusCode.UNAVAILABLE, f"journal: {exc}")
        except Exception as exc:
            code = "INTERNAL"
            log.exception("%s failed", name)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        finally:
            if self.metrics is not None:
                self.metrics.requests.labels(name, code).inc()

    return wrapper


def _guard_stream(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """The same for server-streaming handlers (generators)."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(self: Servicer, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        code = "OK"
        try:
            yield from fn(self, request, context)
        except v.RefusalError as exc:
            code = _status(exc.code).name
            context.abort(_status(exc.code), str(exc))
        except JournalError as exc:
            code = "UNAVAILABLE"
            context.abort(grpc.StatusCode.UNAVAILABLE, f"journal: {exc}")
        except SlowWatcherError as exc:
            code = "RESOURCE_EXHAUSTED"
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"watcher too slow: {exc}; reconnect from the last sequence"
            )
        except Exception as exc:
            code = "INTERNAL"
            log.exception("%s failed", name)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        finally:
            if self.metrics is not None:
                self.metrics.requests.labels(name, code).inc()

    return wrapper


class RiderEventsCall:
    """One ReportRiderEvents call's progress, message by message (shared by the threaded and the asyncio handlers):
    ``take`` checks and applies a message (a RefusalError fails the whole call, naming the earlier events
    accepted), ``ticket`` is the journal ticket to wait for before answering, ``response`` the answer."""

    def __init__(self, servicer: Servicer) -> None:
        self.s = servicer
        self.accepted = 0
        self.index = 0
        self.ticket = 0
        self.out = pb.ReportRiderEventsResponse()

    def take(self, msg: pb.ReportRiderEventsRequest) -> None:
        limits = self.s.limits
        try:
            v.message_size(msg, limits.max_message_bytes, "events")
            if len(msg.events) > limits.max_events_per_message:
                raise v.invalid(
                    "events", f"{len(msg.events)} events in one message; at most {limits.max_events_per_message}"
                )
        except v.RefusalError as exc:
            where = f"message at event index {self.index}; {self.accepted} earlier events accepted"
            raise v.invalid("events", f"{exc.message} ({where})") from None
        items, bad = v.rider_events(msg.events, self.index)
        self.index += len(msg.events)
        if items:
            n, refused, t = self.s.store.rider_events(items, time.time(), None if bad else msg)
            self.accepted += n
            self.ticket = max(self.ticket, t)
            bad.extend(refused)
        for idx, rid, err in bad:
            self.out.rejections.add(index=idx, rider_id=rid, rejection=err.rejection())

    def response(self) -> pb.ReportRiderEventsResponse:
        out = self.out
        out.accepted = self.accepted
        rej = sorted(out.rejections, key=lambda r: r.index)
        del out.rejections[:]
        out.rejections.extend(rej)
        return out


class Servicer(pbg.DispatchServiceServicer):
    """See the module docstring."""

    def __init__(self, store: Store, journal: Journal, hub: Hub, metrics: Metrics | None = None,
                 promise: Any = None) -> None:  # fmt: skip
        self.store = store
        self.journal = journal
        self.hub = hub
        self.metrics = metrics
        self.promise = promise
        self.limits = store.cfg.limits
        self._stopping = threading.Event()

    def stop_watchers(self) -> None:
        """End the WatchAssignments streams (a stop): each one returns when woken."""
        self._stopping.set()
        self.hub.wake_all()

    # -- orders -------------------------------------------------------------------------------------------------

    def _submit(self, req: pb.SubmitOrderRequest | pb.SubmitOrdersRequest) -> tuple[Any, bool, int]:
        v.message_size(req, self.limits.max_message_bytes, "order")
        if not req.HasField("order"):
            raise v.invalid("order", "required")
        return self._submit_order(req.order)

    def _submit_order(self, o: pb.Order) -> tuple[Any, bool, int]:
        oi = v.order(o)
        rec, dup, ticket = self.store.submit(oi, o)
        if not dup and self.promise is not None:
            self.promise.admit(rec.site)  # the site's queue grows for quotes until the next tick's update
        return rec, dup, ticket

    def _stream_item(self, req: pb.SubmitOrdersRequest) -> Any:
        """One SubmitOrders message taken in, for its ack. The one-order form gives an item ``(order id, record,
        duplicate, journal ticket, refusal, start time)``, the record None and the refusal set when it was refused;
        a batch (``orders`` set) gives a list of such items, one per order. Both front ends' readers use it."""
        if not req.orders:
            t0 = time.perf_counter()
            try:
                rec, dup, ticket = self._submit(req)
                return (req.order.id, rec, dup, ticket, None, t0)
            except v.RefusalError as exc:
                return (req.order.id, None, False, 0, exc, t0)
        return self._batch_items(req)

    def _batch_items(self, req: pb.SubmitOrdersRequest) -> list[tuple[Any, ...]]:
        """The items of a batch message (``order`` first when set, then ``orders``), each order taken on its own;
        a message over the size limit or with more than ``max_orders_per_message`` orders refuses them all."""
        t0 = time.perf_counter()
        orders = [req.order, *req.orders] if req.HasField("order") else list(req.orders)
        cap = self.limits.max_orders_per_message
        try:
            v.message_size(req, self.limits.max_message_bytes, "orders")
            if len(orders) > cap:
                raise v.invalid("orders", f"{len(orders)} orders in one message; at most {cap}")
        except v.RefusalError as exc:
            return [(o.id, None, False, 0, exc, t0) for o in orders]
        items: list[tuple[Any, ...]] = []
        for o in orders:
            try:
                rec, dup, ticket = self._submit_order(o)
                items.append((o.id, rec, dup, ticket, None, t0))
            except v.RefusalError as exc:
                items.append((o.id, None, False, 0, exc, t0))
        return items

    @staticmethod
    def _stream_ticket(taken: Any) -> int:
        """The journal ticket to wait for before acknowledging what ``_stream_item`` took (0: nothing to wait for)."""
        if isinstance(taken, list):
            return max((item[3] for item in taken), default=0)
        return int(taken[3])

    def _stream_response(self, taken: Any) -> pb.SubmitOrdersResponse:
        """The ack of what ``_stream_item`` took, once its ticket is committed: one order's, or a batch's."""
        resp = pb.SubmitOrdersResponse()
        if isinstance(taken, list):
            for item in taken:
                self._fill_ack(resp.acks.add(), *item)
        else:
            self._fill_ack(resp, *taken)
        return resp

    def _fill_ack(self, resp: pb.SubmitOrdersResponse, oid: str, rec: Any, dup: bool, _ticket: int,
                  err: v.RefusalError | None, t0: float) -> None:  # fmt: skip
        """One order's ack, built in place (no copy of a copy of the order); an accepted order's once its record
        is in the journal (``t0``: when its message was read, for the ack-time histogram)."""
        resp.order_id = oid
        if err is not None:
            resp.rejection.CopyFrom(err.rejection())
            return
        ok = resp.accepted
        ok.order.CopyFrom(rec.proto)
        ok.order.state = rec.state
        ok.duplicate = dup
        self._acked(t0)

    @_guard
    def SubmitOrder(  # noqa: N802
        self, request: pb.SubmitOrderRequest, context: grpc.ServicerContext
    ) -> pb.SubmitOrderResponse:
        t0 = time.perf_counter()
        rec, dup, ticket = self._submit(request)
        self.journal.wait(ticket)
        self._acked(t0)
        return pb.SubmitOrderResponse(order=self.store.order_proto(rec), duplicate=dup)

    def _acked(self, t0: float) -> None:
        """An accepted order's time in the server since ``t0`` (perf_counter), for ``dispatch_ack_seconds``."""
        if self.metrics is not None:
            self.metrics.ack.observe(time.perf_counter() - t0)

    def SubmitOrders(  # noqa: N802
        self, request_iterator: Iterator[pb.SubmitOrdersRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.SubmitOrdersResponse]:
        """Reads and submits on a thread of its own while this generator acknowledges in request order, so that
        many orders of one stream share a group commit."""
        acks: queue.Queue[Any] = queue.Queue(maxsize=_STREAM_WINDOW)
        done = object()

        def put(item: Any) -> bool:
            while True:  # bounded: a client that stops reading its acks stops this reader too
                try:
                    acks.put(item, timeout=1.0)
                    return True
                except queue.Full:
                    if not context.is_active():
                        return False

        def reader() -> None:
            try:
                for req in request_iterator:
                    if not put(self._stream_item(req)):
                        return
            except Exception as exc:  # the client went away, or an unexpected failure: end the stream
                put(exc)
            put(done)

        t = threading.Thread(target=reader, name="submit-orders-reader", daemon=True)
        t.start()
        while True:
            item = acks.get()
            if item is done:
                break
            if isinstance(item, Exception):
                if not isinstance(item, grpc.RpcError):
                    log.warning("SubmitOrders stream ended: %s", item)
                break
            ticket = self._stream_ticket(item)
            if ticket:
                try:
                    self.journal.wait(ticket)
                except JournalError as exc:
                    context.abort(grpc.StatusCode.UNAVAILABLE, f"journal: {exc}")
            yield self._stream_response(item)
        if self.metrics is not None:
            self.metrics.requests.labels("SubmitOrders", "OK").inc()

    @_guard
    def CancelOrder(  # noqa: N802
        self, request: pb.CancelOrderRequest, context: grpc.ServicerContext
    ) -> pb.CancelOrderResponse:
        v.message_size(request, self.limits.max_message_bytes, "reason")
        oid = v.check_id(request.order_id, "order_id")
        if len(request.reason) > 1000:
            raise v.invalid("reason", f"at most 1000 characters, got {len(request.reason)}")
        rec, ticket = self.store.cancel(oid, request.reason, time.time())
        self.journal.wait(ticket)
        return pb.CancelOrderResponse(order=self.store.order_proto(rec))

    @_guard
    def GetOrder(  # noqa: N802
        self, request: pb.GetOrderRequest, context: grpc.ServicerContext
    ) -> pb.GetOrderResponse:
        return self.store.get_order(v.check_id(request.order_id, "order_id"))

    # -- riders -------------------------------------------------------------------------------------------------

    @_guard
    def ReportRiderEvents(  # noqa: N802
        self, request_iterator: Iterator[pb.ReportRiderEventsRequest], context: grpc.ServicerContext
    ) -> pb.ReportRiderEventsResponse:
        call = RiderEventsCall(self)
        for msg in request_iterator:
            try:
                call.take(msg)
            except v.RefusalError:  # the whole call fails; what the earlier messages achieved stands
                if call.ticket:
                    self.journal.wait(call.ticket)
                raise
        if call.ticket:
            self.journal.wait(call.ticket)
        return call.response()

    @_guard
    def GetRider(  # noqa: N802
        self, request: pb.GetRiderRequest, context: grpc.ServicerContext
    ) -> pb.GetRiderResponse:
        return self.store.get_rider(v.check_id(request.rider_id, "rider_id"))

    @_guard
    def GetSite(  # noqa: N802
        self, request: pb.GetSiteRequest, context: grpc.ServicerContext
    ) -> pb.GetSiteResponse:
        return self.store.get_site(v.check_id(request.site_id, "site_id"))

    # -- assignments --------------------------------------------------------------------------------------------

    def _watch_start(self, request: pb.WatchAssignmentsRequest) -> tuple[Subscription, int, int]:
        """A watcher's live subscription, the first sequence it wants and the last one published before it
        subscribed (it reads up to there from the journal). Raises RefusalError (the subscription closed) for a
        sequence older than the journal holds."""
        sub, live_from = self.hub.subscribe()
        start = int(request.from_sequence)
        if start:
            first = self.journal.first_sequence()
            if start < first:
                sub.close()
                raise v.RefusalError(
                    v.OUT_OF_RANGE, "from_sequence", f"{start} is older than the oldest sequence held ({first})"
                )
        return sub, (live_from + 1 if start == 0 else start), live_from

    @_guard_stream
    def WatchAssignments(  # noqa: N802
        self, request: pb.WatchAssignmentsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchAssignmentsResponse]:
        # The threaded front end's handler (the asyncio one has a coroutine: ``aio.AioServicer.WatchAssignments``).
        ended = threading.Event()  # set when the call ends
        if context.add_callback(ended.set) is False:
            return
        sub, nxt, live_from = self._watch_start(request)
        try:
            if nxt <= live_from:
                for batch in self.hub.catch_up(nxt, live_from):
                    yield batch
                    nxt = batch.events[-1].sequence + 1
            while not ended.is_set() and not self._stopping.is_set():
                out, nxt = fresh_events(sub.get(0.5), nxt)
                if out is not None:
                    yield out
        finally:
            sub.close()

    # -- promises -----------------------------------------------------------------------------------------------

    @_guard
    def Quote(  # noqa: N802
        self, request: pb.QuoteRequest, context: grpc.ServicerContext
    ) -> pb.QuoteResponse:
        if not request.HasField("address"):
            raise v.invalid("address", "required")
        lat, lng = v.latlng(request.address, "address")
        if request.size <= 0:
            raise v.invalid("size", f"must be > 0, got {request.size}")
        site = request.site_id or None
        if site is not None and site not in self.store.site_index:
            raise v.RefusalError(v.NOT_FOUND, "site_id", f"unknown site {site!r}")
        if self.promise is None:
            raise v.RefusalError(12, "", "Quote: the promise engine is not available in this build")  # UNIMPLEMENTED
        now = time.time()
        si = self.store.site_index[site] if site is not None else None
        x, y = self.store.address_xy(lat, lng, si)  # zones are in the sites' planar frames, as the store's
        q = self.promise.quote_xy(x, y, int(request.size), now, si)
        out = pb.QuoteResponse()
        ts(q.quoted_at, out.quoted_at)
        for opt in q.options:
            o = out.options.add(site_id=str(opt.site_id), on_time_probability=float(opt.on_time_prob),
                                deferred=bool(opt.deferred))  # fmt: skip
            ts(opt.promised_by, o.promised_by)
            ts(opt.eta, o.estimated_delivery)
            o.tier.FromNanoseconds(round(opt.tier * 1e9))
        if q.declined_reason is not None:
            out.decline_reason = int(q.declined_reason)  # type: ignore[assignment]
        return out

    # -- ops ----------------------------------------------------------------------------------------------------

    @_guard
    def GetStats(  # noqa: N802
        self, request: pb.GetStatsRequest, context: grpc.ServicerContext
    ) -> pb.GetStatsResponse:
        return self.store.stats(time.time())

    @_guard
    def GetParams(  # noqa: N802
        self, request: pb.GetParamsRequest, context: grpc.ServicerContext
    ) -> pb.GetParamsResponse:
        with self.store.lock:
            return pb.GetParamsResponse(
                params=to_proto(self.store.params, self.store.promise), version=self.store.params_version
            )

    @_guard
    def UpdateParams(  # noqa: N802
        self, request: pb.UpdateParamsRequest, context: grpc.ServicerContext
    ) -> pb.UpdateParamsResponse:
        v.message_size(request, self.limits.max_message_bytes, "params")
        with self.store.lock:
            current = to_proto(self.store.params, self.store.promise)
            base_d, base_p = self.store.params, self.store.promise
        new = merged(current, request.params, list(request.update_mask.paths))
        dp, pp = from_proto(new, base_d, base_p)
        resp, ticket = self.store.update_params(to_proto(dp, pp), dp, pp)
        self.journal.wait(ticket)
        if self.promise is not None:
            self.promise.set_params(pp)
        return resp
