"""Per-rider summaries of the current routes that a tick needs before pricing: how many drop-offs each route
holds, where and when it ends, and the pickups riders make anyway (``dispatch.candidates.Visits``).

One pass over the routes each, instead of several whole-table numpy passes with their temporaries: these run on
every active rider every tick, so they are a fixed cost of the tick. Arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np

from dispatch.kernels._jit import kernel
from dispatch.kernels.route import DROPOFF, PICKUP


@kernel
def drop_counts(routes):
    """int64[m]: the drop-offs in each route (orders on board or to pick up)."""
    length, _frozen, _order, kind = routes
    m = length.shape[0]
    out = np.zeros(m, dtype=np.int64)
    for r in range(m):
        c = 0
        for s in range(length[r]):
            if kind[r, s] == DROPOFF:
                c += 1
        out[r] = c
    return out


@kernel
def free_points(orders, riders, routes, end):
    """Where and when each route ends: float64[m] x, y, int64[m] matrix index, float64[m] time (``end``, the
    departure from the last stop, copied); a rider with no stops is free where it is."""
    length, _frozen, order, kind = routes
    m = length.shape[0]
    x = riders[0].copy()
    y = riders[1].copy()
    loc = riders[2].copy()
    for r in range(m):
        L = length[r]
        if L > 0:
            o = order[r, L - 1]
            if kind[r, L - 1] == PICKUP:
                x[r], y[r], loc[r] = orders[0][o], orders[1][o], orders[2][o]
            else:
                x[r], y[r], loc[r] = orders[3][o], orders[4][o], orders[5][o]
    return x, y, loc, end.copy()


@kernel
def visits(orders, routes, arrive):
    """The pickups riders will make anyway (unfrozen ones, and the last frozen one), in rider then stop order.

    Returns ``site``, ``rider`` int64[V], ``at`` float64[V] (the arrival there, from ``arrive`` float64[m, S]),
    ``q0``, ``q1`` int64[V] (the drop-offs later in that route are ``q0:q1`` of the next three arrays), and
    ``drop_x``, ``drop_y`` float64[D], ``drop_loc`` int64[D]: every route's drop-off points, in rider then stop
    order."""
    length, frozen, order, kind = routes
    m = length.shape[0]
    V = 0
    D = 0
    for r in range(m):
        for s in range(length[r]):
            if kind[r, s] == DROPOFF:
                D += 1
            elif s + 1 >= frozen[r]:
                V += 1
    site = np.empty(V, dtype=np.int64)
    rider = np.empty(V, dtype=np.int64)
    at = np.empty(V)
    q0 = np.empty(V, dtype=np.int64)
    q1 = np.empty(V, dtype=np.int64)
    drop_x = np.empty(D)
    drop_y = np.empty(D)
    drop_loc = np.empty(D, dtype=np.int64)
    v = 0
    d = 0
    for r in range(m):
        d_end = d
        for s in range(length[r]):
            if kind[r, s] == DROPOFF:
                d_end += 1
        for s in range(length[r]):
            o = order[r, s]
            if kind[r, s] == DROPOFF:
                drop_x[d] = orders[3][o]
                drop_y[d] = orders[4][o]
                drop_loc[d] = orders[5][o]
                d += 1
            elif s + 1 >= frozen[r]:
                site[v] = orders[6][o]
                rider[v] = r
                at[v] = arrive[r, s]
                q0[v] = d
                q1[v] = d_end
                v += 1
    return site, rider, at, q0, q1, drop_x, drop_y, drop_loc


@kernel
def accepting_rows(rows, routes, online, shift_start, shift_end, now, max_orders):
    """bool[q]: which riders ``rows`` (int64[q]) accept another order at ``now``: online, in shift
    (``shift_start <= now < shift_end``, float64[m]) and with fewer than ``max_orders`` drop-offs in their
    routes (the rule of ``dispatch.policy._accepting``, for a few rows of a large table)."""
    length, _frozen, _order, kind = routes
    out = np.empty(rows.shape[0], dtype=np.bool_)
    for q in range(rows.shape[0]):
        r = rows[q]
        c = 0
        for s in range(length[r]):
            if kind[r, s] == DROPOFF:
                c += 1
        out[q] = online[r] and shift_end[r] > now and shift_start[r] <= now and c < max_orders
    return out
