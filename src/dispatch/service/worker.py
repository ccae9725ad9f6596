"""The dispatch policy in a process of its own.

Numba kernels hold the GIL while they run, so a tick of a few hundred milliseconds in the server's process would
stall every request thread for as long (ack latency = tick time). With ``policy_process = true`` (the default) the
policy runs in one worker process, leaving the server's interpreter free; on a 2-core machine the policy and the
requests then run on different cores. The dispatch loop uses ``mirror_tick``: the worker keeps the dispatch state
between calls (``dispatch.service.mirror``, rebuilt policy and all when the parameters change), the loop sends only
what changed, and the answer carries the changed riders' Route messages, work that would otherwise hold the
server's GIL. ``tick`` and ``tick_ends`` run the policy on a whole snapshot (``route_ends``: when each route ends).

The worker can run at a lower scheduling priority (``nice``; the service's ``policy_nice``, default 0): on a machine
whose cores are all busy, the kernel then gives the server's request threads the CPU first and the policy what is
left, so that a long tick delays assignments rather than acknowledgements. That mattered for ticks of several
seconds (benchmarks/RESULTS.md, "Service, session 5"); with slots of a few hundred milliseconds, nice 10 made
assignments later and acknowledgements no faster ("Session 12"), so the default is 0.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.heap import keep_heap
from dispatch.kernels.route import MIXED, evaluate_routes
from dispatch.policy import DispatchParams, Policy, Snapshot, TickResult, make_policy, warm_up
from dispatch.service.mirror import Delta, Mirror, MirrorResult
from dispatch.state import Routes

_policy: Policy | None = None
_key: tuple[str, DispatchParams] | None = None
_mirror: Mirror | None = None  # the dispatch state of ``mirror_tick`` (``dispatch.service.mirror``)


def _policy_for(name: str, params: DispatchParams) -> Policy:
    global _policy, _key
    if _policy is None or _key != (name, params):
        _policy = make_policy(name, params)
        _key = (name, params)
    return _policy


def _tick(name: str, params: DispatchParams, snap: Snapshot, now: float) -> TickResult:
    return _policy_for(name, params).tick(snap, now)


def _init(parent: int, nice: int) -> None:
    """The worker's start: keep freed heap pages (``dispatch.heap``: a spawned process does not inherit the
    server's setting), lower its priority by ``nice`` (before any thread starts, so that they inherit it), then
    watch the parent."""
    keep_heap()
    if nice:
        with contextlib.suppress(OSError):  # not allowed here: run at the parent's priority
            os.nice(nice)
    _watch_parent(parent)


def route_ends(snap: Snapshot, routes: Routes, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """float64[m]: when each of the snapshot's riders leaves the last stop of its route in ``routes`` (m rows), as
    ``kernels.route.evaluate_routes`` gives it (``tot[0]``; times do not depend on the cost weights or deadlines);
    NaN for an empty route. The promise engine's ``update`` takes these as ``route_end`` instead of evaluating
    every route again in the server's process (a Numba call of ~0.1-0.2 s at 40,000 riders, holding its GIL)."""
    out = np.full(routes.length.shape[0], np.nan)
    rows = np.flatnonzero(routes.length > 0)
    if rows.size:
        sub_riders = tuple(a[rows] for a in snap.riders.as_tuple())
        sub_routes = tuple(a[rows] for a in routes.as_tuple())
        ev = evaluate_routes(snap.orders.as_tuple(), sub_riders, sub_routes, snap.travel, weights, MIXED)
        out[rows] = ev[1][0]
    return out


def _tick_ends(
    name: str, params: DispatchParams, snap: Snapshot, now: float
) -> tuple[TickResult, npt.NDArray[np.float64]]:
    res = _policy_for(name, params).tick(snap, now)
    return res, route_ends(snap, res.routes, params.weights)


def _mirror_tick(name: str, params: DispatchParams, delta: Delta, now: float, travel: tuple[Any, ...]) -> MirrorResult:
    global _mirror
    if _mirror is None:
        _mirror = Mirror()
    return _mirror.tick(name, params, delta, now, travel)


def _watch_parent(parent: int) -> None:
    """Exit when the server dies (even by SIGKILL), instead of lingering as an orphan."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _warm(name: str, params: DispatchParams) -> float:
    return warm_up(_policy_for(name, params))


class PolicyProcess:
    """One worker process running ``policy.tick``; ``tick`` blocks until the result is back. ``nice``: how much
    lower than the server's its scheduling priority is (0 to 19)."""

    def __init__(self, nice: int = 0) -> None:
        if not 0 <= nice <= 19:
            raise ValueError(f"nice: must be in [0, 19], got {nice}")
        self.nice = nice
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init,
            initargs=(os.getpid(), nice),
        )

    def warm(self, name: str, params: DispatchParams) -> float:
        """Build the policy in the worker and run it once (``dispatch.policy.warm_up``); blocks until done."""
        return self._pool.submit(_warm, name, params).result()

    def tick(self, name: str, params: DispatchParams, snap: Snapshot, now: float) -> Any:
        return self._pool.submit(_tick, name, params, snap, now).result()

    def tick_ends(
        self, name: str, params: DispatchParams, snap: Snapshot, now: float
    ) -> tuple[TickResult, npt.NDArray[np.float64]]:
        """``tick`` and the result's ``route_ends`` (float64[m]), both computed in the worker."""
        res, ends = self._pool.submit(_tick_ends, name, params, snap, now).result()
        return res, ends

    def mirror_tick(
        self, name: str, params: DispatchParams, delta: Delta, now: float, travel: tuple[Any, ...]
    ) -> MirrorResult:
        """``Mirror.tick`` on the worker's mirror (made on first use; a new worker starts with an empty one and
        says so with a new ``MirrorResult.epoch``)."""
        out: MirrorResult = self._pool.submit(_mirror_tick, name, params, delta, now, travel).result()
        return out

    def pid(self) -> int:
        """The worker's process id (it is started on first use)."""
        return int(self._pool.submit(os.getpid).result())

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
