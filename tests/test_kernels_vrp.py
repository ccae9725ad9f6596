"""The benchmark solver's route kernels against a plain-Python oracle: the O(1) insertion checks on time-window
summaries agree with riding the modified route from the depot, on random feasible routes (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.kernels.vrp_routes import INF, best_pair, best_single, check_state, rand_float, rand_int, update_route
from dispatch.kernels.vrp_search import construct, distance_slice, fleet_slice, new_state, remove_marked


def _random_problem(seed: int, n: int, pdp: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """``dist`` (n+1, n+1) and ``nd`` (4, n+1) with random points, windows and demands."""
    g = np.random.default_rng(seed)
    xy = g.uniform(0, 50, (n + 1, 2))
    dist = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    ready = g.uniform(0, 150, n + 1)
    due = ready + g.uniform(20, 200, n + 1)
    ready[0], due[0] = 0.0, 600.0
    service = g.uniform(0, 10, n + 1)
    service[0] = 0.0
    demand = g.integers(1, 10, n + 1).astype(np.float64)
    demand[0] = 0.0
    if pdp:
        demand[2::2] = -demand[1::2]
    nd = np.ascontiguousarray(np.stack([ready, due, service, demand]))
    return dist, nd, 30.0


def _ride(route: list[int], dist: np.ndarray, nd: np.ndarray, cap: float) -> tuple[bool, float]:
    """The oracle: (feasible, distance) of depot -> route -> depot, riding it in plain Python."""
    t, q, prev, total = float(nd[0, 0]), 0.0, 0, 0.0
    seen: set[int] = set()
    for v in [*route, 0]:
        total += dist[prev, v]
        t = max(float(nd[0, v]), t + float(nd[2, prev]) + float(dist[prev, v]))
        if t > nd[1, v]:
            return False, total
        q += float(nd[3, v])
        if q > cap:
            return False, total
        if v and nd[3, v] < 0 and v - 1 not in seen:  # pairs are (odd pickup, next even delivery)
            return False, total
        seen.add(v)
        prev = v
    return True, total


def _load(route: list[int], n: int) -> tuple[np.ndarray, ...]:
    st_ = new_state(n, 2)
    r_arr, rl = st_[0], st_[1]
    r_arr[0, 1 : len(route) + 1] = route
    r_arr[0, len(route) + 1] = 0
    rl[0] = len(route)
    st_[5][0] = 1
    return st_


def _feasible_route(
    g: np.random.Generator, nodes: list[int], dist: np.ndarray, nd: np.ndarray, cap: float
) -> list[int]:
    """Greedy: add nodes in random order at the end while the route stays feasible."""
    route: list[int] = []
    for v in g.permutation(nodes):
        if _ride([*route, int(v)], dist, nd, cap)[0]:
            route.append(int(v))
    return route


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_single_insertion_matches_oracle(seed: int) -> None:
    n = 12
    dist, nd, cap = _random_problem(seed, n, pdp=False)
    g = np.random.default_rng(seed + 1)
    route = _feasible_route(g, list(range(1, n)), dist, nd, cap)
    state = _load(route, n)
    update_route(0, state[0], state[1], state[2], state[3], state[4], dist, nd)
    base = _ride(route, dist, nd, cap)[1]
    assert abs(state[3][0] - base) < 1e-9
    rng = np.array([1], dtype=np.uint64)
    for u in range(1, n + 1):
        if u in route:
            continue
        want = INF
        for p in range(len(route) + 1):
            ok, d = _ride([*route[:p], u, *route[p:]], dist, nd, cap)
            if ok:
                want = min(want, d - base)
        got, pos = best_single(u, 0, state[0], state[1], state[2], dist, nd, cap, 0.0, rng, INF)
        if want == INF:
            assert pos == -1
        else:
            assert pos >= 0 and abs(got - want) < 1e-7
            cand = [*route[:pos], u, *route[pos:]]
            assert _ride(cand, dist, nd, cap)[0]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_pair_insertion_matches_oracle(seed: int) -> None:
    n = 12  # pairs (1, 2), (3, 4), ...
    dist, nd, cap = _random_problem(seed, n, pdp=True)
    g = np.random.default_rng(seed + 7)
    route: list[int] = []
    for p in g.permutation(np.arange(1, n, 2))[: n // 2 - 1]:
        best = None
        for i in range(len(route) + 1):
            for j in range(i, len(route) + 1):
                cand = [*route[:i], int(p), *route[i:j], int(p) + 1, *route[j:]]
                if _ride(cand, dist, nd, cap)[0]:
                    best = cand
                    break
            if best is not None:
                break
        if best is not None:
            route = best
    state = _load(route, n)
    update_route(0, state[0], state[1], state[2], state[3], state[4], dist, nd)
    base = _ride(route, dist, nd, cap)[1]
    rng = np.array([1], dtype=np.uint64)
    for pk in range(1, n, 2):
        if pk in route:
            continue
        want = INF
        for i in range(len(route) + 1):
            for j in range(i, len(route) + 1):
                ok, d = _ride([*route[:i], pk, *route[i:j], pk + 1, *route[j:]], dist, nd, cap)
                if ok:
                    want = min(want, d - base)
        got, bi, bj = best_pair(pk, pk + 1, 0, state[0], state[1], state[2], dist, nd, cap, 0.0, rng, INF)
        if want == INF:
            assert bi == -1
        else:
            assert 0 <= bi <= bj and abs(got - want) < 1e-7
            r2 = [*route[:bi], pk, *route[bi:bj], pk + 1, *route[bj:]]
            assert _ride(r2, dist, nd, cap)[0]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_check_state_agrees_with_oracle(seed: int) -> None:
    n = 10
    dist, nd, cap = _random_problem(seed, n, pdp=False)
    g = np.random.default_rng(seed)
    route = [int(v) for v in g.permutation(np.arange(1, n + 1))[: g.integers(1, n + 1)]]
    state = _load(route, n)
    kind = np.zeros(n + 1, dtype=np.int64)
    partner = np.full(n + 1, -1, dtype=np.int64)
    bad = check_state(state[0], state[1], state[5], dist, nd, partner, kind, cap)
    assert (bad == 0) == _ride(route, dist, nd, cap)[0]


def test_remove_marked_drops_empty_routes_and_repoints_tasks() -> None:
    n = 6
    dist, nd, _ = _random_problem(3, n, pdp=False)
    nd[1, :] = 1e9  # no time windows
    st_ = new_state(n, 4)
    r_arr, rl, f, rd, ni, meta = st_
    for r, route in enumerate([[1, 2], [3], [4, 5, 6]]):
        r_arr[r, 1 : len(route) + 1] = route
        r_arr[r, len(route) + 1] = 0
        rl[r] = len(route)
        update_route(r, r_arr, rl, f, rd, ni, dist, nd)
    meta[0] = 3
    mark = np.zeros(n + 1, dtype=np.int64)
    mark[[3, 5]] = 1
    remove_marked(r_arr, rl, f, rd, ni, meta, mark, dist, nd)
    assert meta[0] == 2
    routes = [list(r_arr[r, 1 : rl[r] + 1]) for r in range(meta[0])]
    assert sorted(map(tuple, routes)) == [(1, 2), (4, 6)]
    for r, route in enumerate(routes):
        for p, v in enumerate(route, start=1):
            assert ni[0, v] == r and ni[1, v] == p
        assert abs(rd[r] - _ride(route, dist, nd, 1e9)[1]) < 1e-9
    assert ni[0, 3] == -1 and ni[0, 5] == -1


def test_generator_is_uniform_enough_and_in_range() -> None:
    rng = np.array([12345], dtype=np.uint64)
    xs = np.array([rand_float(rng) for _ in range(20_000)])
    assert xs.min() >= 0.0 and xs.max() < 1.0
    assert abs(xs.mean() - 0.5) < 0.01
    ks = [rand_int(rng, 7) for _ in range(7_000)]
    assert set(ks) == set(range(7))


def _search_problem(seed: int, n: int) -> tuple[np.ndarray, ...]:
    dist, nd, _ = _random_problem(seed, n, pdp=False)
    nd[1, 1:] = np.maximum(nd[1, 1:], dist[0, 1:] + 1.0)  # every task reachable on its own
    kind = np.zeros(n + 1, dtype=np.int64)
    partner = np.full(n + 1, -1, dtype=np.int64)
    adj = np.argsort(dist, axis=1, kind="stable").astype(np.int64)
    prm = np.array([30.0, 5.0, 5.0, 0.5, 0.3, 0.01, 0.0, 0.0])
    return dist, nd, kind, partner, adj, prm


def _search(seed: int, n: int) -> tuple[tuple[np.ndarray, ...], int]:
    dist, nd, kind, partner, adj, prm = _search_problem(seed, n)
    cur, cand, best = new_state(n, n), new_state(n, n), new_state(n, n)
    rng = np.array([seed + 1], dtype=np.uint64)
    buf = np.zeros((4, n + 1), dtype=np.int64)
    rbuf = np.zeros(n + 2, dtype=np.int64)
    keys = np.zeros(n + 1)
    absence = np.zeros(n + 1, dtype=np.int64)
    construct(*cur, dist, nd, kind, partner, prm, rng, buf, keys)
    for a, b in zip(cur, best, strict=True):
        b[...] = a
    common = (dist, nd, kind, partner, adj, prm, rng, buf, rbuf, keys)
    fleet_slice(300, 1, *cur, *cand, *best, *common, absence)
    for a, b in zip(best, cur, strict=True):
        b[...] = a
    distance_slice(300, 5.0, 0.1, 0.0, *cur, *cand, *best, *common)
    bad = check_state(best[0], best[1], best[5], dist, nd, partner, kind, 30.0)
    return best, bad


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000))
def test_search_kernels_are_seeded_and_keep_every_task_feasibly(seed: int) -> None:
    n = 25
    best, bad = _search(seed, n)
    again, _ = _search(seed, n)
    assert bad == 0 and best[5][1] == 0
    served = sorted(int(v) for r in range(best[5][0]) for v in best[0][r, 1 : best[1][r] + 1])
    assert served == list(range(1, n + 1))
    for a, b in zip(best, again, strict=True):
        assert np.array_equal(a, b)
