"""Our solver for the literature's VRPTW / PDPTW benchmarks: fewest vehicles first, then least distance.

Three phases, all ruin-and-recreate in Numba (``dispatch.kernels.vrp_search``; string removals and greedy
insertion with blinks, after Christiaens & Vanden Berghe's SISR):

0. a first solution by cheapest insertion, then a short anneal on distance (``pre_share`` of the time; routes that
   empty are dropped), so that the next phase starts from well-shaped routes;
1. fleet minimisation: drop the smallest route and search, without opening routes, for a state that serves every
   task again (accepting states that leave out fewer tasks, or tasks left out less often so far), for up to
   ``fleet_share`` of the time, until the capacity bound on the routes is reached, or until no route has been
   saved for ``fleet_patience`` of the time;
2. distance minimisation with simulated annealing from the best state, never with more routes.

The three phases run ``restarts`` times from scratch with different seeds, each with an equal share of the time,
and the best result is kept: outcomes vary a lot from run to run (which fleet-minimal routes the search lands
in), and on the Solomon set two runs of 5 s did better than one of 10 s.

Python only orchestrates: each kernel call runs a slice of iterations (about ``slice_s`` seconds) and the clock is
checked between slices. The first call compiles the kernels (or loads them from Numba's on-disk cache): see
``warm_up``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.kernels.vrp_routes import check_state
from dispatch.kernels.vrp_search import construct, distance_slice, fleet_slice, new_state
from dispatch.vrp.problem import VrpInstance, VrpSolution

log = logging.getLogger(__name__)

# (R, RL, F, RD, NI, meta): see dispatch.kernels.vrp_routes
State = tuple[npt.NDArray[Any], ...]


@dataclass(frozen=True)
class SolverParams:
    """Search settings. Temperatures and the annealing's penalty per task left out (0: none left out) are relative
    to the mean distance per task of the solution the annealing starts from. Ruins remove about ``mean_removed``
    tasks in strings of up to ``max_string`` in fleet minimisation, ``anneal_removed`` / ``anneal_string`` in the
    annealing (larger: the routes are tighter once the fleet is at its smallest). ``left_out_reset`` > 0 sends the
    annealing back to the best state after that many iterations in a row with tasks left out (0: never)."""

    pre_share: float = 0.1
    fleet_share: float = 0.5
    fleet_patience: float = 0.3
    temp_start: float = 3.0
    temp_end: float = 0.01
    left_out_penalty: float = 40.0
    left_out_reset: int = 0
    mean_removed: float = 10.0
    max_string: float = 10.0
    anneal_removed: float = 20.0
    anneal_string: float = 15.0
    split_rate: float = 0.5
    split_depth: float = 0.3
    blink: float = 0.01
    slice_s: float = 0.02
    restarts: int = 2

    def __post_init__(self) -> None:
        if not (self.pre_share >= 0.0 and self.fleet_share >= 0.0 and self.pre_share + self.fleet_share <= 1.0):
            raise ValueError(
                f"pre_share and fleet_share must be >= 0 with a sum <= 1, got {self.pre_share}, {self.fleet_share}"
            )
        if not (self.temp_start > 0 and self.temp_end > 0):
            raise ValueError("temp_start and temp_end must be > 0")
        if self.left_out_penalty < 0 or self.left_out_reset < 0:
            raise ValueError(
                f"left_out_penalty and left_out_reset must be >= 0, got {self.left_out_penalty}, {self.left_out_reset}"
            )
        if min(self.mean_removed, self.max_string, self.anneal_removed, self.anneal_string) < 1:
            raise ValueError("mean_removed, max_string, anneal_removed and anneal_string must be >= 1")
        for name in ("split_rate", "split_depth", "blink"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        if not self.fleet_patience > 0:
            raise ValueError(f"fleet_patience must be > 0, got {self.fleet_patience}")
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts}")
        if not self.slice_s > 0:
            raise ValueError(f"slice_s must be > 0, got {self.slice_s}")


@dataclass
class _Problem:
    dist: npt.NDArray[np.float64]
    nd: npt.NDArray[np.float64]
    kind: npt.NDArray[np.int64]
    partner: npt.NDArray[np.int64]
    adj: npt.NDArray[np.int64]
    prm: npt.NDArray[np.float64]
    min_routes: int


def _problem(inst: VrpInstance, params: SolverParams) -> _Problem:
    n1 = inst.n + 1
    kind = np.zeros(n1, dtype=np.int64)
    partner = np.full(n1, -1, dtype=np.int64)
    if inst.is_pdptw:
        for v in range(1, n1):
            d, p = int(inst.delivery[v]), int(inst.pickup[v])
            if d >= 0 and p >= 0:
                raise ValueError(f"{inst.name}: node {v} is both a pickup and a delivery")
            if d >= 0:
                if not (1 <= d < n1 and int(inst.pickup[d]) == v):
                    raise ValueError(f"{inst.name}: pickup {v}'s delivery {d} does not point back to it")
                kind[v], partner[v] = 1, d
            elif p >= 0:
                if not (1 <= p < n1 and int(inst.delivery[p]) == v):
                    raise ValueError(f"{inst.name}: delivery {v}'s pickup {p} does not point back to it")
                kind[v], partner[v] = 2, p
            else:
                raise ValueError(f"{inst.name}: node {v} is neither a pickup nor a delivery in a PDPTW")
    nd = np.ascontiguousarray(np.stack([inst.ready, inst.due, inst.service, inst.demand]).astype(np.float64))
    nd[3, 0] = 0.0
    dist = np.ascontiguousarray(inst.dist, dtype=np.float64)
    adj = np.ascontiguousarray(np.argsort(dist, axis=1, kind="stable").astype(np.int64))
    prm = np.array(
        [inst.capacity, params.mean_removed, params.max_string, params.split_rate, params.split_depth,
         params.blink, float(params.left_out_reset), 0.0],
        dtype=np.float64,
    )  # fmt: skip
    # a lower bound on the routes: the capacity's (a PDPTW's running load gives none as simple)
    min_routes = 1 if inst.is_pdptw else max(1, math.ceil(float(inst.demand[1:].sum()) / inst.capacity - 1e-9))
    return _Problem(dist, nd, kind, partner, adj, prm, min_routes)


def _copy(src: State, dst: State) -> None:
    for a, b in zip(src, dst, strict=True):
        b[...] = a


def _routes(state: State) -> tuple[tuple[int, ...], ...]:
    r_arr, rl, _, _, _, meta = state
    return tuple(tuple(int(v) for v in r_arr[r, 1 : rl[r] + 1]) for r in range(int(meta[0])) if rl[r] > 0)


def _distance(state: State) -> float:
    return float(state[3][: int(state[5][0])].sum())


def _trace(inst: VrpInstance, phase: str, state: State, t_begin: float) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s: after %s: %d routes, distance %.2f, at %.2f s", inst.name, phase, int(state[5][0]),
                  _distance(state), time.perf_counter() - t_begin)  # fmt: skip


_warm = False


def warm_up() -> float:
    """Compile (or load from Numba's cache) every kernel on two tiny instances; returns the seconds it took."""
    global _warm
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for pd in (False, True):
        n = 6
        pickup = np.full(n + 1, -1, dtype=np.int64)
        delivery = np.full(n + 1, -1, dtype=np.int64)
        demand = np.concatenate([[0.0], rng.integers(1, 5, n).astype(np.float64)])
        if pd:
            for k in range(1, n + 1, 2):
                delivery[k], pickup[k + 1] = k + 1, k
                demand[k + 1] = -demand[k]
        inst = VrpInstance(
            name="warm-up",
            n_vehicles=n,
            capacity=10.0,
            x=rng.uniform(0, 10, n + 1),
            y=rng.uniform(0, 10, n + 1),
            demand=demand,
            ready=np.zeros(n + 1),
            due=np.full(n + 1, 1000.0),
            service=np.ones(n + 1),
            pickup=pickup,
            delivery=delivery,
        )
        _run(inst, 0.0, 0, SolverParams(), n_iter=5)
    _warm = True
    return time.perf_counter() - t0


def solve(inst: VrpInstance, time_limit_s: float, seed: int = 0, params: SolverParams | None = None) -> VrpSolution:
    """Best solution found within ``time_limit_s`` seconds (after a one-off warm-up on first use, see
    ``warm_up``); deterministic for a given seed apart from where the clock cuts the search."""
    if not time_limit_s >= 0:
        raise ValueError(f"time_limit_s must be >= 0, got {time_limit_s}")
    if not _warm:
        log.info("vrp solver: kernels compiled / loaded in %.1f s", warm_up())
    prm = params or SolverParams()
    t_end = time.perf_counter() + time_limit_s
    best: VrpSolution | None = None
    for k in range(prm.restarts):
        left = max(0.0, t_end - time.perf_counter())
        sol = _run(inst, left / (prm.restarts - k), seed + 7919 * k, prm)
        if best is None or (sol.vehicles, sol.distance(inst)) < (best.vehicles, best.distance(inst)):
            best = sol
    assert best is not None
    if best.vehicles > inst.n_vehicles:
        log.warning("%s: no solution with <= %d routes found; returning one with %d", inst.name,
                    inst.n_vehicles, best.vehicles)  # fmt: skip
    return best


def _run(inst: VrpInstance, time_limit_s: float, seed: int, params: SolverParams, n_iter: int = 0) -> VrpSolution:
    t_begin = time.perf_counter()
    deadline = t_begin + time_limit_s
    pb = _problem(inst, params)
    n = inst.n
    cur, cand, best = new_state(n, n), new_state(n, n), new_state(n, n)
    mixed = (0x9E3779B97F4A7C15 ^ ((seed & 0xFFFFFFFF) * 0xBF58476D1CE4E5B9)) & 0xFFFFFFFFFFFFFFFF
    rng = np.array([mixed | 1], dtype=np.uint64)  # xorshift64* state: never 0
    buf = np.zeros((4, n + 1), dtype=np.int64)
    rbuf = np.zeros(n + 2, dtype=np.int64)
    keys = np.zeros(n + 1, dtype=np.float64)
    absence = np.zeros(n + 1, dtype=np.int64)
    common = (pb.dist, pb.nd, pb.kind, pb.partner, pb.adj, pb.prm, rng, buf, rbuf, keys)

    construct(*cur, pb.dist, pb.nd, pb.kind, pb.partner, pb.prm, rng, buf, keys)
    if int(cur[5][1]) > 0:
        left = [int(v) for v in cur[4][2, : int(cur[5][1])]]
        raise ValueError(f"{inst.name}: tasks {left[:10]} cannot be served even by a route of their own")
    _copy(cur, best)

    rate = [2000.0]  # iterations per second, re-estimated after every slice

    def slices(until: float) -> Iterator[tuple[int, float, float]]:
        """(iterations, fraction of the span done at the start, at the end) for each slice until ``until``."""
        begin = time.perf_counter()
        span = max(until - begin, 1e-9)
        while True:
            now = time.perf_counter()
            if n_iter:
                yield n_iter, 0.0, 1.0
                return
            if now >= until:
                return
            k = max(1, int(min(params.slice_s, until - now) * rate[0]))
            f0 = min(1.0, (now - begin) / span)
            yield k, f0, min(1.0, f0 + k / rate[0] / span)
            rate[0] = max(50.0, k / max(time.perf_counter() - now, 1e-6))

    def anneal(until: float) -> None:
        pb.prm[1], pb.prm[2] = params.anneal_removed, params.anneal_string
        _copy(best, cur)
        scale = _distance(best) / max(1, n)
        t_hi, t_lo = params.temp_start * scale, params.temp_end * scale
        for k, f0, f1 in slices(until):
            t0, t1 = t_hi * (t_lo / t_hi) ** f0, t_hi * (t_lo / t_hi) ** f1
            distance_slice(k, t0, t1, params.left_out_penalty * scale, *cur, *cand, *best, *common)

    # phase 0: a short anneal, so that fleet minimisation starts from well-shaped routes
    anneal(t_begin + params.pre_share * time_limit_s)
    _trace(inst, "anneal 0", best, t_begin)
    # phase 1: fleet minimisation
    _copy(best, cur)
    pb.prm[1], pb.prm[2] = params.mean_removed, params.max_string
    routes, last = int(best[5][0]), time.perf_counter()
    for k, _, _ in slices(t_begin + (params.pre_share + params.fleet_share) * time_limit_s):
        if fleet_slice(k, pb.min_routes, *cur, *cand, *best, *common, absence):
            break
        now = time.perf_counter()
        if int(best[5][0]) < routes:
            routes, last = int(best[5][0]), now
            _trace(inst, "fleet step", best, t_begin)
        elif now - last > params.fleet_patience * time_limit_s:
            break  # no route saved for a while: leave the time to distance
    _trace(inst, "fleet", best, t_begin)
    # phase 2: distance, simulated annealing from the best state
    anneal(deadline)
    _trace(inst, "anneal", best, t_begin)

    bad = int(check_state(best[0], best[1], best[5], pb.dist, pb.nd, pb.partner, pb.kind, inst.capacity))
    if bad:  # never expected: every move is checked; kept as a guard against rounding
        log.error("%s: the best state breaks %d rules", inst.name, bad)
    return VrpSolution(_routes(best))
