"""Route evaluation: arrival times, waiting, load, lateness and slack for every rider's route.

Conventions shared by all kernels (see ``dispatch.state`` for the tables):

- ``orders``: the 12-tuple of ``OrderTable.as_tuple()``; ``riders``: the 8-tuple of ``RiderTable.as_tuple()``;
  ``routes``: ``(length, frozen, order, kind)``; ``travel``: see ``dispatch.kernels.travel``.
- ``weights``: float64[3] = ``[per_second, per_metre, per_second_late]``: the cost of a route is
  ``per_second * (end - avail) + per_metre * metres + per_second_late * lateness``.
- ``mode``: ``SINGLE_SITE`` (a pickup may start only with nothing on board or straight after a pickup at the same
  site: a bag from one site is delivered before the next is taken) or ``MIXED`` (pickups and drop-offs interleave).
- A delivery is on time when the rider *arrives* at the drop-off by ``promised``; lateness is the excess, in seconds.
- Hard rules: load never above capacity; no pickup that is not frozen is reached after the shift end; the trip
  mode; pickup before drop-off. Lateness is soft (weighted), so no order is ever dropped for being late.
- A pickup straight after a pickup at the same site costs no service time of its own (the bag is picked together).
"""

from __future__ import annotations

import numpy as np

from dispatch.kernels._jit import device, device_inline, kernel
from dispatch.kernels.travel import bin_hint, leg_metres, leg_seconds, leg_seconds_hinted

SINGLE_SITE = 0
MIXED = 1

W_TIME = 0
W_DIST = 1
W_LATE = 2

PICKUP = 0
DROPOFF = 1


@device
def stop_point(orders, o, k):
    """(x, y, loc) of order ``o``'s pickup (k == 0) or drop-off (k == 1)."""
    if k == PICKUP:
        return orders[0][o], orders[1][o], orders[2][o]
    return orders[3][o], orders[4][o], orders[5][o]


@device_inline
def advance_hinted(orders, travel, speed, x, y, loc, t, prev_o, prev_k, o, k, hint):
    """Ride from (x, y, loc) leaving at ``t`` to stop (o, k) and serve it; ``hint``: ``travel.bin_hint`` of an
    earlier departure of the rider (the result does not depend on it).

    Returns ``(nx, ny, nloc, arrive, depart, metres)``; a pickup waits for the order's ready time."""
    nx, ny, nloc = stop_point(orders, o, k)
    metres = leg_metres(travel, x, y, loc, nx, ny, nloc)
    arrive = t + leg_seconds_hinted(travel, x, y, loc, nx, ny, nloc, t, speed, hint)
    return nx, ny, nloc, arrive, departure(orders, arrive, prev_o, prev_k, o, k), metres


@device
def departure(orders, arrive, prev_o, prev_k, o, k):
    """When a rider arriving at stop (o, k) at ``arrive`` after stop (prev_o, prev_k) leaves it: a pickup waits for
    the order's ready time and costs no service time straight after a pickup at the same site."""
    if k == PICKUP:
        start = max(arrive, orders[7][o])
        same_bag = prev_k == PICKUP and prev_o >= 0 and orders[6][prev_o] == orders[6][o]
        return start if same_bag else start + orders[10][o]
    return arrive + orders[11][o]


@device
def pickup_allowed(orders, mode, onboard, prev_o, prev_k, o):
    """The trip-mode rule for a pickup of order ``o`` with ``onboard`` orders on board after stop prev."""
    if mode == MIXED or onboard == 0:
        return True
    return prev_k == PICKUP and prev_o >= 0 and orders[6][prev_o] == orders[6][o]


@device
def bag_mates(orders, travel, a, b):
    """Orders a and b are picked up at the same site and point, and a leg from that point to itself takes no time
    and no metres (always with straight lines; in matrix mode the diagonal must be zero). Then pickups of bag mates
    in a row cost nothing between them, and the bag leaves when its first pickup's service is done and every order
    in it is ready, in whatever order the others are picked up."""
    if orders[6][a] != orders[6][b]:
        return False
    x, y, loc = orders[0][a], orders[1][a], orders[2][a]
    if x != orders[0][b] or y != orders[1][b] or loc != orders[2][b]:
        return False
    free = leg_metres(travel, x, y, loc, x, y, loc) == 0.0
    return free and leg_seconds(travel, x, y, loc, x, y, loc, 0.0, 1.0) == 0.0


