"""Candidate pairs from the riders nearest each site: estimate costs, keep the cheapest both ways, add windows.

See ``dispatch.candidates`` for the rule. Everything here takes and returns arrays.
"""

from __future__ import annotations

import math

import numpy as np

from dispatch.kernels._jit import device, kernel
from dispatch.kernels.grid import _offer
from dispatch.kernels.route import W_DIST, W_LATE, W_TIME
from dispatch.kernels.select import buckets, kth_smallest
from dispatch.kernels.travel import P_DETOUR, P_USE_MATRIX, first_bin, leg_metres, leg_seconds, profile_seconds


@device
def bag_estimate(orders, travel, weights, o, at, q0, q1, drop_x, drop_y, drop_loc, speed):
    """Cost of order o joining a pickup that a rider makes anyway at the order's site at time ``at``: the wait for
    the order, plus a detour from the nearest of the rider's later drop-off points ``q0:q1`` to the order's drop-off
    and back. It leaves out the lateness the delay may cause the rider's other orders: with a lateness term (beyond
    the stop's slack) the candidates were worse (benchmarks/RESULTS.md), as the exact insertion prices it anyway."""
    dx, dy, dloc = orders[3][o], orders[4][o], orders[5][o]
    bx, by, bloc = orders[0][o], orders[1][o], orders[2][o]
    params = travel[0]
    if params[P_USE_MATRIX] != 0.0:
        best = np.inf
        for q in range(q0, q1):
            d = leg_metres(travel, drop_x[q], drop_y[q], drop_loc[q], dx, dy, dloc)
            if d < best:
                best = d
                bx, by, bloc = drop_x[q], drop_y[q], drop_loc[q]
        if q1 == q0:
            best = leg_metres(travel, bx, by, bloc, dx, dy, dloc)
        seconds = leg_seconds(travel, bx, by, bloc, dx, dy, dloc, at, speed)
    else:
        # Straight lines: the nearest by squared distance, then one square root (as ``leg_metres`` takes it).
        best_sq = np.inf
        for q in range(q0, q1):
            d2 = (dx - drop_x[q]) * (dx - drop_x[q]) + (dy - drop_y[q]) * (dy - drop_y[q])
            if d2 < best_sq:
                best_sq = d2
                bx, by = drop_x[q], drop_y[q]
        best = leg_metres(travel, bx, by, -1, dx, dy, -1)
        seconds = profile_seconds(params, travel[1], best, at, speed)
    delay = max(0.0, orders[7][o] - at) + 2.0 * seconds
    return weights[W_TIME] * (delay + orders[11][o]) + weights[W_DIST] * 2.0 * best


@device
def _keep_best(vals, ids, n, k, out_val, out_id):
    """The (at most) k smallest finite values of ``vals[:n]`` with their ``ids``, into ``out_*``; returns how many."""
    c = 0
    for a in range(n):
        v = vals[a]
        if not (v < np.inf):
            continue
        if c < k:
            b = c
            c += 1
        elif v < out_val[c - 1]:
            b = c - 1
        else:
            continue
        while b > 0 and out_val[b - 1] > v:
            out_val[b] = out_val[b - 1]
            out_id[b] = out_id[b - 1]
            b -= 1
        out_val[b] = v
        out_id[b] = ids[a]
    return c


