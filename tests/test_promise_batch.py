"""Batch quotes (``PromiseEngine.quote_sites_xy``) against one ``quote_xy`` + ``admit`` at a time, and the summary
that ``update`` builds from the riders that count only against the former whole-fleet computation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from dispatch.geo import ProfileTravelTime, Projection
from dispatch.kernels.route import MIXED, SINGLE_SITE, allocate_evaluation, evaluate_routes, evaluate_subset
from dispatch.kernels.travel import pairwise_seconds
from dispatch.promise import DeclineReason, PromiseEngine, PromiseParams, PromiseSites, UnknownSiteError
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes
from dispatch.zones import SiteZones, ZoneSpec

PROJ = Projection(31.23, 121.47)
T0 = 1_750_046_400.0  # 2025-06-16 12:00 local (UTC+8)
TRAVEL = ProfileTravelTime()
TIERS = (20.0, 30.0, 45.0, 60.0, 90.0)


# -- random worlds ----------------------------------------------------------------------------------------------------


def _params(rng: np.random.Generator, slots: bool) -> PromiseParams:
    tiers = tuple(t for t in TIERS if rng.random() < 0.6) or (45.0,)
    length = float(rng.choice([15.0, 30.0, 60.0]))
    return PromiseParams(
        mode="slots" if slots else "tiers",
        tiers_min=tiers,
        slot_length_min=length,
        slot_horizon_min=length * float(rng.integers(1, 6)),
        min_on_time_probability=float(rng.uniform(0.5, 0.99)),
        prep_min=float(rng.uniform(0.0, 15.0)),
        dropoff_service_min=float(rng.uniform(0.0, 3.0)),
        batch_orders=int(rng.integers(1, 4)),
        batch_extra_min=float(rng.uniform(0.0, 5.0)),
        trip_min=float(rng.uniform(10.0, 40.0)),
        reach_m=float(rng.uniform(1500.0, 9000.0)),
        shift_lookahead_min=float(rng.uniform(0.0, 30.0)),
        max_wait_per_rider=float(rng.uniform(0.3, 4.0)),
        sigma_min=float(rng.uniform(0.5, 4.0)),
        sigma_frac=float(rng.uniform(0.0, 0.1)),
    )


def _engine(rng: np.random.Generator, n_sites: int, slots: bool) -> tuple[PromiseEngine, Any]:
    """An engine of n sites (every fourth or so without a zone), and the zone radii (NaN: no zone)."""
    sx = np.arange(n_sites) * 3000.0 + rng.uniform(-500.0, 500.0, n_sites)
    sy = rng.uniform(-1000.0, 1000.0, n_sites)
    radius = np.where(rng.random(n_sites) < 0.2, np.nan, rng.uniform(1500.0, 3000.0, n_sites))
    specs = [None if math.isnan(r) else ZoneSpec(radius_m=float(r)) for r in radius]
    sites = PromiseSites.build(list(range(n_sites)), sx, sy, rng.uniform(0.0, 180.0, n_sites))
    zones = SiteZones(PROJ, sx, sy, specs)
    return PromiseEngine(sites, zones, TRAVEL, _params(rng, slots)), radius


def _state(
    rng: np.random.Generator, eng: PromiseEngine, m: int, n_orders: int, now: float
) -> tuple[OrderTable, RiderTable, Routes, Any]:
    """Orders (some in routes, some waiting), m riders (online or not, shifts over or ahead) and their routes."""
    n_sites = eng.sites.n
    home = rng.integers(0, n_sites, max(m, 1))[:m]
    theta, r = rng.uniform(0, 2 * math.pi, m), rng.uniform(0.0, 4000.0, m)
    start = now + rng.uniform(-5 * 3600.0, 1800.0, m)
    riders = RiderTable.build(
        x=eng.sites.x[home] + r * np.cos(theta), y=eng.sites.y[home] + r * np.sin(theta),
        avail=now + rng.uniform(-600.0, 2400.0, m), shift_start=start,
        shift_end=start + rng.uniform(1800.0, 8 * 3600.0, m), capacity=rng.integers(1, 5, m),
        speed=rng.uniform(0.8, 1.2, m), online=rng.random(m) < 0.7,
    )  # fmt: skip
    site = rng.integers(0, n_sites, n_orders)
    theta, r = rng.uniform(0, 2 * math.pi, n_orders), rng.uniform(0.0, 3000.0, n_orders)
    ready = now + rng.uniform(-900.0, 1200.0, n_orders)
    orders = OrderTable.build(
        pick_x=eng.sites.x[site], pick_y=eng.sites.y[site], drop_x=eng.sites.x[site] + r * np.cos(theta),
        drop_y=eng.sites.y[site] + r * np.sin(theta), site=site, ready=ready,
        promised=ready + rng.uniform(1200.0, 3600.0, n_orders), size=rng.integers(1, 4, n_orders),
        service_pick=rng.uniform(0.0, 120.0, n_orders), service_drop=rng.uniform(0.0, 120.0, n_orders),
    )  # fmt: skip
    stops: list[list[tuple[int, int]]] = [[] for _ in range(m)]
    waiting = []
    for o in range(n_orders):
        rider = int(rng.integers(0, m)) if m and rng.random() < 0.6 else -1
        if rider < 0 or len(stops[rider]) >= 8:
            waiting.append(o)
        elif rng.random() < 0.4:
            stops[rider].append((o, DROPOFF))  # picked up already
        else:
            stops[rider].extend([(o, PICKUP), (o, DROPOFF)])
    routes = Routes.from_lists(stops, 12)
    pending = None if rng.random() < 0.5 else np.asarray(waiting, dtype=np.int64)
    return orders, riders, routes, pending


def _summary_oracle(
    eng: PromiseEngine, orders: OrderTable, riders: RiderTable, routes: Routes, now: float, pending: Any
) -> tuple[Any, ...]:
    """The summary as ``update`` computed it before it evaluated only the riders that count: every rider of the
    table is evaluated into arrays of the whole fleet."""
    p = eng.params
    n_sites = eng.sites.n
    m = riders.m
    travel = TRAVEL.arrays()
    end_t = np.maximum(riders.avail.copy(), now)
    end_x = riders.x.copy()
    end_y = riders.y.copy()
    rows = np.flatnonzero(routes.length[:m] > 0).astype(np.int64)
    in_route = np.zeros(orders.n if pending is None else 0, dtype=bool)
    if rows.size:
        ev, tot = allocate_evaluation(m, routes.width)
        weights = np.array([1.0, 0.0, 0.0])
        evaluate_subset(orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), travel, weights, MIXED, rows, ev, tot)
        last = routes.length[rows] - 1
        lo, lk = routes.order[rows, last], routes.kind[rows, last]
        end_t[rows] = np.maximum(tot[0][rows], now)
        end_x[rows] = np.where(lk == PICKUP, orders.pick_x[lo], orders.drop_x[lo])
        end_y[rows] = np.where(lk == PICKUP, orders.pick_y[lo], orders.drop_y[lo])
        if pending is None:
            live = np.arange(routes.width)[None, :] < routes.length[rows, None]
            in_route[routes.order[rows][live]] = True
    lookahead = now + 60.0 * p.shift_lookahead_min
    starting = ~riders.online & (riders.shift_start > now) & (riders.shift_start <= lookahead)
    count = (riders.online | starting) & (riders.shift_end > now)
    end_t = np.where(starting, np.maximum(end_t, riders.shift_start), end_t)
    idx = np.flatnonzero(count)
    free_site, free_at, caps = np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64)
    if idx.size:
        tree = cKDTree(np.column_stack([eng.sites.x, eng.sites.y]))
        dist, near = tree.query(np.column_stack([end_x[idx], end_y[idx]]))
        ok = dist <= p.reach_m
        idx, near = idx[ok], near[ok]
        minus = np.full(idx.size, -1, dtype=np.int64)
        back = pairwise_seconds(
            travel, end_x[idx], end_y[idx], minus, eng.sites.x[near], eng.sites.y[near], minus, end_t[idx],
            riders.speed[idx],
        )  # fmt: skip
        t_free = end_t[idx] + back
        keep = t_free < riders.shift_end[idx]
        free_site, free_at, caps = near[keep], t_free[keep], riders.capacity[idx][keep]
    order = np.lexsort((free_at, free_site))
    ptr = np.searchsorted(free_site[order], np.arange(n_sites + 1))
    max_cap = np.zeros(n_sites, dtype=np.int64)
    np.maximum.at(max_cap, free_site, caps)
    pend = np.flatnonzero(~in_route) if pending is None else np.asarray(pending, dtype=np.int64)
    waiting = np.bincount(orders.site[pend], minlength=n_sites)
    return ptr, free_at[order], waiting, max_cap


def _batch_orders(rng: np.random.Generator, eng: PromiseEngine, k: int, now: float) -> tuple[Any, ...]:
    """k orders in bursts at one or two sites (so that queues saturate), some outside the zone, some too large."""
    busy = rng.integers(0, eng.sites.n, 2)
    site = np.where(rng.random(k) < 0.7, busy[rng.integers(0, 2, k)], rng.integers(0, eng.sites.n, k))
    theta, r = rng.uniform(0, 2 * math.pi, k), rng.uniform(0.0, 3200.0, k)
    x = eng.sites.x[site] + r * np.cos(theta)
    y = eng.sites.y[site] + r * np.sin(theta)
    size = rng.integers(1, 6, k)
    t = now + np.sort(rng.uniform(0.0, 15.0, k))
    return x, y, size, t, site.astype(np.int64)


def _one_at_a_time(eng: PromiseEngine, x: Any, y: Any, size: Any, t: Any, site: Any) -> tuple[Any, ...]:
    k = x.shape[0]
    promised, eta = np.full(k, np.nan), np.full(k, np.nan)
    declined, deferred = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=bool)
    for i in range(k):
        q = eng.quote_xy(float(x[i]), float(y[i]), int(size[i]), float(t[i]), int(site[i]))
        if not q.options:
            assert q.declined_reason is not None
            declined[i] = int(q.declined_reason)
            continue
        first = q.options[0]
        promised[i], eta[i], deferred[i] = first.promised_by, first.eta, first.deferred
        eng.admit(int(site[i]))
    return promised, eta, declined, deferred


def _assert_batch_equals_loop(eng: PromiseEngine, x: Any, y: Any, size: Any, t: Any, site: Any) -> Any:
    before = eng.summary.admitted.copy()
    want = _one_at_a_time(eng, x, y, size, t, site)
    admitted_loop = eng.summary.admitted.copy()
    eng.summary.admitted[:] = before
    got = eng.quote_sites_xy(x, y, size, t, site)
    np.testing.assert_array_equal(got.promised_by, want[0])
    np.testing.assert_array_equal(got.eta, want[1])
    np.testing.assert_array_equal(got.declined, want[2])
    np.testing.assert_array_equal(got.deferred, want[3])
    np.testing.assert_array_equal(eng.summary.admitted, admitted_loop)
    return got


# -- properties -------------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_sites=st.integers(1, 4),
    m=st.integers(0, 14),
    n_orders=st.integers(0, 30),
    hour=st.floats(0.0, 24.0),
)
def test_update_on_the_riders_that_count_equals_the_whole_fleet(
    seed: int, n_sites: int, m: int, n_orders: int, hour: float
) -> None:
    rng = np.random.default_rng(seed)
    eng, _ = _engine(rng, n_sites, slots=False)
    now = T0 + hour * 3600.0
    orders, riders, routes, pending = _state(rng, eng, m, n_orders, now)
    want = _summary_oracle(eng, orders, riders, routes, now, pending)
    got = eng.update(orders, riders, routes, now, pending)
    np.testing.assert_array_equal(got.free_ptr, want[0])
    np.testing.assert_array_equal(got.free_at, want[1])
    np.testing.assert_array_equal(got.waiting, want[2])
    np.testing.assert_array_equal(got.max_capacity, want[3])
    assert got.at == now and not got.admitted.any()
    # The simulator hands in the route end times it keeps (any mode, any deadlines: the end does not depend on
    # them); the summary is the same.
    _ev, tot = evaluate_routes(orders.as_tuple(), riders.as_tuple(), routes.as_tuple(), eng._travel,
                               np.array([1.0, 0.0, 20.0]), SINGLE_SITE)  # fmt: skip
    given_ends = eng.update(orders, riders, routes, now, pending, tot[0])
    np.testing.assert_array_equal(given_ends.free_ptr, want[0])
    np.testing.assert_array_equal(given_ends.free_at, want[1])
    # The simulator also tells each rider's home site (right or wrong, or none): the same summary.
    eng2, _ = _engine(np.random.default_rng(seed), n_sites, slots=False)
    home = rng.integers(-1, n_sites, riders.m)
    with_home = eng2.update(orders, riders, routes, now, pending, tot[0], home=home)
    np.testing.assert_array_equal(with_home.free_ptr, want[0])
    np.testing.assert_array_equal(with_home.free_at, want[1])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_sites=st.integers(1, 4))
def test_repeated_updates_of_one_engine_equal_the_whole_fleet(seed: int, n_sites: int) -> None:
    # One engine through several states (riders move, fleets of other sizes): what it keeps between updates (the
    # nearest site of each rider's free point) never leaks into the next summary.
    rng = np.random.default_rng(seed)
    eng, _ = _engine(rng, n_sites, slots=False)
    now = T0
    orders, riders, routes, pending = _state(rng, eng, 8, 10, now)
    for _ in range(4):
        now += 60.0
        if rng.random() < 0.3:
            orders, riders, routes, pending = _state(rng, eng, int(rng.integers(0, 16)), 10, now)
        else:
            moved = rng.random(riders.m) < 0.5
            riders.x[moved] += rng.uniform(-2000.0, 2000.0, int(moved.sum()))
            riders.online[:] = rng.random(riders.m) < 0.8
        want = _summary_oracle(eng, orders, riders, routes, now, pending)
        got = eng.update(orders, riders, routes, now, pending)
        for g, w in zip((got.free_ptr, got.free_at, got.waiting, got.max_capacity), want, strict=True):
            np.testing.assert_array_equal(g, w)


def _worlds(max_sites: int, max_riders: int) -> dict[str, Any]:
    """Strategies for a random world and a batch of k orders quoted in it (``_engine``, ``_state``,
    ``_batch_orders``)."""
    return {
        "seed": st.integers(0, 2**32 - 1),
        "n_sites": st.integers(1, max_sites),
        "m": st.integers(0, max_riders),
        "n_orders": st.integers(0, 20),
        "k": st.integers(0, 40),
        "slots": st.booleans(),
        "hour": st.floats(0.0, 24.0),
    }


@settings(max_examples=80, deadline=None)
@given(**_worlds(4, 14))
def test_batch_equals_one_quote_and_admit_at_a_time(
    seed: int, n_sites: int, m: int, n_orders: int, k: int, slots: bool, hour: float
) -> None:
    rng = np.random.default_rng(seed)
    eng, _ = _engine(rng, n_sites, slots)
    now = T0 + hour * 3600.0
    eng.update(*_state(rng, eng, m, n_orders, now)[:3], now)
    eng.summary.admitted[:] = rng.integers(0, 3, n_sites)  # orders admitted since by an earlier batch
    _assert_batch_equals_loop(eng, *_batch_orders(rng, eng, k, now))


def _fixed_engine(slots: bool) -> PromiseEngine:
    """Site 0 with 2 riders of capacity 3, site 1 without riders, site 2 without a zone."""
    sx, sy = np.array([0.0, 8000.0, 16000.0]), np.zeros(3)
    sites = PromiseSites.build(["a", "b", "c"], sx, sy, 60.0)
    zones = SiteZones(PROJ, sx, sy, [ZoneSpec(radius_m=3000.0), ZoneSpec(radius_m=3000.0), None])
    params = PromiseParams(
        mode="slots" if slots else "tiers", tiers_min=(30.0, 45.0, 60.0), slot_length_min=30.0, max_wait_per_rider=4.0
    )
    eng = PromiseEngine(sites, zones, TRAVEL, params)
    riders = RiderTable.build(
        x=[0.0, 10.0], y=[0.0, 0.0], avail=[T0, T0], shift_end=[T0 + 8 * 3600.0] * 2, capacity=[3, 3]
    )
    none = np.zeros(0)
    no_orders = OrderTable.build(
        pick_x=none, pick_y=none, drop_x=none, drop_y=none, site=np.zeros(0, dtype=np.int64), ready=none, promised=none
    )
    eng.update(no_orders, riders, Routes.empty(2, 12), T0)
    return eng


@pytest.mark.parametrize("slots", [False, True])
def test_every_outcome_of_a_burst_matches_the_loop(slots: bool) -> None:
    # 12 orders 1 km from site a: the queue grows (deferred), then the site is saturated;
    # then a too-large order, one 5 km out (outside a's zone), one at b (no rider), one at c (no zone).
    k = 12
    x = np.r_[np.full(k, 1000.0), 500.0, 5000.0, 8500.0, 16000.0]
    y = np.zeros(k + 4)
    size = np.r_[np.ones(k, dtype=np.int64), 4, 1, 1, 1]
    t = np.full(k + 4, T0 + 60.0)
    site = np.r_[np.zeros(k + 2, dtype=np.int64), 1, 2]
    got = _assert_batch_equals_loop(_fixed_engine(slots), x, y, size, t, site)
    d = got.declined
    assert d[0] == 0 and not got.deferred[0] and got.eta[0] < got.promised_by[0]
    assert got.deferred[:k].any()  # a busy site's first option is a later tier or slot
    n_ok = int((d[:k] == 0).sum())  # at most 2 riders x 4 waiting + 1: then admission (or the last tier) closes
    assert 1 < n_ok <= 9 and (d[:n_ok] == 0).all() and (d[n_ok:k] == DeclineReason.SATURATED).all()
    tail = [DeclineReason.TOO_LARGE, DeclineReason.OUTSIDE_SITE_ZONE, DeclineReason.SATURATED]
    assert d[k:].tolist() == [*tail, DeclineReason.OUTSIDE_SITE_ZONE]
    assert np.isnan(got.promised_by[d != 0]).all() and np.isnan(got.eta[d != 0]).all()


def test_bad_batches_raise_clear_errors() -> None:
    eng = _fixed_engine(False)
    one = np.zeros(1)
    with pytest.raises(ValueError, match="size"):
        eng.quote_sites_xy(one, one, np.zeros(1, dtype=np.int64), one + T0, np.zeros(1, dtype=np.int64))
    with pytest.raises(ValueError, match="size"):
        eng.quote_sites_xy(one, one, np.ones(1), one + T0, np.zeros(1, dtype=np.int64))
    with pytest.raises(ValueError, match="now"):
        eng.quote_sites_xy(one, one, [1], [np.nan], [0])
    with pytest.raises(ValueError, match="x"):
        eng.quote_sites_xy([np.inf], one, [1], one + T0, [0])
    with pytest.raises(ValueError, match="y: expected 1"):
        eng.quote_sites_xy(one, np.zeros(2), [1], one + T0, [0])
    with pytest.raises(UnknownSiteError, match="index 3"):
        eng.quote_sites_xy(one, one, [1], one + T0, [3])
    empty = eng.quote_sites_xy([], [], np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.int64))
    assert empty.promised_by.shape == (0,) and empty.declined.dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(**_worlds(3, 120))
def test_quotes_of_a_summary_sorted_only_as_far_as_they_read(
    seed: int, n_sites: int, m: int, n_orders: int, k: int, slots: bool, hour: float
) -> None:
    """``update(..., quotes=...)`` (the simulator's: the orders about to be quoted, per site) sorts each site's
    free times only as far as those quotes read; the quotes are the same as from a summary sorted in full."""
    rng = np.random.default_rng(seed)
    eng, _ = _engine(rng, n_sites, slots)
    now = T0 + hour * 3600.0
    orders, riders, routes, pending = _state(rng, eng, m, n_orders, now)
    batch = _batch_orders(rng, eng, k, now)
    full = eng.update(orders, riders, routes, now, pending)
    want = eng.quote_sites_xy(*batch)
    per_site = np.bincount(batch[4], minlength=n_sites).astype(np.int64)
    part = eng.update(orders, riders, routes, now, pending, quotes=per_site)
    got = eng.quote_sites_xy(*batch)
    for name in ("promised_by", "eta", "declined", "deferred"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    np.testing.assert_array_equal(part.free_ptr, full.free_ptr)
    np.testing.assert_array_equal(part.max_capacity, full.max_capacity)
    for s in range(n_sites):
        row = slice(int(full.free_ptr[s]), int(full.free_ptr[s + 1]))
        np.testing.assert_array_equal(np.sort(part.free_at[row]), full.free_at[row])


def test_a_busy_site_is_sorted_only_where_quotes_read() -> None:
    # 200 riders at one site, 3 orders about to be quoted: only the first few free times are put in order.
    rng = np.random.default_rng(3)
    sx, sy = np.zeros(1), np.zeros(1)
    eng = PromiseEngine(PromiseSites.build(["a"], sx, sy, 60.0), SiteZones(PROJ, sx, sy, [ZoneSpec(radius_m=3000.0)]),
                        TRAVEL, PromiseParams(batch_orders=1))  # fmt: skip
    m = 200
    riders = RiderTable.build(x=rng.uniform(-500.0, 500.0, m), y=np.zeros(m), avail=T0 + rng.uniform(0.0, 1800.0, m),
                              shift_end=np.full(m, T0 + 8 * 3600.0), capacity=np.full(m, 4))  # fmt: skip
    none = np.zeros(0)
    orders = OrderTable.build(
        pick_x=none, pick_y=none, drop_x=none, drop_y=none, site=np.zeros(0, dtype=np.int64), ready=none, promised=none
    )
    x, y = np.array([800.0, -900.0, 1500.0]), np.zeros(3)
    batch = (x, y, np.ones(3, dtype=np.int64), np.full(3, T0), np.zeros(3, dtype=np.int64))
    full = eng.update(orders, riders, Routes.empty(m, 12), T0)
    want = eng.quote_sites_xy(*batch)
    part = eng.update(orders, riders, Routes.empty(m, 12), T0, quotes=np.array([3]))
    got = eng.quote_sites_xy(*batch)
    np.testing.assert_array_equal(got.eta, want.eta)
    np.testing.assert_array_equal(part.free_at[:4], full.free_at[:4])
    assert not np.array_equal(part.free_at, full.free_at)  # the rest left in rider order
    np.testing.assert_array_equal(np.sort(part.free_at), full.free_at)
