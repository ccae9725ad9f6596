"""Route bookkeeping for the benchmark VRPTW / PDPTW solver: O(1) insertion checks on time-window summaries.

A solution ("state") is six arrays, with ``n`` tasks, ``W = n + 2`` slots per route and ``M`` route slots:

- ``R``: int64[M, W]: route ``r`` visits ``R[r, 0] = 0`` (depot), ``R[r, 1..RL[r]]`` (tasks), ``R[r, RL[r] + 1] = 0``;
- ``RL``: int64[M]: number of tasks on each route;
- ``F``: float64[4, M, W]: per route slot ``p``: ``F[0]`` earliest service start (forward, waiting allowed),
  ``F[1]`` latest service start that keeps the rest of the route feasible (backward), ``F[2]`` load after the
  slot (running sum of demands), ``F[3]`` the largest load from the slot to the end of the route;
- ``RD``: float64[M]: distance of each route;
- ``NI``: int64[3, n + 1]: ``NI[0, v]`` route of task ``v`` (-1 when unassigned), ``NI[1, v]`` its slot,
  ``NI[2, :meta[1]]`` the unassigned tasks;
- ``meta``: int64[2]: ``[number of routes, number of unassigned tasks]``; routes ``0..meta[0] - 1`` are used.

The problem is ``dist`` float64[n + 1, n + 1] and ``nd`` float64[4, n + 1] = ``[ready, due, service, demand]``.
Checks: inserting ``u`` between slots ``p`` and ``p + 1`` is feasible when ``u`` starts by its due time and the
next node starts by its latest start ``F[1]`` (less ``EPS``, so that the backward sums' rounding never lets a route
through that the forward simulation would reject). For a VRPTW every demand is positive, so ``F[3]`` is the
route's total and the running-sum rule is the usual capacity rule.
"""

from __future__ import annotations

import numpy as np

from dispatch.kernels._jit import device, kernel

EPS = 1e-9
INF = 1e300

READY = 0
DUE = 1
SERVICE = 2
DEMAND = 3

_M12 = np.uint64(12)
_M25 = np.uint64(25)
_M27 = np.uint64(27)
_M11 = np.uint64(11)
_MUL = np.uint64(2685821657736338717)
_INV53 = 1.0 / 9007199254740992.0


@device
def rand_float(rng):
    """A uniform float in [0, 1) from the xorshift64* generator whose state is ``rng`` (uint64[1], updated)."""
    x = rng[0]
    x ^= x >> _M12
    x ^= x << _M25
    x ^= x >> _M27
    rng[0] = x
    return float((x * _MUL) >> _M11) * _INV53


@device
def rand_int(rng, k):
    """A uniform int in [0, k), k >= 1; ``rng`` uint64[1]."""
    i = int(rand_float(rng) * k)
    return i if i < k else k - 1


@device
def update_route(r, R, RL, F, RD, NI, dist, nd):
    """Recompute route ``r``'s summaries ``F[:, r, :]``, distance ``RD[r]`` and the tasks' ``NI[0:2]`` entries."""
    m = RL[r]
    t = nd[READY, 0]
    q = 0.0
    total = 0.0
    F[0, r, 0] = t
    F[2, r, 0] = 0.0
    prev = 0
    for p in range(1, m + 2):
        v = R[r, p]
        d = dist[prev, v]
        total += d
        a = t + nd[SERVICE, prev] + d
        t = a if a > nd[READY, v] else nd[READY, v]
        F[0, r, p] = t
        q += nd[DEMAND, v]
        F[2, r, p] = q
        if v != 0:
            NI[0, v] = r
            NI[1, v] = p
        prev = v
    RD[r] = total
    F[1, r, m + 1] = nd[DUE, 0]
    F[3, r, m + 1] = F[2, r, m + 1]
    for p in range(m, -1, -1):
        v = R[r, p]
        w = R[r, p + 1]
        lt = F[1, r, p + 1] - dist[v, w] - nd[SERVICE, v]
        F[1, r, p] = lt if lt < nd[DUE, v] else nd[DUE, v]
        qs = F[3, r, p + 1]
        F[3, r, p] = F[2, r, p] if F[2, r, p] > qs else qs


