"""Compile the kernel policy's costliest kernels in a second process while the first shard compiles the rest.

On a fresh install (no machine code cached) a simulated day compiles its kernels as its first ticks first call
them, one after another, in one process: about 48 s of the demo's 53 s (``scripts/compile_times.py``). The
policy's four costliest kernels (local search, the insertion prices, the candidate expansion, the assignment
round) are called last in a tick. ``compile_ahead`` calls them on a tiny state of three riders and four orders,
**the last one a tick calls first**, so that the two processes meet in the middle: by the time the first shard
reaches a kernel that the helper has compiled, its machine code is in the cache and it is loaded, not compiled.
Nothing is computed with the results; the outcome of the day does not change.

The helper's calls take the same argument types as the policy's calls in a simulated tick (the same tables, the
same travel tuple, the same evaluation arrays), so that the cache entries they write are the ones the tick looks
up: ``tests/sim/test_warmup.py`` checks that a tick then compiles none of them again.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import numpy as np

from dispatch.candidates import candidate_pairs, route_visits
from dispatch.kernels import insertion as ins
from dispatch.kernels.assignment import assignment_round
from dispatch.kernels.localsearch import improve_routes
from dispatch.kernels.route import allocate_evaluation
from dispatch.policy import DispatchParams, Snapshot, _accepting, _free_point, planning_view
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes


def tiny_snapshot(travel: tuple[Any, ...], params: DispatchParams, now: float = 0.0) -> Snapshot:
    """Three riders online within 200 m of a site and four orders there, ready now; rider 0 carries order 0
    (pickup done, drop-off to go), the others are pending: every phase of a tick has something to do."""
    width = 2 * params.max_orders_per_rider + 2
    orders = OrderTable.build(
        pick_x=[0.0] * 4, pick_y=[0.0] * 4, drop_x=[800.0, -600.0, 0.0, 900.0], drop_y=[0.0, 300.0, 700.0, -500.0],
        site=[0] * 4, ready=[now] * 4, promised=[now + 1800.0] * 4, placed=[now - 600.0] * 4,
    )  # fmt: skip
    riders = RiderTable.build(
        x=[0.0, 150.0, 0.0], y=[0.0, 0.0, 200.0], avail=[now] * 3, shift_end=[now + 4 * 3600.0] * 3, capacity=[8] * 3,
        shift_start=[now - 3600.0] * 3,
    )  # fmt: skip
    routes = Routes.from_lists([[(0, PICKUP), (0, DROPOFF)], [], []], width, frozen=[1, 0, 0])
    return Snapshot(orders, riders, routes, np.array([1, 2, 3], dtype=np.int64), travel)


def compile_ahead(travel: tuple[Any, ...], params: DispatchParams) -> None:
    """Call the kernel policy's costliest kernels once each on ``tiny_snapshot``, with ``params`` as the policy
    would pass them, in the order that leaves a cold first shard the least to compile (see the module docstring):
    the insertion prices (a tick's first call of them comes about 13 s into the demo's cold start), local search
    and the assignment round (called last in a tick), then the candidate expansion (the shard reaches it only
    after the insertion, and compiles it itself if it gets there first)."""
    p = params
    now = 0.0
    snap = planning_view(tiny_snapshot(travel, p, now), p)
    m = snap.riders.m
    routes = snap.routes.widened(2 * p.max_orders_per_rider + 2)
    ev, tot = allocate_evaluation(m, routes.width)  # the evaluation's arrays as a tick gets them; values unused
    args = (snap.orders.as_tuple(), snap.riders.as_tuple(), routes.as_tuple(), snap.travel, p.weights, p.mode,
            p.max_orders_per_rider)  # fmt: skip
    pair_o = np.array([1, 2, 3, 1], dtype=np.int64)
    pair_r = np.array([1, 2, 0, 2], dtype=np.int64)
    P = pair_o.shape[0]
    fn = ins.insertion_costs_into_parallel if p.parallel else ins.insertion_costs_into
    at = (np.full(P, -1, dtype=np.int64), np.full(P, -1, dtype=np.int64))  # the insertion positions
    fn(*args, ev, tot, snap.riders.online, pair_o, pair_r, np.ones(P, dtype=np.bool_), np.full(P, np.inf), *at,
       np.zeros(P), np.zeros(P, dtype=np.int64))  # fmt: skip
    if p.local_search_passes:
        improve_routes(*args, np.arange(m, dtype=np.int64), p.local_search_passes, p.local_search_pairs)
    cost = np.arange(P, dtype=np.float64)
    assignment_round(pair_o, pair_r, cost, np.ones(P, dtype=np.bool_), m, p.reject_costs(snap.orders, now))
    fx, fy, floc, fat = _free_point(snap, ev, tot)
    candidate_pairs(
        snap.orders, snap.riders, snap.pending, fx, fy, fat, _accepting(snap, p, now), now, p.candidate_k,
        p.max_reach_m, p.reference_speed_mps, route_visits(snap.orders, routes, ev), travel=snap.travel,
        weights=p.weights, free_loc=floc, window=p.candidate_window, rider_side=p.candidate_rider_side,
    )  # fmt: skip


def start_compile_ahead(travel: tuple[Any, ...], params: DispatchParams) -> mp.process.BaseProcess | None:
    """``compile_ahead`` in a forked process, started (None where processes cannot be forked: the caller then
    compiles everything itself, as before). The caller joins it; a failure there only loses the head start."""
    if "fork" not in mp.get_all_start_methods():
        return None
    proc = mp.get_context("fork").Process(target=compile_ahead, args=(travel, params), daemon=True)
    proc.start()
    return proc
