"""Promise quotes and admission for hour-level delivery: which site can deliver to an address, and by when.

:class:`PromiseEngine` answers ``quote(lat, lng, size, now)`` from a per-site summary that ``update`` rebuilds
after each dispatch tick (so a quote costs one STRtree query plus a little arithmetic per covering site):

- the **riders in reach** of each site: every rider that is online (or whose shift starts within
  ``shift_lookahead_min``) is counted for the site nearest the end of its route, when within ``reach_m``; it is
  *free at the site* at the end of its route plus the ride back there (never after its shift end: a rider takes
  no pickup after it);
- the site's **backlog**: orders waiting for a rider (``pending``).

A new order joins the back of the site's queue. The waiting orders are served ``batch_orders`` at a time by the
riders in the order they are free, each rider's later trips ``trip_min`` apart, so the new order's pickup starts
at ``max(ready, the free time of the rider its place in the queue falls to)`` with ``ready = now + prep_min``.
Its estimated delivery (``eta``) adds the pickup service, the ride from the site to the address (the travel
model, departing then), ``batch_extra_min`` for the other drop-offs of the bag and ``dropoff_service_min``. The
delivery time is taken as normal around the estimate with standard deviation ``sigma_min + sigma_frac x (eta -
now)``; the on-time probability of a deadline is the normal CDF there.

Options: every tier (or slot) whose deadline is at or after the estimate and whose on-time probability is at least
``min_on_time_probability``, earliest first, over every covering site. **Admission**: a busy site's estimate moves
later, so its first option is a later tier than with an empty queue (``deferred``); beyond the last tier, or with
more than ``max_wait_per_rider`` waiting orders per rider in reach, or with no rider in reach, the site offers
nothing (``SATURATED``). A promise is never earlier than the estimate, hence never earlier than the pickup
service plus the ride allow.

**Batches.** :meth:`PromiseEngine.quote_sites_xy` quotes k orders, each at a given site, as if each were quoted
with ``quote_xy`` and admitted in turn (the simulator's path): a vectorised zone test
(:meth:`~dispatch.zones.SiteZones.contains_xy`) and one Numba kernel (``dispatch.kernels.promise``) that walks the
orders in sequence, so a burst at one site sees its own queue grow. ``update`` evaluates only the routes of the riders
that count, and keeps each rider's nearest site with the point it was computed for, so that beyond a few boolean
masks over the whole table its work grows with the riders on shift and the points that moved, not the day's fleet.

Thread safety: ``update`` builds a new immutable :class:`SiteSummary` and swaps it in with one attribute
assignment, and ``set_params`` swaps the parameters the same way; ``quote`` reads each reference once at its start.
So ``update``, ``set_params`` and ``quote`` may run on different threads without a lock (a quote sees either the old
or the new summary, never a mix). ``update`` calls themselves must not overlap (one dispatch loop calls it).

Indices: ``orders.site`` must index the engine's sites (``PromiseSites`` order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from dispatch.geo import TravelArrays, TravelTime
from dispatch.kernels import promise as kp
from dispatch.kernels.route import MIXED, evaluate_routes
from dispatch.kernels.travel import pairwise_seconds
from dispatch.promise_params import (
    PROMISE_MODES,
    DeclineReason,
    PromiseParams,
    Quote,
    QuoteOption,
    UnknownSiteError,
)
from dispatch.state import OrderTable, RiderTable, Routes
from dispatch.zones import SiteZones

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = [
    "PROMISE_MODES",
    "DeclineReason",
    "PromiseEngine",
    "PromiseParams",
    "PromiseSites",
    "Quote",
    "QuoteOption",
    "SiteQuotes",
    "SiteSummary",
    "UnknownSiteError",
]

_SQRT2 = math.sqrt(2.0)
_WEIGHTS = np.array([1.0, 0.0, 0.0], dtype=np.float64)  # evaluation weights: only times are read
_MINUS1 = np.full(1, -1, dtype=np.int64)
_ONE = np.ones(1, dtype=np.float64)


@dataclass(frozen=True)
class PromiseSites:
    """n sites: ``keys`` (their ids, any hashable: proto strings, log integers), positions ``x``, ``y``
    (float64[n], projected metres) and ``service_s`` (float64[n], seconds per pickup stop)."""

    keys: tuple[Any, ...]
    x: F64
    y: F64
    service_s: F64

    @staticmethod
    def build(keys: Sequence[Any], x: npt.ArrayLike, y: npt.ArrayLike, service_s: npt.ArrayLike = 0.0) -> PromiseSites:
        """Validate: one key, position and service time per site; keys unique, numbers finite, service >= 0."""
        ks = tuple(keys)
        n = len(ks)
        xs = np.array(x, dtype=np.float64).reshape(-1)
        ys = np.array(y, dtype=np.float64).reshape(-1)
        sv = np.array(np.broadcast_to(np.asarray(service_s, dtype=np.float64), (n,)))
        if xs.shape != (n,) or ys.shape != (n,):
            raise ValueError(f"sites: expected {n} positions (one per key), got x {xs.shape}, y {ys.shape}")
        if len(set(ks)) != n:
            raise ValueError("sites.keys: site ids must be unique")
        if not (np.isfinite(xs).all() and np.isfinite(ys).all() and np.isfinite(sv).all()):
            raise ValueError("sites: positions and service times must be finite")
        if (sv < 0).any():
            raise ValueError("sites.service_s: must be >= 0")
        for a in (xs, ys, sv):
            a.setflags(write=False)
        return PromiseSites(ks, xs, ys, sv)

    @property
    def n(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class SiteSummary:
    """What quotes need of the state, per site (immutable; rebuilt by ``PromiseEngine.update``).

    ``at``: the state's time (epoch s); ``free_ptr``: int64[n + 1] and ``free_at``: float64[R], CSR rows of the
    times (epoch s, ascending per site; only as far as the next quotes read when ``update`` was told them) at which
    each site's riders in reach are free at the site; ``waiting``:
    int64[n], orders waiting for a rider; ``max_capacity``: int64[n], the largest capacity among the riders in
    reach (0 = none); ``admitted``: int64[n], orders placed since (``PromiseEngine.admit``, or a batch quote), the
    one mutable array: they join the queue until the next update counts them as waiting."""

    at: float
    free_ptr: I64
    free_at: F64
    waiting: I64
    max_capacity: I64
    admitted: I64

    @staticmethod
    def empty(n: int, at: float = -math.inf) -> SiteSummary:
        zeros = np.zeros(n, dtype=np.int64)
        return SiteSummary(at, np.zeros(n + 1, dtype=np.int64), np.zeros(0), zeros, zeros.copy(), zeros.copy())


@dataclass(frozen=True)
class SiteQuotes:
    """The answers of :meth:`PromiseEngine.quote_sites_xy` for k orders: ``promised_by`` and ``eta`` (float64[k],
    epoch s: the first option's deadline and estimate, NaN when declined), ``declined`` (int64[k], the
    ``DeclineReason`` value, 0 when accepted) and ``deferred`` (bool[k], the first option's ``deferred``)."""

    promised_by: F64
    eta: F64
    declined: I64
    deferred: npt.NDArray[np.bool_]


def quote_params_array(p: PromiseParams) -> tuple[F64, F64]:
    """The promise parameters as the batch kernel reads them: ``(params, tiers)``, float64[N_PARAMS] (indices
    ``dispatch.kernels.promise.Q_*``) and float64[T] (the tiers in minutes)."""
    out = np.zeros(kp.N_PARAMS, dtype=np.float64)
    out[kp.Q_SLOTS] = 0.0 if p.mode == "tiers" else 1.0
    out[kp.Q_PREP_S] = 60.0 * p.prep_min
    out[kp.Q_TRIP_MIN] = p.trip_min
    out[kp.Q_MAX_WAIT] = p.max_wait_per_rider
    out[kp.Q_SIGMA_S] = 60.0 * p.sigma_min
    out[kp.Q_SIGMA_FRAC] = p.sigma_frac
    out[kp.Q_MIN_PROB] = p.min_on_time_probability
    out[kp.Q_EXTRA_S] = 60.0 * (p.batch_extra_min + p.dropoff_service_min)
    out[kp.Q_SLOT_S] = 60.0 * p.slot_length_min
    out[kp.Q_HORIZON_S] = 60.0 * p.slot_horizon_min
    return out, np.asarray(p.tiers_min, dtype=np.float64)


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / _SQRT2))


