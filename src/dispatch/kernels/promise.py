"""Promise quotes for a batch of orders, each at a given site, placed in sequence (``PromiseEngine.quote_sites_xy``).

The kernel walks the orders in order and does, per order, the arithmetic of ``PromiseEngine.quote_xy`` restricted
to the order's site followed by ``PromiseEngine.admit`` when the order is accepted: an accepted order joins its
site's queue (``admitted[s] += 1``) before the next order is quoted, so a burst at one site sees its queue grow
exactly as with one quote at a time. The customer takes the first option, so only the earliest deadline the
estimate keeps is computed. Every expression is written in the same order as in ``dispatch.promise`` so that the
floating-point results are identical.

``params``: float64[N_PARAMS], the promise parameters the kernel reads (indices ``Q_*`` below, built by
:func:`dispatch.promise.quote_params_array`); ``tiers``: float64[T], the tiers in minutes (tier mode).
"""

from __future__ import annotations

import math

import numpy as np

from dispatch.kernels._jit import device, kernel
from dispatch.kernels.route import PICKUP
from dispatch.kernels.select import buckets
from dispatch.kernels.travel import leg_seconds

Q_SLOTS = 0  # 1.0: slot mode, 0.0: tier mode
Q_PREP_S = 1  # 60 * prep_min
Q_TRIP_MIN = 2  # trip_min (minutes; multiplied as in the engine)
Q_MAX_WAIT = 3  # max_wait_per_rider
Q_SIGMA_S = 4  # 60 * sigma_min
Q_SIGMA_FRAC = 5  # sigma_frac
Q_MIN_PROB = 6  # min_on_time_probability
Q_EXTRA_S = 7  # 60 * (batch_extra_min + dropoff_service_min)
Q_SLOT_S = 8  # 60 * slot_length_min
Q_HORIZON_S = 9  # 60 * slot_horizon_min
N_PARAMS = 10

# DeclineReason values (dispatch.promise_params; repeated here: kernels import no Python-level modules).
OUTSIDE_SITE_ZONE = 2
SATURATED = 3
TOO_LARGE = 4

_SQRT2 = math.sqrt(2.0)


@device
def on_time_probability(promised, eta, sigma):
    """The normal CDF of ``(promised - eta) / sigma``."""
    return 0.5 * (1.0 + math.erf(((promised - eta) / sigma) / _SQRT2))


@device
def first_deadline(params, tiers, eta, now):
    """The earliest deadline (epoch s) at or after ``eta`` kept with at least the required on-time probability
    among the tiers (``tiers``: float64[T], minutes after ``now``) or the slots, or NaN when there is none."""
    sigma = params[Q_SIGMA_S] + params[Q_SIGMA_FRAC] * max(0.0, eta - now)
    min_prob = params[Q_MIN_PROB]
    if params[Q_SLOTS] == 0.0:
        for i in range(tiers.shape[0]):
            promised = now + 60.0 * tiers[i]
            if promised >= eta and on_time_probability(promised, eta, sigma) >= min_prob:
                return promised
        return np.nan
    length = params[Q_SLOT_S]
    end = math.floor(now / length) * length + length
    last = now + params[Q_HORIZON_S]
    while end <= last:
        if end >= eta and on_time_probability(end, eta, sigma) >= min_prob:
            return end
        end += length
    return np.nan


@device
def site_eta(travel, site_x, site_y, service_s, s, x, y, start, extra_s):
    """The estimated delivery (epoch s) of an order picked up at site ``s`` from ``start`` and dropped at (x, y)."""
    depart = start + service_s[s]
    ride = leg_seconds(travel, site_x[s], site_y[s], -1, x, y, -1, depart, 1.0)
    return depart + ride + extra_s


