"""The simulator's active set: a shard's routes cut down to the riders and orders a tick works on, and the tick's
routes written back. Arrays in, arrays out (``dispatch.sim.loop`` calls these every tick, on every active rider).
"""

from __future__ import annotations

import math

import numpy as np

from dispatch.kernels._jit import kernel
from dispatch.kernels.route import PICKUP
from dispatch.kernels.select import cheapest_per_group


@kernel
def compact_routes(routes, act_r, pending, scratch):
    """The routes of riders ``act_r`` (int64[q]) over their own order indices.

    ``pending``: int64[p] order indices waiting for a rider; ``scratch``: int64[n], all -1 (left all -1 again).
    Returns ``act_o`` (int64[k], sorted: every order in those routes or pending), the sub-routes' ``length``,
    ``frozen`` (int64[q]), ``order`` (int64[q, S], indices into ``act_o``, -1 past the end), ``kind``
    (int64[q, S]), and ``pending`` as indices into ``act_o`` (int64[p])."""
    length, frozen, order, kind = routes
    q = act_r.shape[0]
    S = order.shape[1]
    n_max = pending.shape[0]
    for a in range(q):
        n_max += length[act_r[a]]
    found = np.empty(n_max, dtype=np.int64)
    k = 0
    lo = scratch.shape[0]
    hi = -1
    for a in range(q):
        r = act_r[a]
        for s in range(length[r]):
            o = order[r, s]
            if scratch[o] == -1:
                scratch[o] = -2
                found[k] = o
                k += 1
                lo = min(lo, o)
                hi = max(hi, o)
    for i in range(pending.shape[0]):
        o = pending[i]
        if scratch[o] == -1:
            scratch[o] = -2
            found[k] = o
            k += 1
            lo = min(lo, o)
            hi = max(hi, o)
    # Sorted: the orders of a tick are mostly recent, so their indices span a narrow range, and reading the marks
    # across it beats sorting them (on a Suzhou peak tick, 29,713 orders over a span of 53,572: the sort alone took
    # 2.0 of compaction's 2.7 ms).
    if hi - lo < 8 * k + 4096:
        act_o = np.empty(k, dtype=np.int64)
        i = 0
        for o in range(lo, hi + 1):
            if scratch[o] == -2:
                act_o[i] = o
                scratch[o] = i
                i += 1
    else:
        act_o = np.sort(found[:k])
        for i in range(k):
            scratch[act_o[i]] = i
    sub_length = np.empty(q, dtype=np.int64)
    sub_frozen = np.empty(q, dtype=np.int64)
    sub_order = np.full((q, S), -1, dtype=np.int64)
    sub_kind = np.zeros((q, S), dtype=np.int64)
    for a in range(q):
        r = act_r[a]
        sub_length[a] = length[r]
        sub_frozen[a] = frozen[r]
        for s in range(length[r]):
            sub_order[a, s] = scratch[order[r, s]]
            sub_kind[a, s] = kind[r, s]
    local_pending = np.empty(pending.shape[0], dtype=np.int64)
    for i in range(pending.shape[0]):
        local_pending[i] = scratch[pending[i]]
    for i in range(k):
        scratch[act_o[i]] = -1
    return act_o, sub_length, sub_frozen, sub_order, sub_kind, local_pending


@kernel
def scatter_routes(routes, act_r, act_o, sub):
    """Write sub-routes ``sub`` (length, frozen, order over ``act_o``, kind; one row per rider of ``act_r``) back
    into the shard's ``routes`` (in place; their width must hold every sub-route). Returns bool[q]: which riders'
    routes changed (stops, their order, or the frozen prefix)."""
    length, frozen, order, kind = routes
    s_length, s_frozen, s_order, s_kind = sub
    S = order.shape[1]
    changed = np.zeros(act_r.shape[0], dtype=np.bool_)
    for a in range(act_r.shape[0]):
        r = act_r[a]
        L = s_length[a]
        diff = length[r] != L or frozen[r] != s_frozen[a]
        length[r] = L
        frozen[r] = s_frozen[a]
        for s in range(S):
            if s < L:
                o = act_o[s_order[a, s]]
                if order[r, s] != o or kind[r, s] != s_kind[a, s]:
                    diff = True
                order[r, s] = o
                kind[r, s] = s_kind[a, s]
            else:
                order[r, s] = -1
                kind[r, s] = 0
        changed[a] = diff
    return changed