@device_inline
def stop_step(
    orders, travel, mode, speed, capacity, shift_end, planned, x, y, loc, t, prev_o, prev_k, ld, cnt, o, k, hint
):
    """Ride from the previous stop (``prev_o``, ``prev_k``; at ``x, y, loc`` free at ``t``, ``ld`` units and
    ``cnt`` orders on board) to stop (o, k) and serve it, as ``sequence_cost`` prices a sequence. ``planned``: the
    stop is not frozen, so the trip mode and the shift end apply to it. Returns ``(ok, x, y, loc, t, metres, ld,
    cnt, late)``: ``ok`` False when a hard rule breaks (the rest is then meaningless), ``late`` the seconds a
    drop-off is past its deadline (0 if on time or a pickup). ``hint``: ``travel.bin_hint`` of an earlier departure
    of the rider (the result does not depend on it)."""
    if k == PICKUP and planned and not pickup_allowed(orders, mode, cnt, prev_o, prev_k, o):
        return False, x, y, loc, t, 0.0, ld, cnt, 0.0
    x, y, loc, a, t, d = advance_hinted(orders, travel, speed, x, y, loc, t, prev_o, prev_k, o, k, hint)
    late = 0.0
    if k == PICKUP:
        ld += orders[9][o]
        cnt += 1
        if ld > capacity or (planned and a > shift_end):
            return False, x, y, loc, t, d, ld, cnt, 0.0
    else:
        ld -= orders[9][o]
        cnt -= 1
        lt = a - orders[8][o]
        if lt > 0.0:
            late = lt
    return True, x, y, loc, t, d, ld, cnt, late


@device
def initial_load(orders, routes, r):
    """(size units, order count) already on board rider r: drop-offs whose pickup is not in the route."""
    length, _, order, kind = routes
    load = 0
    count = 0
    for s in range(length[r]):
        if kind[r, s] != DROPOFF:
            continue
        o = order[r, s]
        found = False
        for q in range(s):
            if order[r, q] == o and kind[r, q] == PICKUP:
                found = True
                break
        if not found:
            load += orders[9][o]
            count += 1
    return load, count


@kernel
def allocate_evaluation(m, S):
    """Empty evaluation arrays for m riders and routes S stops wide: ``(ev, tot)`` as in evaluate_routes."""
    ev = (
        np.zeros((m, S)),
        np.zeros((m, S)),
        np.zeros((m, S), dtype=np.int64),
        np.zeros((m, S), dtype=np.int64),
        np.zeros((m, S)),
        np.zeros((m, S)),
        np.zeros((m, S)),
        np.full((m, S), np.inf),
    )
    tot = (np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.ones(m, dtype=np.bool_))
    return ev, tot


@device_inline
def evaluate_rider(orders, riders, routes, travel, weights, mode, r, ev, tot):
    """Evaluate rider r's route into row r of the evaluation arrays (see evaluate_routes)."""
    length, frozen, order, kind = routes
    arrive, depart, load, onboard, late, cum_metres, cum_late, slack = ev
    end, metres, lateness, cost, feasible = tot
    rx, ry, rloc, avail, _, shift_end, capacity, speed = riders
    x, y, loc, t = rx[r], ry[r], rloc[r], avail[r]
    hint = bin_hint(travel[0], travel[1], t, speed[r])
    ld, cnt = initial_load(orders, routes, r)
    ok = ld <= capacity[r]
    dist = 0.0
    tot_late = 0.0
    prev_o, prev_k = -1, -1
    for s in range(length[r]):
        o, k = order[r, s], kind[r, s]
        if k == PICKUP and s >= frozen[r] and not pickup_allowed(orders, mode, cnt, prev_o, prev_k, o):
            ok = False
        if k == DROPOFF:
            for q in range(s + 1, length[r]):
                if order[r, q] == o and kind[r, q] == PICKUP:
                    ok = False  # a drop-off before its own pickup
        x, y, loc, a, t, d = advance_hinted(orders, travel, speed[r], x, y, loc, t, prev_o, prev_k, o, k, hint)
        dist += d
        arrive[r, s] = a
        depart[r, s] = t
        late[r, s] = 0.0
        if k == PICKUP:
            ld += orders[9][o]
            cnt += 1
            if s >= frozen[r] and a > shift_end[r]:
                ok = False
        else:
            ld -= orders[9][o]
            cnt -= 1
            lt = a - orders[8][o]
            if lt > 0.0:
                late[r, s] = lt
                tot_late += lt
        if ld > capacity[r]:
            ok = False
        load[r, s] = ld
        onboard[r, s] = cnt
        cum_metres[r, s] = dist
        cum_late[r, s] = tot_late
        prev_o, prev_k = o, k
    end[r] = t
    metres[r] = dist
    lateness[r] = tot_late
    cost[r] = weights[W_TIME] * (t - avail[r]) + weights[W_DIST] * dist + weights[W_LATE] * tot_late
    feasible[r] = ok
    # Forward slack, from the last stop back: a delay at stop s is absorbed by waiting further on.
    nxt = np.inf
    for s in range(length[r] - 1, -1, -1):
        own = np.inf
        if kind[r, s] == DROPOFF:
            own = orders[8][order[r, s]] - arrive[r, s]
        sl = min(own, nxt)
        slack[r, s] = sl
        wait = 0.0
        if kind[r, s] == PICKUP:
            wait = max(0.0, orders[7][order[r, s]] - arrive[r, s])
        nxt = sl + wait


