"""The one OR-Tools adapter: re-optimise a group of riders' routes as a pickup-and-delivery problem.

``optimise`` takes the riders to plan together (``rider_idx``) and optionally orders in no route yet
(``new_orders``), models the non-frozen parts of their routes for OR-Tools, solves within a time limit from a
warm start, and keeps the answer only when our own evaluation (``sequence_cost``) finds it feasible and
cheaper. OR-Tools sees integers only: every matrix is built with numpy up front and registered with
``RegisterTransitMatrix`` / ``RegisterUnaryTransitVector``, so no Python runs inside the search.

The model, one vehicle per rider:

- a vehicle starts where its rider will be once the frozen prefix is done (the last frozen stop, at its
  departure time; the rider's own position at ``avail`` when nothing is frozen) and ends anywhere (a dummy end
  node at no cost);
- orders on board after the frozen prefix are single drop-off nodes bound to their rider, their sizes the
  vehicle's start load; orders whose pickup is not frozen, and new orders, are pickup-and-delivery pairs (one
  vehicle, pickup first); a new order is optional at ``drop_penalty``;
- time is in integer seconds from an origin at or before ``now``. Travel times are a **static snapshot** of
  the time-dependent model: every leg is timed as if it started at ``now`` (with the rider's speed factor).
  A stop's service time is added when leaving it, except from a pickup to another pickup at one site (a bag);
- pickups wait for their ready time (a hard lower bound, waiting is slack); drop-offs have a soft upper bound
  at the promised time costing ``per_second_late``; a route's span costs ``per_second`` and its metres
  ``per_metre``, so the objective is ``cost_scale`` times our route cost up to rounding;
- a load dimension (capacity, start load fixed); a count dimension (at most ``max_orders`` drop-offs per
  route, the frozen prefix's included); in ``SINGLE_SITE`` mode the trip rule: no pickup straight after a
  pickup at another site, and after a drop-off a pickup only when nothing is left on board.

Approximate, and left to ``sequence_cost`` (which judges every candidate): the shift end (riders who cannot
reach a pickup before it are excluded, later pickups pay a steep soft cost), time-dependent speeds, the
service time of a bag (pessimistic when a ready time falls inside a bag or a bag continues a frozen pickup),
and rounding to whole seconds and cost units.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from dispatch.kernels.route import SINGLE_SITE, W_DIST, W_LATE, W_TIME, evaluate_routes, sequence_cost
from dispatch.kernels.travel import pairwise_metres, pairwise_seconds
from dispatch.state import DROPOFF, F64, I64, PICKUP, OrderTable, RiderTable, Routes

_FIRST = routing_enums_pb2.FirstSolutionStrategy
_META = routing_enums_pb2.LocalSearchMetaheuristic
_STATUS = routing_enums_pb2.RoutingSearchStatus
FIRST_SOLUTION_STRATEGIES = frozenset(_FIRST.Value.keys()) - {"UNSET"}
METAHEURISTICS = frozenset(_META.Value.keys()) - {"UNSET"}
# Integer objective terms stay below this, so that OR-Tools' int64 sums cannot overflow.
_MAX_INT_COST = 2**52

Stop = tuple[int, int]  # (order index, PICKUP or DROPOFF)
Plan = list[list[Stop]]  # the non-frozen stops of each rider in the group


@dataclass(frozen=True)
class RoutingParams:
    """How OR-Tools runs; checked on construction (a ValueError names the bad field).

    time_limit_s: wall-clock seconds for all the searches of one call.
    first_solution: an OR-Tools ``FirstSolutionStrategy`` name, for the search without a warm start.
    metaheuristic: an OR-Tools ``LocalSearchMetaheuristic`` name.
    cost_scale: integers per unit of our cost (OR-Tools costs are integers); a positive weight never rounds
        below 1 per second or per arc-metre unit.
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
        for name, names in (("first_solution", FIRST_SOLUTION_STRATEGIES), ("metaheuristic", METAHEURISTICS)):
            v = getattr(self, name)
            if not isinstance(v, str) or v not in names:
                raise ValueError(f"RoutingParams.{name}: must be one of {sorted(names)}, got {v!r}")
        if self.drop_penalty * self.cost_scale > _MAX_INT_COST:
            raise ValueError(
                "RoutingParams.drop_penalty: drop_penalty * cost_scale must be at most 2**52, "
                f"got {self.drop_penalty * self.cost_scale:.3g}"
            )


