"""Ruin-and-recreate search for the benchmark VRPTW / PDPTW solver (after SISR: slack induction by string removals).

States are the six arrays of ``dispatch.kernels.vrp_routes`` ``(R, RL, F, RD, NI, meta)``. The problem is

- ``dist``: float64[n + 1, n + 1]; ``nd``: float64[4, n + 1] = ``[ready, due, service, demand]``;
- ``kind``: int64[n + 1]: 0 a VRPTW task, 1 a pickup, 2 a delivery (the depot's entry is unused);
  ``partner``: int64[n + 1]: the other end of a pickup-delivery pair, -1 otherwise;
- ``adj``: int64[n + 1, n + 1]: row ``v`` lists every node by increasing distance from ``v`` (``v`` first);
- ``prm``: float64[8] = ``[capacity, mean removed tasks, longest string, split rate, split depth, blink rate,
  iterations the annealing may stay with tasks left out before it returns to the best state (0: no limit), 0]``.

Work buffers (``buf``: int64[4, n + 1], ``rbuf``: int64[n + 2], ``keys``: float64[n + 1]) are scratch space so that
the loops allocate nothing per iteration. ``rng`` is the uint64[1] state of the generator in ``vrp_routes``.

Requests are what gets inserted: a VRPTW task, or a pickup (its delivery travels with it).
"""

from __future__ import annotations

import math

import numpy as np

from dispatch.kernels._jit import kernel
from dispatch.kernels.vrp_routes import (
    DEMAND,
    DUE,
    INF,
    READY,
    best_pair,
    best_single,
    copy_state,
    insert_after,
    move_route,
    open_route,
    rand_float,
    rand_int,
    single_route_ok,
    total_distance,
    update_route,
)

P_CAP = 0
P_CBAR = 1
P_LMAX = 2
P_SPLIT = 3
P_DEPTH = 4
P_BLINK = 5
P_RESET = 6


@kernel
def remove_marked(R, RL, F, RD, NI, meta, mark, dist, nd):
    """Take every task ``v`` with ``mark[v] == 1`` (int64[n + 1]) off its route; drop routes left empty."""
    for r in range(meta[0] - 1, -1, -1):
        m = RL[r]
        k = 1
        touched = False
        for p in range(1, m + 1):
            v = R[r, p]
            if mark[v] == 1:
                touched = True
                NI[0, v] = -1
            else:
                R[r, k] = v
                k += 1
        if not touched:
            continue
        R[r, k] = 0
        RL[r] = k - 1
        if k - 1 == 0:
            last = meta[0] - 1
            if r != last:
                move_route(last, r, R, RL, F, RD, NI)
            meta[0] = last
        else:
            update_route(r, R, RL, F, RD, NI, dist, nd)


@kernel
def ruin(R, RL, F, RD, NI, meta, dist, nd, kind, partner, adj, prm, rng, buf, rbuf):
    """String removals around a random seed task (SISR); marks removed tasks in ``buf[0]`` and takes them off.

    Returns the number of requests removed, listed in ``buf[1, :count]``."""
    n1 = dist.shape[0]
    nr = meta[0]
    mark = buf[0]
    reqs = buf[1]
    for v in range(n1):
        mark[v] = 0
    if nr == 0:
        return 0
    assigned = 0
    for r in range(nr):
        rbuf[r] = 0
        assigned += RL[r]
    avg = assigned / nr
    ls_max = prm[P_LMAX] if prm[P_LMAX] < avg else avg
    ks_max = 4.0 * prm[P_CBAR] / (1.0 + ls_max) - 1.0
    if ks_max < 1.0:
        ks_max = 1.0
    ks = int(rand_float(rng) * ks_max) + 1
    # a random assigned task as the seed
    seed = 1 + rand_int(rng, n1 - 1)
    while NI[0, seed] < 0:
        seed = 1 + rand_int(rng, n1 - 1)
    done = 0
    for k in range(n1):
        if done >= ks:
            break
        c = adj[seed, k]
        if c == 0:
            continue
        r = NI[0, c]
        if r < 0 or rbuf[r] == 1:
            continue
        m = RL[r]
        lim = ls_max if ls_max < m else float(m)
        ln = int(rand_float(rng) * lim) + 1
        if ln > m:
            ln = m
        pc = NI[1, c]
        if ln == m or rand_float(rng) >= prm[P_SPLIT]:
            lo = max(1, pc - ln + 1)
            hi = min(pc, m - ln + 1)
            s = lo + rand_int(rng, hi - lo + 1)
            for p in range(s, s + ln):
                mark[R[r, p]] = 1
        else:
            keep = 1
            while ln + keep < m and rand_float(rng) > prm[P_DEPTH]:
                keep += 1
            tot = ln + keep
            lo = max(1, pc - tot + 1)
            hi = min(pc, m - tot + 1)
            s = lo + rand_int(rng, hi - lo + 1)
            ks0 = s + rand_int(rng, tot - keep + 1)
            for p in range(s, s + tot):
                if p < ks0 or p >= ks0 + keep:
                    mark[R[r, p]] = 1
        rbuf[r] = 1
        done += 1
    cnt = 0
    for v in range(1, n1):
        if mark[v] == 1 and partner[v] >= 0:
            mark[partner[v]] = 1
    for v in range(1, n1):
        if mark[v] == 1 and kind[v] != 2:
            reqs[cnt] = v
            cnt += 1
    remove_marked(R, RL, F, RD, NI, meta, mark, dist, nd)
    return cnt


