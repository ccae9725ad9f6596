"""An independent feasibility checker for benchmark solutions (its own code, not the solver's evaluation).

``check(inst, sol)`` rides every route from the depot in plain Python, in double precision, and reports every
broken rule in words:

- every route holds task nodes 1..n only, and every task is served exactly once;
- the load never exceeds the capacity: a VRPTW customer's demand is loaded at the depot and unloaded at the
  customer; a PDPTW pickup adds its demand and its delivery removes it (a delivery's demand is negative);
- service starts within ``[ready, due]`` (arriving early means waiting; travel time equals distance);
- the route is back at the depot by the horizon (the depot's ``due``);
- a delivery is on the same route as its pickup, after it;
- no more routes than the instance's vehicles.

Times are compared with an absolute tolerance ``eps`` (default 1e-6): the literature works in double precision
and published solutions are feasible to that precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dispatch.vrp.problem import VrpInstance, VrpSolution

EPS = 1e-6


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one solution: ``feasible`` iff ``violations`` is empty; ``vehicles`` counts non-empty
    routes and ``distance`` is the total Euclidean distance, depot to depot, in double precision."""

    feasible: bool
    violations: tuple[str, ...]
    vehicles: int
    distance: float


def _leg(inst: VrpInstance, a: int, b: int) -> float:
    dx = float(inst.x[a]) - float(inst.x[b])
    dy = float(inst.y[a]) - float(inst.y[b])
    return float((dx * dx + dy * dy) ** 0.5)


def check(inst: VrpInstance, sol: VrpSolution, eps: float = EPS) -> CheckResult:
    """Check ``sol`` against every rule of ``inst`` (see the module docstring)."""
    n = inst.n
    violations: list[str] = []
    seen = [0] * (n + 1)
    where: dict[int, tuple[int, int]] = {}  # task -> (route, position)
    total = 0.0
    vehicles = 0
    pickup = inst.pickup.tolist()
    delivery = inst.delivery.tolist()
    demand = inst.demand.tolist()
    ready = inst.ready.tolist()
    due = inst.due.tolist()
    service = inst.service.tolist()
    cap = float(inst.capacity)
    horizon = inst.horizon

    for r, route in enumerate(sol.routes):
        if not route:
            continue
        vehicles += 1
        bad = [v for v in route if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 1 <= v <= n]
        if bad:
            violations.append(f"route {r}: nodes {bad} are not tasks (tasks are 1..{n})")
            continue
        route = tuple(int(v) for v in route)
        for pos, v in enumerate(route):
            seen[v] += 1
            where.setdefault(v, (r, pos))
        # Load: depot-loaded demand (a VRPTW customer) is on board from the start.
        load = sum(demand[v] for v in route if pickup[v] < 0 and delivery[v] < 0)
        if load > cap + eps:
            violations.append(f"route {r}: leaves the depot with load {load:g} > capacity {cap:g}")
        t = float(ready[0])
        prev = 0
        for pos, v in enumerate(route):
            leg = _leg(inst, prev, v)
            total += leg
            arrive = t + leg
            start = max(arrive, ready[v])
            if start > due[v] + eps:
                violations.append(
                    f"route {r}, stop {pos}: service at task {v} starts at {start:.6f}, after its due time {due[v]:g}"
                )
            t = start + service[v]
            if pickup[v] < 0 and delivery[v] < 0:
                load -= demand[v]
            else:
                load += demand[v]
            if load > cap + eps:
                violations.append(f"route {r}, stop {pos}: load {load:g} after task {v} > capacity {cap:g}")
            prev = v
        leg = _leg(inst, prev, 0)
        total += leg
        back = t + leg
        if back > horizon + eps:
            violations.append(f"route {r}: back at the depot at {back:.6f}, after the horizon {horizon:g}")

    for v in range(1, n + 1):
        if seen[v] == 0:
            violations.append(f"task {v} is not served")
        elif seen[v] > 1:
            violations.append(f"task {v} is served {seen[v]} times")

    for p in range(1, n + 1):
        d = delivery[p]
        if d < 0 or p not in where or d not in where:
            continue
        (rp, ip), (rd, id_) = where[p], where[d]
        if rp != rd:
            violations.append(f"pickup {p} is on route {rp} but its delivery {d} is on route {rd}")
        elif id_ < ip:
            violations.append(f"route {rp}: delivery {d} comes before its pickup {p}")

    if vehicles > inst.n_vehicles:
        violations.append(f"{vehicles} routes, more than the {inst.n_vehicles} vehicles available")
    return CheckResult(not violations, tuple(violations), vehicles, total)
