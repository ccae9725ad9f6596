"""The ``ortools`` baseline policy: every tick, OR-Tools places the open orders of each pickup site.

A tick (``OrToolsPolicy.tick``):

1. evaluate every route (``kernels.route``); hold back orders younger than ``hold_s`` that are not pinned
   (``HELD_FOR_BATCHING``, the same rule as the ``kernel`` policy);
2. group the other pending orders: pinned orders by their rider, the rest by pickup site (a site's orders share its
   pickup point), oldest order first, in chunks of at most ``max_group_orders`` so that each model stays small;
3. for each group in turn, on the routes as the groups before it left them, choose the riders: a pinned group gets
   its rider only; a site group gets the accepting riders (online, in shift, below ``max_orders_per_rider``, with a
   feasible route) whose next free point (last stop, or position) is within ``max_reach_m`` of the site, the
   ``2 q + candidate_k`` nearest for ``q`` orders;
4. ``dispatch.routing.optimise`` re-plans those riders' unfrozen stops with the group's orders as optional new
   orders, within ``ortools_time_limit_s``; each left-out order costs the group's least reject cost
   (``DispatchParams.reject_costs``), so a kept plan never raises this tick's objective. The adapter keeps OR-Tools'
   answer only when our own evaluation finds it feasible and cheaper, so the hard rules (capacity, shift end, frozen
   prefixes, pickup before drop-off, trip mode, order limit) hold for every route returned;
5. when OR-Tools found no solution for the group (every search failed or ran out of time before a first
   solution, or the model would overflow: ``MODEL_OVERFLOW``), the group's orders that are still unplaced go by
   cheapest feasible insertion (``kernels.insertion``) onto the same riders, one at a time, oldest first, each
   onto its cheapest rider when that costs less than its own reject cost; the kernels keep the same hard rules.
   ``last_solver_status`` shows it as ``+fallback:N`` (N orders placed) after the group's status. A solution that
   was found but is not cheaper is not a failure: the group then stays as it was;
6. return the routes with ETAs, the new assignments, and a ``Reason`` for every pending order left unassigned.

Orders already in a route stay with their rider (OR-Tools may re-sequence them) unless ``reassign`` is set, when
OR-Tools may also move orders whose pickup is not frozen between the riders of a group; ``TickResult`` has no field
for such moves: they show only in ``routes`` and ``changed``.

Each ``optimise`` call runs until its time limit, so a tick takes about (groups x ``ortools_time_limit_s``): this
is a baseline to compare with, not a policy for a city at peak. ``timings_ms["fallback"]`` is the time spent in
step 5 (not counted in ``timings_ms["optimise"]``).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from dispatch.kernels import insertion as ins
from dispatch.kernels.route import evaluate_routes, evaluate_subset, sequence_cost
from dispatch.policy import (
    DispatchParams,
    ParamsError,
    Reason,
    Snapshot,
    TickResult,
    _accepting,
    held_back,
    planning_view,
)
from dispatch.routing import RoutingParams, optimise
from dispatch.state import DROPOFF, F64, I64, PICKUP, OrderTable, RiderTable, Routes

Group = tuple[int, I64]  # (pinned rider or -1 for a site group, int64[q] order indices)


class OrToolsPolicy:
    """The ``ortools`` baseline (see the module docstring).

    ``params``: the dispatch parameters (the ones read: ``hold_s``, ``max_orders_per_rider``, the weights,
    ``unassigned_cost``, ``candidate_k``, ``max_reach_m``, ``trip_mode``, ``ortools_time_limit_s``);
    ``max_group_orders``: most new orders in one OR-Tools model; ``reassign``: let OR-Tools move open orders
    between the riders of a group.
    """

    holds_orders = True  # as the kernel policy (``dispatch.policy.held_back``)

    def __init__(
        self, params: DispatchParams | None = None, *, max_group_orders: int = 20, reassign: bool = False
    ) -> None:
        if isinstance(max_group_orders, bool) or not isinstance(max_group_orders, int) or max_group_orders < 1:
            raise ParamsError("max_group_orders", f"must be an integer >= 1, got {max_group_orders!r}")
        if not isinstance(reassign, bool):
            raise ParamsError("reassign", f"must be true or false, got {reassign!r}")
        self.params = params or DispatchParams()
        self.max_group_orders = max_group_orders
        self.reassign = reassign
        # The last tick's OR-Tools status per model, ``+fallback:N`` appended when step 5 ran (for diagnosis).
        self.last_solver_status: list[str] = []

    def tick(self, snap: Snapshot, now: float) -> TickResult:
        """One tick on ``snap`` at ``now`` (epoch seconds); ``snap`` is not modified."""
        p = self.params
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        snap = planning_view(snap, p)
        orders, riders = snap.orders, snap.riders
        orders_t, riders_t = orders.as_tuple(), riders.as_tuple()
        weights, mode = p.weights, p.mode
        routes = snap.routes.widened(max(snap.routes.width, 2 * p.max_orders_per_rider + 2))
        _ev0, tot0 = evaluate_routes(orders_t, riders_t, routes.as_tuple(), snap.travel, weights, mode)
        cost0 = np.asarray(tot0[3], dtype=np.float64).copy()
        feasible0 = np.asarray(tot0[4], dtype=np.bool_).copy()

        pending = np.asarray(snap.pending, dtype=np.int64)
        held = held_back(orders, pending, p, now)
        eligible = pending[~held]
        reject = p.reject_costs(orders, now)
        accepting0 = _accepting(snap, p, now)
        groups = _groups(orders, eligible, self.max_group_orders)
        timings["prepare"] = (time.perf_counter() - t0) * 1e3

        # Orders in a route are pinned to their rider for OR-Tools unless they may move (``pin_work``: a copy of
        # ``pinned``, updated as groups assign orders, so that later groups keep them with their rider too).
        t1 = time.perf_counter()
        pin_work = orders.pinned.copy()
        if not self.reassign:
            rr, oo = _route_orders(routes)
            pin_work[oo] = rr
        orders_w = replace(orders, pinned=pin_work)
        work = routes
        penalty_of: dict[int, float] = {}
        statuses: list[str] = []
        fallback_s = 0.0
        for pin, members in groups:
            acc = _accepting(replace(snap, routes=work), p, now) & feasible0
            group = self._riders_for(orders, riders, work, acc, pin, members)
            if group.size == 0:
                continue
            pen = min(float(reject[members].min()), _MAX_PENALTY)
            penalty_of.update(dict.fromkeys(members.tolist(), pen))
            res = optimise(
                orders_w, riders, work, snap.travel, weights, mode, p.max_orders_per_rider, group, members, now,
                RoutingParams(time_limit_s=p.ortools_time_limit_s, drop_penalty=pen),
            )  # fmt: skip
            status, placed = res.solver_status, res.assigned.size
            if res.improved:
                work = res.routes
            rest = members[~np.isin(members, res.assigned)]
            if rest.size and not _solution_found(status):
                tf = time.perf_counter()
                work, more = _insert_cheapest(snap, p, work, group, rest, reject)
                fallback_s += time.perf_counter() - tf
                status, placed = f"{status}+fallback:{more.size}", placed + more.size
                penalty_of.update({o: float(reject[o]) for o in rest.tolist()})  # the bar the fallback used
            statuses.append(status)
            if placed and not self.reassign:
                rr, oo = _route_orders(work, group)
                pin_work[oo] = rr
                orders_w = replace(orders, pinned=pin_work)
        self.last_solver_status = statuses
        timings["optimise"] = (time.perf_counter() - t1 - fallback_s) * 1e3
        timings["fallback"] = fallback_s * 1e3

        t2 = time.perf_counter()
        ev, tot = evaluate_routes(orders_t, riders_t, work.as_tuple(), snap.travel, weights, mode)
        holder = np.full(orders.n, -1, dtype=np.int64)
        rr, oo = _route_orders(work)
        holder[oo] = rr
        to = holder[pending]
        ao = np.sort(pending[to >= 0])
        left = np.sort(pending[to < 0])
        changed = _changed_riders(snap.routes, work)
        timings["evaluate"] = (time.perf_counter() - t2) * 1e3

        t3 = time.perf_counter()
        fx0, fy0 = _free_xy(orders, riders, routes)
        held_set = set(pending[held].tolist())
        reasons = np.array(
            [
                int(Reason.HELD_FOR_BATCHING)
                if o in held_set
                else self._reason(snap, routes, cost0, accepting0, fx0, fy0, o, penalty_of.get(o, float(reject[o])))
                for o in left.tolist()
            ],
            dtype=np.int64,
        )
        timings["reasons"] = (time.perf_counter() - t3) * 1e3

        before = float(cost0[changed].sum()) + float(reject[pending].sum())
        after = float(tot[3][changed].sum()) + float(reject[left].sum())
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return TickResult(
            routes=work,
            assigned_order=ao,
            assigned_rider=holder[ao],
            unassigned_order=left,
            unassigned_reason=reasons,
            arrive=ev[0],
            changed=changed,
            cost_before=before,
            cost_after=after,
            timings_ms=timings,
        )

    def _riders_for(
        self, orders: OrderTable, riders: RiderTable, routes: Routes, acc: npt.NDArray[np.bool_], pin: int, members: I64
    ) -> I64:
        """int64[v]: the riders OR-Tools gets for a group (``acc``: bool[m], riders that may take an order now)."""
        if pin >= 0:
            return np.array([pin], dtype=np.int64) if 0 <= pin < riders.m and acc[pin] else np.zeros(0, np.int64)
        fx, fy = _free_xy(orders, riders, routes)
        o0 = int(members[0])
        d = np.hypot(fx - orders.pick_x[o0], fy - orders.pick_y[o0])
        cand = np.flatnonzero(acc & (d <= self.params.max_reach_m))
        cap = 2 * int(members.shape[0]) + self.params.candidate_k
        return cand[np.argsort(d[cand], kind="stable")][:cap].astype(np.int64)

    def _reason(
        self,
        snap: Snapshot,
        routes: Routes,
        cost0: F64,
        accepting0: npt.NDArray[np.bool_],
        fx0: F64,
        fy0: F64,
        o: int,
        penalty: float,
    ) -> int:
        """Why eligible order ``o`` is left unassigned, judged on the snapshot's routes (like the ``kernel``
        policy's reasons): no rider to try; else, over the ``candidate_k`` nearest riders in reach, the order as a
        new trip after each one's route: CAPACITY / SHIFT_ENDS when it fits none, LATE_WITH_EVERY_RIDER when the
        cheapest costs at least the drop penalty OR-Tools was given, otherwise RIDERS_BUSY."""
        p = self.params
        orders, riders = snap.orders, snap.riders
        pin = int(orders.pinned[o])
        if pin >= 0:
            if not (0 <= pin < riders.m and accepting0[pin]):
                return int(Reason.PINNED_RIDER_UNAVAILABLE)
            cands = np.array([pin], dtype=np.int64)
        else:
            d = np.hypot(fx0 - orders.pick_x[o], fy0 - orders.pick_y[o])
            cands = np.flatnonzero(accepting0 & (d <= p.max_reach_m))
            if cands.size == 0:
                return int(Reason.NO_RIDER_IN_REACH)
            cands = cands[np.argsort(d[cands], kind="stable")][: p.candidate_k]
        orders_t = orders.as_tuple()
        best = math.inf
        all_shift = True
        for r in cands.tolist():
            seq = [*routes.stops(r), (o, PICKUP), (o, DROPOFF)]
            so = np.array([s for s, _ in seq], dtype=np.int64)
            sk = np.array([k for _, k in seq], dtype=np.int64)
            rider = riders.cost_tuple(r)
            no_shift_end = (*rider[:4], math.inf, *rider[5:])
            args = (snap.travel, p.weights, p.mode, so, sk, len(seq), int(routes.frozen[r]), p.max_orders_per_rider)
            c = float(sequence_cost(orders_t, rider, *args))
            if math.isfinite(c):
                best = min(best, c - float(cost0[r]))
            elif not math.isfinite(float(sequence_cost(orders_t, no_shift_end, *args))):
                all_shift = False  # it breaks a rule other than the shift end
        if math.isinf(best):
            return int(Reason.SHIFT_ENDS if all_shift else Reason.CAPACITY)
        if best >= penalty:
            return int(Reason.LATE_WITH_EVERY_RIDER)
        return int(Reason.RIDERS_BUSY)


# OR-Tools gets drop penalties as integers (``RoutingParams`` checks drop_penalty * cost_scale <= 2**52).
_MAX_PENALTY = 2.0**52 / RoutingParams().cost_scale
# The OR-Tools search statuses that come with a solution (``optimise`` reports one status per search).
_FOUND = frozenset({"ROUTING_SUCCESS", "ROUTING_PARTIAL_SUCCESS_LOCAL_OPTIMUM_NOT_REACHED", "ROUTING_OPTIMAL"})


def _solution_found(solver_status: str) -> bool:
    """Whether any OR-Tools search of an ``optimise`` call found a solution, read from its ``solver_status``
    (``name:STATUS`` per search, comma separated; ``MODEL_OVERFLOW`` when OR-Tools was not run)."""
    return any(part.rpartition(":")[2] in _FOUND for part in solver_status.split(", "))


def _insert_cheapest(
    snap: Snapshot, p: DispatchParams, routes: Routes, group: I64, members: I64, reject: F64
) -> tuple[Routes, I64]:
    """Place orders ``members`` (int64[q], in no route, oldest first) on riders ``group`` (int64[v]) one at a
    time: each at its cheapest feasible insertion (``kernels.insertion``, on the routes as the orders before it
    left them) when that costs less than its reject cost (``reject``: float64[n]).

    Returns a copy of ``routes`` with the insertions and the orders placed (int64[a], in placing order). Only the
    group's rows are evaluated: the kernels run on the group's slices of the rider and route tables."""
    orders_t, travel, weights, mode = snap.orders.as_tuple(), snap.travel, p.weights, p.mode
    out = routes.widened(max(routes.width, 2 * p.max_orders_per_rider + 2))
    riders_g = tuple(a[group] for a in snap.riders.as_tuple())
    routes_g = tuple(a[group] for a in out.as_tuple())  # copies: fancy indexing
    ev, tot = evaluate_routes(orders_t, riders_g, routes_g, travel, weights, mode)
    v, q = int(group.shape[0]), int(members.shape[0])
    pair_o = np.repeat(members, v)  # pair a * v + k: order members[a] on rider group[k]
    pair_r = np.tile(np.arange(v, dtype=np.int64), q)
    cost, late = np.full(q * v, np.inf), np.zeros(q * v)
    pi, pj, status = (np.full(q * v, -1, dtype=np.int64) for _ in range(3))
    fn = ins.insertion_costs_into_parallel if p.parallel else ins.insertion_costs_into
    args = (orders_t, riders_g, routes_g, travel, weights, mode, p.max_orders_per_rider, ev, tot)
    online = snap.riders.online[group]
    fn(*args, online, pair_o, pair_r, np.ones(q * v, dtype=np.bool_), cost, pi, pj, late, status)
    placed: list[int] = []
    for a, o in enumerate(members.tolist()):
        lo = a * v
        k = int(np.argmin(cost[lo : lo + v]))
        best = lo + k
        if not cost[best] < reject[o]:  # also when no insertion is feasible (+inf)
            continue
        ks = np.array([k], dtype=np.int64)
        ins.apply_insertions(routes_g, pair_o[best : best + 1], ks, pi[best : best + 1], pj[best : best + 1])
        evaluate_subset(orders_t, riders_g, routes_g, travel, weights, mode, ks, ev, tot)
        placed.append(o)
        todo = np.zeros(q * v, dtype=np.bool_)
        todo[lo + v + k :: v] = True  # the later orders' pairs with rider k, whose route just changed
        fn(*args, online, pair_o, pair_r, todo, cost, pi, pj, late, status)
    out.length[group], out.order[group], out.kind[group] = routes_g[0], routes_g[2], routes_g[3]
    return out, np.array(placed, dtype=np.int64)


def _groups(orders: OrderTable, eligible: I64, size: int) -> list[Group]:
    """The models to solve, in order: pinned orders by rider, then each site's orders, oldest site first; every
    group oldest order first and at most ``size`` orders. ``eligible``: int64[q] order indices."""
    out: list[Group] = []
    pinned = orders.pinned[eligible]
    fcfs = eligible[np.lexsort((eligible, orders.placed[eligible]))]
    pin_fcfs = orders.pinned[fcfs]
    for r in np.unique(pinned[pinned >= 0]).tolist():
        mine = fcfs[pin_fcfs == r]
        out += [(int(r), mine[i : i + size]) for i in range(0, mine.shape[0], size)]
    free = fcfs[pin_fcfs < 0]
    site = orders.site[free]
    _, first = np.unique(site, return_index=True)  # first = the site's oldest order (``free`` is in FCFS order)
    for s in site[np.sort(first)].tolist():
        mine = free[site == s]
        out += [(-1, mine[i : i + size]) for i in range(0, mine.shape[0], size)]
    return out


def _route_orders(routes: Routes, which: I64 | None = None) -> tuple[I64, I64]:
    """(rider, order) int64[k] each: every order in the routes (of riders ``which``, int64[v], when given),
    found by its drop-off (every routed order has one)."""
    live = (np.arange(routes.width)[None, :] < routes.length[:, None]) & (routes.kind == DROPOFF)
    if which is not None:
        keep = np.zeros(routes.length.shape[0], dtype=np.bool_)
        keep[which] = True
        live &= keep[:, None]
    rr, ss = np.nonzero(live)
    return rr.astype(np.int64), routes.order[rr, ss].astype(np.int64)


def _free_xy(orders: OrderTable, riders: RiderTable, routes: Routes) -> tuple[F64, F64]:
    """float64[m] x, y: where each rider's route ends (its last stop), or where it is when the route is empty."""
    x, y = riders.x.copy(), riders.y.copy()
    rows = np.flatnonzero(routes.length > 0)
    lo = routes.order[rows, routes.length[rows] - 1]
    pick = routes.kind[rows, routes.length[rows] - 1] == PICKUP
    x[rows] = np.where(pick, orders.pick_x[lo], orders.drop_x[lo])
    y[rows] = np.where(pick, orders.pick_y[lo], orders.drop_y[lo])
    return x, y


def _changed_riders(old: Routes, new: Routes) -> I64:
    """int64[c], sorted: the riders whose stops differ between ``old`` and ``new`` (widths may differ)."""
    w = min(old.width, new.width)
    live = np.arange(w)[None, :] < old.length[:, None]
    differ = (old.order[:, :w] != new.order[:, :w]) | (old.kind[:, :w] != new.kind[:, :w])
    return np.flatnonzero((old.length != new.length) | np.any(differ & live, axis=1)).astype(np.int64)
