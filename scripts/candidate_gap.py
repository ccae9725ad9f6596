"""Candidate pruning ablation: the single-round optimum over the candidate pairs against the dense optimum.

Usage: python scripts/candidate_gap.py ORDERS RIDERS SITES   (e.g. 2000 2000 100; 150 300 1)

Every order x rider insertion cost is computed with the kernel, the dense optimum with scipy's
linear_sum_assignment, then the optimum restricted to each candidate configuration; it prints the relative gap,
the pair count and the candidate time (ms, one run after a warm-up). The figures in benchmarks/RESULTS.md.
"""

import sys
import time
from dataclasses import replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from dispatch.candidates import candidate_pairs, route_visits
from dispatch.kernels import insertion as ins
from dispatch.kernels.route import evaluate_routes
from dispatch.policy import DispatchParams, _accepting, _free_point
from dispatch.synthetic import NOW, CitySpec, city_snapshot


def setup(n, m, sites, seed=0):
    spec = CitySpec(n_orders=n, n_riders=m, n_sites=sites, seed=seed, radius_m=0.0 if sites == 1 else 12000.0)
    snap = city_snapshot(spec)
    p = replace(DispatchParams(), hold_s=0.0, rounds=1, local_search_passes=0)
    routes = snap.routes.widened(max(int(snap.routes.length.max()) + 2, 2 * p.max_orders_per_rider + 2))
    ot, rt_, tt = snap.orders.as_tuple(), snap.riders.as_tuple(), routes.as_tuple()
    ev, tot = evaluate_routes(ot, rt_, tt, snap.travel, p.weights, p.mode)
    pend = snap.pending
    acc = _accepting(snap, p, NOW)
    po = np.repeat(pend, m)
    pr = np.tile(np.arange(m), len(pend))
    cost, _pi, _pj, _late, _st = ins.insertion_costs(
        ot,
        rt_,
        tt,
        snap.travel,
        p.weights,
        p.mode,
        p.max_orders_per_rider,
        ev,
        tot,
        snap.riders.online,
        po,
        pr,
        np.ones(len(po), bool),
    )
    C = cost.reshape(len(pend), m)
    C[:, ~acc] = np.inf
    reject = p.reject_costs(snap.orders, NOW)[pend]
    return snap, p, routes, ev, tot, C, reject, acc


def lsa(C, reject, mask=None):
    n, m = C.shape
    big = 1e15
    D = np.full((n, m + n), big)
    CC = np.where(np.isfinite(C), C, big)
    if mask is not None:
        CC = np.where(mask, CC, big)
    D[:, :m] = CC
    D[np.arange(n), m + np.arange(n)] = reject
    r, c = linear_sum_assignment(D)
    return D[r, c].sum()


def main() -> None:
    n, m, s = map(int, sys.argv[1:4])
    snap, p, routes, ev, tot, C, reject, acc = setup(n, m, s)
    opt = lsa(C, reject)
    fx, fy, floc, fat = _free_point(snap, ev, tot)
    pos = np.full(snap.orders.n, -1)
    pos[snap.pending] = np.arange(len(snap.pending))
    for k, win, kr in ((12, 2, 0), (12, 2, None), (8, 2, None), (16, 2, None), (12, 0, None)):
        args = (
            snap.orders,
            snap.riders,
            snap.pending,
            fx,
            fy,
            fat,
            acc,
            NOW,
            k,
            p.max_reach_m,
            p.reference_speed_mps,
            route_visits(snap.orders, routes, ev),
        )
        kw = dict(travel=snap.travel, weights=p.weights, free_loc=floc, window=win, k_rider=kr)
        cand = candidate_pairs(*args, **kw)
        t = time.perf_counter()
        cand = candidate_pairs(*args, **kw)
        dt = (time.perf_counter() - t) * 1e3
        mask = np.zeros_like(C, bool)
        mask[pos[cand.pair_o], cand.pair_r] = True
        print(
            "k",
            k,
            "window",
            win,
            "k_rider",
            kr,
            "gap",
            round((lsa(C, reject, mask) - opt) / opt, 4),
            "pairs",
            len(cand.pair_o),
            "ms",
            round(dt, 2),
        )


if __name__ == "__main__":
    main()