@dataclass(frozen=True)
class OptimiseResult:
    """What ``optimise`` decided.

    routes: the routes to use: a copy of the input (widened as needed), equal to it when not improved.
    improved: the riders of ``rider_idx`` got a feasible plan that is cheaper by our cost.
    cost_before, cost_after: our cost of the input and of the returned routes: ``sequence_cost`` summed over
        ``rider_idx``, plus ``drop_penalty`` per new order left out (the input leaves every new order out).
    assigned: int64[a], the orders of ``new_orders`` the returned routes serve (in ``new_orders``' order).
    solver_status: the OR-Tools status of each search, e.g. ``"scratch:ROUTING_SUCCESS, warm:ROUTING_FAIL"``;
        ``MODEL_OVERFLOW`` when the integer model would overflow int64 (huge weights or times): OR-Tools is skipped
        and only the greedy seed competes with the input.
    source: where the returned routes come from: ``input``, ``warm`` (OR-Tools from the current routes),
        ``scratch`` (OR-Tools from its first-solution strategy) or ``seed`` (new orders appended greedily).
    """

    routes: Routes
    improved: bool
    cost_before: float
    cost_after: float
    assigned: I64
    solver_status: str
    source: str = "input"


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
    """Re-plan the routes of riders ``rider_idx`` (int64[v]) together with OR-Tools, optionally adding
    ``new_orders`` (int64[q], orders in no route); keep the result only when it is feasible and cheaper.

    ``travel``: the kernels' travel tuple; ``weights``: float64[3] = [per_second, per_metre,
    per_second_late]; ``mode``: SINGLE_SITE or MIXED; ``max_orders``: the most drop-offs a route may hold;
    ``now``: epoch seconds, the departure time of the travel-time snapshot. Frozen prefixes never change and
    orders on board stay with their rider; the input routes are not modified. Raises ValueError on malformed
    input (indices out of range or repeated, new orders already in a route, a pickup without its drop-off).
    """
    params = params or RoutingParams()
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.shape != (3,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights: expected float64[3] of finite values >= 0")
    if max_orders < 1:
        raise ValueError(f"max_orders: must be >= 1, got {max_orders}")
    rider_idx = _index_array(rider_idx, riders.m, "rider_idx")
    new_orders = _index_array(new_orders, orders.n, "new_orders")
    in_route = np.arange(routes.width)[None, :] < routes.length[:, None]
    if np.isin(new_orders, routes.order[in_route]).any():
        raise ValueError("new_orders: must not be in any route already")

    prob = _build_problem(orders, riders, routes, travel, w, mode, rider_idx, new_orders, now)
    judge = _Judge(orders, riders, travel, w, mode, max_orders, prob, new_orders, params.drop_penalty)
    before = judge.plan_cost(prob.tail)
    if prob.v == 0 or prob.n_tasks == 0:
        return OptimiseResult(routes.copy(), False, before, before, np.zeros(0, np.int64), "NOTHING_TO_DO")

    # Candidates: OR-Tools from the current routes with the new orders appended greedily (the seed), OR-Tools
    # from its first-solution strategy when there are new orders (it runs first: when greedy insertion gets
    # stuck it fails fast and leaves its time to the warm start), and the seed itself.
    deadline = time.perf_counter() + params.time_limit_s
    seed = _greedy_seed(prob, judge.route_cost)
    candidates: list[tuple[str, Plan]] = []
    statuses: list[str] = []
    try:
        solver = _Solver(prob, orders, riders, travel, w, mode, max_orders, now, params)
    except _ModelOverflowError:
        solver = None
        statuses.append("MODEL_OVERFLOW")

    def search(name: str, init: Any, share: float) -> None:
        assert solver is not None
        plan, status = solver.solve(init, share * max(0.0, deadline - time.perf_counter()))
        statuses.append(f"{name}:{status}")
        if plan is not None:
            candidates.append((name, plan))

    if solver is not None:
        warm = solver.read(seed)
        if warm is None:
            statuses.append("warm:WARM_START_REJECTED")
            search("scratch", None, 1.0)
        else:
            if prob.new_pairs:
                search("scratch", None, 0.5)
            search("warm", warm, 1.0)
    if seed != prob.tail:
        candidates.append(("seed", seed))

    best_cost, best_src, best = before, "input", prob.tail
    for src, plan in candidates:
        c = judge.plan_cost(plan)
        if c < (best_cost - 1e-9 * max(1.0, abs(best_cost)) if math.isfinite(best_cost) else best_cost):
            best_cost, best_src, best = c, src, plan
    status = ", ".join(statuses)
    if best_src == "input":
        return OptimiseResult(routes.copy(), False, before, before, np.zeros(0, np.int64), status)

    full = [prob.prefix[k] + best[k] for k in range(prob.v)]
    out = routes.widened(max(len(s) for s in full))
    for k, r in enumerate(rider_idx.tolist()):
        out.length[r] = len(full[k])
        out.order[r, :] = -1
        out.kind[r, :] = 0
        if full[k]:
            out.order[r, : len(full[k])] = [o for o, _ in full[k]]
            out.kind[r, : len(full[k])] = [kd for _, kd in full[k]]
    served = judge.served(best)
    assigned = np.array([o for o in new_orders.tolist() if o in served], dtype=np.int64)
    return OptimiseResult(out, True, before, best_cost, assigned, status, best_src)


@dataclass
class _Problem:
    """The model's data: vehicles (the riders of ``rider_idx``, in order) and tasks (the stops to place)."""

    rider_idx: I64
    prefix: Plan  # frozen stops per vehicle
    tail: Plan  # current non-frozen stops per vehicle
    start_x: F64  # where and when each vehicle starts
    start_y: F64
    start_loc: I64
    start_t: F64
    load0: I64  # size units on board at the start
    count0: I64  # orders on board at the start
    prefix_drops: I64
    last_site: I64  # site of the last frozen stop when it is a pickup and orders are on board, else -1
    task_order: list[int]
    task_kind: list[int]
    task_home: list[int]  # vehicle whose current route holds the task, -1 for a new order
    task_bound: list[int]  # vehicle an on-board drop-off is bound to, -1 for pair tasks
    pairs: list[tuple[int, int]]  # (pickup task, drop-off task)
    new_allowed: dict[int, list[int]]  # pair index of a new order -> the vehicles that may take it

    @property
    def v(self) -> int:
        return int(self.rider_idx.shape[0])

    @property
    def n_tasks(self) -> int:
        return len(self.task_order)

    @property
    def new_pairs(self) -> list[int]:
        return list(self.new_allowed)


class _Judge:
    """Our own cost of a plan: ``sequence_cost`` of prefix + tail per rider, plus the drop penalty."""

    def __init__(
        self,
        orders: OrderTable,
        riders: RiderTable,
        travel: tuple[Any, ...],
        w: F64,
        mode: int,
        max_orders: int,
        prob: _Problem,
        new_orders: I64,
        drop_penalty: float,
    ) -> None:
        self.orders_t = orders.as_tuple()
        self.travel, self.w, self.mode, self.max_orders = travel, w, mode, max_orders
        self.prob = prob
        self.new = set(new_orders.tolist())
        self.drop_penalty = drop_penalty
        self.riders_t = [
            (
                float(riders.x[r]),
                float(riders.y[r]),
                int(riders.loc[r]),
                float(riders.avail[r]),
                float(riders.shift_end[r]),
                int(riders.capacity[r]),
                float(riders.speed[r]),
            )
            for r in prob.rider_idx.tolist()
        ]

    def route_cost(self, k: int, tail: list[Stop]) -> float:
        """Vehicle k's cost with this tail after its frozen prefix (+inf when a hard rule breaks)."""
        seq = self.prob.prefix[k] + tail
        so = np.array([o for o, _ in seq], dtype=np.int64)
        sk = np.array([kd for _, kd in seq], dtype=np.int64)
        n_frozen = len(self.prob.prefix[k])
        return float(
            sequence_cost(
                self.orders_t, self.riders_t[k], self.travel, self.w, self.mode, so, sk, len(seq), n_frozen,
                self.max_orders,
            )
        )  # fmt: skip

    def served(self, plan: Plan) -> set[int]:
        return {o for tail in plan for o, kd in tail if kd == PICKUP and o in self.new}

    def plan_cost(self, plan: Plan) -> float:
        total = sum(self.route_cost(k, tail) for k, tail in enumerate(plan))
        return total + self.drop_penalty * (len(self.new) - len(self.served(plan)))


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
    """Split each rider's route into its frozen prefix and the tasks OR-Tools may move; add the new orders."""
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
        new_allowed={},
    )
    seen: set[Stop] = set()

    def once(o: int, kd: int) -> None:
        if (o, kd) in seen:
            raise ValueError(f"routes: order {o} appears twice in the routes of rider_idx")
        seen.add((o, kd))

    def add_task(o: int, kd: int, home: int, bound: int) -> int:
        once(o, kd)
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
            once(o, kd)
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
        picks_in_tail = {o for o, kd in tail if kd == PICKUP}
        drops_in_tail = {o for o, kd in tail if kd == DROPOFF}
        pick_task: dict[int, int] = {}
        for o, kd in tail:
            if kd == PICKUP:
                if o not in drops_in_tail:
                    raise ValueError(f"routes: rider {r} picks up order {o} but never drops it off")
                pick_task[o] = add_task(o, PICKUP, k, -1)
            elif o in pick_task:
                p.pairs.append((pick_task[o], add_task(o, DROPOFF, k, -1)))
            elif o in picks_in_tail:
                raise ValueError(f"routes: rider {r} drops off order {o} before picking it up")
            else:  # on board: picked up in the frozen prefix or before the route
                add_task(o, DROPOFF, k, k)
                p.load0[k] += int(orders.size[o])
                p.count0[k] += 1
        if f > 0 and p.count0[k] > 0 and head[-1][1] == PICKUP:
            p.last_site[k] = orders.site[head[-1][0]]

    allowed = _new_order_vehicles(orders, riders, travel, p, new_orders, now)
    for j, o in enumerate(new_orders.tolist()):
        if allowed[j]:
            pt = add_task(o, PICKUP, -1, -1)
            p.pairs.append((pt, add_task(o, DROPOFF, -1, -1)))
            p.new_allowed[len(p.pairs) - 1] = allowed[j]
    return p


