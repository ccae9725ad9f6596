"""Tests for dispatch.kernels.assignment.sparse_assignment: the optimum equals scipy's linear_sum_assignment on
the dense augmented matrix ``[C | diag(unassigned)]`` (C = a prohibitive number off the candidate set)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from dispatch.kernels.assignment import assignment_round, sparse_assignment

BIG = 1.0e9  # stands for +inf off the candidate set; far above any sum of the costs used here


def dense_optimum(n_rows: int, n_cols: int, cand: dict[tuple[int, int], float], unassigned: np.ndarray) -> float:
    """Objective of the dense problem solved by scipy."""
    C = np.full((n_rows, n_cols + n_rows), BIG)
    for (i, j), c in cand.items():
        C[i, j] = c
    C[np.arange(n_rows), n_cols + np.arange(n_rows)] = unassigned
    rows, cols = linear_sum_assignment(C)
    total = float(C[rows, cols].sum())
    assert total < BIG / 2  # a dummy column per row: always a finite full matching
    return total


def solve(n_rows: int, n_cols: int, cand: dict[tuple[int, int], float], unassigned: np.ndarray, reduce: bool = True):  # type: ignore[no-untyped-def]
    """Build the CSR arrays (rows in order, columns shuffled within a row) and call the kernel (with the row
    reduction first when ``reduce``)."""
    row_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    col_idx: list[int] = []
    cost: list[float] = []
    for i in range(n_rows):
        cols = [j for (r, j) in cand if r == i]
        cols.reverse()
        col_idx += cols
        cost += [cand[(i, j)] for j in cols]
        row_ptr[i + 1] = len(col_idx)
    return sparse_assignment(
        n_rows, n_cols, row_ptr, np.array(col_idx, dtype=np.int64), np.array(cost, dtype=np.float64), unassigned,
        reduce,
    )  # fmt: skip


def check(
    n_rows: int, n_cols: int, cand: dict[tuple[int, int], float], unassigned: np.ndarray, reduce: bool = True
) -> np.ndarray:
    match, total = solve(n_rows, n_cols, cand, unassigned, reduce)
    assert match.shape == (n_rows,) and match.dtype == np.int64
    # Every match is a candidate, every rider used at most once, the objective is the matching's own.
    used = match[match >= 0]
    assert len(set(used.tolist())) == used.size
    own = 0.0
    for i, j in enumerate(match.tolist()):
        if j < 0:
            own += unassigned[i]
        else:
            assert (i, j) in cand, (i, j)
            own += cand[(i, j)]
    want = dense_optimum(n_rows, n_cols, cand, unassigned)
    tol = 1e-9 * max(1.0, abs(want))
    assert abs(total - own) <= tol
    assert abs(total - want) <= tol, (total, want)
    return match


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(0, 9),
    n_cols=st.integers(0, 9),
    density=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
    integer=st.booleans(),
    negative=st.booleans(),
    reduce=st.booleans(),
)
def test_sparse_assignment_equals_scipy(
    seed: int, n_rows: int, n_cols: int, density: float, integer: bool, negative: bool, reduce: bool
) -> None:
    """Random sparse candidate sets: ties (small integer costs), negative costs, rows without candidates,
    more rows than riders and the other way round; with and without the row reduction first."""
    rng = np.random.default_rng(seed)
    lo = -50.0 if negative else 0.0
    cand: dict[tuple[int, int], float] = {}
    for i in range(n_rows):
        for j in range(n_cols):
            if rng.random() < density:
                cand[(i, j)] = float(rng.integers(int(lo) // 10, 6)) if integer else float(rng.uniform(lo, 100.0))
    unassigned = rng.integers(0, 8, n_rows).astype(np.float64) if integer else rng.uniform(0.0, 120.0, n_rows)
    check(n_rows, n_cols, cand, unassigned, reduce)


def test_rows_without_candidates_stay_unassigned() -> None:
    cand = {(0, 0): 1.0, (2, 0): 0.5, (2, 1): 2.0}
    match = check(4, 2, cand, np.array([10.0, 10.0, 10.0, 10.0]))
    assert match[1] == -1 and match[3] == -1
    assert match.tolist() == [0, -1, 1, -1]


def test_rejects_when_cheaper_than_every_candidate() -> None:
    cand = {(0, 0): 5.0, (1, 0): 1.0}
    match = check(2, 1, cand, np.array([4.0, 100.0]))
    assert match.tolist() == [-1, 0]
    match = check(2, 1, {(0, 0): 5.0}, np.array([4.0, 100.0]))
    assert match.tolist() == [-1, -1]


def test_global_optimum_not_greedy() -> None:
    """Row 0's cheapest rider is also row 1's only one: the optimum gives row 0 its second choice."""
    cand = {(0, 0): 1.0, (0, 1): 2.0, (1, 0): 1.5}
    match = check(2, 2, cand, np.array([100.0, 100.0]))
    assert match.tolist() == [1, 0]


def test_negative_costs_and_full_ties() -> None:
    cand = {(i, j): -3.0 for i in range(4) for j in range(3)}
    match = check(4, 3, cand, np.zeros(4))
    assert (match >= 0).sum() == 3
    cand = {(i, j): 2.0 for i in range(3) for j in range(3)}
    match = check(3, 3, cand, np.full(3, 2.0))  # every choice costs the same
    assert len(set(match[match >= 0].tolist())) == (match >= 0).sum()


def test_empty_problem() -> None:
    match, total = sparse_assignment(
        0, 3, np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), False
    )
    assert match.shape == (0,) and total == 0.0


def round_problem(seed: int, n_orders: int, n_riders: int, density: float, integer: bool):  # type: ignore[no-untyped-def]
    """Random candidate pairs (sorted by order, then rider) with some unusable ones, and reject costs."""
    rng = np.random.default_rng(seed)
    pairs = [(o, r) for o in range(n_orders) for r in range(n_riders) if rng.random() < density]
    pair_o = np.array([o for o, _ in pairs], dtype=np.int64)
    pair_r = np.array([r for _, r in pairs], dtype=np.int64)
    P = pair_o.shape[0]
    cost = rng.integers(0, 12, P).astype(np.float64) if integer else rng.uniform(0.0, 120.0, P)
    use = rng.random(P) < 0.9
    cost[~use & (rng.random(P) < 0.5)] = np.inf
    use &= np.isfinite(cost)
    reject = rng.integers(1, 10, n_orders).astype(np.float64) if integer else rng.uniform(10.0, 100.0, n_orders)
    return pair_o, pair_r, cost, use, reject


def round_optimum(pair_o, pair_r, cost, use, n_riders, reject):  # type: ignore[no-untyped-def]
    """scipy's objective over the orders with a usable pair (each order: a usable pair or its reject cost)."""
    rows = np.unique(pair_o[use])
    n = rows.shape[0]
    C = np.full((n, n_riders + n), BIG)
    ri = np.searchsorted(rows, pair_o[use])
    C[ri, pair_r[use]] = cost[use]
    C[np.arange(n), n_riders + np.arange(n)] = reject[rows]
    r, c = linear_sum_assignment(C)
    return float(C[r, c].sum())


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_orders=st.integers(0, 12),
    n_riders=st.integers(1, 12),
    density=st.sampled_from([0.2, 0.5, 1.0]),
    integer=st.booleans(),
)
def test_assignment_round_equals_scipy(seed: int, n_orders: int, n_riders: int, density: float, integer: bool) -> None:
    """Orders fewer than riders (order rows) and the other way round (rider rows): the winners are usable pairs,
    one per order and per rider at most, and their objective is scipy's optimum."""
    pair_o, pair_r, cost, use, reject = round_problem(seed, n_orders, n_riders, density, integer)
    wins, obj = assignment_round(pair_o, pair_r, cost, use, n_riders, reject)
    assert wins.dtype == np.int64 and np.all(np.diff(wins) > 0)
    assert np.all(use[wins])
    assert len(set(pair_o[wins].tolist())) == wins.size and len(set(pair_r[wins].tolist())) == wins.size
    orders = np.unique(pair_o[use])
    own = float(reject[orders].sum()) + float((cost[wins] - reject[pair_o[wins]]).sum())
    want = round_optimum(pair_o, pair_r, cost, use, n_riders, reject)
    tol = 1e-9 * max(1.0, abs(want))
    assert abs(obj - own) <= tol
    assert abs(obj - want) <= tol, (obj, want)


def test_assignment_round_scarce_riders_and_dear_pairs() -> None:
    """Three orders want the one rider (rider rows); a pair dearer than its reject cost never wins."""
    pair_o = np.array([0, 1, 2, 2], dtype=np.int64)
    pair_r = np.array([0, 0, 0, 1], dtype=np.int64)
    cost = np.array([5.0, 3.0, 4.0, 50.0])
    reject = np.array([20.0, 10.0, 30.0])
    wins, obj = assignment_round(pair_o, pair_r, cost, np.ones(4, dtype=np.bool_), 2, reject)
    # Rider 0 saves most on order 2 (30 - 4); order 2's pair with rider 1 costs more than rejecting it.
    assert wins.tolist() == [2]
    assert obj == 20.0 + 10.0 + 4.0
