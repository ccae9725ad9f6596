"""Candidate riders for each pending order, through a spatial index, so work grows with (orders + riders) x k.

Orders are grouped by pickup site (a site's orders share its pickup point). For each site, a grid on the point where
each accepting rider will next be free (its route's last stop, or where it is; ``kernels.grid``) gives the nearest
riders within ``max_reach_m`` (ties to the lower rider index); riders whose routes already hold a pickup at the site to
come ("visitors": the cheapest way to batch) join them. Then, with a cheap *estimate* of each pair's insertion cost (the
exact cost of appending the order after the rider's last stop; for a visitor, the lesser of that and joining its pickup
there: the wait and a detour to the order's drop-off from the nearest later drop-off), the candidates are:

- **order side**: each order's ``k`` cheapest riders among the ``3 k`` nearest and the visitors;
- **rider side**: each rider's ``k`` cheapest orders among the sites whose pools hold it. Without this side a
  cheap rider is claimed by every order of its neighbourhood and the rest starve: on the generated 2,000 x 2,000
  city, order-side alone at k = 16 leaves the single-round optimum 15% dearer, both sides 0.7% (benchmarks/RESULTS.md).
  Each order then keeps at most ``rider_side x k`` of these proposals (``DispatchParams.candidate_rider_side``,
  default ``RIDER_SIDE_PER_ORDER``), its cheapest: at a quiet site
  (hundreds of riders, a few orders) every rider proposes every order, and the pairs would be dense (500 a pending
  order on a peak_day sample; 100 with the cap, which leaves the city benchmark's objective unchanged);
- **a window**: ``window`` riders along the site's ranking by when they can be at the site, starting at the
  order's own rank among the site's orders (most urgent first), so that every order has a rider of its own
  whenever enough riders are in reach and pruning never starves a busy site.

The exact insertion kernel then prices every candidate pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.kernels.candidates import expand_groups, nearest_groups, pickup_groups, visits_by_site
from dispatch.kernels.grid import nearest_points
from dispatch.kernels.summary import visits
from dispatch.kernels.travel import N_PARAMS, P_BIN, P_DETOUR
from dispatch.state import OrderTable, RiderTable, Routes

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

SITES_PER_RIDER = 4  # the rider side looks at the orders of this many nearest sites
BRUTE_FORCE_SITES = 64  # with at most this many pickup sites in a tick, riders find their nearest by brute force
RIDER_SIDE_PER_ORDER = 8  # an order keeps at most this many times k rider-side pairs (its cheapest)


@dataclass(frozen=True)
class Candidates:
    """Candidate pairs sorted by order, then rider: ``pair_o``, ``pair_r`` int64[P]; ``in_reach`` bool[n_pending]
    says which pending orders had at least one rider within reach."""

    pair_o: I64
    pair_r: I64
    in_reach: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Visits:
    """Pickups riders will make anyway, after which another pickup at the same site could follow.

    ``site``, ``rider`` int64[V]; ``at`` float64[V] arrival there; ``q0``, ``q1`` int64[V]: the drop-off points
    ``drop_x/y/loc[q0:q1]`` later in that route."""

    site: I64
    rider: I64
    at: F64
    q0: I64
    q1: I64
    drop_x: F64
    drop_y: F64
    drop_loc: I64

    @staticmethod
    def none() -> Visits:
        z, zf = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return Visits(z, z, zf, z, z, zf, zf, z)


def route_visits(orders: OrderTable, routes: Routes, ev: tuple[Any, ...]) -> Visits:
    """The ``Visits`` of routes evaluated as ``ev`` (``dispatch.kernels.route.evaluate_routes``): unfrozen pickups,
    and the last frozen one (a rider at a site may take one more order there)."""
    return Visits(*visits(orders.as_tuple(), routes.as_tuple(), ev[0]))


def _constant_travel(speed_mps: float) -> tuple[Any, ...]:
    """A travel tuple at one speed (straight lines), for estimates when the caller gives no travel model."""
    params = np.zeros(N_PARAMS)
    params[P_BIN], params[P_DETOUR] = 86_400.0, 1.0
    return params, np.array([speed_mps]), np.zeros((1, 1)), np.zeros((1, 1))


def candidate_pairs(
    orders: OrderTable,
    riders: RiderTable,
    pending: I64,
    free_x: F64,
    free_y: F64,
    free_at: F64,
    accepting: npt.NDArray[np.bool_],
    now: float,
    k: int,
    max_reach_m: float,
    reference_speed_mps: float,
    visits: Visits | None = None,
    *,
    travel: tuple[Any, ...] | None = None,
    weights: F64 | None = None,
    free_loc: I64 | None = None,
    k_rider: int | None = None,
    window: int = 2,
    rider_side: int = RIDER_SIDE_PER_ORDER,
) -> Candidates:
    """Candidate riders for the ``pending`` order indices (int64[n]); see the module docstring for the rule.

    ``free_x``, ``free_y``, ``free_at``: float64[m] (``free_loc`` int64[m], default -1), where and when each rider's
    current route ends; ``accepting``: bool[m], riders that may take another order now (online, in shift, below
    the order limit). ``travel`` (a ``TravelTime.arrays()`` tuple; default straight lines at
    ``reference_speed_mps``) and ``weights`` (float64[3] per second, per metre, per second late; default 1, 0, 20)
    price the estimates; ``k_rider`` defaults to ``k``; an order keeps at most ``rider_side * k`` rider-side
    proposals. A pinned order's only candidate is its rider (when
    accepting)."""
    vis = visits if visits is not None else Visits.none()
    tr = travel if travel is not None else _constant_travel(reference_speed_mps)
    wts = weights if weights is not None else np.array([1.0, 0.0, 20.0])
    floc = free_loc if free_loc is not None else np.full(riders.m, -1, dtype=np.int64)
    kr = k if k_rider is None else k_rider
    if rider_side < 1:
        raise ValueError(f"rider_side: must be >= 1, got {rider_side}")
    n = int(pending.shape[0])
    in_reach = np.zeros(n, dtype=bool)
    if n == 0:
        return Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), in_reach)
    ok_idx = np.flatnonzero(accepting).astype(np.int64)
    po_parts: list[I64] = []
    pr_parts: list[I64] = []

    pinned = orders.pinned[pending]
    is_pinned = pinned >= 0
    if np.any(is_pinned):
        rows = np.flatnonzero(is_pinned)
        riders_p = pinned[rows]
        good = (riders_p < riders.m) & accepting[np.clip(riders_p, 0, riders.m - 1)]
        po_parts.append(pending[rows[good]])
        pr_parts.append(riders_p[good])
        in_reach[rows[good]] = True

    free_rows = np.flatnonzero(~is_pinned)
    if ok_idx.size and free_rows.size:
        ids = pending[free_rows]
        members, by, group_ptr, group_site, cx, cy, largest = pickup_groups(
            orders.site, orders.ready, orders.pick_x, orders.pick_y, ids
        )
        # Wide enough for the largest group; each group reads only as many as its own size asks (expand_groups).
        kmax = int(min(ok_idx.size, max(3 * k, k + window + int(largest))))
        dist, nbr = nearest_points(free_x[ok_idx], free_y[ok_idx], cx, cy, kmax, float(max_reach_m))
        n_site_nbrs = min(group_site.shape[0], SITES_PER_RIDER)
        if group_site.shape[0] <= BRUTE_FORCE_SITES:
            rider_sites = nearest_groups(free_x[ok_idx], free_y[ok_idx], cx, cy, n_site_nbrs, float(max_reach_m))
        else:
            _d, rider_sites = nearest_points(cx, cy, free_x[ok_idx], free_y[ok_idx], n_site_nbrs, float(max_reach_m))
        vis_t = (*visits_by_site(vis.site, vis.rider, vis.at, vis.q0, vis.q1), vis.drop_x, vis.drop_y, vis.drop_loc)
        po, pr, reached = expand_groups(
            orders.as_tuple(), tr, wts, nbr, dist, ok_idx, rider_sites, free_x, free_y, floc, free_at, riders.speed,
            riders.shift_end, float(now), float(reference_speed_mps), group_ptr, members, group_site,
            vis_t, accepting, int(k), int(kr), int(window), int(riders.m), int(max(1, rider_side * k)),
        )  # fmt: skip
        po_parts.append(po)
        pr_parts.append(pr)
        in_reach[free_rows[by]] = reached

    if len(po_parts) == 1 and not np.any(is_pinned):
        return Candidates(po_parts[0], pr_parts[0], in_reach)
    if po_parts:
        pair_o = np.concatenate(po_parts)
        pair_r = np.concatenate(pr_parts)
        srt = np.lexsort((pair_r, pair_o))
        pair_o, pair_r = pair_o[srt], pair_r[srt]
    else:
        pair_o = np.zeros(0, np.int64)
        pair_r = np.zeros(0, np.int64)
    return Candidates(pair_o, pair_r, in_reach)
