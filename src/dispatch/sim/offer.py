"""Which riders a simulated tick offers the policy: the riders with stops at the sites with pending orders, and only
the idle riders that a site's pending orders could want.

At a site, idle riders wait at or ride back to their start positions, and most of the fleet is idle most of the day
(78% of the riders online in an average tick of the peak-day sample, with its fleet before session 24). A tick's
cost grows with the riders it sees, yet the candidate rule (``dispatch.candidates``) lets an order consider at most
``k`` riders of its own and ``rider_side * k`` riders' proposals (``DispatchParams.candidate_rider_side``), its
cheapest by an estimate, and a tick assigns at most as many idle riders as the site has pending orders. So each site
with ``P`` pending orders is offered the ``IDLE_PER_PENDING * P + (rider_side + 1) * k`` idle riders that the same
kind of estimate finds cheapest for a typical order of the site: the rider's time to ride to the site and on to the
pending orders' mean drop-off distance (at the reference speed times its speed factor; the travel model's hour and
detour are the same for all of them at one moment), plus the distance cost of the ride to the site. A site with
nothing pending is offered none.

In the simulator's ``site`` shard mode (``dispatch.sim.shard``; in the wider modes a tick offers every online rider
and none of this applies) a rider serves its home site only, so a site with nothing pending has nothing to give
its busy riders either: they are left out too, unless the policy re-plans routes without new orders (the
``ortools`` baseline, or the kernel policy with ``ortools_every_ticks``), which then sees every rider with stops.

The busy riders of a site with orders pending are of two kinds. A rider *visiting* the site (a pickup there still
to make, or the last frozen stop a pickup: the visits the candidate rule lets an order join, ``Visits``) is
always offered: that is where bags grow. A rider *returning* (only drop-offs left) can take an order only after
its last drop-off; on the peak-day sample those were 35% of the riders a tick saw but 2.6% of its assignments.
For the kernel policy each site is offered only its ``RETURNING_PER_PENDING * P + k`` returning riders that
finish soonest by the idle riders' estimate started at the route's end: ``max(0, end - now)`` plus the ride from
the last stop to the site and on, plus its distance cost (``Returning``), among those that accept an order (a
rider with a full bag or past its shift takes no place). The baselines see them all.

For the kernel policy the loop also leaves out what is inert in its tick (``dispatch.sim.loop._Offer``): the
riders that accept no order (a full bag, or past their shift end), and every rider of a site whose pending orders
are all held back for batching; the outcome is the same to the last bit (``tests/sim/test_loop.py``).

This is candidate pruning, not a different policy: the dispatch core still chooses among the riders offered, and
the selection depends only on the site's own state (deterministic, whatever the shard's other sites). The idle
and returning quotas do change decisions now and then (by design: a rider left out cannot be chosen), so their
sizes were set by measuring on-time rate and kilometres on peak-day samples (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dispatch.candidates import RIDER_SIDE_PER_ORDER
from dispatch.kernels.compact import offered_rows

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

IDLE_PER_PENDING = 2
RETURNING_PER_PENDING = 1


def idle_quota(pending_site: I64, n_sites: int, k: int, rider_side: int = RIDER_SIDE_PER_ORDER) -> I64:
    """Idle riders to offer per site (int64[n_sites]): ``IDLE_PER_PENDING * P + (rider_side + 1) * k`` where
    ``P`` > 0 orders of the site are pending (``pending_site``: int64[q], the pending orders' sites), else 0."""
    p = np.bincount(pending_site, minlength=n_sites)[:n_sites].astype(np.int64)
    return np.where(p > 0, IDLE_PER_PENDING * p + (rider_side + 1) * k, 0).astype(np.int64)


def mean_drop_m(pending_site: I64, drop_x: F64, drop_y: F64, site_x: F64, site_y: F64) -> F64:
    """Per site (float64[S]), the mean straight-line metres from the site to its pending orders' drop-offs
    (``pending_site``: int64[q]; ``drop_x``, ``drop_y``: float64[q]); 0 where nothing is pending."""
    n_sites = site_x.shape[0]
    d = np.hypot(drop_x - site_x[pending_site], drop_y - site_y[pending_site])
    tot = np.bincount(pending_site, weights=d, minlength=n_sites)[:n_sites]
    cnt = np.bincount(pending_site, minlength=n_sites)[:n_sites]
    out: F64 = tot / np.maximum(cnt, 1)
    return out


def returning_quota(pending_site: I64, n_sites: int, k: int) -> I64:
    """Returning riders to offer per site (int64[n_sites]): ``k + P`` where ``P`` > 0 orders of the site are
    pending (``pending_site``: int64[q], the pending orders' sites), else 0."""
    p = np.bincount(pending_site, minlength=n_sites)[:n_sites].astype(np.int64)
    return np.where(p > 0, RETURNING_PER_PENDING * p + k, 0).astype(np.int64)


def offered_riders(
    online: npt.NDArray[np.bool_],
    busy: npt.NDArray[np.bool_],
    rider_site: I64,
    x: F64,
    y: F64,
    speed: F64,
    site_x: F64,
    site_y: F64,
    onward_m: F64,
    quota: I64,
    ref_speed_mps: float,
    weight_m: float,
    all_busy: bool = False,
    rows: tuple[int, int] | None = None,
    cache: tuple[F64, F64, F64] | None = None,
    returning: Returning | None = None,
) -> I64:
    """Rows (int64, ascending) of the riders to offer: the ``busy`` riders (bool[m], with stops) of the sites with
    a quota (every busy rider when ``all_busy``), and per site
    ``s`` the ``quota[s]`` idle online riders (``online`` & ~``busy``) of ``rider_site`` (int64[m]) with the
    smallest ``(d + onward_m[s]) / (ref_speed_mps * speed) + weight_m * d``, ``d`` the straight-line metres from
    the rider (``x``, ``y``: float64[m]; ``speed``: its speed factor) to the site (``site_x``, ``site_y``:
    float64[S]); ``weight_m``: the cost of a metre in seconds of rider time. Ties go to the lower row.

    ``returning``: when given (and not ``all_busy``), of the busy riders that do not visit their site (no pickup
    there still to make) and accept an order only ``returning.quota[s]`` per site are offered: those with the
    smallest ``max(0, end_t - now)`` plus the same key, ``d`` measured from their route's last stop (see
    ``Returning``, also for the riders that accept none).
    ``rows``: ``(lo, hi)``, when only rows ``lo:hi`` can be online or busy (default: all); ``cache``: float64[m]
    arrays ``(d, x, y)`` kept from call to call (``new_distance_cache``), so that ``d`` is measured again only for
    riders who moved."""
    m = online.shape[0]
    lo, hi = rows if rows is not None else (0, m)
    d, at_x, at_y = cache if cache is not None else new_distance_cache(m)
    ret = returning if returning is not None else Returning.none(m, site_x.shape[0])
    return offered_rows(online, busy, rider_site.astype(np.int64), x, y, speed, site_x, site_y, onward_m,
                        quota.astype(np.int64), float(ref_speed_mps), float(weight_m), bool(all_busy), int(lo),
                        int(hi), d, at_x, at_y, ret.routes, ret.points, ret.end_t, float(ret.now),
                        ret.quota.astype(np.int64), ret.inert, bool(ret.drop_inert))  # fmt: skip


@dataclass(frozen=True)
class Returning:
    """What ``offered_riders`` needs to rank the busy riders returning to their site: the ``routes`` tuple
    (length, frozen, order, kind; ``Routes.as_tuple``), the orders' ``points`` (pick_x, pick_y, drop_x, drop_y),
    ``end_t`` (float64[m], when each route ends, up to date for the busy riders), ``now``, ``quota`` (int64[S],
    per site; -1: no limit), and ``inert`` (bool[m], the busy riders that accept no order: a full bag, or past
    their shift; none when omitted), which never take a returning rider's place and are left out when
    ``drop_inert``, else offered."""

    routes: tuple[I64, I64, I64, I64]
    points: tuple[F64, F64, F64, F64]
    end_t: F64
    now: float
    quota: I64
    inert: npt.NDArray[np.bool_] | None = None
    drop_inert: bool = False

    def __post_init__(self) -> None:
        if self.inert is None:
            object.__setattr__(self, "inert", np.zeros(self.end_t.shape[0], dtype=bool))

    @staticmethod
    def none(m: int, n_sites: int) -> Returning:
        """No limit: every busy rider of a site with a quota is offered."""
        z = np.zeros(0)
        zi = np.zeros(m, dtype=np.int64)
        routes = (zi, zi, np.zeros((m, 1), dtype=np.int64), np.zeros((m, 1), dtype=np.int64))
        return Returning(routes, (z, z, z, z), np.zeros(m), 0.0, np.full(n_sites, -1, dtype=np.int64))


def new_distance_cache(m: int) -> tuple[F64, F64, F64]:
    """An empty cache of m riders' distances to their sites for ``offered_riders``."""
    return np.zeros(m), np.full(m, np.nan), np.full(m, np.nan)
