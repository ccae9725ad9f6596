"""The policy in a worker process gives exactly the in-process result (the worker only moves the work)."""

from __future__ import annotations

import numpy as np

from dispatch.policy import DispatchParams, make_policy
from dispatch.service.worker import PolicyProcess
from dispatch.synthetic import NOW, CitySpec, city_snapshot


def test_worker_tick_equals_local_tick():
    spec = CitySpec(n_orders=120, n_riders=150, n_sites=6, seed=3)
    params = DispatchParams(hold_s=0.0)
    local = make_policy("kernel", params).tick(city_snapshot(spec), NOW)
    worker = PolicyProcess()
    try:
        remote = worker.tick("kernel", params, city_snapshot(spec), NOW)
    finally:
        worker.close()
    assert local.assigned_order.size > 0
    np.testing.assert_array_equal(remote.assigned_order, local.assigned_order)
    np.testing.assert_array_equal(remote.assigned_rider, local.assigned_rider)
    np.testing.assert_array_equal(remote.routes.order, local.routes.order)
    np.testing.assert_array_equal(remote.unassigned_reason, local.unassigned_reason)
