"""The one OR-Tools adapter: re-optimise a group of riders' routes as a pickup-and-delivery problem.

``optimise`` takes the riders to plan together (``rider_idx``) and optionally orders in no route yet
(``new_orders``), builds an OR-Tools routing model over the non-frozen parts of their routes, solves it within a
time limit from a warm start, and keeps the solver's answer only when our own evaluation (``sequence_cost``) says
it is feasible and cheaper. OR-Tools sees integers only: every matrix is built with numpy up front and registered
with ``RegisterTransitMatrix`` / ``RegisterUnaryTransitVector``, so no Python runs inside the search.

The model (one vehicle per rider):

- a vehicle starts where its rider is once the frozen prefix is done (the last frozen stop, at its departure time;
  the rider's own position at ``avail`` when nothing is frozen) and ends anywhere (a dummy end node at no cost);
- orders on board after the frozen prefix become single drop-off nodes bound to their rider, and their sizes are
  the vehicle's start load; orders whose pickup and drop-off are both not frozen, and new orders, are pickup and
  drop-off pairs on one vehicle, pickup first; new orders are optional at ``drop_penalty`` each;
- time in integer seconds from an origin at or before ``now``; travel times are a **static snapshot** of the
  time-dependent model at departure time ``now`` (each rider's speed factor applied); the service time of a stop
  is added when leaving it, except between two pickups at one site (a bag is picked together);
- pickups wait for their ready time (a hard lower bound, slack allowed); drop-offs have a soft upper bound at the
  promised time costing ``per_second_late``; the route's span costs ``per_second``, its metres ``per_metre``;
- capacity (a load dimension with the start load fixed), at most ``max_orders`` drop-offs per rider counting the
  frozen prefix's, and in ``SINGLE_SITE`` mode the trip rule: no pickup after a pickup at another site, and after a
  drop-off a pickup only once the rider is empty.

Not modelled exactly, and left to ``sequence_cost`` (which judges every candidate): the shift end (vehicles that
cannot reach a pickup in time are excluded and late pickups carry a steep soft cost), time-dependent speeds,
service-time details of a bag (modelled pessimistically when ready times fall inside a bag or it continues a frozen
pickup), and rounding to integer seconds and cost units.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from dispatch.kernels.route import SINGLE_SITE, W_DIST, W_LATE, W_TIME, evaluate_routes, sequence_cost
from dispatch.kernels.travel import pairwise_metres, pairwise_seconds
from dispatch.state import DROPOFF, PICKUP, F64, I64, OrderTable, RiderTable, Routes

_FIRST = routing_enums_pb2.FirstSolutionStrategy
_META = routing_enums_pb2.LocalSearchMetaheuristic
_STATUS = routing_enums_pb2.RoutingSearchStatus
FIRST_SOLUTION_STRATEGIES = frozenset(k for k in _FIRST.Value.keys() if k != "UNSET")
METAHEURISTICS = frozenset(k for k in _META.Value.keys() if k != "UNSET")
# Integer objective terms are kept below this so that OR-Tools' int64 sums cannot overflow.
_MAX_INT_COST = 2**52


@dataclass(frozen=True)
class RoutingParams:
    """How OR-Tools runs.

    time_limit_s: wall-clock seconds for the whole search (split between a warm start and a fresh first solution
        when there are new orders).
    first_solution: an OR-Tools ``FirstSolutionStrategy`` name, used when solving without a warm start.
    metaheuristic: an OR-Tools ``LocalSearchMetaheuristic`` name.
    cost_scale: multiplier turning our float costs into OR-Tools' integers (1 cost unit = cost_scale integers).
    drop_penalty: our cost of leaving a new order unserved.
    """

    time_limit_s: float = 1.0
    first_solution: str = "PARALLEL_CHEAPEST_INSERTION"
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    cost_scale: float = 100.0
    drop_penalty: float = 1e7

    def __post_init__(self) -> None:
        for name in ("time_limit_s", "cost_scale", "drop_penalty"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"RoutingParams.{name}: must be a finite number > 0, got {v!r}")
        if self.first_solution not in FIRST_SOLUTION_STRATEGIES:
            raise ValueError(
                f"RoutingParams.first_solution: must be one of {sorted(FIRST_SOLUTION_STRATEGIES)}, "
                f"got {self.first_solution!r}"
            )
        if self.metaheuristic not in METAHEURISTICS:
            raise ValueError(
                f"RoutingParams.metaheuristic: must be one of {sorted(METAHEURISTICS)}, got {self.metaheuristic!r}"
            )
        if self.drop_penalty * self.cost_scale > _MAX_INT_COST:
            raise ValueError(
                f"RoutingParams.drop_penalty: drop_penalty * cost_scale must be <= 2**52, "
                f"got {self.drop_penalty * self.cost_scale:.3g}"
            )


@dataclass(frozen=True)
class OptimiseResult:
    """What ``optimise`` decided.

    routes: the routes to use, a copy of the input (widened as needed); equal to the input when not improved.
    improved: whether the routes of ``rider_idx`` changed to a cheaper feasible plan.
    cost_before, cost_after: our cost (``sequence_cost`` over the riders involved, plus ``drop_penalty`` per new
        order left out) of the input and of the returned routes.
    assigned: int64[a], the order indices from ``new_orders`` that the returned routes serve.
    solver_status: the OR-Tools status of each search run, e.g. ``"warm:ROUTING_SUCCESS"``.
    source: where the returned routes come from: ``input``, ``seed`` (greedy append of new orders), ``warm``
        (OR-Tools from the current routes) or ``scratch`` (OR-Tools from its first-solution strategy).
    """

    routes: Routes
    improved: bool
    cost_before: float
    cost_after: float
    assigned: I64
    solver_status: str
    source: str = "input"


@dataclass
class _Problem:
    """The routing model's data: vehicles (one per rider in the group) and tasks (stops to place)."""

    rider_idx: I64
    prefix: list[list[tuple[int, int]]]  # frozen stops per vehicle
    tail: list[list[tuple[int, int]]]  # current non-frozen stops per vehicle
    start_x: F64
    start_y: F64
    start_loc: I64
    start_t: F64
    load0: I64  # size units on board after the prefix
    count0: I64  # orders on board after the prefix
    prefix_drops: I64
    last_site: I64  # site of the last frozen stop when it is a pickup with orders on board, else -1
    task_order: list[int]
    task_kind: list[int]
    task_home: list[int]  # vehicle whose current route holds the task, -1 for a new order
    task_bound: list[int]  # vehicle an on-board drop-off is bound to, -1 for pair tasks
    pairs: list[tuple[int, int]]  # (pickup task, drop-off task)
    new_pairs: list[int]  # indices into pairs of new orders, in the order of new_orders
    new_allowed: list[list[int]]  # allowed vehicles per new pair

    @property
    def v(self) -> int:
        return int(self.rider_idx.shape[0])

    @property
    def n_tasks(self) -> int:
        return len(self.task_order)