@kernel
def evaluate_routes(orders, riders, routes, travel, weights, mode):
    """Evaluate every rider's route.

    Returns ``(ev, tot)``. ``ev`` per stop (float64/int64[m, S]): ``arrive``, ``depart``, ``load`` (units on board
    after the stop), ``onboard`` (orders on board after the stop), ``late`` (seconds late at a drop-off, 0 at a
    pickup), ``cum_metres`` (metres ridden up to the stop), ``cum_late`` (lateness up to and including the stop),
    ``slack`` (seconds stop s could start later without adding lateness to any drop-off from s on: the least
    ``promised - arrive`` over those drop-offs plus the waiting at pickups in between; negative when a drop-off
    is late already with no waiting before it to absorb a delay). ``tot`` per rider (float64[m]): ``end``
    (departure from the last stop, or ``avail``), ``metres``, ``lateness``, ``cost``, and ``feasible``
    (bool[m]: the hard rules hold)."""
    m, S = routes[2].shape
    ev, tot = allocate_evaluation(m, S)
    _evaluate_riders(orders, riders, routes, travel, weights, mode, np.arange(m), ev, tot)
    return ev, tot


@kernel
def evaluate_subset(orders, riders, routes, travel, weights, mode, which, ev, tot):
    """Re-evaluate only riders ``which`` (int64[q]) into existing evaluation arrays."""
    _evaluate_riders(orders, riders, routes, travel, weights, mode, which, ev, tot)


@device
def _evaluate_riders(orders, riders, routes, travel, weights, mode, which, ev, tot):
    """``evaluate_rider`` for riders ``which`` (int64[q]), inlined into one loop outside the Numba runtime: called
    per rider from an entry point, each call passed every array of the tuples on the stack."""
    for q in range(which.shape[0]):
        evaluate_rider(orders, riders, routes, travel, weights, mode, which[q], ev, tot)


@device
def sequence_cost(orders, rider, travel, weights, mode, seq_o, seq_k, n, n_frozen, max_orders):
    """Cost of visiting stops ``seq_o[:n], seq_k[:n]`` for one rider, or +inf when a hard rule breaks.

    ``rider`` = ``(x, y, loc, avail, shift_end, capacity, speed)``; the first ``n_frozen`` stops are exempt from the
    shift-end and trip-mode rules (they are already under way). Checks precedence: a pickup must come before its
    drop-off, and every order appears at most once per kind; at most ``max_orders`` drop-offs."""
    x, y, loc, t0, shift_end, capacity, speed = rider
    # Precedence and on-board start, O(n^2) on short routes.
    ld = 0
    cnt = 0
    drops = 0
    for s in range(n):
        for q in range(s + 1, n):
            if seq_o[q] == seq_o[s] and seq_k[q] == seq_k[s]:
                return np.inf  # the same stop twice
        if seq_k[s] == DROPOFF:
            drops += 1
            picked_before = False
            for q in range(n):
                if seq_o[q] == seq_o[s] and seq_k[q] == PICKUP:
                    if q > s:
                        return np.inf
                    picked_before = True
            if not picked_before:
                ld += orders[9][seq_o[s]]
                cnt += 1
    if drops > max_orders or ld > capacity:
        return np.inf
    hint = bin_hint(travel[0], travel[1], t0, speed)
    t = t0
    dist = 0.0
    tot_late = 0.0
    prev_o, prev_k = -1, -1
    for s in range(n):
        o, k = seq_o[s], seq_k[s]
        ok, x, y, loc, t, d, ld, cnt, lt = stop_step(
            orders, travel, mode, speed, capacity, shift_end, s >= n_frozen, x, y, loc, t, prev_o, prev_k, ld, cnt, o,
            k, hint,
        )  # fmt: skip
        if not ok:
            return np.inf
        dist += d
        tot_late += lt
        prev_o, prev_k = o, k
    return weights[W_TIME] * (t - t0) + weights[W_DIST] * dist + weights[W_LATE] * tot_late