def _new_order_vehicles(
    orders: OrderTable, riders: RiderTable, travel: tuple[Any, ...], p: _Problem, new_orders: I64, now: float
) -> list[list[int]]:
    """For each new order, the vehicles it fits, whose rider reaches its pickup before the shift ends (at the
    snapshot speed) and, for a pinned order, whose rider it is pinned to. An order with none is left out."""
    v, q = p.v, int(new_orders.shape[0])
    if v == 0 or q == 0:
        return [[] for _ in range(q)]
    kk = np.repeat(np.arange(v), q)
    oo = np.tile(new_orders, v)
    secs = pairwise_seconds(
        travel, p.start_x[kk], p.start_y[kk], p.start_loc[kk], orders.pick_x[oo], orders.pick_y[oo],
        orders.pick_loc[oo], np.full(kk.size, float(now)), riders.speed[p.rider_idx][kk],
    ).reshape(v, q)  # fmt: skip
    ok = (p.start_t[:, None] + secs) <= riders.shift_end[p.rider_idx][:, None]
    ok &= orders.size[new_orders][None, :] <= riders.capacity[p.rider_idx][:, None]
    pinned = orders.pinned[new_orders]
    ok &= (pinned[None, :] < 0) | (pinned[None, :] == p.rider_idx[:, None])
    return [np.flatnonzero(ok[:, j]).tolist() for j in range(q)]