@kernel
def order_requests(reqs, cnt, mode, dist, nd, absence, rng, keys):
    """Sort ``reqs[:cnt]`` in place: 0 random, 1 demand (largest first), 2 far from the depot first, 3 close
    first, 4 narrow time window first, 5 most often left out (``absence`` int64[n + 1]) first."""
    if mode == 0:
        for i in range(cnt - 1, 0, -1):
            j = rand_int(rng, i + 1)
            t = reqs[i]
            reqs[i] = reqs[j]
            reqs[j] = t
        return
    for i in range(cnt):
        v = reqs[i]
        if mode == 1:
            keys[i] = -nd[DEMAND, v]
        elif mode == 2:
            keys[i] = -dist[0, v]
        elif mode == 3:
            keys[i] = dist[0, v]
        elif mode == 4:
            keys[i] = nd[DUE, v] - nd[READY, v]
        else:
            keys[i] = -float(absence[v])
        keys[i] += 1e-7 * rand_float(rng)  # random tie-breaks
    # insertion sort: cnt is small (tens)
    for i in range(1, cnt):
        kv = keys[i]
        v = reqs[i]
        j = i - 1
        while j >= 0 and keys[j] > kv:
            keys[j + 1] = keys[j]
            reqs[j + 1] = reqs[j]
            j -= 1
        keys[j + 1] = kv
        reqs[j + 1] = v


@kernel
def recreate(reqs, cnt, max_routes, R, RL, F, RD, NI, meta, dist, nd, partner, prm, rng):
    """Insert requests ``reqs[:cnt]`` in order, each at its cheapest feasible place (with blinks); a request
    with no place opens a route while fewer than ``max_routes`` are used, else joins the unassigned list."""
    cap = prm[P_CAP]
    blink = prm[P_BLINK]
    for k in range(cnt):
        u = reqs[k]
        dl = partner[u]
        best = INF
        br = -1
        bi = -1
        bj = -1
        for r in range(meta[0]):
            if dl >= 0:
                c, i, j = best_pair(u, dl, r, R, RL, F, dist, nd, cap, blink, rng, best)
                if i >= 0:
                    best = c
                    br = r
                    bi = i
                    bj = j
            else:
                c, i = best_single(u, r, R, RL, F, dist, nd, cap, blink, rng, best)
                if i >= 0:
                    best = c
                    br = r
                    bi = i
        if br >= 0:
            if dl >= 0:
                insert_after(br, bj, dl, R, RL)
                insert_after(br, bi, u, R, RL)
            else:
                insert_after(br, bi, u, R, RL)
            update_route(br, R, RL, F, RD, NI, dist, nd)
        elif meta[0] < max_routes and single_route_ok(u, dl, dist, nd, cap):
            open_route(u, dl, R, RL, F, RD, NI, meta, dist, nd)
        else:
            NI[2, meta[1]] = u
            meta[1] += 1
            NI[0, u] = -1
            if dl >= 0:
                NI[0, dl] = -1


