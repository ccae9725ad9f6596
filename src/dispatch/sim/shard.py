"""From an order log to shards the loop can run: sites grouped, positions in metres, one frame per group.

Who may serve whom is the *shard mode* (``SHARD_MODES``, the scenario's ``shard`` key, ``dispatch simulate
--shard``): ``site`` (the default), a rider serves its home site only; ``city``, any site of its home city (the
sites' ``city`` column; a site without one is a city of its own); ``none``, any site of the log. The sites a rider
may serve form its *group*. Each group gets its own planar frame (WGS84 logs: the azimuthal equidistant projection
centred on the group's mean site position; planar logs: the log's metres, shifted to that centre), and the frames
are laid ``SITE_FRAME_GAP_M`` apart, far beyond any reach, so that no candidate ever pairs a rider with another
group's order. A shard holds whole groups, so its result is the same whatever groups share it, and the partition
into shards (and the number of workers) never changes a simulation's outcome.

In ``site`` mode the loop is told each rider's home site (``ShardDay.rider_site``) and offers a site's orders only
its own riders, by quota (``dispatch.sim.offer``); in the other modes it offers every online rider of the shard,
which costs more per tick the larger the group (``none`` over a country-wide log is one shard, and a projection
meant for one city: use ``city`` there).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dispatch.geo import ProfileTravelTime, Projection, SpeedProfile
from dispatch.sim.log import RIDERS_FILE, SHARD_MODES, OrderLog, TravelModel, site_index
from dispatch.sim.loop import DRAIN_S, ShardDay
from dispatch.state import OrderTable, RiderTable

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

SITE_FRAME_GAP_M = 1e6  # 1,000 km between group frames (far beyond any reach; 2,000 sites span 2e9 m)


@dataclass(frozen=True)
class ShardPlan:
    """Which sites each shard holds: ``shards[i]`` int64 site indices into the log's sites table (whole groups)."""

    shards: tuple[I64, ...]


def check_mode(mode: str) -> str:
    """``mode`` if it is one of ``SHARD_MODES``, else a ValueError naming them."""
    if mode not in SHARD_MODES:
        raise ValueError(f"shard: must be one of {', '.join(SHARD_MODES)}, got {mode!r}")
    return mode


def site_groups(log: OrderLog, mode: str) -> I64:
    """Each site's group (int64[S]), named by its first site row in id order (see the module's docstring)."""
    check_mode(mode)
    n = len(log.sites)
    by_id = np.argsort(log.sites.site_id, kind="stable").astype(np.int64)
    if mode == "site" or n == 0:
        return np.arange(n, dtype=np.int64)
    if mode == "none":
        return np.full(n, by_id[0], dtype=np.int64)
    city = np.asarray(log.sites.city).astype(str)
    rep = np.arange(n, dtype=np.int64)
    first: dict[str, int] = {}
    for s in by_id.tolist():
        name = city[s]
        if name:  # a site without a city is a city of its own
            rep[s] = first.setdefault(name, s)
    return rep


def plan_shards(log: OrderLog, n_shards: int, mode: str = "site", o_site: I64 | None = None) -> ShardPlan:
    """Groups in the id order of their first site, cut into ``min(n_shards, groups)`` consecutive runs holding
    about as many orders each (a shard's sites in row order). ``o_site``: ``order_sites(log)``, when the caller
    has it already.

    The outcome of a simulation does not depend on the partition (groups are independent), only its speed: every
    shard pays a fixed cost per tick, and a large shard's arrays outgrow the caches (``run.SHARD_ORDERS``)."""
    if n_shards < 1:
        raise ValueError(f"shards: must be >= 1, got {n_shards}")
    rep = site_groups(log, mode)
    by_id = np.argsort(log.sites.site_id, kind="stable").astype(np.int64)
    counts = np.bincount(order_sites(log) if o_site is None else o_site, minlength=len(log.sites))
    reps = [int(s) for s in by_id if rep[s] == s]  # the groups, by their first site's id
    members = {r: by_id[rep[by_id] == r] for r in reps} if mode != "site" else {r: np.array([r]) for r in reps}
    units = [members[r] for r in reps]
    cum = np.cumsum([int(counts[u].sum()) + u.shape[0] for u in units])  # + sites: an empty site weighs something
    n = len(units)
    k = min(n_shards, n)
    bounds = [0]
    for j in range(1, k):  # the j-th cut near j/k of the orders, leaving at least one group per later shard
        cut = int(np.searchsorted(cum, cum[-1] * j / k, side="left")) + 1
        bounds.append(min(max(cut, bounds[-1] + 1), n - (k - j)))
    bounds.append(n)
    return ShardPlan(tuple(np.sort(np.concatenate(units[a:b])).astype(np.int64) for a, b in itertools.pairwise(bounds)))