def _greedy_seed(prob: _Problem, route_cost: Callable[[int, list[Stop]], float]) -> Plan:
    """The current tails with each new order appended (pickup, drop-off) where that costs least, if anywhere.

    The end of a route is always open to a new trip (nothing is on board there); only a starting point."""
    plan = [list(t) for t in prob.tail]
    cur = [route_cost(k, plan[k]) for k in range(prob.v)]
    for pi, allowed in prob.new_allowed.items():
        o = prob.task_order[prob.pairs[pi][0]]
        best, best_k, best_c = math.inf, -1, math.inf
        for k in allowed:
            c = route_cost(k, [*plan[k], (o, PICKUP), (o, DROPOFF)])
            if c - cur[k] < best:
                best, best_k, best_c = c - cur[k], k, c
        if best_k >= 0:
            plan[best_k] += [(o, PICKUP), (o, DROPOFF)]
            cur[best_k] = best_c
    return plan


@dataclass
class _Matrices:
    """Integer inputs over N = v + T + 1 nodes: vehicle starts 0..v-1, tasks v..v+T-1, then the end."""

    time: list[npt.NDArray[np.int64]]  # int64[N, N] per speed class: service at i + travel seconds i -> j
    speed_class: list[int]  # per vehicle, an index into ``time``
    arc: npt.NDArray[np.int64]  # int64[N, N]: per_metre cost of the leg, scaled
    start: list[int]  # per vehicle, its start time in model seconds
    shift_end: list[int]  # per vehicle, its shift end in model seconds
    ready: list[int]  # per task, the ready time (pickups) in model seconds
    promised: list[int]  # per task, the promised time (drop-offs) in model seconds
    horizon: int  # an upper bound on every time in the model