@kernel
def take_evaluation(ev, tot, idx, length):
    """Rows ``idx`` (int64[q]) of an evaluation (``kernels.route.evaluate_routes``' ``ev``, eight m x S arrays,
    and ``tot``, five m arrays), each per-stop row only up to its route length (``length`` int64[m]): the other
    entries of the result are left unset. For per-stop arrays whose entries past a route's end are never read,
    this reads and writes only the stops there are (an idle rider's row costs nothing), all eight arrays of a row
    in one pass. Returns ``(ev_rows, tot_rows)``."""
    q = idx.shape[0]
    S = ev[0].shape[1]
    arrive, depart = np.empty((q, S)), np.empty((q, S))
    load, onboard = np.empty((q, S), dtype=np.int64), np.empty((q, S), dtype=np.int64)
    late, cum_metres, cum_late, slack = np.empty((q, S)), np.empty((q, S)), np.empty((q, S)), np.empty((q, S))
    end, metres, lateness, cost = np.empty(q), np.empty(q), np.empty(q), np.empty(q)
    feasible = np.empty(q, dtype=np.bool_)
    for i in range(q):
        r = idx[i]
        for s in range(length[r]):
            arrive[i, s] = ev[0][r, s]
            depart[i, s] = ev[1][r, s]
            load[i, s] = ev[2][r, s]
            onboard[i, s] = ev[3][r, s]
            late[i, s] = ev[4][r, s]
            cum_metres[i, s] = ev[5][r, s]
            cum_late[i, s] = ev[6][r, s]
            slack[i, s] = ev[7][r, s]
        end[i] = tot[0][r]
        metres[i] = tot[1][r]
        lateness[i] = tot[2][r]
        cost[i] = tot[3][r]
        feasible[i] = tot[4][r]
    return (arrive, depart, load, onboard, late, cum_metres, cum_late, slack), (end, metres, lateness, cost, feasible)


@kernel
def offered_rows(online, busy, rider_site, x, y, speed, site_x, site_y, onward, quota, ref_speed_mps, weight_m,
                 all_busy, lo, hi, dist, at_x, at_y, routes, points, end_t, now, busy_quota, inert,
                 drop_inert):  # fmt: skip
    """The rows of ``dispatch.sim.offer.offered_riders`` (see there for the rule and the arguments), in one
    pass over rows ``lo:hi`` (the others offline and without stops): int64, ascending. ``dist``, ``at_x``,
    ``at_y`` (float64[m], updated in place): each rider's distance to its site and the point it was measured
    from (NaN: never), so that only riders who moved are measured again. ``routes``: (length, frozen, order,
    kind); ``points``: the orders' (pick_x, pick_y, drop_x, drop_y); ``end_t``: float64[m], when each route
    ends; ``busy_quota``: int64[S], per site the returning riders to offer (-1: all of them); ``inert``: bool[m],
    busy riders that accept no order, never ranked among the returning, and left out when ``drop_inert``."""
    lo, hi = max(lo, 0), min(hi, online.shape[0])
    idle = np.empty(max(hi - lo, 0), dtype=np.int64)
    kept = np.empty(max(hi - lo, 0), dtype=np.int64)  # the busy riders offered
    n = 0
    nb = 0
    for r in range(lo, hi):  # branch-free: the idle riders with a quota, and the busy riders offered
        want = quota[rider_site[r]] > 0
        idle[n] = r
        n += online[r] & ~busy[r] & want
        kept[nb] = r
        nb += busy[r] & (all_busy | want)
    if not all_busy:
        nb = _cut_returning(kept, nb, rider_site, speed, site_x, site_y, onward, ref_speed_mps, weight_m, routes,
                            points, end_t, now, busy_quota, inert, drop_inert)  # fmt: skip
    site = np.empty(n, dtype=np.int64)
    key = np.empty(n)
    for i in range(n):
        r = idle[i]
        s = rider_site[r]
        if at_x[r] != x[r] or at_y[r] != y[r]:
            dist[r] = math.hypot(x[r] - site_x[s], y[r] - site_y[s])
            at_x[r] = x[r]
            at_y[r] = y[r]
        d = dist[r]
        site[i] = s
        key[i] = (d + onward[s]) / (ref_speed_mps * speed[r]) + weight_m * d
    chosen = cheapest_per_group(site, key, quota, quota.shape[0])
    nc = chosen.shape[0]
    out = np.empty(nb + nc, dtype=np.int64)  # the two ascending lists merged
    a = 0
    b = 0
    for w in range(nb + nc):
        if b >= nc or (a < nb and kept[a] < idle[chosen[b]]):
            out[w] = kept[a]
            a += 1
        else:
            out[w] = idle[chosen[b]]
            b += 1
    return out


