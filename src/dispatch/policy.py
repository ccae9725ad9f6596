"""A dispatch tick: candidates -> insertion costs -> assignment rounds -> route improvement.

The service and the simulator both call ``tick`` on a ``Snapshot`` (the tables of ``dispatch.state`` and the
pending orders) at some ``now``; nothing here knows which clock it runs on. The policies share one interface:

- ``kernel`` (the product): sparse candidates, exact min-cost assignment in rounds so a rider can take several new
  orders in one tick, intra-route local search, and optionally OR-Tools re-optimisation;
- ``greedy`` (a baseline): first come first served, the nearest idle rider, one order per trip;
- ``ortools`` (a baseline, ``dispatch.ortools_policy``): re-solves each site's open orders with OR-Tools every
  tick.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from enum import IntEnum
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from dispatch.candidates import candidate_pairs, route_visits
from dispatch.kernels import insertion as ins
from dispatch.kernels.assignment import assignment_round
from dispatch.kernels.localsearch import improve_routes
from dispatch.kernels.route import (
    MIXED,
    SINGLE_SITE,
    allocate_evaluation,
    evaluate_routes,
    evaluate_subset,
    sequence_cost,
)
from dispatch.kernels.summary import accepting_rows, free_points
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

TRIP_MODES = {"single_site": SINGLE_SITE, "mixed": MIXED}
POLICIES = ("kernel", "greedy", "ortools")


class Reason(IntEnum):
    """Why an order is left unassigned after a tick (numbers match dispatch.v1.UnassignedReason)."""

    NONE = 0
    NO_RIDER_IN_REACH = 1
    LATE_WITH_EVERY_RIDER = 2
    CAPACITY = 3
    HELD_FOR_BATCHING = 4
    SHIFT_ENDS = 6
    PINNED_RIDER_UNAVAILABLE = 7
    RIDERS_BUSY = 12


class ParamsError(ValueError):
    """A parameter is out of range; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class DispatchParams:
    """Everything ops can tune about dispatch. Costs are in rider-second equivalents.

    Attributes:
        tick_s: seconds between dispatch ticks.
        hold_s: an order younger than this (since placed) is held back so that it can be batched.
        max_orders_per_rider: most orders a rider's route may hold at once (on board or to pick up).
        weight_time: cost per second of rider time (the route's end moving later).
        weight_distance: cost per metre ridden.
        weight_late: cost per second a drop-off is later than promised (heavy: lateness is soft but dear).
        promise_margin_s: plan every drop-off this many seconds before its promise (the kernel and OR-Tools
            policies price lateness against ``promised - promise_margin_s``): a plan with no slack is broken by
            the next insertion or a slow leg, so a margin keeps promises at a small cost in km (measured in
            benchmarks/RESULTS.md). ETAs in the result are unaffected.
        unassigned_cost: cost of leaving an order unassigned for this tick (the assignment's reject option); it
            grows by ``weight_late`` per second of the order's age, so that waiting is priced like lateness and
            no order waits for ever.
        candidate_k: candidate riders per order and candidate orders per rider, the cheapest by a cost estimate
            (see ``dispatch.candidates``).
        candidate_rider_side: each order keeps at most this many times ``candidate_k`` of the riders' own
            proposals (the rider side of the candidate rule), its cheapest by the estimate: 8 keeps the generated
            city's single-round gap within 0.01 (4 gives 0.0113); on peak-day samples 4 keeps as many promises
            for fewer km and less CPU (benchmarks/RESULTS.md, "Simulator, session 6"), so peak_day.toml sets it.
        candidate_window: more candidates per order, along the site's ranking of riders, so that a busy site's
            orders each have a rider of their own (3: the generated city's single-round gap to the dense optimum
            is 0.0099 against 0.0102 at 2, for 2% more pairs; benchmarks/RESULTS.md).
        max_reach_m: riders whose next free point is farther from the pickup than this are not candidates.
        reference_speed_mps: speed used to rank candidates by arrival estimate.
        rounds: assignment rounds per tick (each gives a rider at most one more order); 0 = max_orders_per_rider.
        local_search_passes: improvement passes over each changed route (0 = off). One: on the city benchmark a
            second pass found 0.3% more of the gain for 28% more of local search's time, and a 1% peak-day sample
            kept as many promises for the same km with one (benchmarks/RESULTS.md, "Dispatch tick, session 7").
        local_search_pairs: local search also moves an order's pickup and drop-off together (pair relocation). Off
            by default: it took 35-38% of local search's time on both bench instances and improved no route
            there, and without it a 1% peak-day sample kept as many promises for the same km (benchmarks/RESULTS.md,
            "Dispatch tick, session 7").
        trip_mode: "single_site" (one site's bag delivered before the next) or "mixed" (interleaved sites).
        ortools_every_ticks: every this many ticks OR-Tools re-optimises dense sites' riders (0 = never).
        ortools_time_limit_s: OR-Tools time limit per re-optimisation.
        ortools_min_stops: a pickup group is re-optimised when its riders' routes hold at least this many stops.
        parallel: compute insertion costs on all cores (same result as serial).
    """

    tick_s: float = 15.0
    hold_s: float = 30.0
    max_orders_per_rider: int = 5
    weight_time: float = 1.0
    weight_distance: float = 0.05
    weight_late: float = 20.0
    promise_margin_s: float = 180.0
    unassigned_cost: float = 3600.0
    candidate_k: int = 12
    candidate_rider_side: int = 8
    candidate_window: int = 3
    max_reach_m: float = 8000.0
    reference_speed_mps: float = 4.5
    rounds: int = 0
    local_search_passes: int = 1
    local_search_pairs: bool = False
    trip_mode: str = "single_site"
    ortools_every_ticks: int = 0
    ortools_time_limit_s: float = 0.5
    ortools_min_stops: int = 12
    parallel: bool = False

    def __post_init__(self) -> None:
        positive = ("tick_s", "max_reach_m", "reference_speed_mps", "unassigned_cost", "ortools_time_limit_s")
        non_negative = ("hold_s", "weight_time", "weight_distance", "weight_late", "promise_margin_s")
        for name in positive:
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ParamsError(name, f"must be a finite number > 0, got {v!r}")
        for name in non_negative:
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ParamsError(name, f"must be a finite number >= 0, got {v!r}")
        for name, lo in (
            ("max_orders_per_rider", 1),
            ("candidate_k", 1),
            ("candidate_rider_side", 1),
            ("candidate_window", 0),
            ("rounds", 0),
            ("local_search_passes", 0),
            ("ortools_every_ticks", 0),
            ("ortools_min_stops", 2),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ParamsError(name, f"must be an integer >= {lo}, got {v!r}")
        if self.trip_mode not in TRIP_MODES:
            raise ParamsError("trip_mode", f"must be one of {sorted(TRIP_MODES)}, got {self.trip_mode!r}")
        for name in ("local_search_pairs", "parallel"):
            if not isinstance(getattr(self, name), bool):
                raise ParamsError(name, f"must be true or false, got {getattr(self, name)!r}")

    @property
    def weights(self) -> F64:
        """float64[3] = [per second, per metre, per second late] as the kernels take them."""
        return np.array([self.weight_time, self.weight_distance, self.weight_late], dtype=np.float64)

    @property
    def mode(self) -> int:
        return TRIP_MODES[self.trip_mode]

    @property
    def n_rounds(self) -> int:
        return self.rounds or self.max_orders_per_rider

    def reject_costs(self, orders: OrderTable, now: float) -> F64:
        """float64[n]: each order's cost of staying unassigned this tick (see ``unassigned_cost``)."""
        return self.unassigned_cost + self.weight_late * np.maximum(0.0, now - orders.placed)

    def with_updates(self, **changes: Any) -> DispatchParams:
        """A validated copy with some fields changed; unknown names raise ParamsError."""
        known = {f.name for f in fields(self)}
        for name in changes:
            if name not in known:
                raise ParamsError(name, "unknown dispatch parameter")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Snapshot:
    """What a tick sees: all orders it may touch, the riders and their routes, the pending orders (int64[q],
    indices of orders in no route) and the travel model tuple (``TravelTime.arrays()``).

    ``evaluation`` (optional): ``(ev, tot)`` of ``routes`` exactly as ``kernels.route.evaluate_routes`` gives it on
    the policy's planning view (every promise ``promise_margin_s`` earlier: ``planning_view``), any width at least
    the routes'; a caller that keeps evaluations from tick to tick (the simulator) passes it so that the kernel
    policy does not evaluate every route again. The policy may write into these arrays."""

    orders: OrderTable
    riders: RiderTable
    routes: Routes
    pending: I64
    travel: tuple[Any, ...]
    evaluation: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None


@dataclass
class TickResult:
    """A tick's outcome.

    ``routes``: the updated routes; ``assigned_order``/``assigned_rider``: int64[a], the new assignments;
    ``unassigned_order``/``unassigned_reason``: int64[u] (a ``Reason`` each), every pending order not assigned;
    ``arrive``: float64[m, S], the evaluated arrival time at every stop (the ETAs); ``changed``: int64[c], riders whose
    route changed; ``cost_before``/``cost_after``: route cost of the changed riders plus the reject cost
    (``DispatchParams.reject_costs``) of each pending order left over; ``timings_ms``: per phase."""

    routes: Routes
    assigned_order: I64
    assigned_rider: I64
    unassigned_order: I64
    unassigned_reason: I64
    arrive: F64
    changed: I64
    cost_before: float
    cost_after: float
    timings_ms: dict[str, float] = field(default_factory=dict)

    def eta_dropoff(self, n_orders: int) -> F64:
        """float64[n_orders]: each routed order's drop-off arrival estimate (NaN when in no route)."""
        out = np.full(n_orders, np.nan)
        r = self.routes
        for rid in range(r.length.shape[0]):
            n = int(r.length[rid])
            ks = r.kind[rid, :n]
            os_ = r.order[rid, :n]
            drop = ks == DROPOFF
            out[os_[drop]] = self.arrive[rid, :n][drop]
        return out


def planning_view(snap: Snapshot, params: DispatchParams) -> Snapshot:
    """``snap`` as the cost model sees it: every promise ``params.promise_margin_s`` earlier (a copy; ``snap`` is
    not modified)."""
    if params.promise_margin_s == 0.0:
        return snap
    orders = replace(snap.orders, promised=snap.orders.promised - params.promise_margin_s)
    return replace(snap, orders=orders)


class Policy(Protocol):
    """A dispatch policy: one tick on a snapshot at ``now`` (epoch seconds)."""

    params: DispatchParams

    def tick(self, snap: Snapshot, now: float) -> TickResult: ...


def held_back(orders: OrderTable, pending: I64, params: DispatchParams, now: float) -> npt.NDArray[np.bool_]:
    """bool[len(pending)]: the pending orders a tick holds back for batching (``HELD_FOR_BATCHING``): younger than
    ``hold_s`` and not pinned. The rule of the ``kernel`` and ``ortools`` policies (``holds_orders``)."""
    return (now - orders.placed[pending] < params.hold_s) & (orders.pinned[pending] < 0)


def _accepting(snap: Snapshot, params: DispatchParams, now: float) -> npt.NDArray[np.bool_]:
    """bool[m]: riders online, in shift and below the order limit (``kernels.summary.accepting_rows``, the one
    place the rule is written; the simulator's offer applies it to a few rows of its shard)."""
    riders = snap.riders
    every = np.arange(riders.m, dtype=np.int64)
    out: npt.NDArray[np.bool_] = accepting_rows(every, snap.routes.as_tuple(), riders.online, riders.shift_start,
                                                riders.shift_end, float(now), params.max_orders_per_rider)  # fmt: skip
    return out


def _free_point(snap: Snapshot, ev: tuple[Any, ...], tot: tuple[Any, ...]) -> tuple[F64, F64, I64, F64]:
    """Where and when each rider's route ends: float64[m] x, y, int64[m] matrix index, float64[m] time."""
    x, y, loc, at = free_points(snap.orders.as_tuple(), snap.riders.as_tuple(), snap.routes.as_tuple(), tot[0])
    return x, y, loc, at


def _evaluation(snap: Snapshot, routes: Routes, weights: F64, mode: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``evaluate_routes`` of ``routes`` (``snap.routes`` widened; ``snap`` on the planning view), or the
    snapshot's own ``evaluation`` laid out at the routes' width."""
    if snap.evaluation is None:
        return evaluate_routes(
            snap.orders.as_tuple(), snap.riders.as_tuple(), routes.as_tuple(), snap.travel, weights, mode
        )
    ev_in, tot_in = snap.evaluation
    width = ev_in[0].shape[1]
    if width == routes.width:
        return ev_in, tot_in
    ev, _ = allocate_evaluation(snap.riders.m, routes.width)
    w = min(width, routes.width)
    for a, b in zip(ev, ev_in, strict=True):
        a[:, :w] = b[:, :w]
    return ev, tot_in


class KernelPolicy:
    """The product's policy (see the module docstring)."""

    holds_orders = True  # young orders are held back for batching (``held_back``)

    def __init__(self, params: DispatchParams | None = None) -> None:
        self.params = params or DispatchParams()
        self._ticks = 0

    def tick(self, snap: Snapshot, now: float) -> TickResult:
        p = self.params
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        snap = planning_view(snap, p)
        orders_t = snap.orders.as_tuple()
        riders_t = snap.riders.as_tuple()
        weights = p.weights
        mode = p.mode
        # Room for the tick's insertions: a rider takes an order only below the order limit, so no route it changes
        # grows past 2 x max_orders_per_rider stops; longer routes (a limit lowered since) only take none. At the
        # simulator's width already (2 x limit + 2), so its evaluations are used as they are, not copied wider.
        width = max(int(snap.routes.length.max(initial=0)), 2 * p.max_orders_per_rider) + 2
        routes = snap.routes.widened(width)
        rt = routes.as_tuple()
        ev, tot = _evaluation(snap, routes, weights, mode)
        cost0 = tot[3].copy()

        pending = np.asarray(snap.pending, dtype=np.int64)
        held = held_back(snap.orders, pending, p, now)
        eligible = pending[~held]
        accepting = _accepting(snap, p, now)
        fx, fy, floc, fat = _free_point(snap, ev, tot)
        cand = candidate_pairs(
            snap.orders, snap.riders, eligible, fx, fy, fat, accepting, now,
            p.candidate_k, p.max_reach_m, p.reference_speed_mps, route_visits(snap.orders, routes, ev),
            travel=snap.travel, weights=weights, free_loc=floc, window=p.candidate_window,
            rider_side=p.candidate_rider_side,
        )  # fmt: skip
        timings["candidates"] = (time.perf_counter() - t0) * 1e3

        t1 = time.perf_counter()
        pair_o, pair_r = cand.pair_o, cand.pair_r
        P = pair_o.shape[0]
        online = snap.riders.online
        fn = ins.insertion_costs_into_parallel if p.parallel else ins.insertion_costs_into
        cost = np.full(P, np.inf)
        pi = np.full(P, -1, dtype=np.int64)
        pj = np.full(P, -1, dtype=np.int64)
        late = np.zeros(P)
        status = np.zeros(P, dtype=np.int64)
        todo = np.ones(P, dtype=np.bool_)
        args = (orders_t, riders_t, rt, snap.travel, weights, mode, p.max_orders_per_rider)
        fn(*args, ev, tot, online, pair_o, pair_r, todo, cost, pi, pj, late, status)
        first_status = status.copy()
        first_cost = cost.copy()
        timings["insertion"] = (time.perf_counter() - t1) * 1e3

        t2 = time.perf_counter()
        n_all = snap.orders.n
        assigned_to = np.full(n_all, -1, dtype=np.int64)
        alive = np.ones(P, dtype=np.bool_)
        changed_mask = np.zeros(snap.riders.m, dtype=np.bool_)
        reject = p.reject_costs(snap.orders, now)
        for rnd in range(p.n_rounds):
            use = alive & np.isfinite(cost)
            if not np.any(use):
                break
            wins, _obj = assignment_round(pair_o, pair_r, cost, use, snap.riders.m, reject)
            if wins.size == 0:
                break
            wo, wr = pair_o[wins], pair_r[wins]
            ins.apply_insertions(rt, wo, wr, pi[wins], pj[wins])
            assigned_to[wo] = wr
            touched = np.zeros(snap.riders.m, dtype=np.bool_)
            touched[wr] = True
            changed_mask[wr] = True
            evaluate_subset(orders_t, riders_t, rt, snap.travel, weights, mode, wr, ev, tot)
            alive &= assigned_to[pair_o] < 0
            if rnd + 1 < p.n_rounds:  # re-price the pairs of riders whose routes just changed
                todo = alive & touched[pair_r]
                if not todo.any():
                    # No pair left changed price, and every one of them was free to be taken this round with the
                    # same riders: the next round's optimum is to take none (up to exact ties).
                    break
                fn(*args, ev, tot, online, pair_o, pair_r, todo, cost, pi, pj, late, status)
        timings["assignment"] = (time.perf_counter() - t2) * 1e3

        t3 = time.perf_counter()
        changed = np.flatnonzero(changed_mask).astype(np.int64)
        if p.local_search_passes and changed.size:
            _gain, improved = improve_routes(*args, changed, p.local_search_passes, p.local_search_pairs)
            evaluate_subset(orders_t, riders_t, rt, snap.travel, weights, mode, improved, ev, tot)
        self._ticks += 1
        if p.ortools_every_ticks and self._ticks % p.ortools_every_ticks == 0:
            changed = self._reoptimise(snap, routes, ev, tot, changed, now)
            rt = routes.as_tuple()
            evaluate_subset(orders_t, riders_t, rt, snap.travel, weights, mode, changed, ev, tot)
        timings["improve"] = (time.perf_counter() - t3) * 1e3

        ao = np.flatnonzero(assigned_to >= 0).astype(np.int64)
        left = pending[assigned_to[pending] < 0]
        reasons = _reasons(left, pinned=snap.orders.pinned, held_orders=pending[held], cand=cand, eligible=eligible,
                           pair_o=pair_o, first_cost=first_cost, first_status=first_status,
                           reject=reject)  # fmt: skip
        before = float(cost0[changed].sum()) + float(reject[pending].sum())
        after = float(tot[3][changed].sum()) + float(reject[left].sum())
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return TickResult(
            routes=routes,
            assigned_order=ao,
            assigned_rider=assigned_to[ao],
            unassigned_order=left,
            unassigned_reason=reasons,
            arrive=ev[0],
            changed=changed,
            cost_before=before,
            cost_after=after,
            timings_ms=timings,
        )

    def _reoptimise(
        self,
        snap: Snapshot,
        routes: Routes,
        ev: tuple[Any, ...],
        tot: tuple[Any, ...],
        changed: I64,
        now: float,
    ) -> I64:
        """OR-Tools re-optimisation of dense pickup groups' riders; keeps its result only when better."""
        from dispatch.routing import RoutingParams, optimise

        p = self.params
        r = routes
        busy = np.flatnonzero(r.length > r.frozen)
        if busy.size == 0:
            return changed
        first_site = np.full(snap.riders.m, -1, dtype=np.int64)
        for rid in busy:
            s = int(r.frozen[rid])
            first_site[rid] = snap.orders.site[r.order[rid, s]]
        out = set(changed.tolist())
        for site in np.unique(first_site[busy]):
            group = busy[first_site[busy] == site].astype(np.int64)
            if int((r.length[group] - r.frozen[group]).sum()) < p.ortools_min_stops:
                continue
            res = optimise(
                snap.orders, snap.riders, r, snap.travel, p.weights, p.mode, p.max_orders_per_rider,
                group, np.zeros(0, np.int64), now, RoutingParams(time_limit_s=p.ortools_time_limit_s),
            )  # fmt: skip
            if res.improved:
                w = min(r.width, res.routes.width)
                r.length[group] = res.routes.length[group]
                r.frozen[group] = res.routes.frozen[group]
                r.order[group, :w] = res.routes.order[group, :w]
                r.kind[group, :w] = res.routes.kind[group, :w]
                out.update(group.tolist())
        return np.array(sorted(out), dtype=np.int64)


def _reasons(
    left: I64,
    *,
    pinned: I64,
    held_orders: I64,
    cand: Any,
    eligible: I64,
    pair_o: I64,
    first_cost: F64,
    first_status: I64,
    reject: F64,
) -> I64:
    """A Reason for each order left unassigned (int64[len(left)]), in whole arrays: an order is held for batching;
    else with no rider in reach or no candidate (its pinned rider unavailable, when pinned); else, when no candidate
    could take it (no finite first-round cost), the shift ends (every candidate's status after its shift or
    offline) or capacity; else late with every rider when its cheapest cost reaches its reject cost; else riders
    busy. ``pair_o``: sorted; ``first_cost``, ``first_status``: per pair."""
    out = np.full(left.shape[0], int(Reason.RIDERS_BUSY), dtype=np.int64)
    if left.shape[0] == 0:
        return out
    size = int(max(left.max(), eligible.max() if eligible.size else 0, held_orders.max(initial=0))) + 1
    is_held = np.zeros(size, dtype=bool)  # np.isin's answer, by a lookup: a tenth of the time (orders are indices)
    is_held[held_orders] = True
    held = is_held[left]
    out[held] = Reason.HELD_FOR_BATCHING
    reach = np.zeros(size, dtype=bool)
    reach[eligible] = cand.in_reach
    starts = np.searchsorted(pair_o, left, side="left")
    ends = np.searchsorted(pair_o, left, side="right")
    none = ~held & (~reach[left] | (ends == starts))
    out[none] = np.where(pinned[left[none]] >= 0, Reason.PINNED_RIDER_UNAVAILABLE, Reason.NO_RIDER_IN_REACH)
    rest = np.flatnonzero(~held & ~none)
    if rest.size:
        first = np.flatnonzero(np.r_[True, pair_o[1:] != pair_o[:-1]]) if pair_o.size else np.zeros(0, np.int64)
        seg = np.searchsorted(first, starts[rest], side="right") - 1  # each order's run of pairs
        any_finite = np.logical_or.reduceat(np.isfinite(first_cost), first)[seg]
        cheapest = np.minimum.reduceat(first_cost, first)[seg]
        off = (first_status == ins.AFTER_SHIFT) | (first_status == ins.OFFLINE)
        all_off = np.logical_and.reduceat(off, first)[seg]
        out[rest[~any_finite & all_off]] = Reason.SHIFT_ENDS
        out[rest[~any_finite & ~all_off]] = Reason.CAPACITY
        late = any_finite & (cheapest >= reject[left[rest]])
        out[rest[late]] = Reason.LATE_WITH_EVERY_RIDER
    return out


class GreedyPolicy:
    """Baseline: first come first served, the nearest idle rider in reach, one order per trip."""

    holds_orders = False

    def __init__(self, params: DispatchParams | None = None) -> None:
        self.params = params or DispatchParams()

    def tick(self, snap: Snapshot, now: float) -> TickResult:
        p = self.params
        t0 = time.perf_counter()
        routes = snap.routes.widened(max(2, snap.routes.width))
        rt = routes.as_tuple()
        orders_t = snap.orders.as_tuple()
        riders_t = snap.riders.as_tuple()
        ev, tot = evaluate_routes(orders_t, riders_t, rt, snap.travel, p.weights, p.mode)
        cost0 = tot[3].copy()
        riders = snap.riders
        idle = riders.online & (routes.length == 0) & (riders.shift_start <= now) & (riders.shift_end > now)
        pending = np.asarray(snap.pending, dtype=np.int64)
        fcfs = pending[np.lexsort((pending, snap.orders.placed[pending]))]
        assigned: list[tuple[int, int]] = []
        left: list[int] = []
        reasons: list[int] = []
        for o in fcfs.tolist():
            pin = int(snap.orders.pinned[o])
            cand = np.flatnonzero(idle)
            if pin >= 0:
                cand = cand[cand == pin]
            if cand.size == 0:
                left.append(o)
                reasons.append(int(Reason.RIDERS_BUSY))
                continue
            d = np.hypot(riders.x[cand] - snap.orders.pick_x[o], riders.y[cand] - snap.orders.pick_y[o])
            near = np.argsort(d, kind="stable")
            near = near[d[near] <= p.max_reach_m]
            if near.size == 0:
                left.append(o)
                reasons.append(int(Reason.NO_RIDER_IN_REACH))
                continue
            # The nearest idle rider for whom the one-order trip keeps the hard rules (capacity, shift end).
            seq_o = np.array([o, o], dtype=np.int64)
            seq_k = np.array([PICKUP, DROPOFF], dtype=np.int64)
            r = -1
            for c in cand[near].tolist():
                rider = riders.cost_tuple(c)
                if np.isfinite(sequence_cost(orders_t, rider, snap.travel, p.weights, p.mode, seq_o, seq_k, 2, 0,
                                             p.max_orders_per_rider)):  # fmt: skip
                    r = int(c)
                    break
            if r < 0:
                left.append(o)
                reasons.append(int(Reason.CAPACITY))
                continue
            ins.apply_insertion(rt, r, o, 0, 0)
            idle[r] = False
            assigned.append((o, r))
        changed = np.array(sorted({r for _, r in assigned}), dtype=np.int64)
        evaluate_subset(orders_t, riders_t, rt, snap.travel, p.weights, p.mode, changed, ev, tot)
        ao = np.array([a for a, _ in assigned], dtype=np.int64)
        ar = np.array([r for _, r in assigned], dtype=np.int64)
        srt = np.argsort(ao, kind="stable")
        reject = p.reject_costs(snap.orders, now)
        before = float(cost0[changed].sum()) + float(reject[pending].sum())
        after = float(tot[3][changed].sum()) + float(reject[np.array(left, dtype=np.int64)].sum())
        lo = np.array(left, dtype=np.int64)
        lr = np.array(reasons, dtype=np.int64)
        ls = np.argsort(lo, kind="stable")
        return TickResult(
            routes=routes,
            assigned_order=ao[srt],
            assigned_rider=ar[srt],
            unassigned_order=lo[ls],
            unassigned_reason=lr[ls],
            arrive=ev[0],
            changed=changed,
            cost_before=before,
            cost_after=after,
            timings_ms={"total": (time.perf_counter() - t0) * 1e3},
        )


def make_policy(name: str, params: DispatchParams | None = None) -> Policy:
    """``kernel``, ``greedy`` or ``ortools`` (see the module docstring)."""
    if name == "kernel":
        return KernelPolicy(params)
    if name == "greedy":
        return GreedyPolicy(params)
    if name == "ortools":
        from dispatch.ortools_policy import OrToolsPolicy  # it imports this module

        return OrToolsPolicy(params)
    raise ValueError(f"policy: must be one of {', '.join(POLICIES)}, got {name!r}")


def warm_up(policy: Policy) -> float:
    """Run ``policy`` once on a tiny synthetic tick, so that its kernels are compiled (or loaded from Numba's cache)
    before real traffic arrives; returns the seconds it took. On a fresh install the first call compiles every
    kernel (tens of seconds on 2 cores); later calls, and later processes, take milliseconds to a few seconds."""
    from dispatch.synthetic import NOW, CitySpec, city_snapshot  # it imports this module

    t0 = time.perf_counter()
    policy.tick(city_snapshot(CitySpec(n_orders=6, n_riders=4, n_sites=2, max_route_stops=4)), NOW)
    return time.perf_counter() - t0
