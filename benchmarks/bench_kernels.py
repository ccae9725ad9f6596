"""Dispatch kernels against named peers, side by side in one run (pytest-benchmark groups).

- group ``site-tick``: the kernel policy's tick (150 pending orders x 300 riders, one site) against the dense
  numpy insertion matrix + scipy linear_sum_assignment peer on the same snapshot;
- group ``assignment``: the sparse assignment kernel against scipy's linear_sum_assignment on one dense problem.

The kernels are compiled (or loaded from the cache) by a warm-up call before timing starts.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from dispatch.bench.dense import dense_insertion_matrix, dense_round
from dispatch.kernels.assignment import DENSE_DEGREE, sparse_assignment
from dispatch.policy import DispatchParams, KernelPolicy, Snapshot
from dispatch.synthetic import NOW, site_snapshot

PARAMS = DispatchParams(hold_s=0.0)
ONE_ROUND = replace(PARAMS, rounds=1, local_search_passes=0)


def _fresh() -> tuple[tuple[Snapshot], dict[str, object]]:
    """pedantic setup: a new snapshot per round (ticks change routes), built outside the timing."""
    return (site_snapshot(150, 300, seed=1),), {}


def _tick_with(params: DispatchParams):  # type: ignore[no-untyped-def]
    def tick(snap: Snapshot) -> int:
        return int(KernelPolicy(params).tick(snap, NOW).assigned_order.shape[0])

    return tick


@pytest.mark.benchmark(group="site-tick")
def bench_site_tick_ours(benchmark) -> None:  # type: ignore[no-untyped-def]
    tick = _tick_with(PARAMS)
    assigned = benchmark.pedantic(tick, setup=_fresh, rounds=50, warmup_rounds=2)
    assert assigned == 150


@pytest.mark.benchmark(group="site-tick")
def bench_site_tick_one_round_ours(benchmark) -> None:  # type: ignore[no-untyped-def]
    tick = _tick_with(ONE_ROUND)
    assigned = benchmark.pedantic(tick, setup=_fresh, rounds=50, warmup_rounds=2)
    assert assigned > 0


@pytest.mark.benchmark(group="site-tick")
def bench_site_tick_dense_peer(benchmark) -> None:  # type: ignore[no-untyped-def]
    def run(snap: Snapshot) -> int:
        C = dense_insertion_matrix(snap, ONE_ROUND, NOW)
        match, _ = dense_round(C, ONE_ROUND.reject_costs(snap.orders, NOW)[snap.pending])
        return int((match >= 0).sum())

    assigned = benchmark.pedantic(run, setup=_fresh, rounds=3, warmup_rounds=1)
    assert assigned > 0


def _dense_problem(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1000.0, (n, m)), np.full(n, 5000.0)


@pytest.mark.benchmark(group="assignment")
def bench_assignment_sparse_kernel(benchmark) -> None:  # type: ignore[no-untyped-def]
    C, U = _dense_problem(300, 400, 0)
    n, m = C.shape
    row_ptr = np.arange(0, n * m + 1, m, dtype=np.int64)
    cols = np.tile(np.arange(m, dtype=np.int64), n)
    flat = C.ravel().copy()
    dense = flat.shape[0] >= DENSE_DEGREE * n  # as assignment_round decides: the row reduction runs first
    sparse_assignment(n, m, row_ptr, cols, flat, U, dense)
    _, obj = benchmark(sparse_assignment, n, m, row_ptr, cols, flat, U, dense)
    D = np.hstack([C, np.where(np.eye(n, dtype=bool), U[:, None], 1e18)])
    r, c = linear_sum_assignment(D)
    assert obj == pytest.approx(D[r, c].sum(), rel=1e-9)


@pytest.mark.benchmark(group="assignment")
def bench_assignment_scipy_peer(benchmark) -> None:  # type: ignore[no-untyped-def]
    C, U = _dense_problem(300, 400, 0)
    n = C.shape[0]
    D = np.hstack([C, np.where(np.eye(n, dtype=bool), U[:, None], 1e18)])
    r, _c = benchmark(linear_sum_assignment, D)
    assert r.shape[0] == n