def _matrices(
    prob: _Problem,
    orders: OrderTable,
    riders: RiderTable,
    travel: tuple[Any, ...],
    w: F64,
    now: float,
    scale: float,
) -> _Matrices:
    v, T = prob.v, prob.n_tasks
    nl = v + T
    to = np.array(prob.task_order, dtype=np.int64)
    pick = np.array(prob.task_kind, dtype=np.int64) == PICKUP
    xs = np.concatenate([prob.start_x, np.where(pick, orders.pick_x[to], orders.drop_x[to])])
    ys = np.concatenate([prob.start_y, np.where(pick, orders.pick_y[to], orders.drop_y[to])])
    ls = np.concatenate([prob.start_loc, np.where(pick, orders.pick_loc[to], orders.drop_loc[to])])
    svc = np.concatenate([np.zeros(v), np.where(pick, orders.service_pick[to], orders.service_drop[to])])
    site = np.concatenate([np.full(v, -1, np.int64), np.where(pick, orders.site[to], -1)])
    is_pick = np.concatenate([np.zeros(v, dtype=bool), pick])
    # Service when leaving node i, except from a pickup to another pickup at the same site (one bag).
    same_bag = is_pick[:, None] & is_pick[None, :] & (site[:, None] == site[None, :])
    svc_out = np.where(same_bag, 0.0, svc[:, None])

    ii = np.repeat(np.arange(nl), nl)
    jj = np.tile(np.arange(nl), nl)
    metres = pairwise_metres(travel, xs[ii], ys[ii], ls[ii], xs[jj], ys[jj], ls[jj]).reshape(nl, nl)
    speeds, speed_class = np.unique(riders.speed[prob.rider_idx], return_inverse=True)
    time_mats = []
    for s in speeds.tolist():
        secs = pairwise_seconds(
            travel,
            xs[ii],
            ys[ii],
            ls[ii],
            xs[jj],
            ys[jj],
            ls[jj],
            np.full(ii.size, float(now)),
            np.full(ii.size, s),
        ).reshape(nl, nl)
        tm = np.zeros((nl + 1, nl + 1), dtype=np.int64)
        tm[:nl, :nl] = np.rint(secs + svc_out)
        tm[:nl, nl] = np.rint(svc)
        np.fill_diagonal(tm, 0)
        time_mats.append(tm)
    arc = np.zeros((nl + 1, nl + 1), dtype=np.int64)
    arc[:nl, :nl] = np.rint(metres * (w[W_DIST] * scale))
    np.fill_diagonal(arc, 0)

    # Model seconds count from a whole second at or before every time the model holds.
    shift_end = riders.shift_end[prob.rider_idx]
    origin = math.floor(min(now, prob.start_t.min(), orders.ready[to].min(), orders.promised[to].min()))
    latest = max(prob.start_t.max(), shift_end.max(), orders.ready[to].max(), orders.promised[to].max())
    horizon = math.ceil(latest - origin) + max(int(m.max(axis=1).sum()) for m in time_mats) + 1
    return _Matrices(
        time=time_mats,
        speed_class=speed_class.tolist(),
        arc=arc,
        start=np.rint(prob.start_t - origin).astype(np.int64).tolist(),
        shift_end=np.floor(shift_end - origin).astype(np.int64).tolist(),
        ready=np.ceil(orders.ready[to] - origin).astype(np.int64).tolist(),
        promised=np.floor(orders.promised[to] - origin).astype(np.int64).tolist(),
        horizon=int(horizon),
    )


