"""Tests for dispatch.sim.engines: results in job order on every engine, the same simulated day on local and ray,
and clear errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from daylogs import tiny_log

from dispatch.sim.engines import EngineError, run_jobs, run_local
from dispatch.sim.run import SimConfig, run_day


def _square(shared: object, x: int) -> int:
    return x * x


def _scaled(shared: dict[str, int], x: int) -> int:
    return shared["factor"] * x


def test_local_keeps_job_order_in_and_out_of_process() -> None:
    jobs = list(range(7))
    assert list(run_local(jobs, _square, 1)) == [x * x for x in jobs]
    assert list(run_local(jobs, _square, 2)) == [x * x for x in jobs]


def _pid(shared: object, x: int) -> tuple[int, int]:
    return x, os.getpid()


def test_first_job_here_then_the_workers() -> None:
    """With ``first_here`` (a cold kernel cache) the first job runs in this process and the others in workers,
    results still in job order."""
    out = list(run_jobs("local", list(range(5)), _pid, 2, first_here=True))
    assert [x for x, _ in out] == list(range(5))
    assert out[0][1] == os.getpid() and all(pid != os.getpid() for _, pid in out[1:])
    assert all(pid != os.getpid() for _, pid in run_local(list(range(5)), _pid, 2))


def test_every_job_sees_the_shared_object_in_every_process() -> None:
    jobs = list(range(9))
    shared = {"factor": 7}
    assert list(run_local(jobs, _scaled, 1, shared)) == [7 * x for x in jobs]
    assert list(run_local(jobs, _scaled, 3, shared)) == [7 * x for x in jobs]
    assert list(run_jobs("local", jobs, _scaled, 2, shared=shared)) == [7 * x for x in jobs]


def test_unknown_engine_and_misplaced_address() -> None:
    with pytest.raises(ValueError, match="engine: must be one of"):
        list(run_jobs("spark", [1], _square, 1))
    with pytest.raises(ValueError, match="only the ray engine"):
        list(run_jobs("local", [1], _square, 1, address="auto"))


def test_ray_gives_the_same_day_as_local() -> None:
    pytest.importorskip("ray")
    log = tiny_log(4)
    local, _ = run_day(log, SimConfig(workers=1, shards=3))
    on_ray, _ = run_day(log, SimConfig(engine="ray", workers=2, shards=3))
    assert (~np.isnan(local.delivered_at)).sum() > 0
    for name in ("order_id", "assigned_at", "picked_at", "delivered_at", "rider_id", "rider_metres", "rider_online_s"):
        np.testing.assert_array_equal(getattr(local, name), getattr(on_ray, name), err_msg=name)


def test_ray_init_failure_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")

    def refuse(**_: object) -> None:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(EngineError, match=r"could not start or reach the Ray cluster at 'ray://head:10001'.*refused"):
        list(run_jobs("ray", [1], _square, 1, address="ray://head:10001"))


def test_ray_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *args: object, **kwargs: object) -> object:
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(EngineError, match=r"pip install 'dispatch\[ray\]'"):
        list(run_jobs("ray", [1], _square, 1))