@kernel
def quote_site_orders(
    travel,
    site_x,
    site_y,
    service_s,
    free_ptr,
    free_at,
    waiting,
    max_capacity,
    admitted,
    batch_orders,
    params,
    tiers,
    x,
    y,
    size,
    now,
    site,
    covered,
):
    """Quote k orders in sequence, each at its own site, admitting each accepted order.

    Args:
        travel: the travel tuple (``dispatch.kernels.travel``).
        site_x, site_y, service_s: float64[n], the sites' positions (metres) and pickup service (s).
        free_ptr: int64[n + 1], free_at: float64[R]: CSR rows of the times each site's riders in reach are free
            (ascending per site); waiting: int64[n], orders waiting for a rider; max_capacity: int64[n].
        admitted: int64[n], orders admitted since the summary was built; **updated in place** (one per accepted
            order, as ``PromiseEngine.admit``).
        batch_orders: int, orders a rider takes from the queue per trip (>= 1).
        params: float64[N_PARAMS] (the ``Q_*`` indices); tiers: float64[T], minutes.
        x, y: float64[k], drop-offs (metres); size: int64[k] (> 0); now: float64[k], quote times (epoch s);
        site: int64[k], site indices in [0, n); covered: bool[k], whether the site's zone contains the drop-off.

    Returns:
        ``(promised_by, eta, declined, deferred)``: float64[k] the first option's deadline and estimate (NaN when
        declined), int64[k] the DeclineReason value (0 when accepted), bool[k] whether the first option is later
        than the one the site would give with an empty queue.
    """
    k = x.shape[0]
    promised_by = np.full(k, np.nan)
    eta = np.full(k, np.nan)
    declined = np.zeros(k, dtype=np.int64)
    deferred = np.zeros(k, dtype=np.bool_)
    trip_min = params[Q_TRIP_MIN]
    for i in range(k):
        if not covered[i]:
            declined[i] = OUTSIDE_SITE_ZONE
            continue
        s = site[i]
        lo = free_ptr[s]
        n_riders = free_ptr[s + 1] - lo
        if n_riders == 0:
            declined[i] = SATURATED  # no rider in reach
            continue
        if size[i] > max_capacity[s]:
            declined[i] = TOO_LARGE
            continue
        w = waiting[s] + admitted[s]
        if w > params[Q_MAX_WAIT] * n_riders:
            declined[i] = SATURATED
            continue
        t = now[i]
        ready = t + params[Q_PREP_S]
        j = w // batch_orders  # the rider trip the new order's place in the queue falls to
        rider_free = free_at[lo + j % n_riders] + (j // n_riders) * 60.0 * trip_min
        start = max(ready, rider_free)
        e = site_eta(travel, site_x, site_y, service_s, s, x[i], y[i], start, params[Q_EXTRA_S])
        e0 = (
            site_eta(travel, site_x, site_y, service_s, s, x[i], y[i], ready, params[Q_EXTRA_S]) if start > ready else e
        )
        first0 = first_deadline(params, tiers, e0, t)
        if np.isnan(first0):
            declined[i] = SATURATED  # even with an empty queue no deadline would be kept
            continue
        first = first_deadline(params, tiers, e, t)
        if np.isnan(first):
            declined[i] = SATURATED
            continue
        promised_by[i] = first
        eta[i] = e
        deferred[i] = first > first0
        admitted[s] += 1
    return promised_by, eta, declined, deferred


@kernel
def route_ends(riders, online, routes, pick_x, pick_y, drop_x, drop_y, known, now, lookahead, cx, cy, lo, hi):
    """The riders a promise summary counts, and where and when their routes end.

    ``riders``: the rider tuple (``RiderTable.as_tuple``), ``online``: bool[m]; ``routes``: (length, frozen, order,
    kind); ``pick_*``, ``drop_*``: float64[n], the orders' points; ``known``: float64[m], when each route ends
    (read for riders with stops); ``lookahead``: epoch s. A rider counts when in shift (``shift_end > now``) and
    online, or starting by ``lookahead``. Its route ends at its last stop at ``max(known, now)``, an empty route
    where the rider is at ``max(avail, now)``, and never before a starting rider's shift start.
    ``cx``, ``cy``: float64[m], the points each rider's nearest site was last found for (NaN: never). Only rows
    ``lo:hi`` are visited: the caller knows the others not to count.

    Returns ``idx`` (int64[k], ascending), ``end_t``, ``end_x``, ``end_y`` (float64[k]) and ``stale`` (int64[j],
    positions in ``idx`` whose end point is not the cached one)."""
    x, y, avail, shift_start, shift_end = riders[0], riders[1], riders[3], riders[4], riders[5]
    length, _frozen, order, kind = routes
    lo, hi = max(lo, 0), min(hi, x.shape[0])
    idx = np.empty(max(hi - lo, 0), dtype=np.int64)
    k = 0
    for r in range(lo, hi):  # branch-free: online riders are scattered over the rows (6x faster on a peak shard)
        idx[k] = r
        k += (online[r] | ((shift_start[r] > now) & (shift_start[r] <= lookahead))) & (shift_end[r] > now)
    end_t = np.empty(k)
    end_x = np.empty(k)
    end_y = np.empty(k)
    stale = np.empty(k, dtype=np.int64)
    j = 0
    for i in range(k):
        r = idx[i]
        L = length[r]
        has = L > 0
        ex, ey = x[r], y[r]
        if has:
            o = order[r, L - 1]
            pick = kind[r, L - 1] == PICKUP
            ex = pick_x[o] if pick else drop_x[o]
            ey = pick_y[o] if pick else drop_y[o]
        t = max(known[r] if has else avail[r], now)
        end_t[i] = t if online[r] else max(t, shift_start[r])  # a starting rider: not before its shift
        end_x[i] = ex
        end_y[i] = ey
        stale[j] = i
        j += (cx[r] != ex) | (cy[r] != ey)
    return idx[:k], end_t, end_x, end_y, stale[:j]


@kernel
def near_home(px, py, rows, home, site_x, site_y, clear):
    """For points ``px``, ``py`` (float64[j]) of rider rows ``rows`` (int64[j]), whether each lies nearer to its
    rider's ``home`` site (int64[m]; outside ``0..n_sites - 1``: none) than ``clear`` (float64[n_sites]: half the
    distance from that site to its nearest other site, less a margin), so that the home site is the point's
    nearest: ``hit`` (bool[j]) and the distance (float64[j], as a k-d tree reports it: the square root of the
    summed squares)."""
    j = px.shape[0]
    hit = np.zeros(j, dtype=np.bool_)
    dist = np.empty(j)
    for i in range(j):
        s = home[rows[i]]
        if s < 0 or s >= clear.shape[0]:
            continue
        dx = px[i] - site_x[s]
        dy = py[i] - site_y[s]
        d = math.sqrt(dx * dx + dy * dy)
        dist[i] = d
        hit[i] = d < clear[s]
    return hit, dist


@device
def _sorted_prefix(t, seg, u, buf, taken, out):
    """Write into ``out`` the items ``seg`` (int64[L], keyed by ``t[seg]``) with the ``u`` smallest keys first in
    ascending order (ties: the earlier item first, as a stable sort), then the others in their given order.
    ``buf``: int64 scratch of at least ``u``; ``taken``: bool scratch of at least L, all False (left so)."""
    L = seg.shape[0]
    n = 0
    for a in range(L):
        v = t[seg[a]]
        if n == u and not v < t[seg[buf[n - 1]]]:
            continue
        b = n if n < u else u - 1
        while b > 0 and v < t[seg[buf[b - 1]]]:
            buf[b] = buf[b - 1]
            b -= 1
        buf[b] = a
        if n < u:
            n += 1
    for b in range(n):
        out[b] = seg[buf[b]]
        taken[buf[b]] = True
    w = n
    for a in range(L):
        if not taken[a]:
            out[w] = seg[a]
            w += 1
        taken[a] = False


@kernel
def site_free_times(travel, site_x, site_y, reach, idx, end_t, end_x, end_y, near, dist, speed, shift_end, capacity,
                    need):  # fmt: skip
    """Per site, the times its riders in reach are free at it: CSR ``ptr`` (int64[n_sites + 1]) over ``free_at``
    (float64[R]), and ``max_cap`` (int64[n_sites], the largest capacity among them, 0 for none).

    Riders ``idx`` (int64[k]) end their routes at (``end_x``, ``end_y``) at ``end_t`` (float64[k]); ``near``,
    ``dist`` (int64[m], float64[m], by rider row): each one's nearest site and its distance. A rider within
    ``reach`` of it is free there after the ride back (at its ``speed`` factor), if that is before its
    ``shift_end``. A site's times are in ascending order (ties: the lower rider row first) over at least its first
    ``need[s]`` entries (int64[n_sites]; the rest follow in rider order): all of them for a need of at least its
    number of riders."""
    n_sites = site_x.shape[0]
    k = idx.shape[0]
    fs = np.empty(k, dtype=np.int64)
    ft = np.empty(k)
    fc = np.empty(k, dtype=np.int64)
    n = 0
    for i in range(k):
        r = idx[i]
        if not dist[r] <= reach:
            continue
        s = near[r]
        t = end_t[i] + leg_seconds(travel, end_x[i], end_y[i], -1, site_x[s], site_y[s], -1, end_t[i], speed[r])
        if t < shift_end[r]:  # no pickup after the shift ends
            fs[n] = s
            ft[n] = t
            fc[n] = capacity[r]
            n += 1
    ptr, order = buckets(fs[:n], n_sites)
    free_at = np.empty(n)
    max_cap = np.zeros(n_sites, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    buf = np.empty(max(1, n), dtype=np.int64)
    taken = np.zeros(max(1, n), dtype=np.bool_)
    for s in range(n_sites):
        a, b = ptr[s], ptr[s + 1]
        if b == a:
            continue
        seg = order[a:b]
        u = max(1, min(need[s], b - a))
        if 8 * u >= b - a:
            out[a:b] = seg[np.argsort(ft[seg], kind="mergesort")]
        else:
            _sorted_prefix(ft, seg, u, buf, taken, out[a:b])
        c = 0
        for q in range(a, b):
            free_at[q] = ft[out[q]]
            c = max(c, fc[out[q]])
        max_cap[s] = c
    return ptr, free_at, max_cap
