"""The benchmark routing problem: a VRPTW or PDPTW instance from the literature, and a solution to it.

Node 0 is the depot; nodes 1..n are tasks (a Solomon customer, or a Li & Lim pickup or delivery). Travel time
equals Euclidean distance in double precision (no rounding). Service at a node starts within
``[ready, due]``; arriving early means waiting; service takes ``service`` time units. Every route starts and
ends at the depot and must be back by the depot's ``due`` (the horizon). A vehicle's load never exceeds
``capacity``: in a VRPTW every demand is a delivery picked up at the depot (load = sum of the route's
demands); in a PDPTW a pickup adds its demand and its delivery (demand < 0) removes it, and both must be on
the same route, pickup first.

The literature's objective is hierarchical: fewest vehicles first, then least total distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class VrpInstance:
    """One instance, structure of arrays, every array of shape (n + 1,) with node 0 the depot.

    - ``x``, ``y``, ``demand``, ``ready``, ``due``, ``service``: float64;
    - ``pickup``: int64, for a delivery node the node of its pickup, -1 otherwise;
    - ``delivery``: int64, for a pickup node the node of its delivery, -1 otherwise.

    A VRPTW has ``pickup`` and ``delivery`` all -1 (``is_pdptw`` is False).
    """

    name: str
    n_vehicles: int
    capacity: float
    x: F64
    y: F64
    demand: F64
    ready: F64
    due: F64
    service: F64
    pickup: I64
    delivery: I64
    _dist: F64 | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        n1 = self.x.shape[0]
        if n1 < 2:
            raise ValueError(f"{self.name}: an instance needs a depot and at least one task")
        for name in ("x", "y", "demand", "ready", "due", "service", "pickup", "delivery"):
            a = getattr(self, name)
            if a.shape != (n1,):
                raise ValueError(f"{self.name}: {name} has shape {a.shape}, expected ({n1},)")
        if self.n_vehicles < 1:
            raise ValueError(f"{self.name}: n_vehicles must be >= 1, got {self.n_vehicles}")
        if not self.capacity > 0:
            raise ValueError(f"{self.name}: capacity must be > 0, got {self.capacity}")

    @property
    def n(self) -> int:
        """Number of tasks (nodes 1..n)."""
        return int(self.x.shape[0] - 1)

    @property
    def horizon(self) -> float:
        """The depot's due time: every route must be back by then."""
        return float(self.due[0])

    @property
    def is_pdptw(self) -> bool:
        return bool((self.pickup >= 0).any() or (self.delivery >= 0).any())

    @property
    def dist(self) -> F64:
        """Euclidean distance matrix, float64 of shape (n + 1, n + 1); computed once."""
        if self._dist is None:
            dx = self.x[:, None] - self.x[None, :]
            dy = self.y[:, None] - self.y[None, :]
            object.__setattr__(self, "_dist", np.sqrt(dx * dx + dy * dy))
        assert self._dist is not None
        return self._dist


@dataclass(frozen=True)
class VrpSolution:
    """Routes as lists of task nodes (1..n) in visiting order, the depot left out; empty routes are dropped."""

    routes: tuple[tuple[int, ...], ...]

    @property
    def vehicles(self) -> int:
        return sum(1 for r in self.routes if r)

    def distance(self, inst: VrpInstance) -> float:
        """Total Euclidean distance, depot to depot, in double precision."""
        d = inst.dist
        total = 0.0
        for r in self.routes:
            if not r:
                continue
            prev = 0
            for v in r:
                total += float(d[prev, v])
                prev = v
            total += float(d[prev, 0])
        return total