class _ModelOverflowError(ValueError):
    """The integer model would overflow OR-Tools' int64 sums (huge times or weights): ``optimise`` then skips
    OR-Tools for this call instead of failing the tick."""


def _int_coeff(x: float) -> int:
    """A cost coefficient as a non-negative integer, at least 1 when x > 0 (a weight never vanishes)."""
    return 0 if x <= 0 else max(1, round(x))


class _Solver:
    """The OR-Tools routing model of one problem: read a warm start, then search once or more."""

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
        self.prob, self.params = prob, params
        v, T = prob.v, prob.n_tasks
        mx = _matrices(prob, orders, riders, travel, w, now, params.cost_scale)
        c_time = _int_coeff(w[W_TIME] * params.cost_scale)
        c_late = _int_coeff(w[W_LATE] * params.cost_scale)
        c_shift = 10 * max(c_late, c_time, 1)
        n_nodes = v + T + 1
        if int(mx.arc.max()) * n_nodes > _MAX_INT_COST or c_shift * mx.horizon * n_nodes > _MAX_INT_COST:
            raise _ModelOverflowError("cost_scale too large for these weights and times (int64 overflow)")

        self.manager = pywrapcp.RoutingIndexManager(n_nodes, v, list(range(v)), [v + T] * v)
        rt = self.routing = pywrapcp.RoutingModel(self.manager)
        solver = rt.solver()
        self.index = [self.manager.NodeToIndex(v + t) for t in range(T)]
        self.task_of_index = {ix: t for t, ix in enumerate(self.index)}
        idx = self.index

        rt.SetArcCostEvaluatorOfAllVehicles(rt.RegisterTransitMatrix(mx.arc.tolist()))
        time_cbs = [rt.RegisterTransitMatrix(m.tolist()) for m in mx.time]
        rt.AddDimensionWithVehicleTransits([time_cbs[c] for c in mx.speed_class], mx.horizon, mx.horizon, False, "time")
        tdim = rt.GetDimensionOrDie("time")
        tdim.SetSpanCostCoefficientForAllVehicles(c_time)

        # Load: +size at a pickup, -size at a drop-off, the start load fixed.
        size = orders.size[np.array(prob.task_order, dtype=np.int64)]
        pick = np.array(prob.task_kind, dtype=np.int64) == PICKUP
        demand = np.zeros(n_nodes, dtype=np.int64)
        demand[v : v + T] = np.where(pick, size, -size)
        cap = np.maximum(riders.capacity[prob.rider_idx], prob.load0)
        rt.AddDimensionWithVehicleCapacity(
            rt.RegisterUnaryTransitVector(demand.tolist()), 0, cap.tolist(), False, "load"
        )
        load = rt.GetDimensionOrDie("load")
        # Drop-offs per route: pairs count against what the frozen prefix and the bound drop-offs leave (bound
        # drop-offs are not counted themselves, so that greedy insertion can never crowd them out).
        bound = np.array(prob.task_bound, dtype=np.int64)
        counted = np.zeros(n_nodes, dtype=np.int64)
        counted[v : v + T] = ~pick & (bound < 0)
        n_bound = np.bincount(bound[bound >= 0], minlength=v)
        count_cap = np.maximum(max_orders - prob.prefix_drops - n_bound, 0)
        rt.AddDimensionWithVehicleCapacity(
            rt.RegisterUnaryTransitVector(counted.tolist()), 0, count_cap.tolist(), True, "orders"
        )

        for k in range(v):
            tdim.CumulVar(rt.Start(k)).SetValue(mx.start[k])
            load.CumulVar(rt.Start(k)).SetValue(int(prob.load0[k]))
        for t in range(T):
            if pick[t]:
                tdim.CumulVar(idx[t]).SetMin(max(0, mx.ready[t]))
            else:
                tdim.SetCumulVarSoftUpperBound(idx[t], max(0, mx.promised[t]), c_late)
            if bound[t] >= 0:
                _allow(rt, idx[t], [int(bound[t])], v)

        penalty = max(1, round(params.drop_penalty * params.cost_scale / 2))  # per node: a pair pays drop_penalty
        cap_v = riders.capacity[prob.rider_idx]
        for pi, (pt, dt) in enumerate(prob.pairs):
            rt.AddPickupAndDelivery(idx[pt], idx[dt])
            solver.Add(rt.VehicleVar(idx[pt]) == rt.VehicleVar(idx[dt]))
            solver.Add(tdim.CumulVar(idx[pt]) <= tdim.CumulVar(idx[dt]))
            if pi in prob.new_allowed:
                allowed = prob.new_allowed[pi]
                rt.AddDisjunction([idx[pt], idx[dt]], penalty, 2)
            else:
                # An order in a route may move to a rider it fits, who reaches the pickup before the shift
                # ends (at the snapshot speed) and is the one it is pinned to, if any; its own rider always.
                o, home, pin = (
                    prob.task_order[pt],
                    prob.task_home[pt],
                    int(orders.pinned[prob.task_order[pt]]),
                )
                allowed = [
                    k
                    for k in range(v)
                    if k == home
                    or (
                        orders.size[o] <= cap_v[k]
                        and mx.start[k] + mx.time[mx.speed_class[k]][k, v + pt] <= mx.shift_end[k]
                        and (pin < 0 or pin == int(prob.rider_idx[k]))
                    )
                ]
            _allow(rt, idx[pt], allowed, v)
            _allow(rt, idx[dt], allowed, v)
            # The shift end as a steep soft bound on the pickup (sequence_cost enforces it exactly per rider).
            tdim.SetCumulVarSoftUpperBound(idx[pt], max(0, max(mx.shift_end[k] for k in allowed)), c_shift)

        if mode == SINGLE_SITE:
            self._trip_rule(orders, load)

    def _trip_rule(self, orders: OrderTable, load: Any) -> None:
        """SINGLE_SITE: a pickup only with nothing on board, or straight after a pickup at the same site."""
        prob, rt, idx = self.prob, self.routing, self.index
        solver = rt.solver()
        picks = [t for t in range(prob.n_tasks) if prob.task_kind[t] == PICKUP]
        if not picks:
            return
        site = {t: int(orders.site[prob.task_order[t]]) for t in picks}
        pick_ix = [idx[t] for t in picks]
        for t in picks:
            other = [idx[u] for u in picks if site[u] != site[t]]
            if other:
                rt.NextVar(idx[t]).RemoveValues(other)
        for k in range(prob.v):
            if prob.count0[k] > 0:  # on board at the start: only the bag of a frozen last pickup may grow
                banned = [idx[u] for u in picks if site[u] != prob.last_site[k]]
                if banned:
                    rt.NextVar(rt.Start(k)).RemoveValues(banned)
        for t in range(prob.n_tasks):
            if prob.task_kind[t] == DROPOFF:
                # A pickup next => the load before this drop-off is its own size (nothing left after it).
                size = int(orders.size[prob.task_order[t]])
                next_is_pickup = solver.IsMemberVar(rt.NextVar(idx[t]), pick_ix)
                solver.Add(next_is_pickup <= solver.IsEqualCstVar(load.CumulVar(idx[t]), size))

    def _search_params(self, seconds: float) -> Any:
        sp = pywrapcp.DefaultRoutingSearchParameters()
        sp.first_solution_strategy = getattr(_FIRST, self.params.first_solution)
        sp.local_search_metaheuristic = getattr(_META, self.params.metaheuristic)
        sp.time_limit.FromMilliseconds(max(10, round(seconds * 1000)))
        return sp

    def read(self, plan: Plan) -> Any:
        """Close the model and read ``plan`` as an assignment (a copy later searches leave alone), or None
        when the model rejects it. Call before any search: OR-Tools does not restore routes after one."""
        rt, prob = self.routing, self.prob
        rt.CloseModelWithParameters(self._search_params(self.params.time_limit_s))
        key = {(prob.task_order[t], prob.task_kind[t]): self.index[t] for t in range(prob.n_tasks)}
        init = rt.ReadAssignmentFromRoutes([[key[s] for s in tail] for tail in plan], True)
        return None if init is None else rt.solver().Assignment(init)

    def solve(self, init: Any, seconds: float) -> tuple[Plan | None, str]:
        """Search from ``init`` (from ``read``; None: the first-solution strategy) for ``seconds``; the plan
        found (None when none) and the OR-Tools status."""
        rt, prob = self.routing, self.prob
        sp = self._search_params(seconds)
        sol = rt.SolveWithParameters(sp) if init is None else rt.SolveFromAssignmentWithParameters(init, sp)
        status = str(_STATUS.Value.Name(rt.status()))
        if sol is None:
            return None, status
        plan: Plan = []
        for k in range(prob.v):
            tail: list[Stop] = []
            i = sol.Value(rt.NextVar(rt.Start(k)))
            while not rt.IsEnd(i):
                t = self.task_of_index[i]
                tail.append((prob.task_order[t], prob.task_kind[t]))
                i = sol.Value(rt.NextVar(i))
            plan.append(tail)
        return plan, status


def _allow(rt: Any, index: int, vehicles: list[int], v: int) -> None:
    """Only ``vehicles`` may visit ``index``. Done on the vehicle variable: in OR-Tools 9.15 the Python
    binding of SetAllowedVehiclesForIndex rejects every list (it expects an absl::Span)."""
    banned = sorted(set(range(v)) - set(vehicles))
    if banned:
        rt.VehicleVar(index).RemoveValues(banned)
