"""Tests for dispatch.candidates.candidate_pairs: reach, the size bound, pinned orders, the order side against a
plain-Python estimate, the rider side, and no starved orders at a busy site (a full matching exists among the
candidates)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import NOW
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from dispatch.candidates import RIDER_SIDE_PER_ORDER, SITES_PER_RIDER, candidate_pairs
from dispatch.kernels.grid import nearest_points
from dispatch.state import OrderTable, RiderTable


def world(rng: np.random.Generator, n: int, m: int, n_sites: int, radius: float, pinned_share: float = 0.0):  # type: ignore[no-untyped-def]
    sx, sy = rng.uniform(-radius, radius, n_sites), rng.uniform(-radius, radius, n_sites)
    site = rng.integers(0, n_sites, n)
    pinned = np.where(rng.random(n) < pinned_share, rng.integers(0, m + 2, n), -1)  # some pins out of range
    orders = OrderTable.build(
        pick_x=sx[site],
        pick_y=sy[site],
        drop_x=sx[site] + rng.uniform(-2e3, 2e3, n),
        drop_y=sy[site] + rng.uniform(-2e3, 2e3, n),
        site=site,
        ready=NOW + rng.uniform(0.0, 600.0, n),
        promised=NOW + rng.uniform(1800.0, 3600.0, n),
        pinned=pinned,
    )
    riders = RiderTable.build(
        x=rng.uniform(-radius, radius, m),
        y=rng.uniform(-radius, radius, m),
        avail=np.full(m, NOW),
        shift_end=np.full(m, NOW + 7200.0),
        capacity=np.full(m, 6),
    )
    return orders, riders


def pairs_by_order(cand) -> dict[int, list[int]]:  # type: ignore[no-untyped-def]
    out: dict[int, list[int]] = {}
    for o, r in zip(cand.pair_o.tolist(), cand.pair_r.tolist(), strict=True):
        out.setdefault(o, []).append(r)
    return out


def matching_size(orders_list: list[int], by_order: dict[int, list[int]], m: int) -> int:
    rows, cols = [], []
    for i, o in enumerate(orders_list):
        for r in by_order.get(o, []):
            rows.append(i)
            cols.append(r)
    if not rows:
        return 0
    graph = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(orders_list), m))
    match = maximum_bipartite_matching(graph, perm_type="column")
    return int((match >= 0).sum())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 25),
    m=st.integers(1, 25),
    n_sites=st.integers(1, 5),
    k=st.integers(1, 8),
    reach=st.sampled_from([500.0, 2000.0, 6000.0, 50_000.0]),
)
def test_candidate_pairs_properties(seed: int, n: int, m: int, n_sites: int, k: int, reach: float) -> None:
    rng = np.random.default_rng(seed)
    orders, riders = world(rng, n + 5, m, n_sites, 5000.0, pinned_share=0.2)
    pending = np.sort(rng.choice(n + 5, n, replace=False)).astype(np.int64)  # not every order is pending
    free_x = riders.x + rng.uniform(-500.0, 500.0, m)
    free_y = riders.y + rng.uniform(-500.0, 500.0, m)
    free_at = NOW + rng.uniform(0.0, 1200.0, m)
    accepting = rng.random(m) < 0.8
    cand = candidate_pairs(orders, riders, pending, free_x, free_y, free_at, accepting, NOW, k, reach, 4.5)

    assert cand.pair_o.dtype == np.int64 and cand.pair_r.dtype == np.int64
    assert cand.in_reach.shape == (n,)
    pairs = list(zip(cand.pair_o.tolist(), cand.pair_r.tolist(), strict=True))
    assert pairs == sorted(set(pairs))  # sorted by order (then rider), no duplicates
    assert set(cand.pair_o.tolist()) <= set(pending.tolist())
    assert all(accepting[r] for _, r in pairs)
    by_order = pairs_by_order(cand)
    n_free = int((orders.pinned[pending] < 0).sum())
    assert len(pairs) <= n_free * (k + 2) + int(accepting.sum()) * k + n  # order side + window + rider side + pins
    for q, o in enumerate(pending.tolist()):
        mine = by_order.get(o, [])
        pin = int(orders.pinned[o])
        if pin >= 0:
            # A pinned order's only candidate is its rider, when that rider exists and accepts.
            expect = [pin] if pin < m and accepting[pin] else []
            assert mine == expect
            assert bool(cand.in_reach[q]) == bool(expect)
            continue
        d = np.hypot(free_x - orders.pick_x[o], free_y - orders.pick_y[o])
        for r in mine:
            assert d[r] <= reach
        reachable = accepting & (d <= reach)
        assert bool(cand.in_reach[q]) == bool(reachable.any())
        if reachable.any():
            assert mine  # in reach means at least one candidate


def busy_site(rng: np.random.Generator, n: int, m: int, accepting_share: float):  # type: ignore[no-untyped-def]
    orders, riders = world(rng, n, m, 1, 0.0)
    free_x = rng.uniform(-3000.0, 3000.0, m)
    free_y = rng.uniform(-3000.0, 3000.0, m)
    free_at = NOW + rng.uniform(0.0, 900.0, m)
    accepting = rng.random(m) < accepting_share
    return orders, riders, free_x, free_y, free_at, accepting


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    m=st.integers(1, 40),
    k=st.integers(2, 8),
    share=st.sampled_from([0.5, 1.0]),
)
def test_busy_site_every_order_can_have_a_rider_of_its_own(seed: int, n: int, m: int, k: int, share: float) -> None:
    """One site, n orders, m riders all in reach: the candidates hold a matching of min(n, accepting riders)."""
    rng = np.random.default_rng(seed)
    orders, riders, fx, fy, fat, accepting = busy_site(rng, n, m, share)
    pending = np.arange(n, dtype=np.int64)
    cand = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, k, 10_000.0, 4.5)
    want = min(n, int(accepting.sum()))
    assert matching_size(pending.tolist(), pairs_by_order(cand), m) == want


def test_busy_site_matching_with_k_one() -> None:
    rng = np.random.default_rng(3)
    orders, riders, fx, fy, fat, accepting = busy_site(rng, 10, 20, 1.0)
    pending = np.arange(10, dtype=np.int64)
    cand = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, 1, 10_000.0, 4.5)
    assert matching_size(pending.tolist(), pairs_by_order(cand), 20) == 10


def test_rider_side_must_be_positive() -> None:
    rng = np.random.default_rng(1)
    orders, riders = world(rng, 2, 3, 1, 100.0)
    with pytest.raises(ValueError, match="rider_side"):
        candidate_pairs(orders, riders, np.arange(2), riders.x, riders.y, riders.avail, np.ones(3, bool), NOW, 2, 1e4,
                        4.5, rider_side=0)  # fmt: skip


def test_no_pending_no_riders() -> None:
    rng = np.random.default_rng(0)
    orders, riders = world(rng, 4, 3, 2, 3000.0)
    z = np.zeros(3)
    none = candidate_pairs(orders, riders, np.zeros(0, np.int64), z, z, z + NOW, np.ones(3, bool), NOW, 4, 1e4, 4.5)
    assert none.pair_o.size == 0 and none.in_reach.size == 0
    off = candidate_pairs(orders, riders, np.arange(4), z, z, z + NOW, np.zeros(3, bool), NOW, 4, 1e4, 4.5)
    assert off.pair_o.size == 0 and not off.in_reach.any()


def plain_estimate(orders: OrderTable, o: int, fx: float, fy: float, fat: float, speed: float, v: float) -> float:
    """The append estimate of dispatch.kernels.candidates, written out for straight lines at speed ``v``."""
    arrive = fat + math.hypot(orders.pick_x[o] - fx, orders.pick_y[o] - fy) / (v * speed)
    depart = max(arrive, orders.ready[o]) + orders.service_pick[o]
    leg = math.hypot(orders.drop_x[o] - orders.pick_x[o], orders.drop_y[o] - orders.pick_y[o]) / v
    at_drop = depart + leg / speed
    return (at_drop + orders.service_drop[o] - fat) + 20.0 * max(0.0, at_drop - orders.promised[o])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), m=st.integers(1, 30), k=st.integers(1, 5))
def test_order_side_is_the_k_cheapest_estimates_among_the_nearest(seed: int, n: int, m: int, k: int) -> None:
    """No window, no rider side: each order's candidates are exactly its k cheapest (by the plain estimate) among
    the 3k accepting riders nearest its site."""
    rng = np.random.default_rng(seed)
    orders, riders = world(rng, n, m, 3, 4000.0)
    fx = riders.x.copy()
    fy = riders.y.copy()
    fat = NOW + rng.uniform(0.0, 900.0, m)
    accepting = rng.random(m) < 0.8
    pending = np.arange(n, dtype=np.int64)
    cand = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, k, 1e6, 4.5, k_rider=0, window=0)
    by_order = pairs_by_order(cand)
    ok = np.flatnonzero(accepting)
    for o in range(n):
        d = np.hypot(fx[ok] - orders.pick_x[o], fy[ok] - orders.pick_y[o])
        pool = ok[np.argsort(d, kind="stable")][: 3 * k]
        est = [plain_estimate(orders, o, fx[r], fy[r], fat[r], riders.speed[r], 4.5) for r in pool]
        want = sorted(pool[np.argsort(est, kind="stable")][:k].tolist())
        assert by_order.get(o, []) == want


def test_rider_side_reaches_orders_the_order_side_misses() -> None:
    """Five orders at one site, all wanting the same nearest rider first: with k = 1 the order side gives each
    order that one rider; the rider side gives every other rider its cheapest order too."""
    rng = np.random.default_rng(5)
    orders, riders = world(rng, 5, 6, 1, 0.0)
    fx = np.array([10.0, 500.0, 600.0, 700.0, 800.0, 900.0])
    fy = np.zeros(6)
    fat = np.full(6, NOW)
    accepting = np.ones(6, dtype=bool)
    pending = np.arange(5, dtype=np.int64)
    only_orders = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, 1, 1e4, 4.5, k_rider=0,
                                  window=0)  # fmt: skip
    assert set(only_orders.pair_r.tolist()) == {0}
    both = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, 1, 1e4, 4.5, window=0)
    assert set(both.pair_r.tolist()) == {0, 1, 2, 3, 4, 5}
    assert matching_size(pending.tolist(), pairs_by_order(both), 6) >= 1


def test_rider_side_ties_go_to_the_nearer_sites_order_across_the_two_paths() -> None:
    """Rider 0 stands halfway between two sites, each with one order, the two orders mirror images (the same
    estimate for rider 0 to the last bit). Site 1's pool holds rider 0 (its estimate comes from the order side);
    site 0's does not (three riders stand at it), so rider 0 estimates that order itself. With one proposal per
    rider the tie goes to the order that comes first in rider 0's own scan, site 0's (nearest first, ties to the
    lower site): whichever path offered it, and in whatever order."""
    orders = OrderTable.build(
        pick_x=np.array([-1000.0, 1000.0]), pick_y=np.zeros(2), drop_x=np.array([-1500.0, 1500.0]),
        drop_y=np.array([300.0, 300.0]), site=np.array([0, 1]), ready=np.full(2, NOW),
        promised=np.full(2, NOW + 3600.0),
    )  # fmt: skip
    fx = np.array([0.0, -1000.0, -1000.0, -990.0])
    fy = np.array([0.0, 10.0, -10.0, 0.0])
    riders = RiderTable.build(x=fx, y=fy, avail=np.full(4, NOW), shift_end=np.full(4, NOW + 7200.0),
                              capacity=np.full(4, 6))  # fmt: skip
    fat = np.full(4, NOW)
    accepting = np.ones(4, dtype=bool)
    pending = np.arange(2, dtype=np.int64)
    cand = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, 1, 1e4, 4.5, k_rider=1, window=0)
    pairs = set(zip(cand.pair_o.tolist(), cand.pair_r.tolist(), strict=True))
    order_side = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, 1, 1e4, 4.5, k_rider=0,
                                 window=0)  # fmt: skip
    assert (0, 0) not in set(zip(order_side.pair_o.tolist(), order_side.pair_r.tolist(), strict=True))
    assert (0, 0) in pairs  # rider 0's proposal: site 0's order
    assert (1, 0) in pairs  # site 1's own cheapest rider


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(40, 100), k=st.integers(1, 3))
def test_rider_side_keeps_each_orders_cheapest_proposals(seed: int, m: int, k: int) -> None:
    """One order, many riders (a quiet site): every rider proposes it, and the order keeps only its
    RIDER_SIDE_PER_ORDER x k cheapest proposals (by the plain estimate), so pairs stay sparse."""
    rng = np.random.default_rng(seed)
    orders, riders = world(rng, 1, m, 1, 3000.0)
    fx, fy = riders.x.copy(), riders.y.copy()
    fat = NOW + rng.uniform(0.0, 900.0, m)
    accepting = np.ones(m, dtype=bool)
    pending = np.zeros(1, dtype=np.int64)
    rider_only = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, k, 1e6, 4.5, window=0)
    cap = RIDER_SIDE_PER_ORDER * k
    est = np.array([plain_estimate(orders, 0, fx[r], fy[r], fat[r], riders.speed[r], 4.5) for r in range(m)])
    cheapest = set(np.argsort(est, kind="stable")[:cap].tolist())
    got = set(rider_only.pair_r.tolist())
    assert len(got) <= k + cap < m
    assert cheapest <= got
    # A smaller rider side keeps fewer: its own cheapest proposals (plus the order's k of its own).
    small = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, k, 1e6, 4.5, window=0, rider_side=2)
    got2 = set(small.pair_r.tolist())
    assert len(got2) <= k + 2 * k
    assert set(np.argsort(est, kind="stable")[: 2 * k].tolist()) <= got2


def plain_rider_side(orders: OrderTable, riders: RiderTable, pending, fx, fy, fat, accepting, k_rider: int,  # type: ignore[no-untyped-def]
                     reach: float, per_order: int) -> set[tuple[int, int]]:  # fmt: skip
    """The rider side written out: each accepting rider's k_rider cheapest plain estimates over every order of its
    nearest SITES_PER_RIDER sites in reach (ties: the earlier order, groups nearest first, each by ready time),
    then each order's per_order cheapest proposals (ties: the lower rider)."""
    site = orders.site[pending]
    srt = np.lexsort((pending, orders.ready[pending], site))
    members = pending[srt]
    sites, starts = np.unique(site[srt], return_index=True)
    bounds = [*starts.tolist(), members.size]
    cx, cy = orders.pick_x[members[starts]], orders.pick_y[members[starts]]
    props: list[tuple[float, int, int]] = []  # (estimate, rank of the proposal, order), per rider in index order
    for r in np.flatnonzero(accepting).tolist():
        d = np.sqrt((cx - fx[r]) ** 2 + (cy - fy[r]) ** 2)
        near = [g for g in np.argsort(d, kind="stable")[: min(sites.size, SITES_PER_RIDER)].tolist() if d[g] < reach]
        vals: list[tuple[float, int, int]] = []
        for g in near:
            for o in members[bounds[g] : bounds[g + 1]].tolist():
                ride = math.hypot(orders.pick_x[o] - fx[r], orders.pick_y[o] - fy[r])
                arrive = fat[r] + ride / (4.5 * riders.speed[r])
                if arrive <= riders.shift_end[r]:
                    vals.append((plain_estimate(orders, o, fx[r], fy[r], fat[r], riders.speed[r], 4.5), len(vals), o))
        for v, _pos, o in sorted(vals)[:k_rider]:
            props.append((v, r, o))
    kept: set[tuple[int, int]] = set()
    by_order: dict[int, list[tuple[float, int, int]]] = {}
    for rank, (v, r, o) in enumerate(props):
        by_order.setdefault(o, []).append((v, rank, r))
    for o, lst in by_order.items():
        kept.update((o, r) for _v, _rank, r in sorted(lst)[:per_order])
    return kept


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 80),
    m=st.integers(1, 40),
    n_sites=st.integers(1, 6),
    k=st.integers(1, 4),
    k_rider=st.integers(1, 5),
    slow=st.sampled_from([0.0, 0.5]),
)
def test_rider_side_is_each_riders_cheapest_orders(seed: int, n: int, m: int, n_sites: int, k: int, k_rider: int,
                                                   slow: float) -> None:  # fmt: skip
    """The pairs are the order side's plus the rider side written out in plain Python (``plain_rider_side``):
    every order of a rider's nearest sites estimated. The kernel prices them in the order side's passes (its
    riders outside a group's pool join the pool) and cuts each order's proposals group by group; this checks
    that the result is the same, with riders of different speeds (``slow``: some at half speed), orders that will
    be late, shifts that end."""
    rng = np.random.default_rng(seed)
    orders, _r = world(rng, n, m, n_sites, 4000.0)
    orders = OrderTable.build(
        pick_x=orders.pick_x, pick_y=orders.pick_y, drop_x=orders.drop_x, drop_y=orders.drop_y, site=orders.site,
        ready=NOW + rng.uniform(0.0, 1200.0, n), promised=NOW + rng.uniform(300.0, 3000.0, n),
        service_pick=rng.uniform(0.0, 120.0, n), service_drop=rng.uniform(0.0, 120.0, n),
    )  # fmt: skip
    speed = np.where(rng.random(m) < slow, 0.5, 1.0) * rng.uniform(0.8, 1.2, m)
    fx, fy = rng.uniform(-5000.0, 5000.0, m), rng.uniform(-5000.0, 5000.0, m)
    fat = NOW + rng.uniform(0.0, 900.0, m)
    riders = RiderTable.build(x=fx, y=fy, avail=np.full(m, NOW), shift_end=NOW + rng.uniform(300.0, 7200.0, m),
                              capacity=np.full(m, 6), speed=speed)  # fmt: skip
    accepting = rng.random(m) < 0.9
    pending = np.arange(n, dtype=np.int64)
    reach = 6000.0
    both = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, k, reach, 4.5, k_rider=k_rider,
                           window=0)  # fmt: skip
    order_side = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, k, reach, 4.5, k_rider=0,
                                 window=0)  # fmt: skip
    want = set(zip(order_side.pair_o.tolist(), order_side.pair_r.tolist(), strict=True))
    want |= plain_rider_side(orders, riders, pending, fx, fy, fat, accepting, k_rider, reach, RIDER_SIDE_PER_ORDER * k)
    assert set(zip(both.pair_o.tolist(), both.pair_r.tolist(), strict=True)) == want


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), g=st.integers(1, 12), s=st.integers(1, 4))
def test_nearest_groups_match_a_kd_tree(seed: int, n: int, g: int, s: int) -> None:
    from scipy.spatial import cKDTree

    from dispatch.kernels.candidates import nearest_groups

    rng = np.random.default_rng(seed)
    p = rng.uniform(-5e3, 5e3, (n, 2))
    c = rng.uniform(-5e3, 5e3, (g, 2))
    k = min(s, g)
    got = nearest_groups(p[:, 0].copy(), p[:, 1].copy(), c[:, 0].copy(), c[:, 1].copy(), k, 4000.0)
    _d, want = cKDTree(c).query(p, k=k, distance_upper_bound=4000.0)
    assert np.array_equal(got, np.asarray(want, dtype=np.int64).reshape(n, k))
    # Past BRUTE_FORCE_SITES groups the riders' nearest come from the grid, with the sites as its points.
    _d, by_grid = nearest_points(c[:, 0].copy(), c[:, 1].copy(), p[:, 0].copy(), p[:, 1].copy(), k, 4000.0)
    assert np.array_equal(by_grid, got)


