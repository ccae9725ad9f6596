"""Intra-route local search: relocate, or-opt, 2-opt and (optionally) pair relocation, first improvement.

Every move keeps the frozen prefix in place and is accepted only when the cost of the new sequence (as
``sequence_cost`` gives it) is finite (precedence, capacity, shift end, trip mode and the order limit hold) and
strictly lower.

A move changes the sequence only from some position on, so each candidate is priced from the state just before
that position (``_prefix_states``: of the current sequence, or for pair relocation of the candidates' shared stops)
rather than from the route's start, and the pricing stops as soon as the cost so far, plus the drop-off service
still to come, can no longer beat the best (every term of the cost only grows along a route). Moves that would put
a drop-off before its pickup are skipped unpriced. All this gives the same numbers as ``sequence_cost`` of the
whole sequence, so the moves accepted are the same as pricing every candidate whole (tested against that); on the
generated 2,000 x 2,000 city's changed routes it is 1.5 times faster (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

from dispatch.kernels._jit import device, device_inline, kernel
from dispatch.kernels.route import DROPOFF, PICKUP, W_DIST, W_LATE, W_TIME, bag_mates, sequence_cost, stop_step
from dispatch.kernels.travel import bin_hint

EPS = 1e-9


@device_inline
def _segment_moved(so, sk, n, a, ln, b, do, dk):
    """Segment [a, a+ln) moved before index b of the remaining n-ln stops (b in 0..n-ln)."""
    w = 0
    r = 0  # index into the remaining sequence
    for s in range(n):
        if a <= s < a + ln:
            continue
        if r == b:
            for q in range(a, a + ln):
                do[w] = so[q]
                dk[w] = sk[q]
                w += 1
        do[w] = so[s]
        dk[w] = sk[s]
        w += 1
        r += 1
    if r == b:
        for q in range(a, a + ln):
            do[w] = so[q]
            dk[w] = sk[q]
            w += 1


@device
def _copy(src_o, src_k, dst_o, dst_k, n):
    """Stops ``[:n]`` of one sequence into another (a loop: a slice assignment would need the Numba runtime)."""
    for s in range(n):
        dst_o[s] = src_o[s]
        dst_k[s] = src_k[s]


@device
def _mates(seq_o, n, mate):
    """``mate[s]``: the index of the other stop of stop s's order in ``seq_o[:n]``, or -1 (an order on board)."""
    for s in range(n):
        mate[s] = -1
        for q in range(n):
            if q != s and seq_o[q] == seq_o[s]:
                mate[s] = q
                break


@device
def _bag_runs(orders, travel, seq_o, seq_k, n, nc):
    """``nc[s]`` (int64[n + 1]): how many of stops ``0..s-1`` are *not* a pickup straight after a bag mate's pickup
    (``route.bag_mates``). A move that only reorders stops ``lo..hi`` with ``nc[hi + 1] == nc[lo]`` permutes a bag's
    pickups after its first one: its cost is exactly the same, so it is never taken and need not be priced."""
    nc[0] = 0
    for s in range(n):
        cont = s >= 1 and seq_k[s] == PICKUP and seq_k[s - 1] == PICKUP and bag_mates(orders, travel, seq_o[s - 1],
                                                                                        seq_o[s])  # fmt: skip
        nc[s + 1] = nc[s] + (0 if cont else 1)


@device_inline
def _segment_breaks_precedence(sk, mate, a, ln, b):
    """Whether moving segment [a, a+ln) before index b of the remaining stops (see ``_segment_moved``) puts a
    drop-off before its pickup: a pickup carried past its drop-off, or a drop-off carried before its pickup."""
    for s in range(a, a + ln):
        m = mate[s]
        if m < 0:
            continue
        if b > a and sk[s] == PICKUP and a + ln <= m < b + ln:
            return True
        if b < a and sk[s] == DROPOFF and b <= m < a:
            return True
    return False


