"""Riders riding their routes on the simulated clock: every stop whose service ends by the next tick is done.

``dispatch.sim.loop`` calls ``advance_riders`` once a tick on the riders with stops; it replaces a dozen numpy
passes over every busy rider's full-width rows (gathers, masks, ``take_along_axis``) by one pass over the stops
there are. Arrays in, arrays updated in place.
"""

from __future__ import annotations

import numpy as np

from dispatch.kernels._jit import kernel
from dispatch.kernels.route import PICKUP


@kernel
def advance_riders(orders, riders, routes, arrive, depart, cum_metres, rows, t_next, picked_at, delivered_at, metres,
                   delivered):  # fmt: skip
    """For riders ``rows`` (int64[q]) whose routes are evaluated in ``arrive``, ``depart``, ``cum_metres``
    (float64[m, S], as ``kernels.route.evaluate_routes`` gives them): complete every stop that departs by
    ``t_next``, move each such rider to its last completed stop (``riders`` x, y, loc, avail: the first four
    arrays of ``RiderTable.as_tuple``), shift the remaining stops to the front of its route, and freeze the stop
    each rider with stops left heads to (a frozen prefix of at least 1).

    Records per order (float64[n]): ``picked_at`` (when the pickup's service starts: arrival, or the order's ready
    time if later) and ``delivered_at`` (arrival at the drop-off); per rider: ``metres`` (float64[m], ridden to
    the last completed stop) and ``delivered`` (int64[m], drop-offs done). Returns bool[q]: which riders' routes
    changed (length or frozen prefix)."""
    length, frozen, order, kind = routes
    x, y, loc, avail = riders[0], riders[1], riders[2], riders[3]
    W = order.shape[1]
    changed = np.zeros(rows.shape[0], dtype=np.bool_)
    for q in range(rows.shape[0]):
        r = rows[q]
        L = length[r]
        f0 = frozen[r]
        n_done = 0
        for s in range(L):
            if depart[r, s] <= t_next:
                n_done += 1
                o = order[r, s]
                if kind[r, s] == PICKUP:
                    picked_at[o] = max(arrive[r, s], orders[7][o])
                else:
                    delivered_at[o] = arrive[r, s]
                    delivered[r] += 1
        if n_done > 0:
            last = n_done - 1
            lo = order[r, last]
            metres[r] += cum_metres[r, last]
            if kind[r, last] == PICKUP:
                x[r], y[r], loc[r] = orders[0][lo], orders[1][lo], orders[2][lo]
            else:
                x[r], y[r], loc[r] = orders[3][lo], orders[4][lo], orders[5][lo]
            avail[r] = depart[r, last]
            left = L - n_done
            for s in range(W):
                if s < left:
                    order[r, s] = order[r, s + n_done]
                    kind[r, s] = kind[r, s + n_done]
                else:
                    order[r, s] = -1
                    kind[r, s] = 0
            length[r] = left
            frozen[r] = max(f0 - n_done, 0)
        if length[r] > 0:
            frozen[r] = max(frozen[r], 1)
        else:
            frozen[r] = 0
        changed[q] = length[r] != L or frozen[r] != f0
    return changed


@kernel
def clock_riders(length, online, shift_end, avail, dirty, now, lo, hi):
    """The riders' bookkeeping at a tick, in one pass over the m rows: a rider online with an empty route
    (``length`` int64[m] == 0) whose shift has ended (``shift_end`` <= ``now``) goes offline (``online``, bool[m],
    updated in place); a rider still online with an empty route is available from ``now`` at the earliest
    (``avail``, float64[m], in place); every empty route's evaluation is marked out of date (``dirty``, bool[m],
    in place: an idle rider's position and availability move with the clock). Only rows ``lo:hi`` are visited:
    the caller knows the others to be offline with empty routes. Returns the rows that went offline (int64,
    ascending) and whether any route has stops."""
    lo, hi = max(lo, 0), min(hi, length.shape[0])
    gone = np.empty(max(hi - lo, 0), dtype=np.int64)
    k = 0
    n_busy = 0
    for r in range(lo, hi):  # branch-free: online and idle riders are scattered over the rows
        empty = length[r] == 0
        leaves = online[r] & empty & (shift_end[r] <= now)
        gone[k] = r
        k += leaves
        on = online[r] & ~leaves
        online[r] = on
        avail[r] = max(avail[r], now) if on & empty else avail[r]
        dirty[r] |= empty
        n_busy += ~empty
    return gone[:k], n_busy > 0
