"""The dispatch state kept from tick to tick beside the policy, fed by what changed (``Delta``).

Before, every tick took the whole state out of the store: the 40,000 riders' rows, the routes of every order on
them (131,000 at the end of the session 6 replay) and the tables built from them, all in the server's interpreter,
then pickled to the policy worker. That cost ~0.5 s of the server's GIL and ~1 s of shipping per tick whatever
the tick dispatched, so a tick could not be cut into small ones (benchmarks/RESULTS.md, "Service, session 9").

A :class:`Mirror` lives where the policy runs (in the policy worker, or in the server's process when there is
none) and keeps the tables: order rows by order id (rows are reused once an order is forgotten), one row per rider
(the loop's rider numbering: the order in which the store first saw each rider, never reused), and the riders'
routes. Each call brings a :class:`Delta`: the orders the mirror has not seen, the riders whose route or fields
changed (with their whole route), every rider's position, and the changes to the pending set (ids that became
pending and ids that stopped being pending: sending every pending id each call cost ~10 ms a call in the worker
alone, to unpickle and hash ~40,000 ids, at the session 10 replay load). The call then dispatches the
pending orders of the sites asked for (a *slot* of the tick: ``DispatchLoop``) with the policy and answers with
proposals (the changed riders' routes with their ETAs and ready-made Route messages) and the reasons of the orders
left over. The mirror does not take its own proposals: the routes the server keeps come back in the next delta
(the server may drop a proposal whose rider changed meanwhile), so the mirror never drifts from the store.

A mirror that lost its state (a new worker process) is told so by the result's ``epoch``; the loop then sends
everything again (``Delta.reset``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from dispatch.candidates import BRUTE_FORCE_SITES
from dispatch.kernels.candidates import nearest_groups
from dispatch.kernels.route import MIXED, evaluate_routes
from dispatch.policy import DispatchParams, Policy, Reason, Snapshot, TickResult, held_back, make_policy
from dispatch.service.routemsg import route_messages
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ROW = 15  # numbers in an order row (``OrderRec.row``)
RIDER_FIELDS = 5  # shift_start, shift_end, capacity, speed, online

# One proposal: (rider row, stops as (order id, kind), their ETAs, frozen count, new order ids, Route message, orders
# moved in from another rider's route as (order id, that rider's row)).
Proposal = tuple[int, list[tuple[str, int]], list[float], int, list[str], bytes | None, list[tuple[str, int]]]


@dataclass
class Delta:
    """What changed since the mirror's last call, and what to dispatch (``DispatchLoop._delta`` builds it). ``reset``:
    forget everything first. ``order_ids`` (q) and ``order_rows`` (float64[q, 15]): orders the mirror has not seen
    (``OrderRec.row``). ``n_riders``: riders known to the loop (rows 0 .. n-1); ``rider_rows`` (int64[u]): riders
    whose fields or route changed, with ``rider_fields`` (float64[u, 5]: shift start and end, capacity, speed,
    online), ``rider_stops`` (their routes as (order id, kind)) and ``rider_frozen``; ``x``, ``y``
    (float64[n_riders]): every rider's position. ``pending_add``, ``pending_drop``: the orders that became pending
    and those that stopped being pending since the last call (with ``reset``: every pending order, and none dropped);
    ``sites``: bool[n_sites], dispatch the pending orders of these sites only (None: all), with only the riders
    that could take them (``Mirror.near``; ``site_xy``, float64[n_sites, 2], the sites' positions); ``pinned``:
    pending orders pinned to a rider (its row, -1 when the rider is unknown); ``banned``: pending orders and the rows
    of riders who rejected them. ``full``: also answer every route's ETAs, the at-risk count and the promise
    engine's inputs."""

    reset: bool
    order_ids: list[str]
    order_rows: F64
    n_riders: int
    rider_rows: I64
    rider_fields: F64
    rider_stops: list[list[tuple[str, int]]]
    rider_frozen: list[int]
    x: F64
    y: F64
    pending_add: list[str]
    pending_drop: list[str]
    n_sites: int
    sites: npt.NDArray[np.bool_] | None = None
    site_xy: F64 | None = None
    pinned: dict[str, int] = field(default_factory=dict)
    banned: dict[str, list[int]] = field(default_factory=dict)
    full: bool = False


@dataclass
class PromiseInputs:
    """What ``PromiseEngine.update_from_ends`` takes: the riders, where and when each route ends (float64[m]; an
    empty route ends at the rider's position, now) and the orders waiting per site (int64[n_sites])."""

    riders: RiderTable
    end_t: F64
    end_x: F64
    end_y: F64
    waiting: I64


@dataclass
class MirrorResult:
    """A call's answer. ``epoch``: the mirror's identity (a new one after a restart: the loop must reset it);
    ``orders``, ``riders``: the tables' sizes; ``dispatched``: pending orders in the call; ``proposals``: per
    changed rider (``Proposal``); ``reasons``: (order id, ``Reason``) of every dispatched order left over;
    ``forgotten``: orders the mirror dropped (neither pending nor on a route: the loop sends them again if they
    come back). With ``Delta.full``: ``eta_rows`` (int64[k]), ``eta_len`` (int64[k]) and ``etas`` (float64[sum
    eta_len]) give the ETAs of the riders with a route that no proposal changed; ``at_risk``; ``promise``."""

    epoch: int
    orders: int
    riders: int
    dispatched: int
    proposals: list[Proposal]
    reasons: list[tuple[str, int]]
    forgotten: list[str]
    timings_ms: dict[str, float] = field(default_factory=dict)
    eta_rows: I64 | None = None
    eta_len: I64 | None = None
    etas: F64 | None = None
    at_risk: int | None = None
    promise: PromiseInputs | None = None


def last_stops(orders: OrderTable, routes: Routes, rows: I64) -> tuple[F64, F64]:
    """Where the routes of ``rows`` (int64[k], each with at least one stop) end: their last stops' positions."""
    last = routes.length[rows] - 1
    lo = routes.order[rows, last]
    pick = routes.kind[rows, last] == PICKUP
    return np.where(pick, orders.pick_x[lo], orders.drop_x[lo]), np.where(pick, orders.pick_y[lo], orders.drop_y[lo])


class Mirror:
    """See the module docstring. ``tick`` is the one entry point; not thread-safe (one loop calls it)."""

    def __init__(self, width: int = 12) -> None:
        self.epoch = time.monotonic_ns()
        self._policies: dict[bytes | None, Policy] = {}  # by the call's sites (``_policy_for``)
        self._key: tuple[str, DispatchParams] | None = None
        self._clear(width)

    def _clear(self, width: int) -> None:
        self.row_of: dict[str, int] = {}
        self.ids: list[str] = []  # order id by row ("" for a free row)
        self.rows = np.zeros((0, ROW), dtype=np.float64)
        self.is_pending = np.zeros(0, dtype=bool)  # by order row
        self.free: list[int] = []
        self.m = 0
        self.fields = np.zeros((0, RIDER_FIELDS), dtype=np.float64)
        self.x = np.zeros(0)
        self.y = np.zeros(0)
        self.routes = Routes.empty(0, width)

    # -- the delta ------------------------------------------------------------------------------------------------

    def _order_rows(self, ids: list[str], rows: F64) -> None:
        """Take in the orders ``ids`` (their rows ``rows``, float64[q, ROW]) that the mirror does not hold yet:
        free rows first (the last freed first), then new ones at the end."""
        row_of = self.row_of
        fresh: list[int] = []
        seen: set[str] = set()
        for j, oid in enumerate(ids):
            if oid not in row_of and oid not in seen:
                seen.add(oid)
                fresh.append(j)
        if not fresh:
            return
        reuse = min(len(fresh), len(self.free))
        slots = [self.free.pop() for _ in range(reuse)]
        start = len(self.ids)
        extra = len(fresh) - reuse
        if start + extra > self.rows.shape[0]:
            cap = max(1024, 2 * self.rows.shape[0], start + extra)
            grown = np.zeros((cap, ROW), dtype=np.float64)
            grown[:start] = self.rows[:start]
            self.rows = grown
            mask = np.zeros(cap, dtype=bool)
            mask[:start] = self.is_pending[:start]
            self.is_pending = mask
        self.ids.extend([""] * extra)
        slots.extend(range(start, start + extra))
        self.rows[np.array(slots, dtype=np.int64)] = rows[np.array(fresh, dtype=np.int64)]
        for i, j in zip(slots, fresh, strict=True):
            oid = ids[j]
            self.ids[i] = oid
            row_of[oid] = i

    def _grow_riders(self, m: int) -> None:
        if m <= self.fields.shape[0]:
            self.m = max(self.m, m)
            return
        cap = max(m, 2 * self.fields.shape[0], 256)
        f = np.zeros((cap, RIDER_FIELDS), dtype=np.float64)
        f[: self.m] = self.fields[: self.m]
        f[self.m :, 1] = -math.inf  # (a row never told about is offline with its shift over)
        f[self.m :, 2] = 1.0
        f[self.m :, 3] = 1.0
        self.fields = f
        r = Routes.empty(cap, self.routes.width)
        r.length[: self.m] = self.routes.length[: self.m]
        r.frozen[: self.m] = self.routes.frozen[: self.m]
        r.order[: self.m] = self.routes.order[: self.m]
        r.kind[: self.m] = self.routes.kind[: self.m]
        self.routes = r
        self.m = m

    def apply(self, d: Delta, width: int) -> None:
        """Take the delta in (the orders first: the routes refer to them)."""
        if d.reset:
            self._clear(width)
        self._order_rows(d.order_ids, np.asarray(d.order_rows, dtype=np.float64).reshape(len(d.order_ids), ROW))
        row_of = self.row_of
        for oid in d.pending_drop:
            self.is_pending[row_of[oid]] = False
        for oid in d.pending_add:
            self.is_pending[row_of[oid]] = True
        self._grow_riders(d.n_riders)
        rows = np.asarray(d.rider_rows, dtype=np.int64)
        if rows.size:
            self.fields[rows] = d.rider_fields
            longest = max((len(s) for s in d.rider_stops), default=0)
            if longest > self.routes.width:
                self.routes = self.routes.widened(longest)
            rt = self.routes
            # All the changed routes at once (one Python pass over their stops, then whole-array writes).
            lens = np.fromiter(map(len, d.rider_stops), dtype=np.int64, count=len(d.rider_stops))
            rt.length[rows] = lens
            rt.frozen[rows] = np.minimum(np.asarray(d.rider_frozen, dtype=np.int64), lens)
            total = int(lens.sum())
            if total:
                stop_ids = [oid for seq in d.rider_stops for oid, _k in seq]
                rr = np.repeat(rows, lens)
                kk = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
                rt.order[rr, kk] = np.fromiter(map(row_of.__getitem__, stop_ids), dtype=np.int64, count=total)
                rt.kind[rr, kk] = [k for seq in d.rider_stops for _oid, k in seq]
        self.x = np.asarray(d.x, dtype=np.float64)
        self.y = np.asarray(d.y, dtype=np.float64)

    def _forget(self, pending_rows: I64) -> list[str]:
        """Free the rows of orders that are neither pending nor on a route; their ids."""
        n = len(self.ids)
        live = np.zeros(n, dtype=bool)
        live[pending_rows] = True
        rt = self.routes
        used = np.arange(rt.width)[None, :] < rt.length[: self.m, None]
        live[rt.order[: self.m][used]] = True
        for i in self.free:
            live[i] = True  # (already free)
        gone = np.flatnonzero(~live).tolist()
        out = []
        for i in gone:
            oid = self.ids[i]
            out.append(oid)
            del self.row_of[oid]
            self.ids[i] = ""
            self.free.append(i)
        return out

    # -- the tables -----------------------------------------------------------------------------------------------

    def tables(self, now: float) -> tuple[OrderTable, RiderTable]:
        """The order table (every row, free ones too: no route or pending list refers to them; not pinned) and
        the rider table (every row, available now)."""
        n = len(self.ids)
        c = self.rows[:n]
        orders = OrderTable.build(
            pick_x=c[:, 0], pick_y=c[:, 1], drop_x=c[:, 2], drop_y=c[:, 3], site=c[:, 4].astype(np.int64),
            ready=c[:, 5], promised=c[:, 6], size=c[:, 7].astype(np.int64), service_pick=c[:, 8],
            service_drop=c[:, 9], placed=c[:, 10],
        )  # fmt: skip
        m = self.m
        f = self.fields[:m]
        shift_end = np.where(np.isfinite(f[:, 1]), f[:, 1], now)
        riders = RiderTable.build(
            x=self.x[:m], y=self.y[:m], avail=np.full(m, now), shift_start=f[:, 0], shift_end=shift_end,
            capacity=f[:, 2].astype(np.int64), speed=f[:, 3], online=f[:, 4] > 0.5,
        )  # fmt: skip
        return orders, riders

    def near(self, orders: OrderTable, sites: npt.NDArray[np.bool_], site_xy: F64, reach_m: float) -> I64:
        """int64[k], sorted: the riders that could take an order of ``sites`` (bool[n_sites]), which are all the
        candidate pruning (``dispatch.candidates``) could give those orders: every rider whose next free point
        (its route's last stop, or where it is) is within ``reach_m`` of one of the sites, and every rider with a
        pickup still to make at one of them (a visitor)."""
        m = self.m
        rt = self.routes
        fx = self.x[:m].copy()
        fy = self.y[:m].copy()
        has = np.flatnonzero(rt.length[:m] > 0)
        if has.size:
            fx[has], fy[has] = last_stops(orders, rt, has)
        keep = np.zeros(m, dtype=bool)
        idx = np.flatnonzero(sites[: site_xy.shape[0]])
        if idx.size and m:
            if idx.size <= BRUTE_FORCE_SITES:  # (a few sites: cheaper than a k-d tree's build and queries)
                cx, cy = site_xy[idx, 0].copy(), site_xy[idx, 1].copy()
                keep |= nearest_groups(fx, fy, cx, cy, 1, float(reach_m))[:, 0] < idx.size
            else:
                d, _i = cKDTree(site_xy[idx]).query(np.column_stack([fx, fy]), k=1, distance_upper_bound=reach_m)
                keep |= np.isfinite(d)
            if has.size:
                w = rt.width
                used = np.arange(w)[None, :] < rt.length[has, None]
                pick = used & (rt.kind[has] == PICKUP)
                o = np.where(pick, rt.order[has], 0)
                site = orders.site[o]
                ok = (site >= 0) & (site < sites.shape[0])
                visit = pick & ok & sites[np.clip(site, 0, sites.shape[0] - 1)]
                keep[has[visit.any(axis=1)]] = True
        return np.flatnonzero(keep).astype(np.int64)

    def _policy_for(self, name: str, params: DispatchParams, sites: npt.NDArray[np.bool_] | None) -> Policy:
        """The policy for a call on ``sites`` (None: every site). Each slot (set of sites) has its own, so that what
        a policy counts in ticks counts that slot's calls: with ``ortools_every_ticks = N`` each site's riders are
        re-optimised every N ticks, as in the simulator, not every N slot calls. A new name or new parameters
        start them all afresh."""
        if self._key != (name, params):
            self._policies = {}
            self._key = (name, params)
        key = None if sites is None else np.packbits(sites).tobytes() + len(sites).to_bytes(4, "little")
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policies[key] = make_policy(name, params)
        return policy

    # -- one call -------------------------------------------------------------------------------------------------

    def tick(self, name: str, params: DispatchParams, d: Delta, now: float, travel: tuple[Any, ...]) -> MirrorResult:
        """Take ``d`` in, dispatch its pending orders (of ``d.sites``) with the policy ``name`` at ``now``."""
        t0 = time.perf_counter()
        width = 2 * params.max_orders_per_rider + 2
        self.apply(d, width)
        row_of = self.row_of
        pend_all = np.flatnonzero(self.is_pending[: len(self.ids)]).astype(np.int64)
        orders, riders = self.tables(now)
        m = self.m
        pend = pend_all
        sub: I64 | None = None
        if d.sites is not None:
            if pend.size:
                site = orders.site[pend]
                ok = (site >= 0) & (site < d.sites.shape[0])
                ok[ok] = d.sites[site[ok]]
                pend = pend[ok]
            if d.site_xy is not None and pend.size:
                sub = self.near(orders, d.sites, d.site_xy, params.max_reach_m)
        pinned = {row_of[oid]: r for oid, r in d.pinned.items() if oid in row_of}
        if sub is not None:  # pinned riders of the call's orders always take part
            want = [r for i, r in pinned.items() if r >= 0]
            if want:
                sub = np.union1d(sub, np.array(want, dtype=np.int64)).astype(np.int64)
        reasons: list[tuple[str, int]] = []
        out_set = [i for i in pend.tolist() if pinned.get(i, 0) < 0]
        if out_set:
            drop = set(out_set)
            reasons.extend((self.ids[i], int(Reason.PINNED_RIDER_UNAVAILABLE)) for i in out_set)
            pend = np.array([i for i in pend.tolist() if i not in drop], dtype=np.int64)
        rows = sub if sub is not None else np.arange(m, dtype=np.int64)
        if pinned:
            pos = np.full(m, -1, dtype=np.int64)
            pos[rows] = np.arange(rows.size)
            pin = np.full(orders.n, -1, dtype=np.int64)
            for i, r in pinned.items():
                pin[i] = pos[r] if 0 <= r < m else -1
            orders = replace(orders, pinned=pin)
        rt = self.routes
        sub_riders = riders.take(rows) if sub is not None else riders
        sub_routes = Routes(rt.length[rows], rt.frozen[rows], rt.order[rows], rt.kind[rows])  # (copies)
        t_apply = time.perf_counter()
        policy = self._policy_for(name, params, d.sites)
        proposals: list[Proposal] = []
        res: TickResult | None = None
        timings: dict[str, float] = {}
        if rows.size and pend.size:
            res = self._run(policy, d, orders, sub_riders, sub_routes, pend, now, travel, rows)
            timings = {f"policy_{k}": v for k, v in res.timings_ms.items()}
            proposals = self._proposals(res, rows, d, reasons)
            for o, why in zip(res.unassigned_order.tolist(), res.unassigned_reason.tolist(), strict=True):
                reasons.append((self.ids[o], int(why)))
        elif pend.size:  # no rider near the call's sites: held orders are still held, the rest out of reach
            held = held_back(orders, pend, params, now) if getattr(policy, "holds_orders", False) else pend < 0
            why = np.where(held, int(Reason.HELD_FOR_BATCHING), int(Reason.NO_RIDER_IN_REACH)).tolist()
            reasons.extend((self.ids[i], w) for i, w in zip(pend.tolist(), why, strict=True))
        t_policy = time.perf_counter()
        out = MirrorResult(self.epoch, len(self.ids) - len(self.free), int(rows.size), int(pend.size), proposals,
                           reasons, [])  # fmt: skip
        if d.full:
            self._full(out, res, rows, orders, riders, pend_all, now, travel, params, d.n_sites)
        out.forgotten = self._forget(pend_all)
        t_end = time.perf_counter()
        out.timings_ms = {"mirror_apply": 1e3 * (t_apply - t0), "mirror_policy": 1e3 * (t_policy - t_apply),
                          "mirror_rest": 1e3 * (t_end - t_policy), **timings}  # fmt: skip
        return out

    def _run(
        self, policy: Policy, d: Delta, orders: OrderTable, riders: RiderTable, routes: Routes, pend: I64,
        now: float, travel: tuple[Any, ...], rows: I64,
    ) -> TickResult:  # fmt: skip
        """The policy's tick on the riders ``rows`` (the tables' rows); orders that some rider rejected go in a
        second pass on the first pass's routes with those riders taken offline, so that they go to someone else."""
        banned_rows = {self.row_of[oid]: rs for oid, rs in d.banned.items() if oid in self.row_of}
        is_banned = np.array([i in banned_rows for i in pend.tolist()], dtype=bool)
        if not is_banned.any():
            return policy.tick(Snapshot(orders, riders, routes, pend, travel), now)
        first = policy.tick(Snapshot(orders, riders, routes, pend[~is_banned], travel), now)
        pos = {r: j for j, r in enumerate(rows.tolist())}
        who = sorted({pos[r] for i in pend[is_banned].tolist() for r in banned_rows[i] if r in pos})
        online = riders.online.copy()
        online[who] = False
        again = Snapshot(orders, replace(riders, online=online), first.routes, pend[is_banned], travel)
        second = policy.tick(again, now)
        return replace(
            second,
            assigned_order=np.concatenate([first.assigned_order, second.assigned_order]),
            assigned_rider=np.concatenate([first.assigned_rider, second.assigned_rider]),
            unassigned_order=np.concatenate([first.unassigned_order, second.unassigned_order]),
            unassigned_reason=np.concatenate([first.unassigned_reason, second.unassigned_reason]),
            changed=np.union1d(first.changed, second.changed).astype(np.int64),
        )

    def _proposals(self, res: TickResult, rows: I64, d: Delta, reasons: list[tuple[str, int]]) -> list[Proposal]:
        """Per changed rider (or one given new orders): its row (``rows`` maps the result's riders to the
        mirror's), its new stops with their ETAs and its Route message; an order a rider rejected is taken out of
        that rider's route (the message is then left to the server). An order that re-optimisation moved from one
        rider's route to another's is named in the gaining proposal with the rider it left: the loop takes both
        riders' proposals together or neither, and gives the order its new rider."""
        ids = self.ids
        out = res.routes
        new_by_rider: dict[int, list[int]] = {}
        for o, r in zip(res.assigned_order.tolist(), res.assigned_rider.tolist(), strict=True):
            new_by_rider.setdefault(r, []).append(o)
        changed = np.union1d(res.changed, np.array(sorted(new_by_rider), dtype=np.int64)).astype(np.int64)
        if changed.size == 0:
            return []
        msgs = route_messages(ids, self.rows[: len(ids), 11:15], out, res.arrive, changed)
        length = out.length[changed]
        ends_a = np.cumsum(length)
        rr = np.repeat(changed, length)
        kk = np.arange(rr.size) - np.repeat(ends_a - length, length)
        order_a, kind_a = out.order[rr, kk], out.kind[rr, kk]
        orders = order_a.tolist()
        kinds = kind_a.tolist()
        # Who had each order before the call (its riders' routes as the mirror holds them).
        rt = self.routes
        had = rt.length[rows]
        owner = np.full(len(ids), -1, dtype=np.int64)
        owner[rt.order[rows][np.arange(rt.width)[None, :] < had[:, None]]] = np.repeat(rows, had)
        was = owner[order_a]
        moved_at = np.flatnonzero((kind_a == DROPOFF) & (was >= 0) & (was != rows[rr])).tolist()
        moved_in: dict[int, list[tuple[str, int]]] = {}
        for a in moved_at:
            moved_in.setdefault(int(rr[a]), []).append((ids[orders[a]], int(was[a])))
        etas = res.arrive[rr, kk].tolist() if res.arrive.size else [math.nan] * rr.size
        frozen = out.frozen[changed].tolist()
        banned = {self.row_of[oid]: set(rs) for oid, rs in d.banned.items() if oid in self.row_of}
        # Every changed route's stops as (order id, kind), in one pass; each proposal takes its slice.
        stops = list(zip([ids[o] for o in orders], kinds, strict=True))
        proposals: list[Proposal] = []
        start = 0
        for j, (r_sub, r, end) in enumerate(zip(changed.tolist(), rows[changed].tolist(), ends_a.tolist(),
                                                strict=True)):  # fmt: skip
            seq = stops[start:end]
            eta = etas[start:end]
            new = new_by_rider.get(r_sub, [])
            msg: bytes | None = msgs[j]
            bad = [o for o in new if r in banned.get(o, ())] if banned else []
            if bad:
                msg = None
                keep = [k for k in range(end - start) if orders[start + k] not in bad]
                seq = [seq[k] for k in keep]
                eta = [eta[k] for k in keep]
                new = [o for o in new if o not in bad]
                reasons.extend((ids[o], int(Reason.RIDERS_BUSY)) for o in bad)
            start = end
            proposals.append((r, seq, eta, min(frozen[j], len(seq)), [ids[o] for o in new], msg,
                              moved_in.get(r_sub, [])))  # fmt: skip
        return proposals

    def _full(
        self, out: MirrorResult, res: TickResult | None, rows: I64, orders: OrderTable, riders: RiderTable,
        pend_all: I64, now: float, travel: tuple[Any, ...], params: DispatchParams, n_sites: int,
    ) -> None:  # fmt: skip
        """Every route as the call leaves it (the proposals in place) evaluated once: the ETAs of the routes no
        proposal changed, the at-risk count and the promise engine's inputs (the orders still waiting are the
        pending ones no proposal took)."""
        rt = self.routes
        m = self.m
        width = max(rt.width, res.routes.width if res is not None else 0)
        routes = Routes.empty(m, width)
        routes.length[:] = rt.length[:m]
        routes.frozen[:] = rt.frozen[:m]
        routes.order[:, : rt.width] = rt.order[:m]
        routes.kind[:, : rt.width] = rt.kind[:m]
        if res is not None:
            w = res.routes.width
            routes.length[rows] = res.routes.length
            routes.frozen[rows] = res.routes.frozen
            routes.order[rows, :w] = res.routes.order
            routes.kind[rows, :w] = res.routes.kind
        has = np.flatnonzero(routes.length > 0)
        sub_r = tuple(a[has] for a in riders.as_tuple())
        sub_rt = tuple(a[has] for a in routes.as_tuple())
        ev, tot = evaluate_routes(orders.as_tuple(), sub_r, sub_rt, travel, params.weights, MIXED)
        arrive = ev[0]
        changed = np.zeros(m, dtype=bool)
        for p in out.proposals:
            changed[p[0]] = True
        keep = ~changed[has]
        length = routes.length[has]
        used = np.arange(width)[None, :] < length[:, None]
        out.eta_rows, out.eta_len = has[keep].astype(np.int64), length[keep].astype(np.int64)
        out.etas = np.ascontiguousarray(arrive[keep][used[keep]])
        # Late risk: routed orders by their drop-off ETA, pending ones by a direct ride at 4.5 m/s from now.
        drop = used & (routes.kind[has] == DROPOFF)
        o = routes.order[has][drop]
        late = int(np.sum(arrive[drop] > orders.promised[o]))
        taken = [self.row_of[oid] for p in out.proposals for oid in p[4]]
        left = np.setdiff1d(pend_all, np.array(taken, dtype=np.int64)) if taken else pend_all
        if left.size:
            q = left
            dist = np.hypot(orders.drop_x[q] - orders.pick_x[q], orders.drop_y[q] - orders.pick_y[q])
            best = np.maximum(now, orders.ready[q]) + orders.service_pick[q] + dist / 4.5
            late += int(np.sum(best > orders.promised[q]))
        out.at_risk = late
        # The promise engine's inputs: where and when each rider's route ends (``tot[0]`` of ``evaluate_routes``:
        # the departure from the last stop); an empty route ends where the rider is, now.
        end_t = np.full(m, now)
        end_x = riders.x.copy()
        end_y = riders.y.copy()
        if has.size:
            end_t[has] = np.maximum(tot[0], now)
            end_x[has], end_y[has] = last_stops(orders, routes, has)
        site = orders.site[left] if left.size else np.zeros(0, dtype=np.int64)
        site = site[(site >= 0) & (site < n_sites)]
        waiting = np.bincount(site, minlength=n_sites).astype(np.int64)[:n_sites]
        out.promise = PromiseInputs(riders, end_t, end_x, end_y, waiting)