@device
def best_single(u, r, R, RL, F, dist, nd, cap, blink, rng, best):
    """Cheapest feasible insertion of task ``u`` into route ``r`` costing less than ``best``.

    Returns ``(cost, p)``: insert after slot ``p``; ``(best, -1)`` when there is none. A candidate is skipped
    ("blink") with probability ``blink``."""
    m = RL[r]
    qu = nd[DEMAND, u]
    ru = nd[READY, u]
    du = nd[DUE, u]
    su = nd[SERVICE, u]
    bp = -1
    for p in range(m + 1):
        a = R[r, p]
        arr = F[0, r, p] + nd[SERVICE, a] + dist[a, u]
        if arr > du:
            break  # with the triangle inequality, every later slot arrives later still
        b = R[r, p + 1]
        c = dist[a, u] + dist[u, b] - dist[a, b]
        if c >= best:
            continue
        if F[3, r, p] + qu > cap:
            continue
        t = arr if arr > ru else ru
        tb = t + su + dist[u, b]
        if tb < nd[READY, b]:
            tb = nd[READY, b]
        if tb > F[1, r, p + 1] - EPS:
            continue
        if blink > 0.0 and rand_float(rng) < blink:
            continue
        best = c
        bp = p
    return best, bp


@device
def best_pair(pk, dl, r, R, RL, F, dist, nd, cap, blink, rng, best):
    """Cheapest feasible insertion of pickup ``pk`` and its delivery ``dl`` into route ``r`` (pickup first).

    Returns ``(cost, i, j)``: the pickup goes after slot ``i``, the delivery after slot ``j >= i`` (of the
    original route); ``(best, -1, -1)`` when there is none."""
    m = RL[r]
    qp = nd[DEMAND, pk]
    bi = -1
    bj = -1
    for i in range(m + 1):
        a = R[r, i]
        arr = F[0, r, i] + nd[SERVICE, a] + dist[a, pk]
        if arr > nd[DUE, pk]:
            break
        if F[2, r, i] + qp > cap:
            continue
        b = R[r, i + 1]
        cp = dist[a, pk] + dist[pk, b] - dist[a, b]
        if cp >= best:
            continue
        tp = arr if arr > nd[READY, pk] else nd[READY, pk]
        # delivery straight after the pickup
        td = tp + nd[SERVICE, pk] + dist[pk, dl]
        if td < nd[READY, dl]:
            td = nd[READY, dl]
        if td <= nd[DUE, dl]:
            tb = td + nd[SERVICE, dl] + dist[dl, b]
            if tb < nd[READY, b]:
                tb = nd[READY, b]
            if tb <= F[1, r, i + 1] - EPS:
                c = dist[a, pk] + dist[pk, dl] + dist[dl, b] - dist[a, b]
                if c < best and not (blink > 0.0 and rand_float(rng) < blink):
                    best = c
                    bi = i
                    bj = i
        # delivery after a later slot j: walk the shifted start times forward
        t = tp
        prev = pk
        for j in range(i + 1, m + 1):
            v = R[r, j]
            t = t + nd[SERVICE, prev] + dist[prev, v]
            if t < nd[READY, v]:
                t = nd[READY, v]
            if t > nd[DUE, v]:
                break
            if F[2, r, j] + qp > cap:
                break
            arr_d = t + nd[SERVICE, v] + dist[v, dl]
            if arr_d > nd[DUE, dl]:
                break
            w = R[r, j + 1]
            c = cp + dist[v, dl] + dist[dl, w] - dist[v, w]
            if c < best:
                td = arr_d if arr_d > nd[READY, dl] else nd[READY, dl]
                tw = td + nd[SERVICE, dl] + dist[dl, w]
                if tw < nd[READY, w]:
                    tw = nd[READY, w]
                if tw <= F[1, r, j + 1] - EPS and not (blink > 0.0 and rand_float(rng) < blink):
                    best = c
                    bi = i
                    bj = j
            prev = v
    return best, bi, bj


