"""The simulation loop: one shard of sites replayed on a simulated clock through the dispatch core.

Every ``tick_s`` seconds of simulated time:

1. orders placed since the last tick join the pending pool;
2. riders whose shift starts come online at their start position; riders past their shift end with an empty bag
   go offline (a rider takes no new pickup after its shift end: the dispatch core's rule);
3. the policy ticks on a ``Snapshot`` (the same call the service makes on the wall clock);
4. the riders move along their routes until the next tick: every stop whose service ends by then is done (a
   pickup is recorded when its service starts, that is once the rider is there and the order is ready; a drop-off
   when the rider arrives), and the stop a rider is heading to is frozen (committed). A rider with an empty bag
   rides back towards its start position (its site): see ``Homing``.

When nothing is pending and no rider has a route, the clock jumps to the next tick at which an order is placed
or a shift starts. Everything is deterministic: the same inputs give the same outputs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.heap import keep_heap
from dispatch.kernels.compact import compact_routes, scatter_routes
from dispatch.kernels.movement import advance_riders, clock_riders
from dispatch.kernels.summary import accepting_rows
from dispatch.policy import DispatchParams, GreedyPolicy, KernelPolicy, Policy, Snapshot, held_back
from dispatch.sim.evalcache import EvalCache
from dispatch.sim.offer import (
    Returning,
    idle_quota,
    mean_drop_m,
    new_distance_cache,
    offered_riders,
    returning_quota,
)
from dispatch.sim.quoting import QuoteLog, ShardPromise, quote_new_orders
from dispatch.state import OrderTable, RiderTable, Routes

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DRAIN_S = 4 * 3600.0  # after the last order is placed, riders get this long to deliver what is left


@dataclass
class ShardDay:
    """One shard's day in the dispatch core's units (planar metres, epoch seconds).

    ``orders``: the shard's orders sorted by ``placed``; ``order_id``: int64[n], their ids in the log;
    ``riders``: one row per rider shift (``x``, ``y`` the start position; ``online`` is set by the loop);
    ``rider_id``: int64[m]; ``travel``: a ``TravelTime.arrays()`` tuple; ``start``: the first tick (ticks follow
    every ``tick_s`` from it); ``end``: no tick after it (default: ``DRAIN_S`` after the last order is placed);
    ``promise``: quote every order when placed (``dispatch.sim.quoting``; None: keep the log's promises);
    ``rider_site``: int64[m], each rider's home site (as ``orders.site``): when given, a tick offers the policy
    only the idle riders its sites' pending orders could want (``dispatch.sim.offer``); None: every online
    rider."""

    orders: OrderTable
    order_id: I64
    riders: RiderTable
    rider_id: I64
    travel: tuple[object, ...]
    start: float
    end: float | None = None
    promise: ShardPromise | None = None
    rider_site: I64 | None = None


@dataclass
class ShardResult:
    """What happened. Per order (float64[n], NaN when it did not happen): ``assigned_at``, ``picked_at``,
    ``delivered_at``; ``rider``: int64[n] rider id (-1 = never assigned). Per rider: ``rider_online_s`` (from
    shift start to going offline), ``rider_metres``, ``rider_delivered``. ``tick_ms``: float64[t], the policy's
    time per tick (ticks with something to dispatch). ``promised``: float64[n], the deadlines in force (the quoted
    ones when quoting, else the log's); ``quotes``: per order quoted ETA, decline reason and deferral (when not
    quoting: no ETA, nothing declined or deferred)."""

    order_id: I64
    assigned_at: F64
    picked_at: F64
    delivered_at: F64
    rider: I64
    rider_id: I64
    rider_online_s: F64
    rider_metres: F64
    rider_delivered: I64
    tick_ms: F64
    end: float
    wall_s: float
    promised: F64 = field(default_factory=lambda: np.zeros(0))
    quotes: QuoteLog = field(default_factory=lambda: QuoteLog.empty(0))
    extra: dict[str, float] = field(default_factory=dict)


def _next_tick(now: float, t: float, tick_s: float) -> float:
    """The first tick time on the grid ``now + j * tick_s`` at or after ``t``."""
    return now + max(1.0, math.ceil((t - now) / tick_s)) * tick_s


def run_shard(
    day: ShardDay,
    policy: Policy,
    params: DispatchParams,
    progress: Callable[[int], None] | None = None,
    at_end: Callable[[OrderTable, RiderTable, Routes, I64, float], None] | None = None,
) -> ShardResult:
    """Replay ``day`` through ``policy``; ``progress(k)`` is called with the number of orders newly placed;
    ``at_end(orders, riders, routes, pending, now)`` sees the state the day ends in (the quote benchmark loads it)."""
    t_wall = time.perf_counter()
    keep_heap()  # a tick's arrays reuse the pages of the last one's (dispatch.heap)
    orders = day.orders
    riders = day.riders
    n, m = orders.n, riders.m
    quotes = QuoteLog.empty(n)
    engine = None
    if day.promise is not None:
        # Quoted deadlines go into a copy: the caller's day (shared with other workers' results) stays as logged.
        orders = replace(orders, promised=orders.promised.copy())
        engine = day.promise.engine(day.travel)
    tick_s = params.tick_s

    assigned_at = np.full(n, np.nan)
    picked_at = np.full(n, np.nan)
    delivered_at = np.full(n, np.nan)
    rider_of = np.full(n, -1, dtype=np.int64)
    started = np.zeros(m, dtype=bool)
    off_at = np.full(m, np.nan)
    metres = np.zeros(m)
    delivered = np.zeros(m, dtype=np.int64)
    riders.online[:] = False

    routes = Routes.empty(m, 2 * params.max_orders_per_rider + 2)
    scratch = np.full(n, -1, dtype=np.int64)
    cache = EvalCache(orders, riders, day.travel, policy.params, routes.width)  # as the policy plans
    pending = np.zeros(0, dtype=np.int64)
    next_order = 0
    last_placed = float(orders.placed[-1]) if n else day.start
    shift_order = np.argsort(riders.shift_start, kind="stable")
    next_shift = 0
    # Riders in shift-start order (as dispatch.sim.shard builds them): those that may be online or have stops
    # are the rows r_lo:next_shift, and per-rider passes visit only those.
    by_shift = bool(np.all(riders.shift_start[1:] >= riders.shift_start[:-1]))
    r_lo = 0
    tick_ms: list[float] = []
    now = day.start
    homing = Homing(riders, day.travel, metres)
    offer = _Offer(orders, day.rider_site, policy)
    horizon = last_placed + DRAIN_S if day.end is None else day.end

    while now <= horizon:
        # 1. New orders.
        hi = int(np.searchsorted(orders.placed, now, side="right"))
        if hi > next_order:
            new = np.arange(next_order, hi, dtype=np.int64)
            if engine is not None:
                homing.place(riders, now, (r_lo, next_shift if by_shift else m))
                cache.refresh(routes, _busy_rows(routes.length, r_lo, next_shift if by_shift else m))
                # Only this tick's new orders are quoted before the next update: the summary sorts what they read.
                per_site = np.bincount(orders.site[new], minlength=engine.sites.n).astype(np.int64)
                look = now + 60.0 * engine.params.shift_lookahead_min
                band = (r_lo, int(np.searchsorted(riders.shift_start, look, side="right"))) if by_shift else None
                engine.update(orders, riders, routes, now, pending, cache.tot[0], per_site, band, day.rider_site)
                new = quote_new_orders(
                    engine, orders.drop_x, orders.drop_y, orders.size, orders.site, orders.placed, new,
                    orders.promised, quotes,
                )  # fmt: skip
                cache.promised_changed(new)
            pending = np.concatenate([pending, new])
            if progress is not None:
                progress(hi - next_order)
            next_order = hi
        # 2. Shifts.
        while next_shift < m and riders.shift_start[shift_order[next_shift]] <= now:
            r = int(shift_order[next_shift])
            started[r] = True
            if riders.shift_end[r] > now:
                riders.online[r] = True
                riders.avail[r] = max(riders.avail[r], riders.shift_start[r])
            else:
                off_at[r] = riders.shift_end[r]
            next_shift += 1
        # Riders whose shift ended with an empty bag go offline (at their shift end, or when their last stop was
        # done if later); idle riders are available from now; idle riders' evaluations are out of date.
        if by_shift:  # rows below r_lo are offline for good with empty routes; rows from next_shift not started
            while r_lo < next_shift and not riders.online[r_lo] and routes.length[r_lo] == 0:
                r_lo += 1
        r_hi = next_shift if by_shift else m
        gone, busy = clock_riders(routes.length, riders.online, riders.shift_end, riders.avail, cache.dirty, now,
                                  r_lo, r_hi)  # fmt: skip
        if gone.size:
            off_at[gone] = np.maximum(riders.shift_end[gone], riders.avail[gone])
            homing.stop(riders, gone, off_at[gone], metres)

        if pending.size == 0 and not busy:
            upcoming = [float(orders.placed[next_order])] if next_order < n else []
            if next_shift < m:
                upcoming.append(float(riders.shift_start[shift_order[next_shift]]))
            if not upcoming:
                break
            now = _next_tick(now, min(upcoming), tick_s)
            continue

        # 3. Dispatch, on the active part of the shard only (riders online or with stops, orders pending or
        # routed), so that a tick's cost does not grow with the day's size.
        if pending.size:
            homing.place(riders, now, (r_lo, r_hi))
            ends = None
            if offer.limit_returning:  # the offer ranks returning riders by when their routes end
                busy_rows = _busy_rows(routes.length, r_lo, r_hi)
                cache.refresh(routes, busy_rows)
                ends = (cache.tot[0], busy_rows)
            act_r = offer.riders(orders, riders, routes, pending, now, (r_lo, r_hi), ends)
            routes, ao, ar, pending, ms = _dispatch(
                policy, orders, riders, routes, act_r, pending, day.travel, now, scratch, cache
            )
            tick_ms.append(ms)
            assigned_at[ao] = now
            rider_of[ao] = ar
            homing.stop(riders, ar, now, metres)

        # 4. Move until the next tick: riders with stops ride their routes; a rider whose bag empties heads home.
        t_next = now + tick_s
        rows = _busy_rows(routes.length, r_lo, r_hi)
        if rows.size:
            cache.refresh(routes, rows)
            ev = cache.ev
            moved = advance_riders(orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), ev[0], ev[1], ev[5], rows,
                                   t_next, picked_at, delivered_at, metres, delivered)  # fmt: skip
            cache.dirty[rows[moved]] = True
            homing.start(riders, rows[routes.length[rows] == 0])
        now = t_next

    if at_end is not None:
        homing.place(riders, now)
        at_end(orders, riders, routes, pending, now)
    still = np.flatnonzero(started & np.isnan(off_at))
    busy_end = routes.length[still] > 0
    off_at[still] = np.where(busy_end, now, np.maximum(riders.shift_end[still], riders.avail[still]))
    homing.stop(riders, still, off_at[still], metres)
    online_s = np.where(started, np.nan_to_num(off_at - riders.shift_start, nan=0.0), 0.0)
    return ShardResult(
        order_id=day.order_id,
        assigned_at=assigned_at,
        picked_at=picked_at,
        delivered_at=delivered_at,
        rider=np.where(rider_of >= 0, day.rider_id[np.maximum(rider_of, 0)], -1),
        rider_id=day.rider_id,
        rider_online_s=np.maximum(online_s, 0.0),
        rider_metres=metres,
        rider_delivered=delivered,
        tick_ms=np.asarray(tick_ms, dtype=np.float64),
        end=now,
        wall_s=time.perf_counter() - t_wall,
        promised=orders.promised,
        quotes=quotes,
        extra={"undelivered_in_routes": float(int(routes.length.sum()))},
    )


def _busy_rows(length: I64, lo: int, hi: int) -> I64:
    """The rows ``lo:hi`` whose routes have stops (int64, ascending): the caller knows the others to have none."""
    rows: I64 = np.flatnonzero(length[lo:hi] > 0) + lo
    return rows


def _dispatch(
    policy: Policy,
    orders: OrderTable,
    riders: RiderTable,
    routes: Routes,
    act_r: I64,
    pending: I64,
    travel: tuple[object, ...],
    now: float,
    scratch: I64,
    cache: EvalCache,
) -> tuple[Routes, I64, I64, I64, float]:
    """One policy tick on the compacted active set (riders ``act_r``, int64 ascending, every rider with stops
    among them); returns the shard's routes, the new assignments (order and rider indices of the shard), the
    orders still pending, and the policy's milliseconds. ``scratch``: int64[n], all -1 (``kernels.compact``'s
    work array, reused from tick to tick); ``cache``: the shard's evaluations (the policy gets the active riders'
    rows, and the riders whose routes it changes are marked for re-evaluation)."""
    act_o, *sub, local_pending = compact_routes(routes.as_tuple(), act_r, pending, scratch)
    cache.refresh(routes, act_r)
    evaluation = cache.rows(act_r, routes.length)
    snap = Snapshot(orders.take(act_o), riders.take(act_r), Routes(*sub), local_pending, travel, evaluation)
    res = policy.tick(snap, now)
    out = res.routes
    if out.width > routes.width:
        routes = routes.widened(out.width)
    if isinstance(policy, KernelPolicy):
        # Its ``changed`` lists every route it changed (assignments, local search, re-optimisation): only those
        # rows are written back.
        rows = np.asarray(res.changed, dtype=np.int64)
        sub_out = tuple(a[rows] for a in out.as_tuple())
        written = act_r[rows]
    else:
        sub_out, written = out.as_tuple(), act_r
    changed = scatter_routes(routes.as_tuple(), written, act_o, sub_out)
    cache.dirty[written[changed]] = True
    return (
        routes,
        act_o[res.assigned_order],
        act_r[res.assigned_rider],
        act_o[res.unassigned_order],
        float(res.timings_ms.get("total", 0.0)),
    )


class _Offer:
    """The riders a tick offers the policy (``dispatch.sim.offer``), with the sites' positions taken from their
    orders' pickups once."""

    def __init__(self, orders: OrderTable, rider_site: I64 | None, policy: Policy) -> None:
        self.rider_site = rider_site
        self.params = params = policy.params  # as the policy plans
        # Only these policies leave a route alone when its site has nothing pending (see dispatch.sim.offer).
        self.all_busy = not isinstance(policy, KernelPolicy | GreedyPolicy) or params.ortools_every_ticks > 0
        # The kernel policy gives a rider an order only through a candidate pair, pairs only riders that accept
        # orders (``kernels.summary.accepting_rows``, as ``policy._accepting``) with orders not held back
        # (``policy.held_back``), and re-plans only the routes it changes: a rider that accepts nothing, or a site
        # whose pending orders are all held, is inert in its tick, and leaving them out changes no decision (see
        # dispatch.sim.offer).
        self.inert_out = isinstance(policy, KernelPolicy) and not self.all_busy
        # And only its ticks get the returning riders cut to a quota per site (dispatch.sim.offer): the baselines
        # see every busy rider of a site with orders pending.
        self.limit_returning = self.inert_out
        top = int(orders.site.max(initial=-1))
        if rider_site is not None:
            top = max(top, int(rider_site.max(initial=-1)))
        self.dist = new_distance_cache(rider_site.shape[0] if rider_site is not None else 0)
        self.inert = np.zeros(rider_site.shape[0] if rider_site is not None else 0, dtype=bool)  # work array
        self.site_x = np.zeros(top + 1)
        self.site_y = np.zeros(top + 1)
        self.site_x[orders.site] = orders.pick_x
        self.site_y[orders.site] = orders.pick_y

    def riders(
        self,
        orders: OrderTable,
        riders: RiderTable,
        routes: Routes,
        pending: I64,
        now: float,
        band: tuple[int, int],
        ends: tuple[F64, I64] | None = None,
    ) -> I64:
        """The rows to offer (``dispatch.sim.offer``); ``band``: ``(lo, hi)``, only rows ``lo:hi`` may be online
        or have stops; ``ends``: for the kernel policy's limit on returning riders, ``(end_t, rows)``: float64[m],
        when each route ends (up to date for the riders with stops), and the rows of the band with stops."""
        busy = routes.length > 0
        if self.rider_site is None:
            return np.flatnonzero(riders.online | busy).astype(np.int64)
        p = self.params
        ps = orders.site[pending]
        quota = idle_quota(ps, self.site_x.shape[0], p.candidate_k, p.candidate_rider_side)
        if self.inert_out:
            live = np.zeros(quota.shape[0], dtype=bool)
            live[ps[~held_back(orders, pending, p, now)]] = True
            quota[~live] = 0
        onward = mean_drop_m(ps, orders.drop_x[pending], orders.drop_y[pending], self.site_x, self.site_y)
        returning = None
        if self.limit_returning and ends is not None:
            # The riders that accept no order never take a returning rider's place (and are left out here when
            # inert riders are).
            end_t, rows = ends
            takes = accepting_rows(rows, routes.as_tuple(), riders.online, riders.shift_start, riders.shift_end,
                                   float(now), p.max_orders_per_rider)  # fmt: skip
            inert_rows = rows[~takes]
            self.inert[inert_rows] = True
            points = (orders.pick_x, orders.pick_y, orders.drop_x, orders.drop_y)
            limit = np.where(quota > 0, returning_quota(ps, quota.shape[0], p.candidate_k), 0)
            returning = Returning(routes.as_tuple(), points, end_t, float(now), limit, self.inert, self.inert_out)
        rows = offered_riders(riders.online, busy, self.rider_site, riders.x, riders.y, riders.speed, self.site_x,
                              self.site_y, onward, quota, p.reference_speed_mps,
                              p.weight_distance / max(p.weight_time, 1e-9), self.all_busy, band,
                              self.dist, returning)  # fmt: skip
        if returning is not None:
            self.inert[inert_rows] = False  # all False again for the next tick
        if self.inert_out and returning is None:
            working = np.flatnonzero(busy[rows])
            takes = accepting_rows(rows[working], routes.as_tuple(), riders.online, riders.shift_start,
                                   riders.shift_end, float(now), p.max_orders_per_rider)  # fmt: skip
            rows = np.delete(rows, working[~takes])
        return rows