@kernel
def pick_order(rng, fleet):
    """A sort mode for ``order_requests`` with SISR's weights (random 4, demand 4, far 2, close 1), plus narrow
    windows (2) and, in the fleet phase, most often left out (3)."""
    total = 13.0 + (3.0 if fleet else 0.0)
    x = rand_float(rng) * total
    if x < 4.0:
        return 0
    if x < 8.0:
        return 1
    if x < 10.0:
        return 2
    if x < 11.0:
        return 3
    if x < 13.0:
        return 4
    return 5


@kernel
def construct(R, RL, F, RD, NI, meta, dist, nd, kind, partner, prm, rng, buf, keys):
    """Build a first solution from nothing: every request inserted cheapest-first, opening routes as needed."""
    n1 = dist.shape[0]
    meta[0] = 0
    meta[1] = 0
    reqs = buf[1]
    cnt = 0
    for v in range(1, n1):
        NI[0, v] = -1
        if kind[v] != 2:
            reqs[cnt] = v
            cnt += 1
    absence = buf[2]
    order_requests(reqs, cnt, 4, dist, nd, absence, rng, keys)
    recreate(reqs, cnt, R.shape[0], R, RL, F, RD, NI, meta, dist, nd, partner, prm, rng)


@kernel
def distance_slice(
    n_iter,
    t_start,
    t_end,
    penalty,
    R,
    RL,
    F,
    RD,
    NI,
    meta,
    R2,
    RL2,
    F2,
    RD2,
    NI2,
    meta2,
    Rb,
    RLb,
    Fb,
    RDb,
    NIb,
    metab,
    dist,
    nd,
    kind,
    partner,
    adj,
    prm,
    rng,
    buf,
    rbuf,
    keys,
):
    """``n_iter`` ruin-and-recreate steps on the current state (first six arrays) with simulated annealing on
    distance plus ``penalty`` per request left out, the temperature falling geometrically from ``t_start`` to
    ``t_end``. Never more routes than the best state; with ``penalty <= 0`` never a request left out. The
    candidate (next six) is scratch; the best state (last six, always serving every task) is updated in place.

    Returns the number of candidates accepted."""
    accepted = 0
    n1 = dist.shape[0]
    cur_c = total_distance(RD, meta) + penalty * meta[1]
    best_d = total_distance(RDb, metab)
    ratio = t_end / t_start if t_start > 0.0 else 1.0
    reset = int(prm[P_RESET])
    for it in range(n_iter):
        temp = t_start * ratio ** (it / n_iter)
        if meta[1] > 0:
            rbuf[n1] += 1
            if reset > 0 and rbuf[n1] > reset:  # out of the feasible region too long: back to the best
                copy_state(Rb, RLb, Fb, RDb, NIb, metab, R, RL, F, RD, NI, meta)
                cur_c = best_d
                rbuf[n1] = 0
        else:
            rbuf[n1] = 0
        copy_state(R, RL, F, RD, NI, meta, R2, RL2, F2, RD2, NI2, meta2)
        cnt = ruin(R2, RL2, F2, RD2, NI2, meta2, dist, nd, kind, partner, adj, prm, rng, buf, rbuf)
        reqs = buf[1]
        for k in range(meta2[1]):
            reqs[cnt] = NI2[2, k]
            cnt += 1
        meta2[1] = 0
        order_requests(reqs, cnt, pick_order(rng, False), dist, nd, buf[2], rng, keys)
        recreate(reqs, cnt, metab[0], R2, RL2, F2, RD2, NI2, meta2, dist, nd, partner, prm, rng)
        if meta2[1] > 0 and penalty <= 0.0:
            continue
        cd = total_distance(RD2, meta2)
        cc = cd + penalty * meta2[1]
        # a complete state with fewer routes always wins; else the annealing's test
        ok = (meta2[1] == 0 and meta2[0] < metab[0]) or cc < cur_c - temp * math.log(1.0 - rand_float(rng))
        if ok:
            copy_state(R2, RL2, F2, RD2, NI2, meta2, R, RL, F, RD, NI, meta)
            cur_c = cc
            accepted += 1
            if meta[1] == 0 and (meta[0] < metab[0] or (meta[0] == metab[0] and cd < best_d - 1e-12)):
                copy_state(R, RL, F, RD, NI, meta, Rb, RLb, Fb, RDb, NIb, metab)
                best_d = cd
    return accepted


