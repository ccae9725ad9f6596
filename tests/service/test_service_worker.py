"""The policy in a worker process gives exactly the in-process result (the worker only moves the work)."""

from __future__ import annotations

import os
import signal
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

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


def test_an_error_in_the_worker_reaches_the_caller_and_a_dead_worker_says_so():
    """An exception in the worker is raised in the caller, and the worker goes on; once the worker is dead,
    every call raises ``BrokenProcessPool`` (the loop then starts a new one)."""
    spec = CitySpec(n_orders=10, n_riders=10, n_sites=1, seed=3)
    worker = PolicyProcess()
    try:
        with pytest.raises(ValueError, match="no-such-policy"):
            worker.tick("no-such-policy", DispatchParams(), city_snapshot(spec), NOW)
        pid = worker.pid()
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            worker.pid()
        with pytest.raises(BrokenProcessPool):
            worker.tick("kernel", DispatchParams(), city_snapshot(spec), NOW)
    finally:
        worker.close()
