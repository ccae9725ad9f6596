"""The dense peer for the kernel benchmark: a numpy insertion-cost matrix plus scipy's linear_sum_assignment.

It solves the same single-round problem as one round of ``KernelPolicy`` (each order to at most one rider, each
rider at most one new order, an unassigned order costs ``unassigned_cost``), with the same route cost and the same
hard rules, but over every order x rider pair: per rider, the insertion positions are enumerated with numpy
vectorised over all orders. Profile travel model only (what the generated instances use).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from dispatch.kernels.route import MIXED, evaluate_routes, initial_load
from dispatch.policy import DispatchParams, Snapshot, _accepting
from dispatch.state import PICKUP

F64 = npt.NDArray[np.float64]


def _seconds(params: F64, speed: F64, metres: F64, depart: F64, spd: float) -> F64:
    """Vectorised ``profile_seconds``: float64[n] leg seconds for float64[n] metres and departures (not for legs
    rounded up to whole minutes, whose travel params carry a negative bin length)."""
    bin_s, offset = params[0], params[2]
    if bin_s <= 0.0:
        raise ValueError("dense pricing does not round legs up to whole minutes")
    nb = speed.shape[0]
    remaining = metres.copy()
    elapsed = np.zeros_like(metres)
    local = depart + offset
    todo = remaining > 0
    for _ in range(4 * nb + 2):
        if not todo.any():
            break
        k = np.floor(local / bin_s)
        v = speed[(k.astype(np.int64)) % nb] * spd
        span = (k + 1.0) * bin_s - local
        reach = v * span
        fin = todo & (reach >= remaining)
        elapsed = np.where(fin, elapsed + remaining / v, elapsed)
        go = todo & ~fin
        remaining = np.where(go, remaining - reach, remaining)
        elapsed = np.where(go, elapsed + span, elapsed)
        local = np.where(go, local + span, local)
        todo = go
    return elapsed


def dense_insertion_matrix(snap: Snapshot, params: DispatchParams, now: float) -> F64:
    """float64[n_pending, m]: the best insertion delta of each pending order into each rider (+inf when none)."""
    travel = snap.travel
    if travel[0][3] != 0.0:
        raise ValueError("travel: the dense baseline supports the profile travel model only")
    tp, speed = travel[0], travel[1]
    detour = float(tp[1])
    w_t, w_d, w_l = params.weight_time, params.weight_distance, params.weight_late
    o = snap.orders
    rd = snap.riders
    rt = snap.routes
    otup, rtup = o.as_tuple(), rt.as_tuple()
    ev, tot = evaluate_routes(otup, rd.as_tuple(), rtup, travel, params.weights, params.mode)
    depart_old, load_old, onboard_old, cum_m, cum_l = ev[1], ev[2], ev[3], ev[5], ev[6]
    end_old, metres_old, late_old = tot[0], tot[1], tot[2]
    pend = snap.pending
    n = pend.shape[0]
    px, py = o.pick_x[pend], o.pick_y[pend]
    dx, dy = o.drop_x[pend], o.drop_y[pend]
    psite, ready, promised = o.site[pend], o.ready[pend], o.promised[pend]
    size, sp_pick, sp_drop = o.size[pend], o.service_pick[pend], o.service_drop[pend]
    accepting = _accepting(snap, params, now)
    mixed = params.mode == MIXED
    C = np.full((n, rd.m), np.inf)

    def leg(xa: Any, ya: Any, xb: Any, yb: Any, t: F64, spd: float) -> tuple[F64, F64]:
        metres = np.sqrt((xb - xa) ** 2 + (yb - ya) ** 2) * detour
        metres = np.broadcast_to(metres, t.shape).astype(np.float64)
        return metres, _seconds(tp, speed, metres, t, spd)

    for r in np.flatnonzero(accepting & rd.online):
        L, F = int(rt.length[r]), int(rt.frozen[r])
        so = rt.order[r, :L]
        sk = rt.kind[r, :L]
        n_orders = int(np.sum(sk != PICKUP))  # every order in the route has its drop-off there
        if n_orders + 1 > params.max_orders_per_rider:
            continue
        spd = float(rd.speed[r])
        cap = int(rd.capacity[r])
        best = np.full(n, np.inf)
        for i in range(F, L + 1):
            if i == 0:
                x0, y0, t0 = rd.x[r], rd.y[r], rd.avail[r]
                ld0, cnt0 = initial_load(otup, rtup, r)
                m0, l0 = 0.0, 0.0
                prev_pick_site = -1
            else:
                po_, pk_ = so[i - 1], sk[i - 1]
                x0 = o.pick_x[po_] if pk_ == PICKUP else o.drop_x[po_]
                y0 = o.pick_y[po_] if pk_ == PICKUP else o.drop_y[po_]
                t0, ld0, cnt0 = depart_old[r, i - 1], load_old[r, i - 1], onboard_old[r, i - 1]
                m0, l0 = cum_m[r, i - 1], cum_l[r, i - 1]
                prev_pick_site = int(o.site[po_]) if pk_ == PICKUP else -1
            alive = ld0 + size <= cap
            if not mixed and cnt0 > 0:
                alive &= psite == prev_pick_site
            if not alive.any():
                continue
            t = np.full(n, t0)
            dm, ds = leg(x0, y0, px, py, t, spd)
            arrive = t + ds
            same = psite == prev_pick_site
            t = np.maximum(arrive, ready) + np.where(same, 0.0, sp_pick)
            alive &= arrive <= rd.shift_end[r]
            metres = m0 + dm
            late = np.full(n, l0)
            ld = ld0 + size
            cnt = cnt0 + 1
            cx, cy = px, py
            prev_site = psite.copy()
            prev_is_pick = True
            for j in range(i, L + 1):
                if not alive.any():
                    break
                # The drop-off before old stop j, then the old stops j.. replayed.
                qm, qs = leg(cx, cy, dx, dy, t, spd)
                a = t + qs
                tt = a + sp_drop
                mm = metres + qm
                ll = late + np.maximum(0.0, a - promised)
                ok = alive.copy()
                qx, qy = dx, dy
                cnt_after = cnt - 1
                for s in range(j, L):
                    oo, kk = so[s], sk[s]
                    nx = o.pick_x[oo] if kk == PICKUP else o.drop_x[oo]
                    ny = o.pick_y[oo] if kk == PICKUP else o.drop_y[oo]
                    lm, ls = leg(qx, qy, nx, ny, tt, spd)
                    a2 = tt + ls
                    mm = mm + lm
                    if kk == PICKUP:
                        if s == j and not mixed and cnt_after > 0:
                            ok &= False
                        ok &= a2 <= rd.shift_end[r]
                        prev_same = s > j and sk[s - 1] == PICKUP and o.site[so[s - 1]] == o.site[oo]
                        tt = np.maximum(a2, o.ready[oo]) + (0.0 if prev_same else o.service_pick[oo])
                        cnt_after += 1
                    else:
                        ll = ll + np.maximum(0.0, a2 - o.promised[oo])
                        tt = a2 + o.service_drop[oo]
                        cnt_after -= 1
                    qx, qy = nx, ny
                delta = w_t * (tt - end_old[r]) + w_d * (mm - metres_old[r]) + w_l * (ll - late_old[r])
                best = np.where(ok & (delta < best), delta, best)
                if j == L:
                    break
                # Carry the order past old stop j.
                oo, kk = so[j], sk[j]
                nx = o.pick_x[oo] if kk == PICKUP else o.drop_x[oo]
                ny = o.pick_y[oo] if kk == PICKUP else o.drop_y[oo]
                if kk == PICKUP:
                    if not mixed:
                        alive &= prev_is_pick & (prev_site == o.site[oo])
                    ld = ld + o.size[oo]
                    alive &= ld <= cap
                    cnt += 1
                else:
                    ld = ld - o.size[oo]
                    cnt -= 1
                lm, ls = leg(cx, cy, nx, ny, t, spd)
                a2 = t + ls
                metres = metres + lm
                if kk == PICKUP:
                    alive &= a2 <= rd.shift_end[r]
                    same_bag = prev_is_pick & (prev_site == o.site[oo])
                    t = np.maximum(a2, o.ready[oo]) + np.where(same_bag, 0.0, o.service_pick[oo])
                else:
                    late = late + np.maximum(0.0, a2 - o.promised[oo])
                    t = a2 + o.service_drop[oo]
                prev_is_pick = kk == PICKUP
                prev_site = np.full(n, o.site[oo])
                cx, cy = nx, ny
        C[:, r] = best
    return C


def dense_round(C: F64, reject: F64) -> tuple[npt.NDArray[np.int64], float]:
    """scipy's linear_sum_assignment on ``[C | diag(reject)]`` (reject float64[n], each order's cost of staying
    unassigned): (rider per order or -1, objective)."""
    n, m = C.shape
    big = 1e18
    D = np.full((n, m + n), big)
    D[:, :m] = np.where(np.isfinite(C), C, big)
    D[np.arange(n), m + np.arange(n)] = reject
    rows, cols = linear_sum_assignment(D)
    out = np.full(n, -1, dtype=np.int64)
    real = cols < m
    out[rows[real]] = cols[real]
    return out, float(D[rows, cols].sum())


def objective(C: F64, match: npt.NDArray[np.int64], reject: F64) -> float:
    """The single-round objective of a matching (rider per order or -1), priced with the dense costs ``C``."""
    total = 0.0
    for q, r in enumerate(match.tolist()):
        c = C[q, r] if r >= 0 else math.inf
        total += c if (r >= 0 and math.isfinite(c)) else float(reject[q])
    return total