def _site(rng: np.random.Generator, n: int, m: int, x0: float, site: int):  # type: ignore[no-untyped-def]
    """One site at (x0, 0): its orders' columns and its riders' free points, times and acceptance."""
    o = dict(pick_x=np.full(n, x0), pick_y=np.zeros(n), drop_x=x0 + rng.uniform(-2e3, 2e3, n),
             drop_y=rng.uniform(-2e3, 2e3, n), site=np.full(n, site), ready=NOW + rng.uniform(0.0, 300.0, n),
             promised=NOW + rng.uniform(1500.0, 3600.0, n))  # fmt: skip
    fx, fy = x0 + rng.uniform(-3e3, 3e3, m), rng.uniform(-3e3, 3e3, m)
    return o, (fx, fy, NOW + rng.uniform(0.0, 900.0, m), rng.random(m) < 0.9)


def _two_sites(seed: int, n_a: int, m_a: int, n_b: int, m_b: int, far: bool):  # type: ignore[no-untyped-def]
    """Site A (its n_a orders and m_a riders first), then, when ``far``, site B 1,000 km away with n_b orders and
    m_b riders; each site drawn from its own generator, so that A's rows are the same either way."""
    parts = [_site(np.random.default_rng([seed, 0]), n_a, m_a, 0.0, 0)]
    if far:
        parts.append(_site(np.random.default_rng([seed, 1]), n_b, m_b, 1e6, 1))
    orders = OrderTable.build(**{key: np.concatenate([p[0][key] for p in parts]) for key in parts[0][0]})
    fx, fy, fat, accepting = (np.concatenate([p[1][i] for p in parts]) for i in range(4))
    m = fx.shape[0]
    riders = RiderTable.build(x=fx, y=fy, avail=np.full(m, NOW), shift_end=np.full(m, NOW + 7200.0),
                              capacity=np.full(m, 6))  # fmt: skip
    return orders, riders, fx, fy, fat, accepting


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_a=st.integers(1, 6), n_b=st.integers(20, 60), k=st.integers(2, 6))
def test_a_sites_candidates_do_not_depend_on_other_sites(seed: int, n_a: int, n_b: int, k: int) -> None:
    """Site A's pairs are the same whether or not a far site with a large pickup group ticks with it: what a site's
    list of nearest riders holds depends on its own orders only (the simulator's partition into shards must not
    change a site's outcome)."""
    m_a, m_b = 80, 30
    alone = _two_sites(seed, n_a, m_a, n_b, m_b, far=False)
    both = _two_sites(seed, n_a, m_a, n_b, m_b, far=True)
    got = []
    for orders, riders, fx, fy, fat, accepting in (alone, both):
        pending = np.arange(orders.n, dtype=np.int64)
        cand = candidate_pairs(orders, riders, pending, fx, fy, fat, accepting, NOW, k, 8000.0, 4.5, window=3)
        mine = cand.pair_o < n_a
        got.append((cand.pair_o[mine].tolist(), cand.pair_r[mine].tolist(), cand.in_reach[:n_a].tolist()))
    assert got[0] == got[1]