@kernel
def pickup_groups(site_of, ready, pick_x, pick_y, ids):
    """The orders ``ids`` (int64[n], n >= 1) grouped by pickup site, as ``np.lexsort((ids, ready, site))`` orders
    them: ``members`` (int64[n]: by site, then ready time, then id; ``members = ids[by]``, ``by`` int64[n]),
    ``group_ptr`` (int64[G + 1] into members), each group's site (int64[G]) and centre (float64[G] x, y: its first
    member's pickup point), and the largest group's size. ``site_of``, ``ready``, ``pick_x``, ``pick_y``: the
    order table's columns."""
    by = np.argsort(ids, kind="mergesort")
    key = np.empty(ids.shape[0])
    for a in range(ids.shape[0]):
        key[a] = ready[ids[by[a]]]
    by = by[np.argsort(key, kind="mergesort")]
    skey = np.empty(ids.shape[0], dtype=np.int64)
    for a in range(ids.shape[0]):
        skey[a] = site_of[ids[by[a]]]
    by = by[np.argsort(skey, kind="mergesort")]
    members = ids[by]
    n_groups = 0
    for a in range(members.shape[0]):
        if a == 0 or site_of[members[a]] != site_of[members[a - 1]]:
            n_groups += 1
    group_ptr = np.empty(n_groups + 1, dtype=np.int64)
    group_site = np.empty(n_groups, dtype=np.int64)
    cx = np.empty(n_groups)
    cy = np.empty(n_groups)
    g = 0
    for a in range(members.shape[0]):
        o = members[a]
        if a == 0 or site_of[o] != site_of[members[a - 1]]:
            group_ptr[g] = a
            group_site[g] = site_of[o]
            cx[g] = pick_x[o]
            cy[g] = pick_y[o]
            g += 1
    group_ptr[n_groups] = members.shape[0]
    largest = 0
    for g in range(n_groups):
        largest = max(largest, group_ptr[g + 1] - group_ptr[g])
    return members, by, group_ptr, group_site, cx, cy, largest


@kernel
def largest_group(group_ptr):
    """The size of the largest group of a CSR pointer (int64[G + 1]), 0 for none."""
    big = 0
    for g in range(group_ptr.shape[0] - 1):
        big = max(big, group_ptr[g + 1] - group_ptr[g])
    return big


@kernel
def visits_by_site(site, rider, at, q0, q1):
    """The visits' ``site``, ``rider``, ``at``, ``q0``, ``q1`` (int64/float64[V]) reordered by site, stably."""
    by = np.argsort(site, kind="mergesort")
    return site[by], rider[by], at[by], q0[by], q1[by]


@kernel
def nearest_groups(px, py, cx, cy, S, reach):
    """For each point (float64[n] ``px``, ``py``), the ``S`` nearest of G centres (float64[G] ``cx``, ``cy``)
    closer than ``reach``, nearest first (ties: the lower index first), by brute force: int64[n, S], index G
    where there are fewer. For the few pickup sites of a tick, cheaper than a k-d tree's per-query overhead."""
    n = px.shape[0]
    G = cx.shape[0]
    out = np.full((n, S), G, dtype=np.int64)
    ids = np.arange(G)
    dist = np.empty(G)
    best = np.empty(S)
    for i in range(n):
        for g in range(G):
            d = math.sqrt((cx[g] - px[i]) ** 2 + (cy[g] - py[i]) ** 2)
            dist[g] = d if d < reach else np.inf
        _keep_best(dist, ids, G, S, best, out[i])
    return out


@kernel
def member_legs(orders, travel, members, now):
    """Per order (int64[n] ids): metres and seconds of its pickup-to-drop-off leg leaving when it is ready, and
    the time it is ready to leave (float64[n] each)."""
    n = members.shape[0]
    m2 = np.empty(n)
    t2 = np.empty(n)
    for i in range(n):
        o = members[i]
        px, py, pl = orders[0][o], orders[1][o], orders[2][o]
        dx, dy, dl = orders[3][o], orders[4][o], orders[5][o]
        m2[i] = leg_metres(travel, px, py, pl, dx, dy, dl)
        t2[i] = leg_seconds(travel, px, py, pl, dx, dy, dl, max(now, orders[7][o]), 1.0)
    return m2, t2


@device
def _estimate(orders, weights, o, m1, arrive, fat, m2, t2, speed):
    """Cost of order o appended after a rider's last stop: the rider reaches the pickup at ``arrive`` having ridden
    ``m1`` metres since it was free (at ``fat``); ``m2``, ``t2``: the order's own leg (t2 at speed factor 1)."""
    depart = max(arrive, orders[7][o]) + orders[10][o]
    at_drop = depart + t2 / speed
    late = max(0.0, at_drop - orders[8][o])
    return weights[W_TIME] * (at_drop + orders[11][o] - fat) + weights[W_DIST] * (m1 + m2) + weights[W_LATE] * late