@dataclass(frozen=True)
class Frames:
    """The planar frames of a log's sites under a shard mode: ``group`` (int64[S], ``site_groups``), and per site
    the centre of its group's frame, ``cx``, ``cy`` (float64[S]; lng/lat degrees for WGS84 logs, metres for
    planar ones)."""

    group: I64
    cx: F64
    cy: F64

    @staticmethod
    def of(log: OrderLog, mode: str) -> Frames:
        group = site_groups(log, mode)
        x, y = np.asarray(log.sites.x, dtype=np.float64), np.asarray(log.sites.y, dtype=np.float64)
        n = group.shape[0]
        size = np.bincount(group, minlength=n)
        cx = np.bincount(group, weights=x, minlength=n) / np.maximum(size, 1)
        cy = np.bincount(group, weights=y, minlength=n) / np.maximum(size, 1)
        # A site alone in its group is its frame's centre exactly (not a mean of one, which is the same number).
        alone = size[group] == 1
        return Frames(group, np.where(alone, x, cx[group]), np.where(alone, y, cy[group]))

    def to_local(self, log: OrderLog, site: I64, x: F64, y: F64) -> tuple[F64, F64]:
        """Positions ``x``, ``y`` (the log's units) of things at sites ``site`` (rows), in their groups' frames,
        the frames laid side by side along x."""
        lx = np.empty_like(x)
        ly = np.empty_like(y)
        g = self.group[site]
        by_group = np.argsort(g, kind="stable")
        cuts = np.flatnonzero(np.diff(g[by_group])) + 1
        for sel in np.split(by_group, cuts) if site.shape[0] else []:
            s = int(site[sel[0]])
            if log.meta.coordinates == "wgs84":
                px, py = Projection(float(self.cy[s]), float(self.cx[s])).to_xy(y[sel], x[sel])
            else:
                px, py = x[sel] - self.cx[s], y[sel] - self.cy[s]
            lx[sel] = px + self.group[s] * SITE_FRAME_GAP_M
            ly[sel] = py
        return lx, ly

    def sites(self, log: OrderLog) -> tuple[F64, F64]:
        """Every site's position in its frame (float64[S] each); a site alone in its group at its frame's
        origin exactly."""
        n = self.group.shape[0]
        sx: F64 = self.group.astype(np.float64) * SITE_FRAME_GAP_M
        sy = np.zeros(n)
        shared = np.flatnonzero(np.bincount(self.group, minlength=n)[self.group] > 1)
        x, y = np.asarray(log.sites.x, np.float64)[shared], np.asarray(log.sites.y, np.float64)[shared]
        sx[shared], sy[shared] = self.to_local(log, shared, x, y)
        return sx, sy


def travel_arrays(model: TravelModel, utc_offset_s: float) -> tuple[object, ...]:
    """The kernels' travel tuple for a log's travel model."""
    if model.kind == "constant":
        profile = SpeedProfile.constant(model.speed_mps[0])
    else:
        profile = SpeedProfile(model.speed_mps, model.bin_s)
    round_up_s = 60.0 if model.round_up_minutes else 0.0
    provider = ProfileTravelTime(profile=profile, detour=model.detour, utc_offset_s=utc_offset_s, round_up_s=round_up_s)
    return provider.arrays()


def day_window(log: OrderLog, tick_s: float) -> tuple[float, float]:
    """The whole log's first tick (on the grid of ``tick_s`` from ``day_start``, at or before the first order or
    shift) and last tick (``DRAIN_S`` after the last order is placed): the same for every shard."""
    first = min(float(log.orders.placed_at.min(initial=np.inf)), float(log.riders.shift_start.min(initial=np.inf)))
    day0 = log.meta.day_start
    if not np.isfinite(first):
        return day0, day0
    start = day0 + np.floor((first - day0) / tick_s) * tick_s
    last = float(log.orders.placed_at.max(initial=first))
    return float(start), last + DRAIN_S


