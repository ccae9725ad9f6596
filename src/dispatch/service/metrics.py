"""Prometheus metrics of one server on an HTTP port of their own (a registry per server, so tests can run several).

- ``dispatch_tick_seconds`` (histogram): wall time of a dispatch tick (with ``tick_slots``, of one slot);
- ``dispatch_queue_depth{queue}`` (gauge): ``journal`` (records waiting for the writer), ``pending`` (orders waiting
  for dispatch), ``watchers`` (open WatchAssignments streams);
- ``dispatch_orders{state}`` (gauge): orders by life-cycle state;
- ``dispatch_orders_at_risk`` (gauge): orders estimated to be delivered after their promise;
- ``dispatch_riders_online`` (gauge); ``dispatch_assignment_sequence`` (gauge): the last sequence;
- ``dispatch_requests_total{method,code}`` (counter): finished RPCs by status;
- ``dispatch_ack_seconds`` (histogram): an accepted order's time in the server, from its message read to its ack
  ready to send (after the journal commit): the server's share of the ack latency a client sees, without the
  network or the client's own delays.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from dispatch.v1 import dispatch_pb2 as pb


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tick = Histogram(
            "dispatch_tick_seconds", "Wall time of a dispatch tick", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )  # fmt: skip
        self.queue = Gauge("dispatch_queue_depth", "Items waiting in a bounded queue", ["queue"], registry=r)
        self.orders = Gauge("dispatch_orders", "Orders by state", ["state"], registry=r)
        self.at_risk = Gauge("dispatch_orders_at_risk", "Orders estimated late", registry=r)
        self.riders = Gauge("dispatch_riders_online", "Riders online", registry=r)
        self.sequence = Gauge("dispatch_assignment_sequence", "Last assignment sequence", registry=r)
        self.requests = Counter("dispatch_requests_total", "Finished RPCs", ["method", "code"], registry=r)
        self.ack = Histogram(
            "dispatch_ack_seconds", "Accepted order: message read to ack ready (after the journal commit)", registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
        )  # fmt: skip
        self._server: Any = None
        self.port = 0

    def serve(self, host: str, port: int) -> int:
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        self.port = int(server.server_port)
        return self.port

    def observe_state(self, counts: dict[int, int], pending: int, journal: int, watchers: int, riders: int,
                      at_risk: int, seq: int) -> None:  # fmt: skip
        for st, n in counts.items():
            self.orders.labels(pb.OrderState.Name(st).removeprefix("ORDER_STATE_").lower()).set(n)
        self.queue.labels("pending").set(pending)
        self.queue.labels("journal").set(journal)
        self.queue.labels("watchers").set(watchers)
        self.riders.set(riders)
        self.at_risk.set(at_risk)
        self.sequence.set(seq)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
