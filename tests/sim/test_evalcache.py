"""The simulator's evaluation cache (dispatch.sim.evalcache): what the policy is handed every tick is exactly a
fresh evaluation of the snapshot, and the day comes out the same as when the policy evaluates by itself."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from test_loop import small_day

from dispatch.kernels.route import evaluate_routes
from dispatch.policy import DispatchParams, KernelPolicy, Snapshot, TickResult, planning_view
from dispatch.sim.loop import run_shard


class Checking(KernelPolicy):
    """Checks the snapshot's evaluation against a fresh one, then ticks as usual (or without it: ``strip``)."""

    def __init__(self, params: DispatchParams, strip: bool = False) -> None:
        super().__init__(params)
        self.strip = strip
        self.checked = 0

    def tick(self, snap: Snapshot, now: float) -> TickResult:
        assert snap.evaluation is not None
        plan = planning_view(snap, self.params)
        ev, tot = evaluate_routes(plan.orders.as_tuple(), plan.riders.as_tuple(), plan.routes.as_tuple(),
                                  plan.travel, self.params.weights, self.params.mode)  # fmt: skip
        got_ev, got_tot = snap.evaluation
        live = np.arange(snap.routes.width)[None, :] < snap.routes.length[:, None]
        for a, b in zip(got_ev, ev, strict=True):
            assert np.array_equal(a[:, : snap.routes.width][live], b[live])
        for a, b in zip(got_tot, tot, strict=True):
            assert np.array_equal(a, b)
        self.checked += int(snap.routes.length.sum() > 0)
        return super().tick(replace(snap, evaluation=None) if self.strip else snap, now)


def _outcome(res: Any) -> tuple[np.ndarray, ...]:
    return res.assigned_at, res.picked_at, res.delivered_at, res.rider, res.rider_metres, res.rider_online_s


def test_the_policy_is_handed_a_fresh_evaluation_and_the_day_is_the_same() -> None:
    params = DispatchParams()
    with_cache = Checking(params)
    a = run_shard(small_day(3, n=160, m=24)[0], with_cache, params)
    b = run_shard(small_day(3, n=160, m=24)[0], Checking(params, strip=True), params)
    assert with_cache.checked > 20  # ticks with routes in flight were compared
    assert np.isfinite(a.delivered_at).sum() > 100
    for x, y in zip(_outcome(a), _outcome(b), strict=True):
        assert np.array_equal(x, y, equal_nan=True)
