"""Where a simulated day's shards run: ``local`` (worker processes on this machine) or ``ray`` (a Ray cluster).

An engine takes the list of jobs, a function that runs one job, and one read-only object every job needs (the
order log: sent to each worker once, not once per job; with ``fork`` the workers share the parent's copy), and
yields the results **in job order**, whatever finishes first; shards are independent and seeded by their
content, so the outcome does not depend on the engine or on the number of workers (only wall-clock figures do).

Ray is an optional extra (``pip install 'dispatch[ray]'``). ``address`` None starts a private local Ray instance
with ``workers`` CPUs and shuts it down afterwards; ``"auto"`` joins the cluster this machine belongs to; an address
such as ``ray://head:10001`` connects a Ray client to a remote cluster (the project must be installed on the
cluster's nodes, at the same version). On a cluster one shard runs per CPU Ray schedules it on.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

J = TypeVar("J")
R = TypeVar("R")

ENGINES = ("local", "ray")


class EngineError(RuntimeError):
    """The engine cannot run: Ray missing, a cluster address that does not answer, a shard that failed there."""


_SHARED: Any = None  # a worker process's copy of the shared object (inherited through fork, or sent once)


def _set_shared(shared: Any) -> None:
    global _SHARED
    _SHARED = shared


def _with_shared(fn: Callable[[Any, J], R], job: J) -> R:
    return fn(_SHARED, job)


def run_local(
    jobs: Sequence[J], fn: Callable[[Any, J], R], workers: int, shared: Any = None, first_here: bool = False
) -> Iterator[R]:
    """Run ``fn(shared, job)`` over ``jobs`` in ``workers`` processes (in this process when 1), results in job
    order. Forked workers inherit ``shared`` (no copy is made); elsewhere each worker receives it once.
    ``first_here``: run the first job in this process before starting the workers, so that what it compiles
    (the kernels, on a fresh install) is compiled once and inherited, not once per worker at the same time."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(shared, job)
        return
    if first_here:
        yield fn(shared, jobs[0])
        yield from run_local(jobs[1:], fn, workers, shared)
        return
    ctx: Any
    if "fork" in mp.get_all_start_methods():
        ctx = mp.get_context("fork")
        init: tuple[Any, ...] = ()
        _set_shared(shared)  # the forked workers see it; this process drops it when the pool closes
    else:
        ctx = mp.get_context()
        init = (shared,)
    try:
        with ctx.Pool(min(workers, len(jobs)), initializer=_set_shared if init else None, initargs=init) as pool:
            yield from pool.imap(functools.partial(_with_shared, fn), jobs, chunksize=1)
    finally:
        _set_shared(None)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        msg = "engine ray: Ray is not installed; install the extra with: pip install 'dispatch[ray]'"
        raise EngineError(msg) from None
    return ray


class _OnPrivateCopy:
    """Calls ``fn`` on a deep copy of its job: Ray hands tasks numpy arrays that are read-only views of its object
    store, and a shard's loop updates its arrays in place. The shared object stays a read-only view."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def __call__(self, shared: Any, job: Any) -> Any:
        return self.fn(shared, copy.deepcopy(job))


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


def run_ray(
    jobs: Sequence[J], fn: Callable[[Any, J], R], workers: int, address: str | None = None, shared: Any = None
) -> Iterator[R]:
    """Run ``fn(shared, job)`` over ``jobs`` as Ray tasks (one CPU each), results in job order, in a
    ``ray_session``; ``shared`` goes into the object store once."""
    with ray_session(workers, address) as ray:
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        fn_ref = ray.put(_OnPrivateCopy(fn))
        shared_ref = ray.put(shared)
        refs = [remote.remote(fn_ref, shared_ref, job) for job in jobs]
        for i, ref in enumerate(refs):
            try:
                yield ray.get(ref)
            except Exception as exc:  # a RayTaskError wraps the shard's own exception
                raise EngineError(f"engine ray: shard {i} failed: {exc}") from exc


def _ray_task(fn: Callable[[Any, Any], Any], shared: Any, job: Any) -> Any:
    return fn(shared, job)


def run_jobs(
    engine: str,
    jobs: Sequence[J],
    fn: Callable[[Any, J], R],
    workers: int,
    address: str | None = None,
    shared: Any = None,
    first_here: bool = False,
) -> Iterator[R]:
    """Dispatch ``fn(shared, job)`` to the named engine; ``address`` is for ``ray`` only, ``first_here`` for
    ``local`` only (see ``run_local``)."""
    if engine == "local":
        if address is not None:
            raise ValueError("address: only the ray engine takes a cluster address")
        return run_local(jobs, fn, workers, shared, first_here)
    if engine == "ray":
        return run_ray(jobs, fn, workers, address, shared)
    raise ValueError(f"engine: must be one of {', '.join(ENGINES)}, got {engine!r}")