@device
def _prefix_states(orders, rider, travel, mode, seq_o, seq_k, n, n_frozen, st_f, st_i):
    """The state just before each stop s of a sequence that keeps every pickup before its drop-off, into row s of
    ``st_f`` float64[n + 1, 6] (x, y, t, metres, lateness, spare) and ``st_i`` int64[n + 1, 5] (loc, load, on
    board, previous order, previous kind), computed as ``sequence_cost`` computes them. Returns how many stops
    keep the hard rules before the first that breaks one (n when none does): rows up to that number are filled."""
    x, y, loc, t0, shift_end, capacity, speed = rider
    ld = 0
    cnt = 0
    for s in range(n):
        if seq_k[s] == DROPOFF:
            picked_before = False
            for q in range(s):
                if seq_o[q] == seq_o[s] and seq_k[q] == PICKUP:
                    picked_before = True
                    break
            if not picked_before:
                ld += orders[9][seq_o[s]]
                cnt += 1
    t = t0
    hint = bin_hint(travel[0], travel[1], t0, speed)
    dist = 0.0
    tot_late = 0.0
    prev_o, prev_k = -1, -1
    for s in range(n + 1):
        st_f[s, 0] = x
        st_f[s, 1] = y
        st_f[s, 2] = t
        st_f[s, 3] = dist
        st_f[s, 4] = tot_late
        st_i[s, 0] = loc
        st_i[s, 1] = ld
        st_i[s, 2] = cnt
        st_i[s, 3] = prev_o
        st_i[s, 4] = prev_k
        if s == n:
            break
        o, k = seq_o[s], seq_k[s]
        ok, x, y, loc, t, d, ld, cnt, lt = stop_step(
            orders, travel, mode, speed, capacity, shift_end, s >= n_frozen, x, y, loc, t, prev_o, prev_k, ld, cnt, o,
            k, hint,
        )  # fmt: skip
        if not ok:
            return s
        dist += d
        tot_late += lt
        prev_o, prev_k = o, k
    return n


@device_inline
def _tail_cost(orders, rider, travel, weights, mode, seq_o, seq_k, n, n_frozen, start, st_f, st_i, bound):
    """``sequence_cost`` of ``seq_o[:n], seq_k[:n]``, a permutation of the current sequence that equals it before
    ``start`` (``st_f``/``st_i`` from ``_prefix_states`` of the current sequence) and keeps every pickup before its
    drop-off (the caller makes only such moves), or +inf when a hard rule breaks or the cost cannot be below
    ``bound``."""
    _x, _y, _loc, t0, shift_end, capacity, speed = rider
    x, y, t = st_f[start, 0], st_f[start, 1], st_f[start, 2]
    dist, tot_late = st_f[start, 3], st_f[start, 4]
    loc, ld, cnt = st_i[start, 0], st_i[start, 1], st_i[start, 2]
    prev_o, prev_k = st_i[start, 3], st_i[start, 4]
    w_t, w_d, w_l = weights[W_TIME], weights[W_DIST], weights[W_LATE]
    hint = bin_hint(travel[0], travel[1], t0, speed)
    # Service time still to come at the drop-offs: a lower bound on the time the rest of the route adds.
    rest = 0.0
    for s in range(start, n):
        if seq_k[s] == DROPOFF:
            rest += orders[11][seq_o[s]]
    for s in range(start, n):
        o, k = seq_o[s], seq_k[s]
        ok, x, y, loc, t, d, ld, cnt, lt = stop_step(
            orders, travel, mode, speed, capacity, shift_end, s >= n_frozen, x, y, loc, t, prev_o, prev_k, ld, cnt, o,
            k, hint,
        )  # fmt: skip
        if not ok:
            return np.inf
        dist += d
        tot_late += lt
        if k == DROPOFF:
            rest -= orders[11][o]
        if w_t * (t - t0 + 0.999999 * max(rest, 0.0)) + w_d * dist + w_l * tot_late >= bound:
            return np.inf  # every term only grows from here, the time by ``rest`` at least
        prev_o, prev_k = o, k
    return w_t * (t - t0) + w_d * dist + w_l * tot_late


