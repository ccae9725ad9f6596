"""Intra-route local search: relocate, or-opt, 2-opt and pair relocation, first improvement.

Every move keeps the frozen prefix in place and is accepted only when ``sequence_cost`` of the new sequence is
finite (precedence, capacity, shift end, trip mode and the order limit hold) and strictly lower.
"""

from __future__ import annotations

import numpy as np

from dispatch.kernels._jit import device, kernel
from dispatch.kernels.route import DROPOFF, PICKUP, sequence_cost

EPS = 1e-9


@device
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


@kernel
def improve_route(orders, riders, routes, travel, weights, mode, max_orders, r, max_passes):
    """Improve rider r's route in place. Returns ``(cost_before, cost_after)`` (both from sequence_cost)."""
    length, frozen, order, kind = routes
    rx, ry, rloc, avail, _, shift_end, capacity, speed = riders
    rider = (rx[r], ry[r], rloc[r], avail[r], shift_end[r], capacity[r], speed[r])
    n = length[r]
    F = frozen[r]
    cur_o = order[r, :n].copy()
    cur_k = kind[r, :n].copy()
    best = sequence_cost(orders, rider, travel, weights, mode, cur_o, cur_k, n, F, max_orders)
    before = best
    if n - F < 2 or best == np.inf:
        return before, best
    do = np.empty(n, dtype=np.int64)
    dk = np.empty(n, dtype=np.int64)
    ro = np.empty(n, dtype=np.int64)
    rk = np.empty(n, dtype=np.int64)
    for _ in range(max_passes):
        improved = False
        # Relocate (ln = 1) and or-opt (ln = 2, 3): move a segment elsewhere after the frozen prefix.
        for ln in range(1, 4):
            for a in range(F, n - ln + 1):
                for b in range(F, n - ln + 1):
                    if b == a:
                        continue
                    _segment_moved(cur_o, cur_k, n, a, ln, b, do, dk)
                    c = sequence_cost(orders, rider, travel, weights, mode, do, dk, n, F, max_orders)
                    if c < best - EPS:
                        best = c
                        cur_o[:] = do
                        cur_k[:] = dk
                        improved = True
        # 2-opt: reverse a stretch of stops.
        for a in range(F, n - 1):
            for b in range(a + 1, n):
                do[:] = cur_o
                dk[:] = cur_k
                for q in range(b - a + 1):
                    do[a + q] = cur_o[b - q]
                    dk[a + q] = cur_k[b - q]
                c = sequence_cost(orders, rider, travel, weights, mode, do, dk, n, F, max_orders)
                if c < best - EPS:
                    best = c
                    cur_o[:] = do
                    cur_k[:] = dk
                    improved = True
        # Pair relocation: take an order's pickup and drop-off out together and put them back at the best place.
        for p in range(F, n):
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
            for i in range(F, m2 + 1):
                for j in range(i, m2 + 1):
                    # ro[:i] + P + ro[i:j] + D + ro[j:]
                    w = 0
                    for s in range(m2 + 1):
                        if s == i:
                            do[w] = o
                            dk[w] = PICKUP
                            w += 1
                        if s == j:
                            do[w] = o
                            dk[w] = DROPOFF
                            w += 1
                        if s < m2:
                            do[w] = ro[s]
                            dk[w] = rk[s]
                            w += 1
                    c = sequence_cost(orders, rider, travel, weights, mode, do, dk, n, F, max_orders)
                    if c < best - EPS:
                        best = c
                        cur_o[:] = do
                        cur_k[:] = dk
                        improved = True
            if improved:
                break
        if not improved:
            break
    order[r, :n] = cur_o
    kind[r, :n] = cur_k
    return before, best


@kernel
def improve_routes(orders, riders, routes, travel, weights, mode, max_orders, which, max_passes):
    """``improve_route`` for each rider in ``which`` (int64[q]); returns the summed cost gain (float64)."""
    gain = 0.0
    for q in range(which.shape[0]):
        b, a = improve_route(orders, riders, routes, travel, weights, mode, max_orders, which[q], max_passes)
        if b < np.inf:
            gain += b - a
    return gain