class Homing:
    """Idle riders riding back to their start position (their site), in closed form.

    A rider whose bag empties at ``t0`` at point P heads home at ``v`` metres per second of straight-line progress
    (the travel model's speed in the hour of ``t0``, times its speed factor, over the detour factor), so its
    position at any later t is exact without stepping, and the kilometres it rides are counted (times the detour)
    when it stops: taking a new order, going offline, or the end of the day. Being closed form, the movement does
    not depend on which ticks a shard happens to run, which keeps shards independent. Matrix travel models have no
    plane: riders then wait where they are.

    ``metres``: float64[m], each rider's kilometres counter, when the caller keeps one for the day (the loop,
    which passes the same array to ``stop``): a rider that ``place`` finds home with ``shift_end >= now`` (so that
    it stops homing at ``now`` or later, when it would be home too) stops homing there and then, its ride counted
    as ``stop`` would count it later (the same value, added to the same counter with nothing added in between:
    only riders with stops move, and a rider gets stops only from a tick that stops it first), so that later
    ticks no longer place it. A policy that moved an order to a homing rider without assigning it (none the
    simulator runs) would bypass ``stop`` either way."""

    def __init__(self, riders: RiderTable, travel: tuple[Any, ...], metres: F64 | None = None) -> None:
        m = riders.m
        self.metres = metres
        self.home_x = riders.x.copy()
        self.home_y = riders.y.copy()
        self.t0 = np.full(m, np.nan)
        self.px = np.zeros(m)
        self.py = np.zeros(m)
        self.v = np.zeros(m)
        self.params, self.speed = travel[0], travel[1]
        self.active = self.params[3] == 0.0
        self._placed_at = math.nan  # when the homing riders of rows _placed_rows were last placed (NaN: not since
        self._placed_rows = (0, 0)  # a change)

    def start(self, riders: RiderTable, idx: I64) -> None:
        """Riders ``idx`` just emptied their bag at their current position, at ``riders.avail``."""
        if not self.active or idx.size == 0:
            return
        self._placed_at = math.nan
        away = idx[(riders.x[idx] != self.home_x[idx]) | (riders.y[idx] != self.home_y[idx])]
        t0 = riders.avail[away]
        bin_s, detour, offset = float(self.params[0]), float(self.params[1]), float(self.params[2])
        b = (np.floor((t0 + offset) / bin_s).astype(np.int64)) % self.speed.shape[0]
        self.t0[away] = t0
        self.px[away] = riders.x[away]
        self.py[away] = riders.y[away]
        self.v[away] = self.speed[b] * riders.speed[away] / detour

    def _frac(self, idx: I64, t: F64 | float) -> tuple[F64, F64]:
        d = np.hypot(self.home_x[idx] - self.px[idx], self.home_y[idx] - self.py[idx])
        ridden = np.maximum(0.0, t - self.t0[idx]) * self.v[idx]
        return np.minimum(1.0, ridden / np.maximum(d, 1e-9)), d

    def place(self, riders: RiderTable, now: float, band: tuple[int, int] | None = None) -> None:
        """Move every homing rider to where it is at ``now`` (nothing to do when the riders of these rows were
        placed at ``now`` and none started or stopped homing since), and, with the day's ``metres``, end the
        homing of those home (see the class docstring); ``band``: ``(lo, hi)`` when only rows ``lo:hi`` can be
        homing (a rider stops homing when it goes offline)."""
        lo, hi = band if band is not None else (0, self.t0.shape[0])
        if self._placed_at == now and self._placed_rows[0] <= lo and hi <= self._placed_rows[1]:
            return
        self._placed_at = now
        self._placed_rows = (lo, hi)
        idx = np.flatnonzero(~np.isnan(self.t0[lo:hi])) + lo
        if idx.size:
            f, d = self._frac(idx, now)
            riders.x[idx] = self.px[idx] + (self.home_x[idx] - self.px[idx]) * f
            riders.y[idx] = self.py[idx] + (self.home_y[idx] - self.py[idx]) * f
            if self.metres is not None:  # every later stop is at ``now`` or later (its shift end or a new order)
                home = (f >= 1.0) & (riders.shift_end[idx] >= now)
                done = idx[home]
                self.metres[done] += f[home] * d[home] * float(self.params[1])
                self.t0[done] = np.nan

    def stop(self, riders: RiderTable, idx: I64, t: F64 | float, metres: F64) -> None:
        """Riders ``idx`` stop homing at ``t`` (a time each, for distinct riders; or one time, when a rider may
        come twice): count their kilometres, fix their position."""
        keep = ~np.isnan(self.t0[idx])
        idx = idx[keep]
        if idx.size == 0:
            return
        self._placed_at = math.nan
        if np.ndim(t) == 0:
            tt: F64 | float = float(t)
            idx = np.unique(idx)  # only the homing ones: few
        else:
            tt = np.asarray(t, dtype=np.float64)[keep]
        f, d = self._frac(idx, tt)
        metres[idx] += f * d * float(self.params[1])
        riders.x[idx] = self.px[idx] + (self.home_x[idx] - self.px[idx]) * f
        riders.y[idx] = self.py[idx] + (self.home_y[idx] - self.py[idx]) * f
        self.t0[idx] = np.nan
