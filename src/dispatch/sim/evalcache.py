"""Route evaluations kept from tick to tick in the simulator, so that a tick evaluates only what changed.

A rider's evaluation (``kernels.route.evaluate_routes``: arrival and departure per stop, loads, lateness,
slack, totals) depends on its route, its position, when it is available, and the orders' deadlines, nothing else
(travel times are a pure function of place and time). Between two ticks most riders keep all of these: only the
riders whose route the policy changed, the riders that completed a stop, and the idle riders (their position and
availability move with the clock) need a new evaluation. The loop marks those ``dirty``; ``refresh`` evaluates
them, and the others keep their rows.

The evaluations are on the policy's planning view (every deadline ``promise_margin_s`` earlier), so that the
kernel policy can take them as they are (``Snapshot.evaluation``); arrival and departure times and metres, all the
loop's movement reads, do not depend on the deadlines.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.kernels.compact import take_evaluation
from dispatch.kernels.route import allocate_evaluation, evaluate_subset
from dispatch.policy import DispatchParams
from dispatch.state import OrderTable, RiderTable, Routes

I64 = npt.NDArray[np.int64]


class EvalCache:
    """Evaluations of a shard's m riders (rows), ``dirty`` (bool[m]) where a row is out of date."""

    def __init__(
        self, orders: OrderTable, riders: RiderTable, travel: tuple[Any, ...], params: DispatchParams, width: int
    ) -> None:
        self._orders = orders
        self._margin = params.promise_margin_s
        self._promised = orders.promised - self._margin
        t = orders.as_tuple()
        self._orders_t = (*t[:8], self._promised, *t[9:])
        self._riders_t = riders.as_tuple()  # the loop updates the riders' arrays in place
        self._travel = travel
        self._weights = params.weights
        self._mode = params.mode
        self.ev, self.tot = allocate_evaluation(riders.m, width)
        self.dirty = np.ones(riders.m, dtype=bool)

    def promised_changed(self, idx: I64) -> None:
        """Orders ``idx`` got new deadlines (quoted); they are in no route yet."""
        self._promised[idx] = self._orders.promised[idx] - self._margin

    def refresh(self, routes: Routes, rows: I64) -> None:
        """Bring rows ``rows`` (int64[q]) up to date for ``routes``."""
        if routes.width != self.ev[0].shape[1]:
            ev, tot = allocate_evaluation(routes.length.shape[0], routes.width)
            w = min(routes.width, self.ev[0].shape[1])
            for a, b in zip(ev, self.ev, strict=True):
                a[:, :w] = b[:, :w]
            for a, b in zip(tot, self.tot, strict=True):
                a[:] = b
            self.ev, self.tot = ev, tot
        todo = rows[self.dirty[rows]]
        if todo.size:
            evaluate_subset(self._orders_t, self._riders_t, routes.as_tuple(), self._travel, self._weights,
                            self._mode, todo, self.ev, self.tot)  # fmt: skip
            self.dirty[todo] = False

    def rows(self, idx: I64, length: I64) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """Copies of rows ``idx`` (int64[q]), as ``Snapshot.evaluation`` takes them (call ``refresh`` first). Of
        the per-stop arrays only the stops of each route are copied (``length``: int64[m], the routes' lengths);
        the entries past a route's end, which no kernel reads, are left unset: on a full peak-day shard (58,000
        riders offered, most of them idle) the copy took 4x less time (benchmarks/RESULTS.md, "Simulator,
        session 6")."""
        ev, tot = take_evaluation(self.ev, self.tot, idx, length)
        return tuple(ev), tuple(tot)
