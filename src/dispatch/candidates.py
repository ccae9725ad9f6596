"""Candidate riders for each pending order, through a spatial index, so work grows with orders x k.

Orders are grouped by pickup site (all of a site's orders share its pickup point). For a group of
``g`` orders the riders within reach of the pickup are found with a k-d tree (scipy ``cKDTree``) on the point where
each rider will next be free (its route's last stop, or where it is), ranked by an arrival estimate
``max(0, end - now) + metres / reference_speed`` (a rider whose route already has a pickup at the site to come
ranks by when it gets there), and the best ``k + g`` kept. Order q of the group (most urgent
first) gets the ``k // 2`` best-ranked riders, so that bags can form on the nearest riders, plus a window of
``k - k // 2`` riders further down the ranking starting at rank ``k // 2 + q``: every order has a rider of its own
among its candidates whenever enough riders are in reach, so pruning never starves a busy site.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from dispatch.kernels.candidates import expand_groups
from dispatch.state import OrderTable, RiderTable

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Candidates:
    """Candidate pairs sorted by order: ``pair_o``, ``pair_r`` int64[P]; ``in_reach`` bool[n_pending] says which
    pending orders had at least one rider within reach."""

    pair_o: I64
    pair_r: I64
    in_reach: npt.NDArray[np.bool_]


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
    visits: tuple[I64, I64, F64] | None = None,
) -> Candidates:
    """Candidate riders for the ``pending`` order indices (int64[n]).

    ``free_x``, ``free_y``, ``free_at``: float64[m], where and when each rider's current route ends;
    ``accepting``: bool[m], riders that may take another order now (online, in shift, below the order limit).
    ``visits``: ``(site, rider, at)`` int64/int64/float64[V], pickups riders will make anyway (a rider already
    heading to a site is the cheapest way to batch there); they join that site's ranking scored by ``at - now``.
    A pinned order's only candidate is its rider (when accepting)."""
    if visits is None:
        visits = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    vs = np.argsort(visits[0], kind="stable")
    vis_site, vis_rider, vis_at = visits[0][vs], visits[1][vs], visits[2][vs]
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
        tree = cKDTree(np.column_stack([free_x[ok_idx], free_y[ok_idx]]))
        # Group by pickup site; within a group, most urgent (earliest promise) first.
        ids = pending[free_rows]
        site = orders.site[ids]
        srt = np.lexsort((ids, orders.ready[ids], site))
        members = ids[srt]
        sites, starts, counts = np.unique(site[srt], return_index=True, return_counts=True)
        group_ptr = np.append(starts, members.shape[0]).astype(np.int64)
        centre = np.column_stack([orders.pick_x[members[starts]], orders.pick_y[members[starts]]])
        kmax = int(min(ok_idx.size, 2 * (k + int(counts.max()))))
        dist, nbr = tree.query(centre, k=kmax, distance_upper_bound=max_reach_m)
        dist = np.asarray(dist, dtype=np.float64).reshape(sites.shape[0], kmax)
        nbr = np.asarray(nbr, dtype=np.int64).reshape(sites.shape[0], kmax)
        po, pr, reached = expand_groups(
            nbr, dist, int(ok_idx.size), ok_idx, free_at, float(now), float(reference_speed_mps),
            group_ptr, members, int(k), sites.astype(np.int64), vis_site, vis_rider, vis_at, accepting,
        )  # fmt: skip
        po_parts.append(po)
        pr_parts.append(pr)
        in_reach[free_rows[srt]] = reached

    if po_parts:
        pair_o = np.concatenate(po_parts)
        pair_r = np.concatenate(pr_parts)
        srt = np.lexsort((pair_r, pair_o))
        pair_o, pair_r = pair_o[srt], pair_r[srt]
    else:
        pair_o = np.zeros(0, np.int64)
        pair_r = np.zeros(0, np.int64)
    return Candidates(pair_o, pair_r, in_reach)
