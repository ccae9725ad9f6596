"""Cheapest feasible insertion of an order (its pickup and its drop-off) into a rider's route.

For a candidate pair (order o, rider r) every position pair ``F <= i <= j <= L`` is tried (F the frozen prefix,
L the route length): the new route is ``stops[:i] + [P] + stops[i:j] + [D] + stops[j:]``. The simulation restarts
from the evaluated state before stop i and, once the new departure time at an old stop equals the old one, takes
the rest of the route from the evaluation unchanged (exact, since the suffix then replays identically). Only the
legs into and out of the new stops are ridden anew: an old leg between two old stops is the evaluated one shifted
in time (``travel.shifted_arrival``: exact while the shift keeps it within one speed bin, else ridden again).
Measured on the bench instances, that makes pricing 15% faster on a site (150 x 300) and 8% on the city.

Pairs are priced rider by rider, and a rider's pairs share what does not depend on the order (``leg_cache``): the
route's load and order count, and the leg to each position's new pickup when their orders share a pickup point.
Each leg's time speculates on the speed bin of the route's first open stop (``travel.profile_seconds_hinted``: the
same result, without the bin lookup on the chain of legs). Session 17 in benchmarks/RESULTS.md has the figures.

The cost of an insertion is the change in route cost (``dispatch.kernels.route``); infeasible pairs get +inf and a
status saying why. Kernels here read the evaluation arrays of ``evaluate_routes`` (``ev`` and ``tot``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from dispatch.kernels._jit import device, device_inline, kernel, kernel_parallel
from dispatch.kernels.route import (
    DROPOFF,
    PICKUP,
    SINGLE_SITE,
    W_DIST,
    W_LATE,
    W_TIME,
    advance_hinted,
    bag_mates,
    departure,
    initial_load,
    pickup_allowed,
    stop_point,
)
from dispatch.kernels.travel import bin_hint, leg_metres, leg_seconds_hinted, shifted_arrival

OK = 0
NO_CAPACITY = 1  # capacity or the per-rider order limit
AFTER_SHIFT = 2  # the pickup would be reached after the rider's shift end
TRIP_MODE = 3  # only positions that break the trip mode (e.g. the rider is still delivering another bag)
OFFLINE = 4


@device_inline
def _suffix(orders, travel, mode, r, routes, ev, tot, speed, shift_end, j, x, y, loc, t, prev_o, prev_k, cnt, hint):
    """Replay old stops j.. of rider r from state (x, y, loc, t), just after the new drop-off.

    Returns ``(end, metres, late, ok)`` of that suffix; exits early once the timing matches the old one. Only the
    leg into stop j is new; the legs after it are the evaluated ones, shifted in time (``shifted_arrival``), and
    ridden again only when the shift changes their duration."""
    length, _frozen, order, kind = routes
    arrive_old, depart_old = ev[0], ev[1]
    cum_metres = ev[5]
    cum_late = ev[6]
    end_old, metres_old, late_old = tot[0][r], tot[1][r], tot[2][r]
    L = length[r]
    metres = 0.0
    late = 0.0
    for s in range(j, L):
        o, k = order[r, s], kind[r, s]
        if s == j:
            if k == PICKUP and not pickup_allowed(orders, mode, cnt, prev_o, prev_k, o):
                return 0.0, 0.0, 0.0, False
            x, y, loc, a, t, d = advance_hinted(orders, travel, speed, x, y, loc, t, prev_o, prev_k, o, k, hint)
            metres = d + metres_old - cum_metres[r, j]  # the legs after stop j are the old ones
        else:
            a = shifted_arrival(travel, depart_old[r, s - 1], arrive_old[r, s], t)
            if math.isnan(a):
                px, py, pl = stop_point(orders, prev_o, prev_k)
                _x, _y, _l, a, _t, _d = advance_hinted(orders, travel, speed, px, py, pl, t, prev_o, prev_k, o, k,
                                                       hint)  # fmt: skip
            t = departure(orders, a, prev_o, prev_k, o, k)
        if k == PICKUP:
            if a > shift_end:
                return 0.0, 0.0, 0.0, False
        else:
            lt = a - orders[8][o]
            if lt > 0.0:
                late += lt
        prev_o, prev_k = o, k
        if t == depart_old[r, s]:
            # Same departure from the same stop: the rest replays exactly as evaluated.
            late += late_old - cum_late[r, s]
            return end_old, metres, late, True
    return t, metres, late, True


@device_inline
def insert_one(orders, riders, routes, travel, weights, mode, max_orders, ev, tot, o, r, legs):
    """Best insertion of order o into rider r: ``(delta_cost, i, j, added_late, status)``.

    ``legs`` (from ``leg_cache``) keeps the leg to each pickup position's new pickup, which depends on the rider,
    the position and the pickup point only: the next pair of the same rider with a pickup at the same point (an
    order of the same site) takes it from there. Empty arrays: no cache."""
    length, frozen, order, kind = routes
    rx, ry, rloc, avail, _, shift_end, capacity, speed = riders
    arrive_old, depart_old, load_old, onboard_old = ev[0], ev[1], ev[2], ev[3]
    cum_metres, cum_late = ev[5], ev[6]
    end_old, metres_old, late_old = tot[0][r], tot[1][r], tot[2][r]
    L = length[r]
    F = frozen[r]
    size = orders[9][o]
    promised = orders[8][o]
    sp = speed[r]
    se = shift_end[r]
    cap = capacity[r]

    ck_r, ck_x, ck_y, ck_l, ck_a, ck_d, ck_route = legs
    use_cache = ck_r.shape[0] > L
    # Every leg of this pair leaves at or after the route's state at position F, most of them in its speed bin.
    hint = bin_hint(travel[0], travel[1], depart_old[r, F - 1] if F > 0 else avail[r], sp)
    if use_cache and ck_route[0] == r:
        ld0, cnt0, n_orders = ck_route[1], ck_route[2], ck_route[3]
    else:
        ld0, cnt0 = initial_load(orders, routes, r)
        n_orders = cnt0
        for s in range(L):
            if kind[r, s] == PICKUP:
                n_orders += 1
        if use_cache:
            ck_route[0] = r
            ck_route[1] = ld0
            ck_route[2] = cnt0
            ck_route[3] = n_orders
    if n_orders + 1 > max_orders:
        return np.inf, -1, -1, 0.0, NO_CAPACITY

    best = np.inf
    best_i = -1
    best_j = -1
    best_late = 0.0
    status = NO_CAPACITY
    saw_shift = False
    saw_mode = False
    for i in range(F, L + 1):
        # In single-site mode a pickup between two pickups of its own bag prices as it does straight after the
        # bag's first pickup: the bag leaves when its first pickup's service is done and every order is ready,
        # whatever the order of the others, and the drop-off cannot come before the bag's last pickup. So only the
        # first such position is tried (the one the search would keep on a tie anyway). Unless the shift could
        # end within the bag: picked up earlier, the order may delay a bag mate's pickup past it (while every
        # pickup up to here is reached by ``max(depart_old[i - 1], ready)``, in any order, no pickup is late).
        if (
            mode == SINGLE_SITE
            and i >= F + 1
            and i >= 2
            and kind[r, i - 1] == PICKUP
            and kind[r, i - 2] == PICKUP
            and max(depart_old[r, i - 1], orders[7][o]) <= se
            and bag_mates(orders, travel, o, order[r, i - 1])
            and bag_mates(orders, travel, o, order[r, i - 2])
        ):
            continue
        # State just before position i.
        if i == 0:
            x, y, loc, t = rx[r], ry[r], rloc[r], avail[r]
            ld, cnt = ld0, cnt0
            prev_o, prev_k = -1, -1
            metres = 0.0
            late = 0.0
        else:
            prev_o, prev_k = order[r, i - 1], kind[r, i - 1]
            x, y, loc = stop_point(orders, prev_o, prev_k)
            t = depart_old[r, i - 1]
            ld, cnt = load_old[r, i - 1], onboard_old[r, i - 1]
            metres = cum_metres[r, i - 1]
            late = cum_late[r, i - 1]
        if ld + size > cap:
            continue
        if not pickup_allowed(orders, mode, cnt, prev_o, prev_k, o):
            saw_mode = True
            continue
        # The new pickup: the leg as ``advance_hinted`` rides it, or as it rode it for this rider's last pair that
        # had its pickup at the same point.
        px, py, pl = orders[0][o], orders[1][o], orders[2][o]
        if use_cache and ck_r[i] == r and ck_x[i] == px and ck_y[i] == py and ck_l[i] == pl:
            a = ck_a[i]
            d = ck_d[i]
        else:
            d = leg_metres(travel, x, y, loc, px, py, pl)
            a = t + leg_seconds_hinted(travel, x, y, loc, px, py, pl, t, sp, hint)
            if use_cache:
                ck_r[i] = r
                ck_x[i] = px
                ck_y[i] = py
                ck_l[i] = pl
                ck_a[i] = a
                ck_d[i] = d
        x, y, loc = px, py, pl
        t = departure(orders, a, prev_o, prev_k, o, PICKUP)
        if a > se:
            saw_shift = True
            continue
        metres += d
        ld += size
        cnt += 1
        prev_o, prev_k = o, PICKUP
        # Walk j from i to L, carrying the order along old stops i..j-1.
        for j in range(i, L + 1):
            # Try the drop-off before old stop j; not before a pickup that the trip mode forbids after it (the
            # replay would stop at that pickup anyway).
            if j < L and kind[r, j] == PICKUP and not pickup_allowed(orders, mode, cnt - 1, o, DROPOFF, order[r, j]):
                saw_mode = True
            else:
                dx, dy, dloc, da, dt, dd = advance_hinted(orders, travel, sp, x, y, loc, t, prev_o, prev_k, o, DROPOFF,
                                                          hint)  # fmt: skip
                dlate = max(0.0, da - promised)
                s_end, s_metres, s_late, ok = _suffix(
                    orders,
                    travel,
                    mode,
                    r,
                    routes,
                    ev,
                    tot,
                    sp,
                    se,
                    j,
                    dx,
                    dy,
                    dloc,
                    dt,
                    o,
                    DROPOFF,
                    cnt - 1,
                    hint,
                )
                if ok:
                    new_end = s_end
                    new_metres = metres + dd + s_metres
                    new_late = late + dlate + s_late
                    delta = (
                        weights[W_TIME] * (new_end - end_old)
                        + weights[W_DIST] * (new_metres - metres_old)
                        + weights[W_LATE] * (new_late - late_old)
                    )
                    if delta < best:
                        best = delta
                        best_i = i
                        best_j = j
                        best_late = new_late - late_old
                else:
                    saw_mode = True
            if j == L:
                break
            # Carry on past old stop j with the order on board.
            so, sk = order[r, j], kind[r, j]
            if sk == PICKUP:
                if not pickup_allowed(orders, mode, cnt, prev_o, prev_k, so):
                    saw_mode = True
                    break
                ld += orders[9][so]
                cnt += 1
                if ld > cap:
                    break
            else:
                ld -= orders[9][so]
                cnt -= 1
            a = shifted_arrival(travel, depart_old[r, j - 1], arrive_old[r, j], t) if j > i else math.nan
            if not math.isnan(a):  # the old leg from stop j - 1, shifted in time
                x, y, loc = stop_point(orders, so, sk)
                t = departure(orders, a, prev_o, prev_k, so, sk)
                d = cum_metres[r, j] - cum_metres[r, j - 1]
            else:
                x, y, loc, a, t, d = advance_hinted(orders, travel, sp, x, y, loc, t, prev_o, prev_k, so, sk, hint)
            if sk == PICKUP and a > se:
                saw_shift = True
                break
            metres += d
            if sk == DROPOFF:
                lt = a - orders[8][so]
                if lt > 0.0:
                    late += lt
            prev_o, prev_k = so, sk
    if best < np.inf:
        status = OK
    elif saw_shift:
        status = AFTER_SHIFT
    elif saw_mode:
        status = TRIP_MODE
    return best, best_i, best_j, best_late, status


@kernel
def leg_cache(n):
    """An empty cache of pickup legs for ``insert_one``, for routes of up to ``n - 1`` stops (0: none):
    ``(rider, x, y, loc, arrive, metres)`` per pickup position, then the last rider's load, orders on board and
    orders in the route ``[rider, units, on board, orders]``."""
    return (np.full(n, -1, dtype=np.int64), np.empty(n), np.empty(n), np.empty(n, dtype=np.int64), np.empty(n),
            np.empty(n), np.full(4, -1, dtype=np.int64))  # fmt: skip


@device
def _price(orders, riders, routes, travel, weights, mode, max_orders, ev, tot, online, pair_o, pair_r, todo, seq,
           out_cost, out_i, out_j, out_late, out_status, legs):  # fmt: skip
    """``insert_one`` for the pairs ``seq[q]`` (int64[t]) with ``todo``, in that order, serially (an offline
    rider's pairs get +inf and OFFLINE); ``legs``: a ``leg_cache`` (empty: none).

    One out-of-line call per kernel call, with the pricing inlined into it (``insert_one`` and ``_suffix`` are
    ``device_inline``): a call per pair or per position passed every array of the orders,
    riders, routes and evaluation tuples on the stack, and inlining them into an entry point (NRT on) would add
    reference counting; profiled with ``perf`` on the site bench's pairs (benchmarks/RESULTS.md)."""
    for q in range(seq.shape[0]):
        p = seq[q]
        if not todo[p]:
            continue
        r = pair_r[p]
        if not online[r]:
            out_cost[p] = np.inf
            out_i[p] = -1
            out_j[p] = -1
            out_late[p] = 0.0
            out_status[p] = OFFLINE
            continue
        c, i, j, lt, st = insert_one(orders, riders, routes, travel, weights, mode, max_orders, ev, tot, pair_o[p], r,
                                     legs)  # fmt: skip
        out_cost[p] = c
        out_i[p] = i
        out_j[p] = j
        out_late[p] = lt
        out_status[p] = st


@kernel
def insertion_costs(orders, riders, routes, travel, weights, mode, max_orders, ev, tot, online, pair_o, pair_r, todo):
    """Best insertion for each candidate pair p with ``todo[p]`` (bool[P]); serial (deterministic, one thread).

    ``pair_o``, ``pair_r``: int64[P]. Returns ``cost`` float64[P] (+inf when infeasible), ``i``, ``j`` int64[P]
    (insert the pickup before old stop i and the drop-off before old stop j), ``late`` float64[P] (added lateness,
    s) and ``status`` int64[P] (OK, NO_CAPACITY, AFTER_SHIFT, TRIP_MODE, OFFLINE). Pairs not in ``todo`` are
    left as the caller passed them in the returned arrays' ``prev`` copies: see ``insertion_costs_into``."""
    P = pair_o.shape[0]
    cost = np.full(P, np.inf)
    pi = np.full(P, -1, dtype=np.int64)
    pj = np.full(P, -1, dtype=np.int64)
    late = np.zeros(P)
    status = np.zeros(P, dtype=np.int64)
    seq = np.arange(P)
    _price(orders, riders, routes, travel, weights, mode, max_orders, ev, tot, online, pair_o, pair_r, todo, seq, cost,
           pi, pj, late, status, leg_cache(routes[2].shape[1] + 1))  # fmt: skip
    return cost, pi, pj, late, status


@kernel
def by_rider(pair_r, todo, n_riders):
    """The pairs p with ``todo[p]`` (bool[P]) grouped by rider (``pair_r`` int64[P], each < n_riders), in their
    original order within a rider: int64[t], a stable counting sort."""
    ptr = np.zeros(n_riders + 1, dtype=np.int64)
    for p in range(pair_r.shape[0]):
        if todo[p]:
            ptr[pair_r[p] + 1] += 1
    for r in range(n_riders):
        ptr[r + 1] += ptr[r]
    out = np.empty(ptr[n_riders], dtype=np.int64)
    for p in range(pair_r.shape[0]):
        if todo[p]:
            r = pair_r[p]
            out[ptr[r]] = p
            ptr[r] += 1
    return out


@kernel
def insertion_costs_into(
    orders,
    riders,
    routes,
    travel,
    weights,
    mode,
    max_orders,
    ev,
    tot,
    online,
    pair_o,
    pair_r,
    todo,
    cost,
    pi,
    pj,
    late,
    status,
):
    """As ``insertion_costs`` but updates the given output arrays in place, only where ``todo`` (serial).

    Pairs are priced rider by rider (each pair on its own, so the result is the same in any order): a rider's
    route and evaluation rows then stay in cache across its pairs: about 10% faster on the 2,000 x 2,000 city's 40,931
    pairs than in their order-major order (benchmarks/RESULTS.md)."""
    seq = by_rider(pair_r, todo, riders[0].shape[0])
    _price(orders, riders, routes, travel, weights, mode, max_orders, ev, tot, online, pair_o, pair_r, todo, seq, cost,
           pi, pj, late, status, leg_cache(routes[2].shape[1] + 1))  # fmt: skip


@kernel_parallel
def insertion_costs_into_parallel(
    orders,
    riders,
    routes,
    travel,
    weights,
    mode,
    max_orders,
    ev,
    tot,
    online,
    pair_o,
    pair_r,
    todo,
    cost,
    pi,
    pj,
    late,
    status,
):
    """``insertion_costs_into`` over all cores; pairs are independent, so the result equals the serial one."""
    seq = by_rider(pair_r, todo, riders[0].shape[0])
    no_cache = leg_cache(0)  # threads share nothing
    for q in prange(seq.shape[0]):
        p = seq[q]
        if todo[p]:
            # One pair a call, through the same compiled loop as the serial kernel (no cache: threads share it).
            _price(orders, riders, routes, travel, weights, mode, max_orders, ev, tot, online, pair_o, pair_r, todo,
                   seq[q : q + 1], cost, pi, pj, late, status, no_cache)  # fmt: skip


@device
def apply_insertion(routes, r, o, i, j):
    """Insert order o's pickup before old stop i and drop-off before old stop j of rider r, in place.

    The caller guarantees the row has room for two more stops."""
    length, _, order, kind = routes
    L = length[r]
    # Shift stops j.. right by two, stops i..j-1 right by one.
    for s in range(L - 1, j - 1, -1):
        order[r, s + 2] = order[r, s]
        kind[r, s + 2] = kind[r, s]
    for s in range(j - 1, i - 1, -1):
        order[r, s + 1] = order[r, s]
        kind[r, s + 1] = kind[r, s]
    order[r, i] = o
    kind[r, i] = PICKUP
    order[r, j + 1] = o
    kind[r, j + 1] = DROPOFF
    length[r] = L + 2


@kernel
def apply_insertions(routes, orders_w, riders_w, i_w, j_w):
    """``apply_insertion`` for each winner (int64[w] arrays; distinct riders, positions from their current
    routes)."""
    for q in range(orders_w.shape[0]):
        apply_insertion(routes, riders_w[q], orders_w[q], i_w[q], j_w[q])