@kernel
def drop_smallest_route(R, RL, F, RD, NI, meta, dist, nd, kind, buf):
    """Remove the route with the fewest tasks; its requests join the unassigned list."""
    nr = meta[0]
    rr = 0
    for r in range(1, nr):
        if RL[r] < RL[rr]:
            rr = r
    mark = buf[0]
    for v in range(mark.shape[0]):
        mark[v] = 0
    for p in range(1, RL[rr] + 1):
        v = R[rr, p]
        mark[v] = 1
        if kind[v] != 2:
            NI[2, meta[1]] = v
            meta[1] += 1
    remove_marked(R, RL, F, RD, NI, meta, mark, dist, nd)


@kernel
def fleet_slice(
    n_iter,
    min_routes,
    R,
    RL,
    F,
    RD,
    NI,
    meta,
    R2,
    RL2,
    F2,
    RD2,
    NI2,
    meta2,
    Rb,
    RLb,
    Fb,
    RDb,
    NIb,
    metab,
    dist,
    nd,
    kind,
    partner,
    adj,
    prm,
    rng,
    buf,
    rbuf,
    keys,
    absence,
):
    """Fleet minimisation (SISR's): whenever the current state serves every task it becomes the best (if it has
    fewer routes) and loses its smallest route; ruin-and-recreate steps without new routes are accepted when they
    leave fewer requests out, or requests left out less often so far (``absence`` int64[n + 1], updated).

    Returns 1 once the best state has ``min_routes`` routes or fewer, else 0."""
    for _ in range(n_iter):
        if meta[1] == 0:
            if meta[0] < metab[0] or (meta[0] == metab[0] and total_distance(RD, meta) < total_distance(RDb, metab)):
                copy_state(R, RL, F, RD, NI, meta, Rb, RLb, Fb, RDb, NIb, metab)
            if meta[0] <= min_routes or meta[0] <= 1:
                return 1
            drop_smallest_route(R, RL, F, RD, NI, meta, dist, nd, kind, buf)
        copy_state(R, RL, F, RD, NI, meta, R2, RL2, F2, RD2, NI2, meta2)
        cnt = ruin(R2, RL2, F2, RD2, NI2, meta2, dist, nd, kind, partner, adj, prm, rng, buf, rbuf)
        reqs = buf[1]
        for k in range(meta2[1]):
            reqs[cnt] = NI2[2, k]
            cnt += 1
        meta2[1] = 0
        order_requests(reqs, cnt, pick_order(rng, True), dist, nd, absence, rng, keys)
        recreate(reqs, cnt, meta[0], R2, RL2, F2, RD2, NI2, meta2, dist, nd, partner, prm, rng)
        a_cur = 0
        for k in range(meta[1]):
            a_cur += absence[NI[2, k]]
        a_new = 0
        for k in range(meta2[1]):
            a_new += absence[NI2[2, k]]
        if meta2[1] < meta[1] or a_new < a_cur:
            copy_state(R2, RL2, F2, RD2, NI2, meta2, R, RL, F, RD, NI, meta)
        for k in range(meta2[1]):
            absence[NI2[2, k]] += 1
    if meta[1] == 0 and meta[0] < metab[0]:
        copy_state(R, RL, F, RD, NI, meta, Rb, RLb, Fb, RDb, NIb, metab)
    return 1 if metab[0] <= min_routes else 0


def new_state(n: int, max_routes: int) -> tuple[np.ndarray, ...]:
    """Empty state arrays for ``n`` tasks and up to ``max_routes`` routes (see ``vrp_routes``)."""
    w = n + 3
    return (
        np.zeros((max_routes + 1, w), dtype=np.int64),
        np.zeros(max_routes + 1, dtype=np.int64),
        np.zeros((4, max_routes + 1, w), dtype=np.float64),
        np.zeros(max_routes + 1, dtype=np.float64),
        np.full((3, n + 1), -1, dtype=np.int64),
        np.zeros(2, dtype=np.int64),
    )