@kernel
def _cut_returning(kept, nb, rider_site, speed, site_x, site_y, onward, ref_speed_mps, weight_m, routes, points,
                   end_t, now, busy_quota, inert, drop_inert):  # fmt: skip
    """Keep, of the busy riders ``kept[:nb]`` (ascending), those visiting their site (a pickup there still to
    make, or the last frozen one: ``kernels.summary.visits``) and per site the ``busy_quota`` returning ones
    (-1: all) with the smallest ``max(0, end_t - now) + (d + onward) / (ref_speed_mps * speed) + weight_m * d``,
    ``d`` from the route's last stop to the site (ties to the lower row), counting only riders that accept an
    order (not ``inert``: the inert ones are kept apart from the ranking, and left out when ``drop_inert``);
    compacts ``kept`` in place, in order, and returns how many are left."""
    length, frozen, order, kind = routes
    pick_x, pick_y, drop_x, drop_y = points
    ret = np.empty(nb, dtype=np.int64)  # positions in kept of the returning riders with a limit
    n_ret = 0
    drop = np.zeros(nb, dtype=np.bool_)
    for a in range(nb):
        r = kept[a]
        if inert[r]:
            drop[a] = drop_inert
            continue
        if busy_quota[rider_site[r]] < 0:
            continue
        visiting = False
        for s in range(max(frozen[r] - 1, 0), length[r]):
            if kind[r, s] == PICKUP:
                visiting = True
                break
        if not visiting:
            ret[n_ret] = a
            n_ret += 1
    g = np.empty(n_ret, dtype=np.int64)
    key = np.empty(n_ret)
    for i in range(n_ret):
        r = kept[ret[i]]
        s = rider_site[r]
        last = length[r] - 1
        o = order[r, last]
        if kind[r, last] == PICKUP:
            ex, ey = pick_x[o], pick_y[o]
        else:
            ex, ey = drop_x[o], drop_y[o]
        d = math.hypot(ex - site_x[s], ey - site_y[s])
        g[i] = s
        key[i] = max(0.0, end_t[r] - now) + (d + onward[s]) / (ref_speed_mps * speed[r]) + weight_m * d
    chosen = cheapest_per_group(g, key, np.maximum(busy_quota, 0), busy_quota.shape[0])
    for i in range(n_ret):
        drop[ret[i]] = True
    for c in range(chosen.shape[0]):
        drop[ret[chosen[c]]] = False
    w = 0
    for a in range(nb):
        if not drop[a]:
            kept[w] = kept[a]
            w += 1
    return w