def order_sites(log: OrderLog) -> I64:
    """Each order's site row in ``log.sites`` (int64[n])."""
    return site_index(log.sites, log.orders.site_id)


@dataclass(frozen=True)
class ShardRows:
    """Which log rows a shard holds, in the shard's order: ``orders`` int64 rows of ``log.orders`` (sorted by
    placed_at, as the log) and their site rows ``order_site``; ``riders`` rows of ``log.riders`` (sorted by
    shift_start, ties in log order) and ``rider_site``."""

    orders: I64
    order_site: I64
    riders: I64
    rider_site: I64


def shard_rows(log: OrderLog, site_idx: I64, o_site: I64 | None = None) -> ShardRows:
    """The rows of the sites ``site_idx`` (indices into ``log.sites``); ``o_site``: ``order_sites(log)`` when the
    caller has it (it is the costly part on a large log)."""
    member = np.zeros(len(log.sites), dtype=bool)
    member[site_idx] = True
    if o_site is None:
        o_site = order_sites(log)
    o_sel = np.flatnonzero(member[o_site]).astype(np.int64)  # stays sorted by placed_at
    r_site = site_index(log.sites, log.riders.site_id, file=RIDERS_FILE)
    r_sel = np.flatnonzero(member[r_site]).astype(np.int64)
    # Riders by shift start (ties in log order): the riders on shift at any moment are then a band of rows, so
    # the loop's per-rider arrays are read where they are dense.
    r_sel = r_sel[np.argsort(log.riders.shift_start[r_sel], kind="stable")]
    return ShardRows(o_sel, o_site[o_sel], r_sel, r_site[r_sel])


def build_shard(
    log: OrderLog, site_idx: I64, window: tuple[float, float], o_site: I64 | None = None, mode: str = "site"
) -> ShardDay:
    """The ShardDay of the sites ``site_idx`` (indices into ``log.sites``; whole groups of ``mode``), ticking over
    ``window`` (``day_window``); ``o_site`` as in ``shard_rows``."""
    sites = log.sites
    # A group's frame is named by its first site's row in the log (not its place in the shard), so its
    # coordinates, and every float computed from them, are the same whatever shard it is in.
    frames = Frames.of(log, mode)
    rows = shard_rows(log, np.sort(site_idx), o_site)
    o_sel, r_sel, os_, rs_ = rows.orders, rows.riders, rows.order_site, rows.rider_site
    dx, dy = frames.to_local(log, os_, log.orders.drop_x[o_sel], log.orders.drop_y[o_sel])
    site_x, site_y = frames.sites(log)
    orders = OrderTable.build(
        pick_x=site_x[os_],
        pick_y=site_y[os_],
        drop_x=dx,
        drop_y=dy,
        site=os_,
        ready=log.orders.ready_at[o_sel],
        promised=log.orders.promised_by[o_sel],
        size=log.orders.size[o_sel].astype(np.int64),
        service_pick=sites.service_s[os_],
        service_drop=log.orders.service_drop_s[o_sel],
        placed=log.orders.placed_at[o_sel],
    )
    sx, sy = frames.to_local(log, rs_, log.riders.start_x[r_sel], log.riders.start_y[r_sel])
    riders = RiderTable.build(
        x=sx,
        y=sy,
        avail=log.riders.shift_start[r_sel],
        shift_start=log.riders.shift_start[r_sel],
        shift_end=log.riders.shift_end[r_sel],
        capacity=log.riders.capacity[r_sel].astype(np.int64),
        speed=log.riders.speed_factor[r_sel],
        online=np.zeros(r_sel.shape[0], dtype=bool),
    )
    return ShardDay(
        orders=orders,
        order_id=log.orders.order_id[o_sel].astype(np.int64),
        riders=riders,
        rider_id=log.riders.rider_id[r_sel].astype(np.int64),
        travel=travel_arrays(log.meta.travel, log.meta.utc_offset_s),
        start=window[0],
        end=window[1],
        rider_site=rs_.astype(np.int64) if mode == "site" else None,
    )
