"""From an order log to shards the loop can run: sites grouped, positions in metres, one frame per site.

Sites are independent: a rider serves its home site only. Each site gets its own planar frame (WGS84 logs: the
azimuthal equidistant projection centred on the site; planar logs: the log's metres, shifted), and the frames
are laid ``SITE_FRAME_GAP_M`` apart, far beyond any reach, so that no candidate ever pairs a rider with another
site's order. That makes a shard's result the same whatever sites share it, so the partition into shards (and the
number of workers) never changes a simulation's outcome.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dispatch.geo import ProfileTravelTime, Projection, SpeedProfile
from dispatch.sim.log import RIDERS_FILE, OrderLog, TravelModel, site_index
from dispatch.sim.loop import DRAIN_S, ShardDay
from dispatch.state import OrderTable, RiderTable

I64 = npt.NDArray[np.int64]

SITE_FRAME_GAP_M = 1e6  # 1,000 km between site frames (far beyond any reach; 2,000 sites span 2e9 m)


class UnsupportedLogError(ValueError):
    """A log asks for something the simulator does not do yet; the message says what."""


@dataclass(frozen=True)
class ShardPlan:
    """Which sites each shard holds: ``shards[i]`` int64 site indices into the log's sites table."""

    shards: tuple[I64, ...]


def plan_shards(log: OrderLog, n_shards: int) -> ShardPlan:
    """Sites in id order, cut into ``min(n_shards, sites)`` consecutive groups holding about as many orders each.

    The outcome of a simulation does not depend on the partition (sites are independent), only its speed: every
    shard pays a fixed cost per tick, and a large shard's arrays outgrow the caches (``run.SHARD_ORDERS``)."""
    if n_shards < 1:
        raise ValueError(f"shards: must be >= 1, got {n_shards}")
    order = np.argsort(log.sites.site_id, kind="stable").astype(np.int64)
    counts = np.bincount(site_index(log.sites, log.orders.site_id), minlength=len(log.sites))[order]
    cum = np.cumsum(counts + 1)  # +1: a site without orders still weighs something
    n = order.shape[0]
    k = min(n_shards, n)
    bounds = [0]
    for j in range(1, k):  # the j-th cut near j/k of the orders, leaving at least one site per later shard
        cut = int(np.searchsorted(cum, cum[-1] * j / k, side="left")) + 1
        bounds.append(min(max(cut, bounds[-1] + 1), n - (k - j)))
    bounds.append(n)
    return ShardPlan(tuple(order[a:b] for a, b in itertools.pairwise(bounds)))


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


def build_shard(log: OrderLog, site_idx: I64, window: tuple[float, float], o_site: I64 | None = None) -> ShardDay:
    """The ShardDay of the sites ``site_idx`` (indices into ``log.sites``), ticking over ``window``
    (``day_window``); ``o_site`` as in ``shard_rows``."""
    sites = log.sites
    # A site's frame is its row in the log (not its place in the shard), so its coordinates, and every float
    # computed from them, are the same whatever shard it is in.
    frame = np.arange(len(sites), dtype=np.int64)
    rows = shard_rows(log, np.sort(site_idx), o_site)
    o_sel, r_sel, os_, rs_ = rows.orders, rows.riders, rows.order_site, rows.rider_site

    def to_local(site: I64, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[np.ndarray, np.ndarray]:
        """Positions in each site's own frame, the frames laid side by side along x."""
        lx = np.empty_like(x)
        ly = np.empty_like(y)
        by_site = np.argsort(site, kind="stable")
        cuts = np.flatnonzero(np.diff(site[by_site])) + 1
        for sel in np.split(by_site, cuts) if site.shape[0] else []:
            s = int(site[sel[0]])
            if log.meta.coordinates == "wgs84":
                proj = Projection(float(sites.y[s]), float(sites.x[s]))
                px, py = proj.to_xy(y[sel], x[sel])
            else:
                px, py = x[sel] - sites.x[s], y[sel] - sites.y[s]
            lx[sel] = px + frame[s] * SITE_FRAME_GAP_M
            ly[sel] = py
        return lx, ly

    dx, dy = to_local(os_, log.orders.drop_x[o_sel], log.orders.drop_y[o_sel])
    px = frame[os_] * SITE_FRAME_GAP_M
    n = o_sel.shape[0]
    orders = OrderTable.build(
        pick_x=px.astype(np.float64),
        pick_y=np.zeros(n),
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
    sx, sy = to_local(rs_, log.riders.start_x[r_sel], log.riders.start_y[r_sel])
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
        rider_site=rs_.astype(np.int64),
    )