@kernel
def pool_scratch(cap, width):
    """Scratch arrays for ``pool_profile`` and ``_row_profile``: a pool of up to ``cap`` riders whose visits have
    up to ``width`` (>= 1) later drop-off points each."""
    f = (np.empty(cap), np.empty(cap), np.empty(cap), np.empty(cap), np.empty(cap), np.empty(cap))
    return f, np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.bool_), np.empty(width * cap), np.empty(width * cap)


@device
def pool_profile(travel, visits, n_pool, p_r, p_v, speed, shared):
    """Lay out a group's visitors (the pool riders b with a visit at the site, ``p_v[b] >= 0``) for
    ``_row_profile`` (profile mode), into ``shared`` (from ``pool_scratch``), visitor j at pool position
    ``vb[j]``: its speed factor, the visit's time and speed bin (``first_bin``: found once per group, not once per
    order; the leg from the bag is short and nearly always ends in that bin), and its later drop-off points column
    by column (``dxw[w * cap + j]``; +inf past the last, so +inf in column 0 when there is none). Returns
    ``(visitors, columns)``."""
    _site, _rider, vis_at, vis_q0, vis_q1, drop_x, drop_y, _loc = visits
    (v_spd, v_at, v_bv, v_reach, _bs, _bag), vb, _slow, dxw, dyw = shared
    cap = vb.shape[0]
    nv = 0
    width = 1
    for b in range(n_pool):
        qv = p_v[b]
        if qv >= 0:
            vb[nv] = b
            nv += 1
            width = max(width, vis_q1[qv] - vis_q0[qv])
    for j in range(nv):
        b = vb[j]
        r = p_r[b]
        qv = p_v[b]
        v_spd[j] = speed[r]
        v_at[j] = vis_at[qv]
        v_bv[j], v_reach[j] = first_bin(travel[0], travel[1], vis_at[qv], speed[r])
        for w in range(width):
            q = vis_q0[qv] + w
            dxw[w * cap + j] = drop_x[q] if q < vis_q1[qv] else np.inf
            dyw[w * cap + j] = drop_y[q] if q < vis_q1[qv] else np.inf
    return nv, width


@device
def _row_profile(orders, travel, weights, o, m2, t2, n_pool, p_m1, p_arr, p_fat, p_spd, shared, nv, width, row):
    """``row[b]``: order o's estimate with each pool rider b, in profile mode (straight legs), as ``_estimate`` and
    ``bag_estimate`` give it, to the last bit (``p_spd``: each pool rider's speed factor; the visitors as
    ``pool_profile`` laid them out). Branch-free passes, so that they run as vector code: the append estimate over
    the pool, then over the visitors the nearest later drop-off, column by column, and the bag estimate; then the
    few visitors whose leg from the bag leaves the speed bin, or that have no later drop-off, again one by one as
    ``bag_estimate`` computes them."""
    (v_spd, v_at, v_bv, v_reach, bs, bag), vb, slow, dxw, dyw = shared
    cap = vb.shape[0]
    params, speed_mps = travel[0], travel[1]
    detour = params[P_DETOUR]
    px, py = orders[0][o], orders[1][o]
    dx, dy = orders[3][o], orders[4][o]
    ready, svc_pick, promised, svc_drop = orders[7][o], orders[10][o], orders[8][o], orders[11][o]
    w_time, w_dist, w_late = weights[W_TIME], weights[W_DIST], weights[W_LATE]
    for b in range(n_pool):  # ``_estimate``: the order appended after the rider's last stop
        depart = max(p_arr[b], ready) + svc_pick
        at_drop = depart + t2 / p_spd[b]
        late = max(0.0, at_drop - promised)
        e = w_time * (at_drop + svc_drop - p_fat[b]) + w_dist * (p_m1[b] + m2) + w_late * late
        row[b] = e if p_arr[b] < np.inf else np.inf
    if nv == 0:
        return
    for j in range(nv):
        bs[j] = np.inf
    for w in range(width):
        xs = dxw[w * cap : w * cap + nv]
        ys = dyw[w * cap : w * cap + nv]
        for j in range(nv):
            d2 = (dx - xs[j]) * (dx - xs[j]) + (dy - ys[j]) * (dy - ys[j])
            bs[j] = d2 if d2 < bs[j] else bs[j]
    for j in range(nv):  # the bag estimate, when the leg from the bag ends in the visit's speed bin
        best = math.sqrt(bs[j]) * detour
        seconds = best / v_bv[j]
        seconds = 0.0 if best <= 0.0 else seconds
        bag[j] = w_time * (max(0.0, ready - v_at[j]) + 2.0 * seconds + svc_drop) + w_dist * 2.0 * best
        slow[j] = (dxw[j] == np.inf) | ~((best <= 0.0) | (v_reach[j] >= best))
    for j in range(nv):
        e = bag[j]
        if slow[j]:  # no later drop-off (then the leg is the order's own), or a leg leaving the speed bin
            best = math.sqrt(bs[j]) * detour
            if dxw[j] == np.inf:
                best = math.sqrt((dx - px) * (dx - px) + (dy - py) * (dy - py)) * detour
            if best <= 0.0:
                seconds = 0.0
            elif v_reach[j] >= best:
                seconds = best / v_bv[j]
            else:
                seconds = profile_seconds(params, speed_mps, best, v_at[j], v_spd[j])
            e = w_time * (max(0.0, ready - v_at[j]) + 2.0 * seconds + svc_drop) + w_dist * 2.0 * best
        b = vb[j]
        if e < row[b]:
            row[b] = e