class PromiseEngine:
    """Quotes for n sites (see the module docstring).

    Args:
        sites: the sites (positions in the zones' projected metres).
        zones: their service zones, numbered like the sites.
        travel: the travel model (a ``TravelTime`` provider or its ``arrays()`` tuple; profile mode: matrix
            locations are not used).
        params: the promise parameters.
    """

    def __init__(
        self,
        sites: PromiseSites,
        zones: SiteZones,
        travel: TravelTime | TravelArrays | tuple[Any, ...],
        params: PromiseParams | None = None,
    ) -> None:
        if zones.n_sites != sites.n:
            raise ValueError(f"zones: {zones.n_sites} zones for {sites.n} sites")
        self.sites = sites
        self.zones = zones
        self._travel: tuple[Any, ...] = tuple(travel.arrays() if isinstance(travel, TravelTime) else travel)
        self._params = params or PromiseParams()
        self._index = {k: i for i, k in enumerate(sites.keys)}
        self._site_tree = cKDTree(np.column_stack([sites.x, sites.y])) if sites.n else None
        self._clear = self._clear_radii()
        self._summary = SiteSummary.empty(sites.n)
        self._kernel_params: tuple[PromiseParams | None, F64, F64] = (None, np.zeros(0), np.zeros(0))
        # update(): the nearest site of each rider row's free point, by the point it was computed for
        self._near_cache: tuple[F64, F64, I64, F64] = (
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, dtype=np.int64),
            np.zeros(0),
        )

    # -- state ----------------------------------------------------------------------------------------------------

    @property
    def params(self) -> PromiseParams:
        return self._params

    def set_params(self, params: PromiseParams) -> None:
        """Swap in new parameters (already validated by their constructor); quotes from now on use them."""
        if not isinstance(params, PromiseParams):
            raise TypeError(f"params: expected PromiseParams, got {type(params).__name__}")
        self._params = params

    @property
    def summary(self) -> SiteSummary:
        return self._summary

    def site_index(self, site_id: Any) -> int:
        """The index of the site with key ``site_id``; UnknownSiteError when there is none."""
        try:
            return self._index[site_id]
        except (KeyError, TypeError):
            raise UnknownSiteError(f"site_id: unknown site {site_id!r}") from None

    def update(
        self,
        orders: OrderTable,
        riders: RiderTable,
        routes: Routes,
        now: float,
        pending: npt.ArrayLike | None = None,
        route_end: F64 | None = None,
        quotes: I64 | None = None,
        band: tuple[int, int] | None = None,
        home: I64 | None = None,
    ) -> SiteSummary:
        """Rebuild the per-site summary from the state after a dispatch tick, and swap it in.

        Args:
            orders: the orders the routes refer to (``site`` indexes the engine's sites).
            riders: m riders; ``online`` and the shift decide who counts (see the module docstring).
            routes: their routes (m rows).
            now: the state's time, epoch seconds.
            pending: int64[q], orders waiting for a rider (default: every order in no route, so pass only live
                orders then).
            route_end: float64[m], when each rider's route ends (``evaluate_routes``' ``tot[0]``), for a caller
                that has it up to date (the simulator); default: the routes are evaluated here.
            quotes: int64[n_sites], for a caller that knows it: the most orders it will quote at each site
                before the next update (the simulator: the orders placed in the tick). A site's free times are
                then put in order only as far as those quotes can read (``(waiting + quotes) // batch_orders + 1``
                of them; the others follow in rider order), which spares sorting every rider of a busy shard
                each tick; quoting more orders than that before the next update would read unsorted times.
                Default: every site's times in order.
            band: ``(lo, hi)``, for a caller that knows that only riders ``lo:hi`` can count (online or
                starting within the lookahead; the simulator, its riders in shift-start order); default: all.
            home: int64[m], the site each rider's route usually ends nearest (-1 or out of range: none), for a
                caller that knows it (the simulator: a rider serves its home site only). A point closer to it than
                half its distance to any other site is known to be its without asking the k-d tree; the answer is
                the same either way.

        Returns:
            The new summary.
        """
        n_sites = self.sites.n
        m = riders.m
        rt = tuple(a[:m] for a in routes.as_tuple())
        known = route_end
        if known is None:  # evaluate the routes of the riders that count
            idx, _ = self._counted(riders, now)
            rows = idx[routes.length[idx] > 0]
            known = np.zeros(m)
            if rows.size:
                sub_riders = tuple(a[rows] for a in riders.as_tuple())
                sub_routes = tuple(a[rows] for a in rt)
                known[rows] = evaluate_routes(orders.as_tuple(), sub_riders, sub_routes, self._travel, _WEIGHTS,
                                              MIXED)[1][0]  # fmt: skip
        in_route = np.zeros(orders.n if pending is None else 0, dtype=bool)
        if pending is None:
            rows = np.flatnonzero(routes.length[:m] > 0)
            live = np.arange(routes.width)[None, :] < routes.length[rows, None]
            in_route[routes.order[rows][live]] = True
        pend = np.flatnonzero(~in_route) if pending is None else np.asarray(pending, dtype=np.int64)
        sites_of = orders.site[pend]
        sites_of = sites_of[(sites_of >= 0) & (sites_of < n_sites)]
        waiting = np.bincount(sites_of, minlength=n_sites).astype(np.int64)[:n_sites]
        cx, cy, _near, _dist = self._near_arrays(m)
        lookahead = now + 60.0 * self._params.shift_lookahead_min
        idx, end_t, end_x, end_y, stale = kp.route_ends(
            riders.as_tuple(), riders.online, rt, orders.pick_x, orders.pick_y, orders.drop_x, orders.drop_y,
            np.ascontiguousarray(known, dtype=np.float64), float(now), float(lookahead), cx, cy, *(band or (0, m)),
        )  # fmt: skip
        return self._rebuild(riders, idx, end_t, end_x, end_y, waiting, now, quotes, stale, home)

    def update_from_ends(
        self, riders: RiderTable, end_t: F64, end_x: F64, end_y: F64, waiting: I64, now: float
    ) -> SiteSummary:
        """``update`` from where and when every route ends, already known: ``end_t``, ``end_x``, ``end_y``
        (float64[m]; an empty route ends at the rider's position at ``max(avail, now)``, as ``update`` takes it)
        and the orders waiting per site (int64[n_sites]). The service's dispatch loop gets these from its policy
        worker (``dispatch.service.mirror``), which holds the routes."""
        n_sites = self.sites.n
        if waiting.shape != (n_sites,):
            raise ValueError(f"waiting: expected shape ({n_sites},), got {waiting.shape}")
        idx, starting = self._counted(riders, now)
        t = np.where(starting[idx], np.maximum(end_t[idx], riders.shift_start[idx]), end_t[idx])
        return self._rebuild(riders, idx, t, end_x[idx], end_y[idx], waiting.copy(), now, None, None)

    def _counted(self, riders: RiderTable, now: float) -> tuple[I64, npt.NDArray[np.bool_]]:
        """The rows of the riders that count (online, or starting within the lookahead, and in shift) and the
        bool[m] mask of those starting later."""
        lookahead = now + 60.0 * self._params.shift_lookahead_min
        starting = ~riders.online & (riders.shift_start > now) & (riders.shift_start <= lookahead)
        idx = np.flatnonzero((riders.online | starting) & (riders.shift_end > now))
        return idx, starting

    def _rebuild(
        self, riders: RiderTable, idx: I64, end_t: F64, end_x: F64, end_y: F64, waiting: I64, now: float,
        quotes: I64 | None, stale: I64 | None, home: I64 | None = None,
    ) -> SiteSummary:  # fmt: skip
        """The summary of riders ``idx`` whose routes end at (``end_x``, ``end_y``) at ``end_t`` (float64[k], a
        starting rider's not before its shift start); ``quotes`` as in ``update``; ``stale``: positions in
        ``idx`` whose end point may differ from the one their nearest site was found for (None: check them all);
        ``home`` as in ``update``."""
        p = self._params
        n_sites = self.sites.n
        if self._site_tree is None or idx.size == 0:
            ptr = np.zeros(n_sites + 1, dtype=np.int64)
            free_at = np.zeros(0)
            max_cap = np.zeros(n_sites, dtype=np.int64)
        else:
            near, dist = self._nearest_sites(riders.m, idx, end_x, end_y, stale, home)
            if quotes is None:
                need = np.full(n_sites, idx.shape[0] + 1, dtype=np.int64)
            else:
                need = (waiting + np.asarray(quotes, dtype=np.int64)) // p.batch_orders + 1
            ptr, free_at, max_cap = kp.site_free_times(
                self._travel, self.sites.x, self.sites.y, float(p.reach_m), idx, end_t, end_x, end_y, near, dist,
                riders.speed, riders.shift_end, riders.capacity, need,
            )  # fmt: skip
        for a in (ptr, free_at, waiting, max_cap):
            a.setflags(write=False)
        summary = SiteSummary(float(now), ptr, free_at, waiting, max_cap, np.zeros(n_sites, dtype=np.int64))
        self._summary = summary  # one reference swap: quotes see the old or the new summary, whole
        return summary

    def _near_arrays(self, m: int) -> tuple[F64, F64, I64, F64]:
        """The nearest-site cache, per rider row (at least m rows): the point each answer was found for (NaN:
        none yet), the nearest site and its distance."""
        cx, cy, cnear, cdist = self._near_cache
        if cx.shape[0] < m:
            grown = (np.full(m, np.nan), np.full(m, np.nan), np.zeros(m, dtype=np.int64), np.zeros(m))
            for old, new in zip((cx, cy, cnear, cdist), grown, strict=True):
                new[: old.shape[0]] = old
            self._near_cache = grown
        return self._near_cache

    def _clear_radii(self) -> F64:
        """Per site, a distance within which a point's nearest site is that one: half the distance to the nearest
        other site, less one part in 1e9 (any other site is then farther, whatever the rounding); +inf for a
        lone site."""
        n = self.sites.n
        if n < 2 or self._site_tree is None:
            return np.full(n, np.inf)
        d, _ = self._site_tree.query(np.column_stack([self.sites.x, self.sites.y]), k=2)
        out: F64 = 0.5 * d[:, 1] * (1.0 - 1e-9)
        return out

    def _nearest_sites(
        self, m: int, idx: I64, x: F64, y: F64, stale: I64 | None, home: I64 | None = None
    ) -> tuple[I64, F64]:
        """The nearest site to each point ``(x, y)`` (float64[k]) of riders ``idx`` (int64[k], rows of a table of m),
        and its distance, as int64[m] and float64[m] arrays by rider row (valid at the rows of ``idx``). The answer
        per rider row is kept with the point it was asked for, so that only the riders whose point moved since the
        last update query the tree again (a point's answer depends on the point alone, whatever rider it belongs
        to); ``stale``: those riders' positions in ``idx`` when the caller found them (None: compared here);
        ``home``: as in ``update``."""
        assert self._site_tree is not None
        cx, cy, cnear, cdist = self._near_arrays(m)
        if stale is None:
            stale = np.flatnonzero((cx[idx] != x) | (cy[idx] != y))
        if stale.size and home is not None:
            rows = idx[stale]
            hit, d = kp.near_home(x[stale], y[stale], rows, home, self.sites.x, self.sites.y, self._clear)
            known = rows[hit]
            cx[known], cy[known] = x[stale[hit]], y[stale[hit]]
            cnear[known], cdist[known] = home[known], d[hit]
            stale = stale[~hit]
        if stale.size:
            d, nr = self._site_tree.query(np.column_stack([x[stale], y[stale]]))
            rows = idx[stale]
            cx[rows], cy[rows] = x[stale], y[stale]
            cnear[rows], cdist[rows] = nr, d
        return cnear, cdist

    def admit(self, site: int) -> None:
        """Count an order just placed at site index ``site`` in its queue until the next ``update`` (optional: for
        a caller that places orders between updates, such as the simulator, so that a burst of orders at one site
        sees its own queue grow)."""
        self._summary.admitted[site] += 1

    # -- quotes ---------------------------------------------------------------------------------------------------

    def quote(self, lat: float, lng: float, size: int, now: float, site_id: Any = None) -> Quote:
        """Options for delivering ``size`` units to ``(lat, lng)`` (WGS84 degrees) quoted at ``now`` (epoch s),
        from every site whose zone covers the address, or from ``site_id`` only.

        Raises:
            ValueError: bad coordinates (named ``address``), size <= 0 or a non-finite ``now``.
            UnknownSiteError: ``site_id`` is not a site of the engine.
        """
        site = None if site_id is None or site_id == "" else self.site_index(site_id)
        x, y = self.zones.projection.to_xy(lat, lng, "address")
        return self.quote_xy(float(x), float(y), size, now, site)

    def quote_xy(self, x: float, y: float, size: int, now: float, site: int | None = None) -> Quote:
        """As :meth:`quote`, for a point in projected metres and a site index (or None: every covering site)."""
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size <= 0:
            raise ValueError(f"size: must be an integer > 0, got {size!r}")
        if not math.isfinite(now):
            raise ValueError(f"now: must be finite, got {now!r}")
        summary = self._summary  # read once: update() may swap it meanwhile
        params = self._params
        covering = self.zones.covering_xy(x, y)
        if site is not None:
            if not 0 <= site < self.sites.n:
                raise UnknownSiteError(f"site: index {site} out of range [0, {self.sites.n})")
            if not np.any(covering == site):
                key = self.sites.keys[site]
                return Quote(now, (), DeclineReason.OUTSIDE_SITE_ZONE, f"the address is outside site {key!r}'s zone")
            candidates: Sequence[int] = (site,)
        else:
            if covering.size == 0:
                return Quote(now, (), DeclineReason.OUTSIDE_EVERY_ZONE, "the address is outside every service zone")
            candidates = covering.tolist()
        options: list[QuoteOption] = []
        too_large = 0
        for s in candidates:
            if size > summary.max_capacity[s] and summary.free_ptr[s + 1] > summary.free_ptr[s]:
                too_large += 1
                continue
            options.extend(self._site_options(summary, params, int(s), x, y, now))
        if not options:
            if too_large == len(candidates):
                return Quote(now, (), DeclineReason.TOO_LARGE, f"size {size} exceeds every rider's capacity")
            return Quote(now, (), DeclineReason.SATURATED, "no promise within the offered tiers would be kept")
        options.sort(key=lambda o: (o.promised_by, -o.on_time_prob, o.site))
        return Quote(now, tuple(options), None, "")

    def quote_sites_xy(
        self, x: npt.ArrayLike, y: npt.ArrayLike, size: npt.ArrayLike, now: npt.ArrayLike, site: npt.ArrayLike
    ) -> SiteQuotes:
        """Quote k orders placed in sequence, order i for ``size[i]`` units to ``(x[i], y[i])`` (projected metres) at
        ``now[i]`` (epoch s) from site index ``site[i]`` only, each accepted order admitted before the next is
        quoted: exactly ``quote_xy(x[i], y[i], size[i], now[i], site[i])`` then ``admit(site[i])`` when it offers
        something, for i in order, the customer taking the first option.

        Args:
            x, y: float64[k]; size: int64[k] (> 0); now: float64[k]; site: int64[k] (site indices).

        Returns:
            SiteQuotes (arrays of k).

        Raises:
            ValueError: arrays of different lengths, non-finite positions or times, a size that is not an integer
                > 0 (naming the first bad order).
            UnknownSiteError: a site index out of range.
        """
        xs = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
        k = xs.shape[0]
        ys = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
        ts = np.ascontiguousarray(now, dtype=np.float64).reshape(-1)
        raw_size, raw_site = np.asarray(size).reshape(-1), np.asarray(site).reshape(-1)
        for name, a in (("y", ys), ("size", raw_size), ("now", ts), ("site", raw_site)):
            if a.shape != (k,):
                raise ValueError(f"{name}: expected {k} values (one per order, like x), got {a.shape[0]}")
        for name, a in (("now", ts), ("x", xs), ("y", ys)):
            bad = ~np.isfinite(a)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"{name}: must be finite, got {a[i]!r} (order {i})")
        if (k and not np.issubdtype(raw_size.dtype, np.integer)) or raw_size.dtype == np.bool_:
            raise ValueError(f"size: must be integers > 0, got dtype {raw_size.dtype}")
        if (raw_size <= 0).any():
            i = int(np.argmax(raw_size <= 0))
            raise ValueError(f"size: must be an integer > 0, got {raw_size[i]!r} (order {i})")
        if (k and not np.issubdtype(raw_site.dtype, np.integer)) or raw_site.dtype == np.bool_:
            raise ValueError(f"site: must be site indices (integers), got dtype {raw_site.dtype}")
        out_of_range = (raw_site < 0) | (raw_site >= self.sites.n)
        if out_of_range.any():
            i = int(np.argmax(out_of_range))
            raise UnknownSiteError(f"site: index {raw_site[i]} out of range [0, {self.sites.n}) (order {i})")
        sizes = np.ascontiguousarray(raw_size, dtype=np.int64)
        sites = np.ascontiguousarray(raw_site, dtype=np.int64)
        summary = self._summary  # read once: update() may swap it meanwhile
        params = self._params
        cached = self._kernel_params  # read once, as the params: set_params() may swap them meanwhile
        if cached[0] is not params:
            cached = (params, *quote_params_array(params))
            self._kernel_params = cached
        _, par, tiers = cached
        covered = self.zones.contains_xy(sites, xs, ys)
        promised_by, eta, declined, deferred = kp.quote_site_orders(
            self._travel,
            self.sites.x,
            self.sites.y,
            self.sites.service_s,
            summary.free_ptr,
            summary.free_at,
            summary.waiting,
            summary.max_capacity,
            summary.admitted,
            params.batch_orders,
            par,
            tiers,
            xs,
            ys,
            sizes,
            ts,
            sites,
            covered,
        )
        return SiteQuotes(promised_by, eta, declined, deferred)

    def _site_options(
        self, summary: SiteSummary, p: PromiseParams, s: int, x: float, y: float, now: float
    ) -> list[QuoteOption]:
        lo, hi = int(summary.free_ptr[s]), int(summary.free_ptr[s + 1])
        n_riders = hi - lo
        if n_riders == 0:
            return []  # no rider in reach: saturated
        waiting = int(summary.waiting[s]) + int(summary.admitted[s])
        if waiting > p.max_wait_per_rider * n_riders:
            return []
        ready = now + 60.0 * p.prep_min
        j = waiting // p.batch_orders  # the rider trip the new order's place in the queue falls to
        rider_free = float(summary.free_at[lo + j % n_riders]) + (j // n_riders) * 60.0 * p.trip_min
        start = max(ready, rider_free)
        eta = self._eta(s, x, y, start, p)
        eta0 = self._eta(s, x, y, ready, p) if start > ready else eta
        first0 = self._deadlines(eta0, now, p)
        if not first0:
            return []  # even with an empty queue no tier would be kept: out of reach of the promises
        deadlines = self._deadlines(eta, now, p)
        # Deferred: the busy site cannot offer the first deadline it would offer with an empty queue.
        deferred = bool(deadlines) and deadlines[0][0] > first0[0][0]
        key = self.sites.keys[s]
        return [QuoteOption(key, s, promised, eta, prob, tier, deferred) for promised, tier, prob in deadlines]

    def _eta(self, s: int, x: float, y: float, start: float, p: PromiseParams) -> float:
        """The estimated delivery of an order picked up at site s from ``start``, dropped at (x, y)."""
        sx, sy = self.sites.x[s : s + 1], self.sites.y[s : s + 1]
        depart = start + float(self.sites.service_s[s])
        ride = pairwise_seconds(
            self._travel, sx, sy, _MINUS1, np.full(1, x), np.full(1, y), _MINUS1, np.full(1, depart), _ONE
        )
        return depart + float(ride[0]) + 60.0 * (p.batch_extra_min + p.dropoff_service_min)

    @staticmethod
    def _deadlines(eta: float, now: float, p: PromiseParams) -> list[tuple[float, float, float]]:
        """``(promised_by, tier_s, on_time_prob)`` of every tier or slot that the estimate ``eta`` keeps with the
        required probability, earliest first."""
        sigma = 60.0 * p.sigma_min + p.sigma_frac * max(0.0, eta - now)
        out = []
        if p.mode == "tiers":
            for t in p.tiers_min:
                promised = now + 60.0 * t
                if promised >= eta:
                    prob = _phi((promised - eta) / sigma)
                    if prob >= p.min_on_time_probability:
                        out.append((promised, 60.0 * t, prob))
        else:
            length = 60.0 * p.slot_length_min
            end = math.floor(now / length) * length + length
            last = now + 60.0 * p.slot_horizon_min
            while end <= last:
                if end >= eta:
                    prob = _phi((end - eta) / sigma)
                    if prob >= p.min_on_time_probability:
                        out.append((end, length, prob))
                end += length
        return out