def optimise(
    orders: OrderTable,
    riders: RiderTable,
    routes: Routes,
    travel: tuple[Any, ...],
    weights: F64,
    mode: int,
    max_orders: int,
    rider_idx: I64,
    new_orders: I64,
    now: float,
    params: RoutingParams | None = None,
) -> OptimiseResult:
    """Re-plan the routes of riders ``rider_idx`` (int64[v]) together, optionally adding ``new_orders`` (int64[q],
    orders in no route), with OR-Tools; keep the result only when it is feasible and cheaper by our own cost.

    ``travel`` is the kernels' travel tuple, ``weights`` float64[3] = [per_second, per_metre, per_second_late],
    ``mode`` SINGLE_SITE or MIXED, ``max_orders`` the most drop-offs a route may hold, ``now`` epoch seconds (the
    departure time of the static travel-time snapshot). Frozen prefixes never change; on-board orders stay with
    their rider. Raises ValueError on malformed input (indices out of range, repeated, new orders already routed).
    """
    params = params or RoutingParams()
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.shape != (3,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights: expected float64[3] of finite values >= 0")
    rider_idx = _index_array(rider_idx, riders.m, "rider_idx")
    new_orders = _index_array(new_orders, orders.n, "new_orders")
    routed = routes.order[np.arange(routes.width)[None, :] < routes.length[:, None]]
    if np.isin(new_orders, routed).any():
        raise ValueError("new_orders: must not be in any route already")
    if max_orders < 1:
        raise ValueError(f"max_orders: must be >= 1, got {max_orders}")

    ot = orders.as_tuple()
    rider_tuples = [
        (
            float(riders.x[r]),
            float(riders.y[r]),
            int(riders.loc[r]),
            float(riders.avail[r]),
            float(riders.shift_end[r]),
            int(riders.capacity[r]),
            float(riders.speed[r]),
        )
        for r in rider_idx.tolist()
    ]

    def route_cost(k: int, seq: list[tuple[int, int]], n_frozen: int) -> float:
        so = np.array([o for o, _ in seq], dtype=np.int64)
        sk = np.array([kd for _, kd in seq], dtype=np.int64)
        return float(
            sequence_cost(ot, rider_tuples[k], travel, w, mode, so, sk, len(seq), n_frozen, max_orders)
        )

    prob = _build_problem(orders, riders, routes, travel, w, mode, rider_idx, new_orders, now)
    q = int(new_orders.shape[0])

    def plan_cost(tails: list[list[tuple[int, int]]]) -> tuple[float, int]:
        total = 0.0
        served = 0
        for k in range(prob.v):
            total += route_cost(k, prob.prefix[k] + tails[k], len(prob.prefix[k]))
            served += sum(1 for o, kd in tails[k] if kd == PICKUP and o in new_set)
        return total + params.drop_penalty * (q - served), served

    new_set = set(new_orders.tolist())
    before, _ = plan_cost(prob.tail)
    if prob.v == 0 or prob.n_tasks == 0:
        return OptimiseResult(routes.copy(), False, before, before, np.zeros(0, np.int64), "NOTHING_TO_DO")

    # Candidates: OR-Tools from its own first solution (when there are new orders: it fails fast when greedy
    # insertion gets stuck, leaving the time to the warm start), OR-Tools from the current routes with the new
    # orders greedily appended, and that seed itself.
    deadline = time.perf_counter() + params.time_limit_s
    seed = _greedy_seed(prob, route_cost)
    solver = _Solver(prob, orders, riders, travel, w, mode, max_orders, now, params)
    candidates: list[tuple[str, list[list[tuple[int, int]]]]] = []
    statuses: list[str] = []

    def run(name: str, warm: list[list[tuple[int, int]]] | None, share: float) -> bool:
        tails, status = solver.solve(warm, share * max(0.0, deadline - time.perf_counter()))
        statuses.append(f"{name}:{status}")
        if tails is not None:
            candidates.append((name, tails))
        return tails is not None

    if prob.new_pairs:
        run("scratch", None, 0.5)
        run("warm", seed, 1.0)
    elif not run("warm", seed, 1.0):
        run("scratch", None, 1.0)
    if seed != prob.tail:
        candidates.append(("seed", seed))

    best_cost, best_src, best_tails = before, "input", prob.tail
    for src, cand in candidates:
        c, _ = plan_cost(cand)
        if c < best_cost - 1e-9 * max(1.0, abs(best_cost)):
            best_cost, best_src, best_tails = c, src, cand
    status_str = ", ".join(statuses)
    if best_src == "input":
        return OptimiseResult(routes.copy(), False, before, before, np.zeros(0, np.int64), status_str)

    full = [prob.prefix[k] + best_tails[k] for k in range(prob.v)]
    out = routes.widened(max(len(s) for s in full))
    for k, r in enumerate(rider_idx.tolist()):
        out.length[r] = len(full[k])
        out.order[r, :] = -1
        out.kind[r, :] = 0
        for s, (o, kd) in enumerate(full[k]):
            out.order[r, s] = o
            out.kind[r, s] = kd
    got = {o for tail in best_tails for o, kd in tail if kd == PICKUP and o in new_set}
    assigned = np.array([o for o in new_orders.tolist() if o in got], dtype=np.int64)
    return OptimiseResult(out, True, before, best_cost, assigned, status_str, best_src)


def _index_array(a: Any, n: int, name: str) -> I64:
    arr = np.ascontiguousarray(a, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{name}: indices must be in [0, {n})")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"{name}: indices must not repeat")
    return arr


def _build_problem(
    orders: OrderTable,
    riders: RiderTable,
    routes: Routes,
    travel: tuple[Any, ...],
    w: F64,
    mode: int,
    rider_idx: I64,
    new_orders: I64,
    now: float,
) -> _Problem:
    """Split each rider's route into its frozen prefix and the tasks OR-Tools may move."""
    v = int(rider_idx.shape[0])
    sub_riders = tuple(a[rider_idx] for a in riders.as_tuple())
    sub_routes = tuple(a[rider_idx] for a in routes.as_tuple())
    ev, _ = evaluate_routes(orders.as_tuple(), sub_riders, sub_routes, travel, w, mode)
    depart = ev[1]
    p = _Problem(
        rider_idx=rider_idx,
        prefix=[],
        tail=[],
        start_x=riders.x[rider_idx].copy(),
        start_y=riders.y[rider_idx].copy(),
        start_loc=riders.loc[rider_idx].copy(),
        start_t=riders.avail[rider_idx].copy(),
        load0=np.zeros(v, np.int64),
        count0=np.zeros(v, np.int64),
        prefix_drops=np.zeros(v, np.int64),
        last_site=np.full(v, -1, np.int64),
        task_order=[],
        task_kind=[],
        task_home=[],
        task_bound=[],
        pairs=[],
        new_pairs=[],
        new_allowed=[],
    )
    seen: set[tuple[int, int]] = set()

    def add_task(o: int, kd: int, home: int, bound: int) -> int:
        if (o, kd) in seen:
            raise ValueError(f"routes: order {o} appears twice in the routes of rider_idx")
        seen.add((o, kd))
        p.task_order.append(o)
        p.task_kind.append(kd)
        p.task_home.append(home)
        p.task_bound.append(bound)
        return len(p.task_order) - 1

    for k, r in enumerate(rider_idx.tolist()):
        stops = routes.stops(r)
        f = int(routes.frozen[r])
        head, tail = stops[:f], stops[f:]
        for o, kd in head:
            if (o, kd) in seen:
                raise ValueError(f"routes: order {o} appears twice in the routes of rider_idx")
            seen.add((o, kd))
        p.prefix.append(head)
        p.tail.append(tail)
        p.prefix_drops[k] = sum(1 for _, kd in head if kd == DROPOFF)
        if f > 0:
            o, kd = head[-1]
            if kd == PICKUP:
                p.start_x[k], p.start_y[k], p.start_loc[k] = (
                    orders.pick_x[o],
                    orders.pick_y[o],
                    orders.pick_loc[o],
                )
            else:
                p.start_x[k], p.start_y[k], p.start_loc[k] = (
                    orders.drop_x[o],
                    orders.drop_y[o],
                    orders.drop_loc[o],
                )
            p.start_t[k] = depart[k, f - 1]
        tail_drops = {o for o, kd in tail if kd == DROPOFF}
        pick_task: dict[int, int] = {}
        for o, kd in tail:
            if kd == PICKUP:
                if o not in tail_drops:
                    raise ValueError(f"routes: rider {r} picks up order {o} but never drops it off")
                pick_task[o] = add_task(o, PICKUP, k, -1)
            elif o in pick_task:
                p.pairs.append((pick_task[o], add_task(o, DROPOFF, k, -1)))
            elif o in tail_drops and any(q == o and kd2 == PICKUP for q, kd2 in tail):
                raise ValueError(f"routes: rider {r} drops off order {o} before picking it up")
            else:
                add_task(o, DROPOFF, k, k)
                p.load0[k] += int(orders.size[o])
                p.count0[k] += 1
        if f > 0 and p.count0[k] > 0 and head[-1][1] == PICKUP:
            p.last_site[k] = orders.site[head[-1][0]]

    # New orders: a vehicle is allowed when the order fits and the rider can reach the pickup before its shift
    # ends (at the snapshot speeds); pinned orders only go to their rider.
    if new_orders.size and v:
        q = int(new_orders.shape[0])
        kk = np.repeat(np.arange(v), q)
        oo = np.tile(new_orders, v)
        secs = pairwise_seconds(
            travel,
            p.start_x[kk],
            p.start_y[kk],
            p.start_loc[kk],
            orders.pick_x[oo],
            orders.pick_y[oo],
            orders.pick_loc[oo],
            np.full(kk.size, float(now)),
            riders.speed[rider_idx][kk],
        ).reshape(v, q)
        reach = (p.start_t[:, None] + secs) <= riders.shift_end[rider_idx][:, None]
        fits = orders.size[new_orders][None, :] <= riders.capacity[rider_idx][:, None]
        ok = reach & fits
        for j, o in enumerate(new_orders.tolist()):
            allowed = [k for k in range(v) if ok[k, j]]
            pin = int(orders.pinned[o])
            if pin >= 0:
                allowed = [k for k in allowed if int(rider_idx[k]) == pin]
            if not allowed:
                continue
            pt = add_task(o, PICKUP, -1, -1)
            p.pairs.append((pt, add_task(o, DROPOFF, -1, -1)))
            p.new_pairs.append(len(p.pairs) - 1)
            p.new_allowed.append(allowed)
    return p


def _greedy_seed(
    prob: _Problem, route_cost: Callable[[int, list[tuple[int, int]], int], float]
) -> list[list[tuple[int, int]]]:
    """The current tails with each new order appended (pickup, drop-off) to the rider where that costs least.

    Appending at the end keeps every trip rule (the rider is empty there); it is only a starting point."""
    tails = [list(t) for t in prob.tail]
    cur = [route_cost(k, prob.prefix[k] + tails[k], len(prob.prefix[k])) for k in range(prob.v)]
    for pi, allowed in zip(prob.new_pairs, prob.new_allowed, strict=True):
        o = prob.task_order[prob.pairs[pi][0]]
        best, best_k, best_c = math.inf, -1, math.inf
        for k in allowed:
            c = route_cost(k, [*prob.prefix[k], *tails[k], (o, PICKUP), (o, DROPOFF)], len(prob.prefix[k]))
            if c - cur[k] < best:
                best, best_k, best_c = c - cur[k], k, c
        if best_k >= 0 and math.isfinite(best_c):
            tails[best_k] += [(o, PICKUP), (o, DROPOFF)]
            cur[best_k] = best_c
    return tails


def _allow(rt: Any, index: int, vehicles: list[int], v: int) -> None:
    """Restrict the vehicles that may visit ``index`` (through its vehicle variable: the SWIG binding of
    SetAllowedVehiclesForIndex rejects Python lists in OR-Tools 9.15)."""
    banned = sorted(set(range(v)) - set(vehicles))
    if banned:
        rt.VehicleVar(index).RemoveValues(banned)


def _int_coeff(x: float) -> int:
    """A non-negative cost coefficient as an integer, at least 1 when x > 0 (so a positive weight never vanishes)."""
    return 0 if x <= 0 else max(1, round(x))


class _Solver:
    """An OR-Tools routing model of one problem, solvable several times (warm or from scratch)."""

    def __init__(
        self,
        prob: _Problem,
        orders: OrderTable,
        riders: RiderTable,
        travel: tuple[Any, ...],
        w: F64,
        mode: int,
        max_orders: int,
        now: float,
        params: RoutingParams,
    ) -> None:
        self.prob = prob
        self.params = params
        v, T = prob.v, prob.n_tasks
        nl = v + T  # located nodes: vehicle starts 0..v-1, tasks v..v+T-1; the end node is nl
        N = nl + 1
        to = np.array(prob.task_order, dtype=np.int64)
        tk = np.array(prob.task_kind, dtype=np.int64)
        is_pick_t = tk == PICKUP
        xs = np.concatenate([prob.start_x, np.where(is_pick_t, orders.pick_x[to], orders.drop_x[to])])
        ys = np.concatenate([prob.start_y, np.where(is_pick_t, orders.pick_y[to], orders.drop_y[to])])
        ls = np.concatenate([prob.start_loc, np.where(is_pick_t, orders.pick_loc[to], orders.drop_loc[to])])
        svc = np.concatenate(
            [np.zeros(v), np.where(is_pick_t, orders.service_pick[to], orders.service_drop[to])]
        )
        site = np.concatenate([np.full(v, -1, np.int64), np.where(is_pick_t, orders.site[to], -1)])
        is_pick = np.concatenate([np.zeros(v, bool), is_pick_t])

        ii = np.repeat(np.arange(nl), nl)
        jj = np.tile(np.arange(nl), nl)
        metres = pairwise_metres(travel, xs[ii], ys[ii], ls[ii], xs[jj], ys[jj], ls[jj]).reshape(nl, nl)
        # Service when leaving node i, except from a pickup to another pickup at the same site (one bag).
        same_bag = is_pick[:, None] & is_pick[None, :] & (site[:, None] == site[None, :])
        svc_out = np.where(same_bag, 0.0, svc[:, None])

        # Time origin: integer seconds from a whole second at or before every time the model holds.
        rel = [prob.start_t, np.array([now])]
        if T:
            rel += [orders.ready[to], orders.promised[to]]
        origin = math.floor(min(float(np.min(a)) for a in rel))
        start_rel = np.rint(prob.start_t - origin).astype(np.int64)
        shift_rel = np.floor(riders.shift_end[prob.rider_idx] - origin)

        speeds = riders.speed[prob.rider_idx]
        uniq, cls = np.unique(speeds, return_inverse=True)
        time_mats: list[np.ndarray] = []
        for s in uniq.tolist():
            secs = pairwise_seconds(
                travel, xs[ii], ys[ii], ls[ii], xs[jj], ys[jj], ls[jj], np.full(ii.size, float(now)),
                np.full(ii.size, s),
            ).reshape(nl, nl)  # fmt: skip
            tm = np.zeros((N, N), dtype=np.int64)
            tm[:nl, :nl] = np.rint(secs + svc_out)
            tm[:nl, nl] = np.rint(svc)
            np.fill_diagonal(tm, 0)
            time_mats.append(tm)
        self.time_mats = time_mats
        self.cls = cls
        horizon = int(
            max(float(shift_rel.max()), float(start_rel.max()))
            + (float((orders.ready[to] - origin).max()) if T else 0.0)
            + (float((orders.promised[to] - origin).max()) if T else 0.0)
            + max(int(m.max(axis=1).sum()) for m in time_mats)
            + 1
        )

        scale = params.cost_scale
        arc = np.zeros((N, N), dtype=np.int64)
        arc[:nl, :nl] = np.rint(metres * (w[W_DIST] * scale))
        np.fill_diagonal(arc, 0)
        c_time = _int_coeff(w[W_TIME] * scale)
        c_late = _int_coeff(w[W_LATE] * scale)
        c_shift = 10 * max(c_late, c_time, 1)
        if (
            arc.max(initial=0) * N > _MAX_INT_COST
            or max(c_time, c_late, c_shift) * horizon * N > _MAX_INT_COST
        ):
            raise ValueError(
                "params.cost_scale: too large for these weights and times (int64 costs overflow)"
            )

        self.manager = pywrapcp.RoutingIndexManager(N, v, list(range(v)), [nl] * v)
        mgr = self.manager
        self.routing = pywrapcp.RoutingModel(mgr)
        rt = self.routing
        solver = rt.solver()
        arc_cb = rt.RegisterTransitMatrix(arc.tolist())
        rt.SetArcCostEvaluatorOfAllVehicles(arc_cb)
        time_cbs = [rt.RegisterTransitMatrix(m.tolist()) for m in time_mats]
        rt.AddDimensionWithVehicleTransits(
            [time_cbs[c] for c in cls.tolist()], horizon, horizon, False, "time"
        )
        tdim = rt.GetDimensionOrDie("time")
        tdim.SetSpanCostCoefficientForAllVehicles(c_time)

        # Load: +size at a pickup, -size at a drop-off, the start load fixed.
        size_t = orders.size[to] if T else np.zeros(0, np.int64)
        demand = np.zeros(N, dtype=np.int64)
        demand[v:nl] = np.where(is_pick_t, size_t, -size_t)
        cap = np.maximum(riders.capacity[prob.rider_idx], prob.load0)
        load_cb = rt.RegisterUnaryTransitVector(demand.tolist())
        rt.AddDimensionWithVehicleCapacity(load_cb, 0, cap.tolist(), False, "load")
        load = rt.GetDimensionOrDie("load")
        # Drop-offs per route: pairs count against what the frozen prefix and the bound drop-offs leave (bound
        # drop-offs are not counted themselves, so that greedy insertion can never crowd them out).
        bound = np.array(prob.task_bound, dtype=np.int64)
        drops = np.zeros(N, dtype=np.int64)
        drops[v:nl] = (~is_pick_t) & (bound < 0)
        bound_count = np.bincount(bound[bound >= 0], minlength=v).astype(np.int64)
        count_cap = np.maximum(max_orders - prob.prefix_drops - bound_count, 0)
        count_cb = rt.RegisterUnaryTransitVector(drops.tolist())
        rt.AddDimensionWithVehicleCapacity(count_cb, 0, count_cap.tolist(), True, "orders")

        for k in range(v):
            tdim.CumulVar(rt.Start(k)).SetValue(int(start_rel[k]))
            load.CumulVar(rt.Start(k)).SetValue(int(prob.load0[k]))

        idx = [mgr.NodeToIndex(v + t) for t in range(T)]
        self.task_of_index = {ix: t for t, ix in enumerate(idx)}
        for t in range(T):
            o = prob.task_order[t]
            if prob.task_kind[t] == PICKUP:
                tdim.CumulVar(idx[t]).SetMin(max(0, math.ceil(orders.ready[o] - origin)))
            else:
                tdim.SetCumulVarSoftUpperBound(
                    idx[t], max(0, math.floor(orders.promised[o] - origin)), c_late
                )
            if prob.task_bound[t] >= 0:
                _allow(rt, idx[t], [prob.task_bound[t]], v)

        new_of_pair = dict(zip(prob.new_pairs, prob.new_allowed, strict=True))
        penalty = max(1, round(params.drop_penalty * scale / 2))  # paid per node: a pair costs drop_penalty
        size_all = orders.size
        pinned = orders.pinned
        cap_r = riders.capacity[prob.rider_idx]
        for pi, (pt, dt) in enumerate(prob.pairs):
            p_ix, d_ix = idx[pt], idx[dt]
            rt.AddPickupAndDelivery(p_ix, d_ix)
            solver.Add(rt.VehicleVar(p_ix) == rt.VehicleVar(d_ix))
            solver.Add(tdim.CumulVar(p_ix) <= tdim.CumulVar(d_ix))
            o = prob.task_order[pt]
            if pi in new_of_pair:
                allowed = new_of_pair[pi]
                rt.AddDisjunction([p_ix, d_ix], penalty, 2)
            else:
                # Existing orders may move to a rider they fit, who reaches the pickup before the shift ends
                # (at the snapshot speeds), and who is the pinned rider if any; their current rider always.
                home = prob.task_home[pt]
                pin = int(pinned[o])
                allowed = [
                    k
                    for k in range(v)
                    if k == home
                    or (
                        size_all[o] <= cap_r[k]
                        and start_rel[k] + time_mats[cls[k]][k, v + pt] <= shift_rel[k]
                        and (pin < 0 or int(prob.rider_idx[k]) == pin)
                    )
                ]
            _allow(rt, p_ix, allowed, v)
            _allow(rt, d_ix, allowed, v)
            # The shift end as a steep soft bound (sequence_cost enforces it exactly).
            ub = max(0.0, max(float(shift_rel[k]) for k in allowed))
            tdim.SetCumulVarSoftUpperBound(p_ix, int(ub), c_shift)

        if mode == SINGLE_SITE and T:
            self._trip_rule(prob, is_pick_t, site[v:], size_t, idx, load)
        self.tdim = tdim

    def _trip_rule(
        self,
        prob: _Problem,
        is_pick_t: np.ndarray,
        site_t: I64,
        size_t: I64,
        idx: list[int],
        load: Any,
    ) -> None:
        """SINGLE_SITE: a pickup only with nothing on board or straight after a pickup at the same site."""
        rt = self.routing
        solver = rt.solver()
        picks = [t for t in range(len(idx)) if is_pick_t[t]]
        pick_ix = [idx[t] for t in picks]
        if not picks:
            return
        for t in picks:
            other = [idx[u] for u in picks if site_t[u] != site_t[t]]
            if other:
                rt.NextVar(idx[t]).RemoveValues(other)
        for k in range(prob.v):
            if prob.count0[k] > 0:
                banned = [idx[u] for u in picks if site_t[u] != prob.last_site[k] or prob.last_site[k] < 0]
                if banned:
                    rt.NextVar(rt.Start(k)).RemoveValues(banned)
        for t in range(len(idx)):
            if is_pick_t[t]:
                continue
            # Next is a pickup => the load before this drop-off is its own size (empty after it).
            nxt_pick = solver.IsMemberVar(rt.NextVar(idx[t]), pick_ix)
            empties = solver.IsEqualCstVar(load.CumulVar(idx[t]), int(size_t[t]))
            solver.Add(nxt_pick <= empties)

    def _search_params(self, seconds: float) -> Any:
        sp = pywrapcp.DefaultRoutingSearchParameters()
        sp.first_solution_strategy = getattr(_FIRST, self.params.first_solution)
        sp.local_search_metaheuristic = getattr(_META, self.params.metaheuristic)
        sp.time_limit.FromMilliseconds(max(10, round(seconds * 1000)))
        return sp

    def solve(
        self, warm: list[list[tuple[int, int]]] | None, seconds: float
    ) -> tuple[list[list[tuple[int, int]]] | None, str]:
        """Solve from the warm tails (or from the first-solution strategy when None); the new tails and status."""
        rt, mgr, prob = self.routing, self.manager, self.prob
        sp = self._search_params(seconds)
        if not hasattr(self, "_closed"):
            rt.CloseModelWithParameters(sp)
            self._closed = True
        if warm is not None:
            key = {
                (prob.task_order[t], prob.task_kind[t]): mgr.NodeToIndex(prob.v + t)
                for t in range(prob.n_tasks)
            }
            init = rt.ReadAssignmentFromRoutes([[key[s] for s in tail] for tail in warm], True)
            if init is None:
                return None, "WARM_START_REJECTED"
            sol = rt.SolveFromAssignmentWithParameters(init, sp)
        else:
            sol = rt.SolveWithParameters(sp)
        status = _STATUS.Value.Name(rt.status())
        if sol is None:
            return None, status
        tails: list[list[tuple[int, int]]] = []
        for k in range(prob.v):
            seq: list[tuple[int, int]] = []
            i = sol.Value(rt.NextVar(rt.Start(k)))
            while not rt.IsEnd(i):
                t = self.task_of_index[i]
                seq.append((prob.task_order[t], prob.task_kind[t]))
                i = sol.Value(rt.NextVar(i))
            tails.append(seq)
        return tails, status
