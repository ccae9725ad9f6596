"""Where a simulated day's shards run: ``local`` (worker processes on this machine) or ``ray`` (a Ray cluster).

An engine takes the list of jobs and a function that runs one job, and yields the results **in job order**,
whatever finishes first; shards are independent and seeded by their content, so the outcome does not depend on
the engine or on the number of workers (only wall-clock figures do).

Ray is an optional extra (``pip install 'dispatch[ray]'``). ``address`` None starts a private local Ray instance
with ``workers`` CPUs and shuts it down afterwards; ``"auto"`` joins the cluster this machine belongs to; an address
such as ``ray://head:10001`` connects a Ray client to a remote cluster (the project must be installed on the
cluster's nodes, at the same version). On a cluster one shard runs per CPU Ray schedules it on.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

J = TypeVar("J")
R = TypeVar("R")

ENGINES = ("local", "ray")


class EngineError(RuntimeError):
    """The engine cannot run: Ray missing, a cluster address that does not answer, a shard that failed there."""


def run_local(jobs: Sequence[J], fn: Callable[[J], R], workers: int) -> Iterator[R]:
    """Run ``fn`` over ``jobs`` in ``workers`` forked processes (in this process when 1), results in job order."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
        return
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(fn, jobs, chunksize=1)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        msg = "engine ray: Ray is not installed; install the extra with: pip install 'dispatch[ray]'"
        raise EngineError(msg) from None
    return ray


class _OnPrivateCopy:
    """Calls ``fn`` on a deep copy of its job: Ray hands tasks numpy arrays that are read-only views of its object
    store, and a shard's loop updates its arrays in place."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, job: Any) -> Any:
        return self.fn(copy.deepcopy(job))


@contextlib.contextmanager
def ray_session(workers: int, address: str | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module connected to a cluster: the one already initialised in this process, else a new
    connection (``address`` None: a private local Ray with ``workers`` CPUs), shut down on exit when made here. A
    sweep opens one session around all its points, so that Ray starts once."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        if address is None:
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError by version
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address!r}"
        raise EngineError(f"engine ray: could not start or reach {where}: {exc}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def run_ray(jobs: Sequence[J], fn: Callable[[J], R], workers: int, address: str | None = None) -> Iterator[R]:
    """Run ``fn`` over ``jobs`` as Ray tasks (one CPU each), results in job order, in a ``ray_session``."""
    with ray_session(workers, address) as ray:
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        fn_ref = ray.put(_OnPrivateCopy(fn))
        refs = [remote.remote(fn_ref, job) for job in jobs]
        for i, ref in enumerate(refs):
            try:
                yield ray.get(ref)
            except Exception as exc:  # a RayTaskError wraps the shard's own exception
                raise EngineError(f"engine ray: shard {i} failed: {exc}") from exc


def _ray_task(fn: Callable[[Any], Any], job: Any) -> Any:
    return fn(job)


def run_jobs(
    engine: str, jobs: Sequence[J], fn: Callable[[J], R], workers: int, address: str | None = None
) -> Iterator[R]:
    """Dispatch to the named engine; ``address`` is for ``ray`` only."""
    if engine == "local":
        if address is not None:
            raise ValueError("address: only the ray engine takes a cluster address")
        return run_local(jobs, fn, workers)
    if engine == "ray":
        return run_ray(jobs, fn, workers, address)
    raise ValueError(f"engine: must be one of {', '.join(ENGINES)}, got {engine!r}")
