"""Compile the kernel policy's costliest kernels in a second process while the first shard compiles the rest.

On a fresh install (no machine code cached) a simulated day compiles its kernels as its first ticks call them,
one after another, in one process: about 48 s of the demo's 53 s (``scripts/compile_times.py``), while the
second core waits. A shard's first ticks compile the simulator's own kernels (the promise summary, the offer,
the compaction) for about 13 s before the policy's: ``compile_ahead`` calls the policy's four costliest kernels
(the insertion prices, local search, the assignment round, the candidate expansion) on a tiny state of four
riders and six pending orders meanwhile, so that the shard finds them in the cache when it gets there and loads them
instead of compiling them. Nothing is computed with the results; the outcome of the day does not change.

The helper's calls take the same argument types as a simulated tick's calls (the same tables, the same travel
tuple, the same evaluation arrays), or the cache entries they write would never be looked up:
``tests/sim/test_warmup.py`` records the Numba types of every call of the four kernels, by the helper and by a
simulated day, and fails if the day makes a call the helper does not.

Two processes then compile into one Numba cache at once. Numba writes each cache file under a temporary name
and renames it into place, so a reader sees a whole file or none; and where both compile the same function they
compile it for the same types (``kernels._jit._unliteral_calls``: a cold demo writes one signature per function),
so they write the same entry.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from dispatch.candidates import candidate_pairs, route_visits
from dispatch.kernels import insertion as ins
from dispatch.kernels.assignment import assignment_round
from dispatch.kernels.localsearch import improve_routes
from dispatch.kernels.route import allocate_evaluation
from dispatch.policy import DispatchParams, Snapshot, _accepting, _free_point, planning_view
from dispatch.synthetic import NOW, CitySpec, city_snapshot


def tiny_snapshot(travel: tuple[Any, ...]) -> Snapshot:
    """``policy.warm_up``'s tiny tick (six orders pending, four riders, some of them with bags: every phase of a
    tick has something to do) on the day's travel tuple."""
    return replace(city_snapshot(CitySpec(n_orders=6, n_riders=4, n_sites=2, max_route_stops=4)), travel=travel)


def compile_ahead(travel: tuple[Any, ...], params: DispatchParams) -> None:
    """Call the kernel policy's costliest kernels once each on ``tiny_snapshot``, with ``params`` as the policy
    would pass them. The order leaves a cold first shard the least to compile on the demo: the insertion prices
    first (the demo's shard first calls them about 13 s in, before any order is free to pair), then local search
    and the assignment round, then the candidate expansion (the shard calls it from about 19 s on, and compiles it
    itself when it gets there first: the cost is only a core that would have waited anyway)."""
    p = params
    now = NOW
    snap = planning_view(tiny_snapshot(travel), p)
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


def _helper_main(travel: tuple[Any, ...], params: DispatchParams) -> None:
    # Output goes nowhere: the parent's stdout and stderr may be a progress display's proxies, whose locks a fork
    # can inherit held. A failure here only loses the head start.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (open for the life of the process)
    compile_ahead(travel, params)


def start_compile_ahead(travel: tuple[Any, ...], params: DispatchParams) -> mp.process.BaseProcess | None:
    """``compile_ahead`` in a forked daemon process, started; None where processes cannot be forked, or the fork
    failed: the caller then compiles everything itself, as it would without. The caller ends it with
    ``stop_compile_ahead``."""
    if "fork" not in mp.get_all_start_methods():
        return None
    proc = mp.get_context("fork").Process(target=_helper_main, args=(travel, params), daemon=True)
    try:
        proc.start()
    except OSError:
        return None
    return proc


def stop_compile_ahead(proc: mp.process.BaseProcess | None) -> None:
    """End the helper: by the end of a day it has long finished, and if not, what it still compiles is of no use
    to the day any more (it is terminated; a cache file it was writing is left under a temporary name)."""
    if proc is None:
        return
    if proc.is_alive():
        proc.terminate()
    proc.join()