@device
def insert_after(r, p, u, R, RL):
    """Put task ``u`` after slot ``p`` of route ``r`` (summaries not updated)."""
    m = RL[r]
    for k in range(m + 1, p, -1):
        R[r, k + 1] = R[r, k]
    R[r, p + 1] = u
    RL[r] = m + 1


@device
def single_route_ok(u, dl, dist, nd, cap):
    """Whether a route depot -> ``u`` (-> ``dl`` when ``dl >= 0``) -> depot is feasible on its own."""
    t = nd[READY, 0] + dist[0, u]
    if t < nd[READY, u]:
        t = nd[READY, u]
    if t > nd[DUE, u] or nd[DEMAND, u] > cap:
        return False
    last = u
    if dl >= 0:
        t = t + nd[SERVICE, u] + dist[u, dl]
        if t < nd[READY, dl]:
            t = nd[READY, dl]
        if t > nd[DUE, dl]:
            return False
        last = dl
    t = t + nd[SERVICE, last] + dist[last, 0]
    return t <= nd[DUE, 0] - EPS


@device
def open_route(u, dl, R, RL, F, RD, NI, meta, dist, nd):
    """Open a new route (slot ``meta[0]``) serving ``u`` (and then ``dl`` when ``dl >= 0``)."""
    r = meta[0]
    R[r, 0] = 0
    R[r, 1] = u
    if dl >= 0:
        R[r, 2] = dl
        R[r, 3] = 0
        RL[r] = 2
    else:
        R[r, 2] = 0
        RL[r] = 1
    meta[0] = r + 1
    update_route(r, R, RL, F, RD, NI, dist, nd)


@device
def move_route(src, dst, R, RL, F, RD, NI):
    """Copy route slot ``src`` into slot ``dst`` and repoint its tasks."""
    m = RL[src]
    for p in range(m + 2):
        R[dst, p] = R[src, p]
        for k in range(4):
            F[k, dst, p] = F[k, src, p]
        v = R[src, p]
        if v != 0:
            NI[0, v] = dst
    RL[dst] = m
    RD[dst] = RD[src]


@device
def copy_state(R, RL, F, RD, NI, meta, R2, RL2, F2, RD2, NI2, meta2):
    """Copy the used part of one state into another (same shapes)."""
    nr = meta[0]
    for r in range(nr):
        m = RL[r]
        for p in range(m + 2):
            R2[r, p] = R[r, p]
            for k in range(4):
                F2[k, r, p] = F[k, r, p]
        RL2[r] = m
        RD2[r] = RD[r]
    n1 = NI.shape[1]
    for k in range(3):
        for v in range(n1):
            NI2[k, v] = NI[k, v]
    meta2[0] = meta[0]
    meta2[1] = meta[1]


@device
def total_distance(RD, meta):
    s = 0.0
    for r in range(meta[0]):
        s += RD[r]
    return s


@kernel
def check_state(R, RL, meta, dist, nd, partner, kind, cap):
    """Direct forward simulation of every used route; returns the number of violated rules (0 = feasible).

    ``partner``/``kind`` int64[n + 1]: kind 0 a VRPTW task, 1 a pickup, 2 a delivery; ``partner`` the other end."""
    bad = 0
    for r in range(meta[0]):
        m = RL[r]
        t = nd[READY, 0]
        q = 0.0
        prev = 0
        for p in range(1, m + 2):
            v = R[r, p]
            t = t + nd[SERVICE, prev] + dist[prev, v]
            if t < nd[READY, v]:
                t = nd[READY, v]
            if t > nd[DUE, v]:
                bad += 1
            q += nd[DEMAND, v]
            if q > cap + 1e-9:
                bad += 1
            if v != 0 and kind[v] == 2:
                ok = False
                for k in range(1, p):
                    if R[r, k] == partner[v]:
                        ok = True
                if not ok:
                    bad += 1
            prev = v
    return bad
