"""Tests for dispatch.bench.kernel: the record's fields, and the invariant that the product's single round cannot
beat the dense peer's optimum (both priced with the peer's dense costs)."""

from __future__ import annotations

import pytest

from dispatch.bench.kernel import run
from dispatch.policy import DispatchParams


@pytest.mark.parametrize(("orders", "riders", "sites"), [(40, 60, 3), (30, 20, 1)])
def test_run_reports_a_consistent_record(orders: int, riders: int, sites: int) -> None:
    rec = run(orders, riders, sites=sites, repeat=1)
    assert (rec["orders"], rec["riders"], rec["sites"]) == (orders, riders, sites)
    assert rec["ours_ms"] > 0 and rec["ours_round_ms"] > 0 and rec["baseline_ms"] > 0
    assert rec["speedup"] == pytest.approx(rec["baseline_ms"] / rec["ours_round_ms"], rel=0.01)
    # The sparse round is restricted to candidates: never better than the dense optimum.
    assert rec["objective_ours"] >= rec["objective_baseline"] - 1e-6 * abs(rec["objective_baseline"])
    assert rec["objective_gap"] >= -1e-9
    assert 0 <= rec["assigned_round_ours"] <= min(orders, riders)
    assert rec["assigned_round_ours"] <= rec["assigned_full_tick"] <= orders
    assert {"candidates", "insertion", "assignment", "improve", "total"} <= set(rec["timings_ms"])


def test_run_takes_the_given_params() -> None:
    rec = run(30, 30, sites=2, repeat=1, params=DispatchParams(candidate_k=3))
    assert rec["candidate_k"] == 3


def test_run_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="orders and riders"):
        run(0, 10)
    with pytest.raises(ValueError, match="repeat"):
        run(10, 10, repeat=0)