@device
def _cut_per_member(p_q, p_t, p_e, n, size, quota, scratch, base, ok_idx, out_m, out_r, w):
    """Append to ``out_m``/``out_r`` (from ``w``; returns the new end) each member's ``quota`` cheapest of a group's
    n proposals (member offset ``p_q`` < ``size``, rider position ``p_t``, estimate ``p_e``; ties: the earlier
    proposal), as ``select.cheapest_per_group`` cuts them, with ``scratch`` (ptr int64[size + 1], int64[n],
    float64[n]) instead of fresh arrays."""
    ptr, order, vals = scratch
    for q in range(size + 1):
        ptr[q] = 0
    for i in range(n):
        ptr[p_q[i] + 1] += 1
    for q in range(size):
        ptr[q + 1] += ptr[q]
    for i in range(n):  # a stable counting sort by member: each member's proposals in their order
        q = p_q[i]
        order[ptr[q]] = i
        ptr[q] += 1
    a = 0
    for q in range(size):
        b = ptr[q]  # the member's proposals: order[a:b] (ptr now holds each bucket's end)
        if b - a <= quota:
            for j in range(a, b):
                out_m[w] = base + q
                out_r[w] = ok_idx[p_t[order[j]]]
                w += 1
        elif quota > 0:
            for j in range(a, b):
                vals[j - a] = p_e[order[j]]
            kth = kth_smallest(vals, b - a, quota - 1)
            taken = 0
            for j in range(a, b):
                if p_e[order[j]] < kth:
                    out_m[w] = base + q
                    out_r[w] = ok_idx[p_t[order[j]]]
                    w += 1
                    taken += 1
            for j in range(a, b):
                if taken >= quota:
                    break
                if p_e[order[j]] == kth:
                    out_m[w] = base + q
                    out_r[w] = ok_idx[p_t[order[j]]]
                    w += 1
                    taken += 1
        a = b
    return w