@kernel
def improve_route(orders, riders, routes, travel, weights, mode, max_orders, r, max_passes, pairs):
    """Improve rider r's route in place; ``pairs``: also try pair relocation (an order's pickup and drop-off taken
    out together and put back at their best places). Returns ``(cost_before, cost_after)`` (both as
    ``sequence_cost`` gives them)."""
    work = _work(routes[0][r])
    return _improve(orders, riders, routes, travel, weights, mode, max_orders, r, max_passes, pairs, work)


@kernel
def _work(n):
    """Scratch arrays for ``_improve`` on routes of up to n stops, allocated once for all the routes of a call
    (allocating them per route took 5-9% of the city benchmark's local search)."""
    ints = np.empty((8, n), dtype=np.int64)  # cur_o, cur_k, do, dk, ro, rk, eo, ek
    states = (np.empty((n + 1, 6)), np.empty((n + 1, 5), dtype=np.int64))
    pair_states = (np.empty((n + 1, 6)), np.empty((n + 1, 5), dtype=np.int64))
    return ints, states, pair_states, np.empty(n, dtype=np.int64), np.empty(n + 1, dtype=np.int64)


@device
def _improve(orders, riders, routes, travel, weights, mode, max_orders, r, max_passes, pairs, work):
    """``improve_route`` with scratch arrays from ``_work``."""
    length, frozen, order, kind = routes
    rx, ry, rloc, avail, _, shift_end, capacity, speed = riders
    rider = (rx[r], ry[r], rloc[r], avail[r], shift_end[r], capacity[r], speed[r])
    n = length[r]
    F = frozen[r]
    ints, (st_f, st_i), (pr_f, pr_i), mate, nc = work
    cur_o, cur_k, do, dk, ro, rk, eo, ek = ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6], ints[7]
    for s in range(n):
        cur_o[s] = order[r, s]
        cur_k[s] = kind[r, s]
    best = sequence_cost(orders, rider, travel, weights, mode, cur_o, cur_k, n, F, max_orders)
    before = best
    if n - F < 2 or best == np.inf:
        return before, best
    _prefix_states(orders, rider, travel, mode, cur_o, cur_k, n, F, st_f, st_i)
    _mates(cur_o, n, mate)
    _bag_runs(orders, travel, cur_o, cur_k, n, nc)
    for _ in range(max_passes):
        improved = False
        # Relocate (ln = 1) and or-opt (ln = 2, 3): move a segment elsewhere after the frozen prefix.
        for ln in range(1, 4):
            for a in range(F, n - ln + 1):
                for b in range(F, n - ln + 1):
                    if b == a or nc[max(a, b) + ln] == nc[min(a, b)]:
                        continue  # the same stop, or a bag's pickups after its first in another order
                    if _segment_breaks_precedence(cur_k, mate, a, ln, b):
                        continue
                    _segment_moved(cur_o, cur_k, n, a, ln, b, do, dk)
                    c = _tail_cost(orders, rider, travel, weights, mode, do, dk, n, F, min(a, b), st_f, st_i,
                                   best - EPS)  # fmt: skip
                    if c < best - EPS:
                        best = c
                        _copy(do, dk, cur_o, cur_k, n)
                        _prefix_states(orders, rider, travel, mode, cur_o, cur_k, n, F, st_f, st_i)
                        _mates(cur_o, n, mate)
                        _bag_runs(orders, travel, cur_o, cur_k, n, nc)
                        improved = True
        # 2-opt: reverse a stretch of stops (never one that holds both stops of an order: a drop-off first).
        for a in range(F, n - 1):
            for b in range(a + 1, n):
                if cur_k[b] == DROPOFF and a <= mate[b] < b:
                    break  # so does every longer stretch from a
                if nc[b + 1] == nc[a]:
                    continue  # a bag's pickups after its first, in another order
                _copy(cur_o, cur_k, do, dk, n)
                for q in range(b - a + 1):
                    do[a + q] = cur_o[b - q]
                    dk[a + q] = cur_k[b - q]
                c = _tail_cost(orders, rider, travel, weights, mode, do, dk, n, F, a, st_f, st_i, best - EPS)
                if c < best - EPS:
                    best = c
                    _copy(do, dk, cur_o, cur_k, n)
                    _prefix_states(orders, rider, travel, mode, cur_o, cur_k, n, F, st_f, st_i)
                    _mates(cur_o, n, mate)
                    _bag_runs(orders, travel, cur_o, cur_k, n, nc)
                    improved = True
        # Pair relocation (only with ``pairs``): take an order's pickup and drop-off out together and put them back
        # at the best place.
        for p in range(F, n if pairs else F):
            if cur_k[p] != PICKUP:
                continue
            o = cur_o[p]
            d = -1
            for q in range(p + 1, n):
                if cur_o[q] == o and cur_k[q] == DROPOFF:
                    d = q
                    break
            if d < 0:
                continue
            w = 0
            for s in range(n):
                if s != p and s != d:
                    ro[w] = cur_o[s]
                    rk[w] = cur_k[s]
                    w += 1
            m2 = n - 2
            w_t, w_d, w_l = weights[W_TIME], weights[W_DIST], weights[W_LATE]
            t0 = rider[3]
            for i in range(F, m2 + 1):
                # ro[:i] + P + ro[i:] + D: the candidates for every j share its stops before index j + 1, so its
                # states are computed once (a stop that breaks a rule there breaks every later j too).
                w = 0
                for s in range(m2 + 1):
                    if s == i:
                        do[w] = o
                        dk[w] = PICKUP
                        w += 1
                    if s < m2:
                        do[w] = ro[s]
                        dk[w] = rk[s]
                        w += 1
                do[n - 1] = o
                dk[n - 1] = DROPOFF
                valid = _prefix_states(orders, rider, travel, mode, do, dk, n - 1, F, pr_f, pr_i)
                for j in range(i, m2 + 1):
                    if j + 1 > valid:
                        break
                    if w_t * (pr_f[j + 1, 2] - t0) + w_d * pr_f[j + 1, 3] + w_l * pr_f[j + 1, 4] >= best - EPS:
                        break  # the stops before the drop-off already cost too much, for this j and every later one
                    # ro[:i] + P + ro[i:j] + D + ro[j:]: the shared stops, then D and the rest.
                    for s in range(j, m2):
                        eo[s + 2] = ro[s]
                        ek[s + 2] = rk[s]
                    for s in range(j + 1):
                        eo[s] = do[s]
                        ek[s] = dk[s]
                    eo[j + 1] = o
                    ek[j + 1] = DROPOFF
                    c = _tail_cost(orders, rider, travel, weights, mode, eo, ek, n, F, j + 1, pr_f, pr_i, best - EPS)
                    if c < best - EPS:
                        best = c
                        _copy(eo, ek, cur_o, cur_k, n)
                        _prefix_states(orders, rider, travel, mode, cur_o, cur_k, n, F, st_f, st_i)
                        _mates(cur_o, n, mate)
                        _bag_runs(orders, travel, cur_o, cur_k, n, nc)
                        improved = True
            if improved:
                break
        if not improved:
            break
    for s in range(n):
        order[r, s] = cur_o[s]
        kind[r, s] = cur_k[s]
    return before, best


@kernel
def improve_routes(orders, riders, routes, travel, weights, mode, max_orders, which, max_passes, pairs):
    """``improve_route`` for each rider in ``which`` (int64[q]); returns the summed cost gain (float64) and the
    riders whose routes it changed (int64, in ``which``'s order): only those need evaluating again."""
    gain = 0.0
    longest = 0
    for q in range(which.shape[0]):
        longest = max(longest, routes[0][which[q]])
    work = _work(longest)
    improved = np.empty(which.shape[0], dtype=np.int64)
    n_improved = 0
    length, frozen, order, _kind = routes
    for q in range(which.shape[0]):
        r = which[q]
        F = frozen[r]
        if length[r] - F == 2 and order[r, F] == order[r, F + 1]:
            continue  # one order's pickup and drop-off: no move keeps the pickup first
        b, a = _improve(orders, riders, routes, travel, weights, mode, max_orders, r, max_passes, pairs, work)
        if a < b:
            gain += b - a
            improved[n_improved] = which[q]
            n_improved += 1
    return gain, improved[:n_improved]
