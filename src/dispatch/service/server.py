"""Server bootstrap: ``create_server(config) -> RunningServer`` (the bound ``port``, so tests can listen on port 0).

Startup replays the journal into a fresh store (pending orders, routes, the assignment sequence and the parameters
come back as acknowledged), then starts the journal writer, the dispatch loop, the metrics endpoint and the gRPC
server with the health and reflection services (``grpc_server``: the asyncio front end of ``dispatch.service.aio``,
or grpc's threaded server). ``stop`` is graceful: no new calls, calls in progress get ``grace``
seconds, the tick in progress finishes, the journal is flushed and closed.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dispatch.service.auth import AuthInterceptor
from dispatch.service.config import ServiceConfig
from dispatch.service.hub import Hub
from dispatch.service.journal import Journal, Record
from dispatch.service.loop import DispatchLoop, TickStats
from dispatch.service.metrics import Metrics
from dispatch.service.servicer import Servicer
from dispatch.service.store import Store
from dispatch.v1 import dispatch_pb2 as pb
from dispatch.v1 import dispatch_pb2_grpc as pbg

log = logging.getLogger("dispatch.service")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DispatchService"].full_name


@dataclass
class RunningServer:
    """A started server and its parts."""

    server: Any  # a grpc.Server, or an aio.AioServer (the same stop/wait)
    port: int
    metrics_port: int | None
    config: ServiceConfig
    store: Store
    journal: Journal
    loop: DispatchLoop
    hub: Hub
    servicer: Servicer
    metrics: Metrics
    health: Any
    replayed: int
    _stopped: bool = False

    def stop(self, grace: float = 5.0) -> None:
        """Graceful stop (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        log.info("stopping", extra={"grace_s": grace})
        self.health.enter_graceful_shutdown()
        self.servicer.stop_watchers()
        self.server.stop(grace).wait()
        self.loop.stop()
        self.journal.close()
        self.metrics.close()
        log.info("stopped", extra={"journal_records": self.journal.records, "commits": self.journal.commits})

    def wait(self) -> None:
        self.server.wait_for_termination()


def _credentials(cfg: ServiceConfig) -> grpc.ServerCredentials:
    assert cfg.tls_cert is not None and cfg.tls_key is not None
    key = Path(cfg.tls_key).read_bytes()
    cert = Path(cfg.tls_cert).read_bytes()
    ca = Path(cfg.tls_client_ca).read_bytes() if cfg.tls_client_ca else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def _promise_engine(store: Store) -> Any:
    """The promise engine over the service's sites in their planar frames (the Quote RPC projects the address with
    ``Store.address_xy``), or None when dispatch.promise is unavailable."""
    try:
        from dispatch.promise import PromiseEngine, PromiseSites
        from dispatch.zones import disc_zones
    except ImportError:
        return None
    x = [s.x for s in store.sites]
    y = [s.y for s in store.sites]
    sites = PromiseSites.build([s.spec.id for s in store.sites], x, y, [s.spec.service_s for s in store.sites])
    zones = disc_zones(x, y, [s.spec.zone_m for s in store.sites])
    from dispatch.sim.shard import travel_arrays

    return PromiseEngine(sites, zones, travel_arrays(store.cfg.travel, store.cfg.utc_offset_s), store.promise)


def warm_promise(store: Store) -> float:
    """Run the promise engine's update once on a throwaway engine over the store's sites (one rider at the first
    site with one order on its route), so that its kernels are loaded before the first tick: loading them in the
    first tick held the server's GIL for 0.4 to 1 s. Returns the seconds it took (0 when there is no engine)."""
    t0 = time.perf_counter()
    engine = _promise_engine(store)
    if engine is None:
        return 0.0
    from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes

    site = store.sites[0]
    now = time.time()
    orders = OrderTable.build(
        pick_x=[site.x], pick_y=[site.y], drop_x=[site.x + 500.0], drop_y=[site.y], site=[0], ready=[now],
        promised=[now + 3600.0], service_pick=[site.spec.service_s], service_drop=[60.0], placed=[now],
    )  # fmt: skip
    riders = RiderTable.build(x=[site.x], y=[site.y], avail=[now], shift_end=[now + 3600.0], capacity=[4])
    routes = Routes.from_lists([[(0, PICKUP), (0, DROPOFF)]], 4)
    engine.update(orders, riders, routes, now, pending=np.zeros(0, dtype=np.int64))
    return time.perf_counter() - t0


def create_server(cfg: ServiceConfig, start_loop: bool = True) -> RunningServer:
    """Replay the journal, start everything, and return the running server (see the module docstring)."""
    t0 = time.perf_counter()
    hub_box: list[Hub] = []

    def on_commit(records: list[Record]) -> None:
        if hub_box:
            hub_box[0].publish(records)

    journal = Journal(cfg.journal, cfg.journal_sync, cfg.limits.journal_queue, on_commit)
    store = Store(cfg)
    replayed = store.replay(journal.replay())
    store.journal = journal
    hub = Hub(journal, store.seq, cfg.limits.watch_buffer)
    hub_box.append(hub)
    journal.start()
    metrics = Metrics()
    metrics_port = metrics.serve(cfg.metrics_host, cfg.metrics_port) if cfg.metrics_port is not None else None
    promise = _promise_engine(store)
    servicer = Servicer(store, journal, hub, metrics, promise)

    options = [("grpc.max_receive_message_length", 4 * cfg.limits.max_message_bytes), ("grpc.so_reuseport", 0)]
    server: Any
    health_servicer: Any  # set(name, status) and enter_graceful_shutdown(), from any thread
    if cfg.grpc_server == "aio":
        from dispatch.service.aio import AioAuthInterceptor, AioHealth, AioServer, AioServicer

        servicer = AioServicer(store, journal, hub, metrics, promise)
        auth = [AioAuthInterceptor(AuthInterceptor(cfg.tokens))] if cfg.tokens else []
        server = AioServer(cfg.limits.workers, auth, cfg.limits.max_concurrent_rpcs, options)
        reflect_on = server.server  # a grpc.aio server: reflection takes its asyncio servicer
        health_servicer = AioHealth(server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer.servicer, server)
    else:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=cfg.limits.workers, thread_name_prefix="rpc"),
            interceptors=[AuthInterceptor(cfg.tokens)] if cfg.tokens else [],
            maximum_concurrent_rpcs=cfg.limits.max_concurrent_rpcs,
            options=options,
        )
        reflect_on = server
        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    pbg.add_DispatchServiceServicer_to_server(servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), reflect_on)
    if cfg.insecure:
        port = server.add_insecure_port(cfg.listen)
    else:
        port = server.add_secure_port(cfg.listen, _credentials(cfg))
    if port == 0:
        journal.close()
        metrics.close()
        raise OSError(f"listen: cannot bind {cfg.listen}")

    def on_tick(st: TickStats) -> None:
        metrics.tick.observe(st.seconds)
        with store.lock:
            counts = dict(store.counts)
            pending, riders, seq = len(store.pending), store.riders_online, store.seq
        metrics.observe_state(counts, pending, journal.depth, hub.watchers, riders, st.at_risk, seq)
        if st.assigned or st.dropped_riders:
            extra = {"slot": st.slot, "orders": st.orders, "riders": st.riders, "assigned": st.assigned,
                     "dropped": st.dropped_riders, "events": st.events, "ms": round(st.seconds * 1e3, 1)}  # fmt: skip
            extra.update({f"{k}_ms": round(v * 1e3, 1) for k, v in st.phases.items()})
            log.info("tick", extra=extra)

    loop = DispatchLoop(store, on_tick=on_tick, promise=promise)
    server.start()
    for name in ("", SERVICE_NAME):  # accepting calls, not dispatching yet: readiness waits for the warm-up
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        warm_s = loop.warm()
    except Exception:  # a broken warm-up must not keep the server down: the first tick will say what is wrong
        log.exception("policy warm-up failed")
        warm_s = float("nan")
    try:
        warm_s += warm_promise(store)
    except Exception:  # the same for the promise engine
        log.exception("promise engine warm-up failed")
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if start_loop:
        loop.start()
    log.info(
        "serving",
        extra={"port": port, "metrics_port": metrics_port, "replayed": replayed, "orders": len(store.orders),
               "pending": len(store.pending), "sequence": store.seq, "sites": len(store.owned_site_ids),
               "warm_up_ms": round(warm_s * 1e3, 1), "startup_ms": round((time.perf_counter() - t0) * 1e3, 1)},
    )  # fmt: skip
    return RunningServer(server, port, metrics_port, cfg, store, journal, loop, hub, servicer, metrics,
                         health_servicer, replayed)  # fmt: skip


def serve_forever(cfg: ServiceConfig) -> int:
    """Run until SIGTERM or SIGINT, then stop gracefully. Returns the exit code."""
    running = create_server(cfg)
    gc.freeze()  # what startup built (the replayed journal, the kernels) is never collected: keep it out of reach
    running.loop.freeze_gc = True
    done = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        log.info("signal", extra={"signal": signal.Signals(signum).name})
        done.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    print(f"dispatch serve: listening on port {running.port}", flush=True)
    while not done.wait(0.5):
        pass
    running.stop()
    return 0