@kernel
def expand_groups(
    orders,
    travel,
    weights,
    nbr,
    nbr_dist,
    ok_idx,
    rider_sites,
    free_x,
    free_y,
    free_loc,
    free_at,
    speed,
    shift_end,
    now,
    ref_speed,
    group_ptr,
    members,
    group_site,
    visits,
    accepting,
    k,
    k_rider,
    window,
    n_riders,
    per_order,
):
    """Candidate pairs for pickup groups (one group per site; see ``dispatch.candidates`` for the rule).

    ``nbr``, ``nbr_dist``: int64/float64[G, K], each group's nearest riders, nearest first (index ``len(ok_idx)`` =
    none; ``kernels.grid.nearest_points``), of which a group of s orders reads the first ``max(3 k, k + window +
    s)``; ``ok_idx``: int64[n_ok], the rider behind each point; ``rider_sites``:
    int64[n_ok, S], the groups nearest each of those riders (index G = none); ``free_*``: float64[m] (``free_loc``
    int64[m]) where and when each route ends; ``speed``, ``shift_end``: float64[m]; ``group_ptr``: int64[G + 1] into
    ``members`` (order ids, by ready time within a group); ``group_site``: int64[G]; ``visits`` = (site, rider, at, q0,
    q1, drop_x, drop_y, drop_loc): V pickups riders make anyway, sorted by site, with the drop-off points
    ``q0[v]:q1[v]`` that follow each; ``accepting``: bool[m]; ``per_order``: most rider-side pairs kept per order (its
    cheapest). Returns ``pair_o``, ``pair_r`` (int64[P], sorted by order then rider, no duplicates) and ``reached``
    (bool[len(members)]: the member had a rider in reach)."""
    vis_site, vis_rider, vis_at, vis_q0, vis_q1, drop_x, drop_y, drop_loc = visits
    G = nbr.shape[0]
    K = nbr.shape[1]
    n_ok = ok_idx.shape[0]
    S = rider_sites.shape[1]
    k_est = min(K, 3 * k)
    n_members = members.shape[0]
    m2, t2 = member_legs(orders, travel, members, now)
    reached = np.zeros(n_members, dtype=np.bool_)
    out_m = np.empty(n_members * (k + window + max(per_order, 0)), dtype=np.int64)  # member index of each pair
    out_r = np.empty_like(out_m)  # and its rider
    w = 0
    seen = np.full(n_riders, -1, dtype=np.int64)
    n_vis_max = vis_site.shape[0]
    gs_ptr, gs_idx = buckets(rider_sites.ravel(), G + 1)  # each group's rider-side entries t * S + s
    extra = 0
    if k_rider > 0:
        for g in range(G):
            extra = max(extra, gs_ptr[g + 1] - gs_ptr[g])
    cap = K + n_vis_max + extra
    rid = np.empty(cap, dtype=np.int64)
    score = np.empty(cap)
    vix = np.empty(cap, dtype=np.int64)
    p_m1 = np.empty(cap)
    p_arr = np.empty(cap)
    p_fat = np.empty(cap)
    p_r = np.empty(cap, dtype=np.int64)
    p_v = np.empty(cap, dtype=np.int64)
    row = np.empty(cap)
    p_spd = np.empty(cap)
    matrix = travel[0][P_USE_MATRIX] != 0.0
    width_max = 1
    for v in range(n_vis_max):
        width_max = max(width_max, vis_q1[v] - vis_q0[v])
    shared = pool_scratch(cap, width_max)
    best_v = np.empty(max(k, k_rider))
    best_i = np.empty(max(k, k_rider), dtype=np.int64)
    # The rider side takes the order side's numbers as they are computed: each rider keeps its running k_rider
    # best (estimate, position in its own scan of its S nearest groups), which is the same whatever order they
    # are offered in (``grid._offer`` ranks ties by position). ``npos[t * S + s]``: where rider t's s-th nearest
    # group's orders start in its scan.
    npos = np.zeros(n_ok * S, dtype=np.int64)
    for t in range(n_ok):
        n_ = 0
        for s_ in range(S):
            g = rider_sites[t, s_]
            if g >= G:
                break
            npos[t * S + s_] = n_
            n_ += group_ptr[g + 1] - group_ptr[g]
    kr_ = max(k_rider, 1)
    run_v = np.empty((n_ok, kr_))
    run_p = np.empty((n_ok, kr_), dtype=np.int64)
    run_n = np.zeros(n_ok, dtype=np.int64)
    b_ent = np.empty(cap, dtype=np.int64)  # per pool column: the rider-side entry t * S + s (when b_thr > -inf)
    b_t = np.empty(cap, dtype=np.int64)  # and its rider t (no division in the order loop)
    b_thr = np.empty(cap)  # per pool column: its rider's k-th best so far (+inf until it has k), -inf for none
    slot = np.full(n_riders, -1, dtype=np.int64)
    for g in range(G):
        size = group_ptr[g + 1] - group_ptr[g]
        base = group_ptr[g]
        o0 = members[base]
        px, py, pl = orders[0][o0], orders[1][o0], orders[2][o0]
        v0 = np.searchsorted(vis_site, group_site[g], side="left")
        v1 = np.searchsorted(vis_site, group_site[g], side="right")
        # Riders in reach, ranked for the windows by when they can be at the site (visitors: when they will be):
        # of the nearest, as many as the group's own size asks for, so that a site's candidates do not depend on
        # the other groups of the tick (``nbr`` is as wide as the largest group asks).
        c = 0
        for q in range(min(K, max(3 * k, k + window + size))):
            t = nbr[g, q]
            if t < n_ok:
                rid[c] = ok_idx[t]
                score[c] = max(0.0, free_at[rid[c]] - now) + nbr_dist[g, q] / ref_speed
                vix[c] = -1
                seen[rid[c]] = c
                c += 1
        for q in range(v0, v1):
            rr = vis_rider[q]
            if not accepting[rr]:
                continue
            sc = max(0.0, vis_at[q] - now)
            a = seen[rr]
            if a >= 0:
                score[a] = min(score[a], sc)
                if vix[a] < 0:
                    vix[a] = q
            else:
                rid[c] = rr
                score[c] = sc
                vix[c] = q
                seen[rr] = c
                c += 1
        for a in range(c):
            seen[rid[a]] = -1
        if c == 0:
            continue
        for q in range(size):
            reached[base + q] = True
        # The estimate pool: the nearest riders and every visitor, one leg each to the site.
        n_pool = 0
        for a in range(c):
            if a < k_est or vix[a] >= 0:
                r = rid[a]
                fat = max(free_at[r], now)
                p_r[n_pool] = r
                p_v[n_pool] = vix[a]
                p_fat[n_pool] = fat
                p_m1[n_pool] = leg_metres(travel, free_x[r], free_y[r], free_loc[r], px, py, pl)
                arrive = fat + leg_seconds(travel, free_x[r], free_y[r], free_loc[r], px, py, pl, fat, speed[r])
                p_arr[n_pool] = arrive if arrive <= shift_end[r] else np.inf
                n_pool += 1
        # The rider side's riders of the group (its orders among their S nearest sites' orders) that the pool
        # lacks join it past ``n_pool``, so that the passes below give their estimates too (no visit of theirs is
        # at the site: every accepting visitor is in the pool); the order side reads the first n_pool only.
        n_all = n_pool
        if k_rider > 0:
            for b in range(n_pool):
                slot[p_r[b]] = b
                b_thr[b] = -np.inf
            for a in range(gs_ptr[g], gs_ptr[g + 1]):
                e_ = gs_idx[a]
                t = e_ // S
                r = ok_idx[t]
                b = slot[r]
                if b < 0:
                    b = n_all
                    n_all += 1
                    fat = max(free_at[r], now)
                    p_r[b] = r
                    p_v[b] = -1
                    p_fat[b] = fat
                    p_m1[b] = leg_metres(travel, free_x[r], free_y[r], free_loc[r], px, py, pl)
                    arrive = fat + leg_seconds(travel, free_x[r], free_y[r], free_loc[r], px, py, pl, fat, speed[r])
                    p_arr[b] = arrive if arrive <= shift_end[r] else np.inf
                b_ent[b] = e_
                b_t[b] = t
                b_thr[b] = run_v[t, k_rider - 1] if run_n[t] == k_rider else np.inf
            for b in range(n_pool):
                slot[p_r[b]] = -1
        ranked = rid[:c][np.argsort(score[:c], kind="mergesort")][: k + size]
        nr = ranked.shape[0]
        nv, width = 0, 1
        if not matrix:
            nv, width = pool_profile(travel, visits, n_pool, p_r, p_v, speed, shared)
            for b in range(n_all):
                p_spd[b] = speed[p_r[b]]
        # Order side: each member's k cheapest estimates, plus a window along the ranking (a rider of its own).
        for q in range(size):
            o = members[base + q]
            if matrix:
                for b in range(n_all):
                    e = np.inf
                    if p_arr[b] < np.inf:
                        e = _estimate(orders, weights, o, p_m1[b], p_arr[b], p_fat[b], m2[base + q], t2[base + q],
                                      speed[p_r[b]])  # fmt: skip
                    qv = p_v[b]
                    if qv >= 0:
                        e = min(e, bag_estimate(orders, travel, weights, o, vis_at[qv], vis_q0[qv], vis_q1[qv],
                                                drop_x, drop_y, drop_loc, speed[p_r[b]]))  # fmt: skip
                    row[b] = e
            else:
                _row_profile(orders, travel, weights, o, m2[base + q], t2[base + q], n_all, p_m1, p_arr, p_fat, p_spd,
                             shared, nv, width, row)  # fmt: skip
            if k_rider > 0:
                for b in range(n_all):
                    e = row[b]
                    if e < np.inf and e <= b_thr[b]:  # may enter its rider's k best (a tie goes by position)
                        e_ = b_ent[b]
                        t = b_t[b]
                        run_n[t] = _offer(e, npos[e_] + q, k_rider, run_n[t], run_v[t], run_p[t])
                        if run_n[t] == k_rider:
                            b_thr[b] = run_v[t, k_rider - 1]
            nb = _keep_best(row, p_r, n_pool, k, best_v, best_i)
            for b in range(nb):
                out_m[w] = base + q
                out_r[w] = best_i[b]
                w += 1
            for a in range(min(window, nr)):
                out_m[w] = base + q
                out_r[w] = ranked[(q + a) % nr]
                w += 1
    # Rider side: each rider's k_rider cheapest estimates over the orders of its S nearest sites, offered above as
    # the pools' rows were priced (every rider with a group in reach is in that group's pool). Each order keeps
    # its per_order cheapest proposals (ties: the lower rider position t): riders far outnumbering orders (a quiet
    # site) would otherwise make the pairs dense (every rider proposes to every order). A group's proposals come
    # from its own rider-side entries (``gs_idx``, t ascending), so they are gathered and cut group by group.
    if k_rider > 0:
        cap_p = max(extra * k_rider, 1)
        p_q = np.empty(cap_p, dtype=np.int64)  # a group's proposals: member offset, rider, estimate
        p_t = np.empty(cap_p, dtype=np.int64)
        p_e = np.empty(cap_p)
        big = largest_group(group_ptr)
        cut = (np.empty(big + 1, dtype=np.int64), np.empty(cap_p, dtype=np.int64), np.empty(cap_p))
        for g in range(G):
            base = group_ptr[g]
            size = group_ptr[g + 1] - base
            n = 0
            for a in range(gs_ptr[g], gs_ptr[g + 1]):
                e_ = gs_idx[a]
                t = e_ // S
                p0 = npos[e_]  # the group's first order's position in rider t's scan
                for b in range(run_n[t]):
                    p = run_p[t, b]
                    if p0 <= p < p0 + size:
                        p_q[n] = p - p0
                        p_t[n] = t
                        p_e[n] = run_v[t, b]
                        n += 1
            w = _cut_per_member(p_q, p_t, p_e, n, size, per_order, cut, base, ok_idx, out_m, out_r, w)
    pair_o, pair_r = _sorted_unique(out_m[:w], out_r[:w], members, n_riders)
    return pair_o, pair_r, reached


