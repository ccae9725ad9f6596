"""The dispatch policy in a process of its own.

Numba kernels hold the GIL while they run, so a tick of a few hundred milliseconds in the server's process would
stall every request thread for as long (ack latency = tick time). With ``policy_process = true`` (the default) the
loop sends the tick's snapshot (numpy arrays: a few MB at 40,000 orders) to one worker process and waits for the
result there, leaving the server's interpreter free; on a 2-core machine the policy and the requests then run on
different cores. The worker keeps one policy object between ticks (rebuilt when the parameters change), exactly
like the in-process path.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from dispatch.policy import DispatchParams, Policy, Snapshot, TickResult, make_policy, warm_up

_policy: Policy | None = None
_key: tuple[str, DispatchParams] | None = None


def _policy_for(name: str, params: DispatchParams) -> Policy:
    global _policy, _key
    if _policy is None or _key != (name, params):
        _policy = make_policy(name, params)
        _key = (name, params)
    return _policy


def _tick(name: str, params: DispatchParams, snap: Snapshot, now: float) -> TickResult:
    return _policy_for(name, params).tick(snap, now)


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
    """One worker process running ``policy.tick``; ``tick`` blocks until the result is back."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )

    def warm(self, name: str, params: DispatchParams) -> float:
        """Build the policy in the worker and run it once (``dispatch.policy.warm_up``); blocks until done."""
        return self._pool.submit(_warm, name, params).result()

    def tick(self, name: str, params: DispatchParams, snap: Snapshot, now: float) -> Any:
        return self._pool.submit(_tick, name, params, snap, now).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