@kernel
def _sorted_unique(mem, rid, members, n_riders):
    """Pairs (order ``members[mem[p]]``, rider ``rid[p]`` < ``n_riders``; int64[P] each) sorted by order then rider,
    without duplicates: two stable counting sorts, by rider and then by order (linear)."""
    n_members = members.shape[0]
    by_id = np.argsort(members)
    rank = np.empty(n_members, dtype=np.int64)  # each member's place in order-id order
    for i in range(n_members):
        rank[by_id[i]] = i
    _ptr_r, by_r = buckets(rid, n_riders)
    slot = np.empty(mem.shape[0], dtype=np.int64)
    for a in range(mem.shape[0]):
        slot[a] = rank[mem[by_r[a]]]
    _ptr_o, by_o = buckets(slot, n_members)
    pair_o = np.empty(mem.shape[0], dtype=np.int64)
    pair_r = np.empty(mem.shape[0], dtype=np.int64)
    w = 0
    for a in range(mem.shape[0]):
        p = by_r[by_o[a]]
        o = members[mem[p]]
        r = rid[p]
        if w > 0 and pair_o[w - 1] == o and pair_r[w - 1] == r:
            continue
        pair_o[w] = o
        pair_r[w] = r
        w += 1
    return pair_o[:w], pair_r[:w]
