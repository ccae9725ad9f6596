"""Run a simulated day: shards of a log through the loop on an engine, then the KPIs and output files.

Engines (dispatch.sim.engines): ``local`` runs shards in worker processes on this machine (``workers`` processes;
1 = in this process); ``ray`` runs them as tasks on a Ray cluster (``address``; None = a private local Ray).
Shards are independent and their results are put back in shard order, so the outcome does not depend on the engine
or the number of workers (wall-clock figures aside).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from dispatch.kernels._jit import kernels_cached
from dispatch.policy import DispatchParams, make_policy
from dispatch.promise_params import PromiseParams
from dispatch.sim.engines import ENGINES, run_jobs
from dispatch.sim.kpi import DayOutcome, hourly, summary
from dispatch.sim.log import OrderLog
from dispatch.sim.loop import ShardResult, run_shard
from dispatch.sim.quoting import shard_promise
from dispatch.sim.shard import (
    ShardPlan,
    build_shard,
    check_mode,
    day_window,
    order_sites,
    plan_shards,
    shard_rows,
    travel_arrays,
)
from dispatch.sim.warmup import start_compile_ahead, stop_compile_ahead

SHARD_ORDERS = 500_000
"""Most orders a shard holds when the number of shards is left to ``default_shards``. A tick's cost has a fixed
part per shard (Python) and a part per rider and order that grows faster than the shard once its arrays outgrow
the CPU's caches: on a 125-site sample of peak_day (1.62M orders, one process) one shard took 109 s, 3 and 6
shards of 540,000 and 270,000 orders 91-92 s, 16 shards 110 s, 40 shards 161 s (benchmarks/RESULTS.md,
session 18). On the whole peak day with two workers sharing the caches, 50 shards took as long as 8 (15 min 47 s)
with 1.7 GB less memory."""


@dataclass(frozen=True)
class SimConfig:
    """How to run: ``policy`` (kernel, greedy, ortools), ``params``, ``engine`` (local, ray), ``workers`` (processes
    or, on ray, CPUs of a private local Ray; None = one per core), ``shards`` (site groups; None =
    ``default_shards``; the outcome does not depend on it), ``seed`` (recorded in the summary), ``address`` (ray
    only: None = a private local Ray, ``auto`` or ``ray://host:port`` = a cluster), ``promise`` (quote every
    order when placed, the customer taking the first option; None = keep the log's promises), ``shard`` (who may
    serve whom, one of ``log.SHARD_MODES``; None = the log's scenario setting, else ``"site"``: see
    ``dispatch.sim.shard``)."""

    policy: str = "kernel"
    params: DispatchParams = field(default_factory=DispatchParams)
    engine: str = "local"
    workers: int | None = None
    shards: int | None = None
    seed: int = 0
    address: str | None = None
    promise: PromiseParams | None = None
    shard: str | None = None


def shard_mode(log: OrderLog, config: SimConfig) -> str:
    """The shard mode a run uses: ``config.shard``, else the log's scenario setting, else ``"site"``."""
    mode = config.shard if config.shard is not None else (log.meta.scenario or {}).get("shard", "site")
    return check_mode(str(mode))


@dataclass(frozen=True)
class _ShardJob:
    """What a worker needs besides the log (which every worker shares): a small object, cheap to send."""

    sites: npt.NDArray[np.int64]
    window: tuple[float, float]
    policy: str
    params: DispatchParams
    promise: PromiseParams | None
    mode: str


@dataclass(frozen=True)
class _Shared:
    """What every worker reads: the log, and each order's site row in it (``shard.order_sites``), found once for
    the day: on the whole peak day that took 2.6 s, which every one of its 50 shards used to spend again."""

    log: OrderLog
    o_site: npt.NDArray[np.int64]


def _run_one(shared: _Shared, job: _ShardJob) -> ShardResult:
    """Build the shard from the shared log in the worker, then run it: the parent never holds the shards."""
    log = shared.log
    day = build_shard(log, job.sites, job.window, o_site=shared.o_site, mode=job.mode)
    if job.promise is not None:
        day.promise = shard_promise(log, job.sites, job.promise, job.mode)
    return run_shard(day, make_policy(job.policy, job.params), job.params)


def default_shards(log: OrderLog, workers: int) -> int:
    """Enough shards that each holds at most ``SHARD_ORDERS`` orders (the size at which one process runs a shard
    fastest; its tables live in its worker for its run), and at least one per worker. On a large log the count
    does not depend on ``workers`` (the whole peak day: 50 shards for up to 50 workers)."""
    return max(workers, math.ceil(len(log.orders) / SHARD_ORDERS), 1)


def run_day(
    log: OrderLog,
    config: SimConfig,
    on_shard: Callable[[int, int], None] | None = None,
    keep_results: bool = True,
) -> tuple[DayOutcome, list[ShardResult]]:
    """Simulate ``log``; ``on_shard(orders_done, riders_done)`` is called as each shard finishes. Returns the
    day's outcome and the shards' results (an empty list when not ``keep_results``: each result is then
    dropped as soon as it is copied into the outcome, which halves the memory a large day needs at its end)."""
    if config.engine not in ENGINES:
        raise ValueError(f"engine: must be one of {', '.join(ENGINES)}, got {config.engine!r}")
    make_policy(config.policy, config.params)  # fail early on a bad policy name
    workers = config.workers or os.cpu_count() or 1
    mode = shard_mode(log, config)
    shared = _Shared(log, order_sites(log))
    plan = plan_shards(log, config.shards or default_shards(log, workers), mode, shared.o_site)
    window = day_window(log, config.params.tick_s)
    jobs = [_ShardJob(sites, window, config.policy, config.params, config.promise, mode) for sites in plan.shards]
    out = _Outcome(log, plan, shared.o_site)
    results: list[ShardResult] = []
    # On a fresh install the first shard runs here before the workers fork: they inherit its compiled kernels
    # instead of each compiling them at once (the demo day: 73-77 s with the compile, see benchmarks/RESULTS.md).
    cold = not kernels_cached()
    helper = None
    if cold and config.engine == "local" and workers > 1 and config.policy == "kernel":
        # Meanwhile a second process compiles the policy's costliest kernels (dispatch.sim.warmup), so that the
        # first shard finds them cached: the demo's cold start 54-57 s -> 33-35 s (benchmarks/RESULTS.md).
        helper = start_compile_ahead(travel_arrays(log.meta.travel, log.meta.utc_offset_s), config.params)
    try:
        results_in_order = run_jobs(config.engine, jobs, _run_one, workers, config.address, shared=shared,
                                    first_here=cold)  # fmt: skip
        for i, res in enumerate(results_in_order):
            out.add(i, res)  # results come in shard order
            if keep_results:
                results.append(res)
            if on_shard is not None:
                on_shard(int(res.order_id.shape[0]), int(res.rider_id.shape[0]))
            del res
    finally:
        stop_compile_ahead(helper)
    return out.day(), results


class _Outcome:
    """The DayOutcome, allocated whole and filled shard by shard as results arrive (rows in shard order)."""

    def __init__(self, log: OrderLog, plan: ShardPlan, o_site: npt.NDArray[np.int64]) -> None:
        rows = [shard_rows(log, np.sort(sites), o_site) for sites in plan.shards]  # the rows each shard runs
        self.o_off = np.cumsum([0] + [r.orders.shape[0] for r in rows])
        self.r_off = np.cumsum([0] + [r.riders.shape[0] for r in rows])
        o_rows = np.concatenate([r.orders for r in rows]) if rows else np.zeros(0, dtype=np.int64)
        r_rows = np.concatenate([r.riders for r in rows]) if rows else np.zeros(0, dtype=np.int64)
        n, m = int(self.o_off[-1]), int(self.r_off[-1])
        self.site_id = np.concatenate([r.order_site for r in rows]).astype(np.int64) if rows else o_rows
        self.placed = log.orders.placed_at[o_rows]
        self.ready = log.orders.ready_at[o_rows]
        self.shift_start = log.riders.shift_start[r_rows]
        del o_rows, r_rows, rows
        self.orders: dict[str, npt.NDArray[Any]] = {
            "order_id": np.empty(n, dtype=np.int64),
            "promised": np.empty(n),
            "quoted_eta": np.empty(n),
            "declined": np.empty(n, dtype=np.int64),
            "deferred": np.empty(n, dtype=np.bool_),
            "assigned_at": np.empty(n),
            "picked_at": np.empty(n),
            "delivered_at": np.empty(n),
            "rider_id": np.empty(n, dtype=np.int64),
        }
        self.riders: dict[str, npt.NDArray[Any]] = {
            "rider_online_s": np.empty(m),
            "rider_metres": np.empty(m),
            "rider_delivered": np.empty(m, dtype=np.int64),
        }
        self.tick_ms: list[npt.NDArray[np.float64]] = []

    def add(self, i: int, res: ShardResult) -> None:
        """Copy shard ``i``'s result into its rows."""
        o = slice(int(self.o_off[i]), int(self.o_off[i + 1]))
        r = slice(int(self.r_off[i]), int(self.r_off[i + 1]))
        parts = {
            "order_id": res.order_id,
            "promised": res.promised,
            "quoted_eta": res.quotes.quoted_eta,
            "declined": res.quotes.declined,
            "deferred": res.quotes.deferred,
            "assigned_at": res.assigned_at,
            "picked_at": res.picked_at,
            "delivered_at": res.delivered_at,
            "rider_id": res.rider,
        }
        for name, part in parts.items():
            self.orders[name][o] = part
        self.riders["rider_online_s"][r] = res.rider_online_s
        self.riders["rider_metres"][r] = res.rider_metres
        self.riders["rider_delivered"][r] = res.rider_delivered
        self.tick_ms.append(res.tick_ms)

    def day(self) -> DayOutcome:
        o, r = self.orders, self.riders
        return DayOutcome(
            order_id=o["order_id"],
            site_id=self.site_id,
            placed=self.placed,
            ready=self.ready,
            promised=o["promised"],
            assigned_at=o["assigned_at"],
            picked_at=o["picked_at"],
            delivered_at=o["delivered_at"],
            rider_id=o["rider_id"],
            rider_shift_start=self.shift_start,
            rider_online_s=r["rider_online_s"],
            rider_metres=r["rider_metres"],
            rider_delivered=r["rider_delivered"],
            tick_ms=np.concatenate(self.tick_ms) if self.tick_ms else np.zeros(0),
            quoted_eta=o["quoted_eta"],
            declined=o["declined"],
            deferred=o["deferred"],
        )


def write_outputs(
    out_dir: Path, log: OrderLog, day: DayOutcome, config: SimConfig, wall_seconds: float, report: bool = True
) -> dict[str, Any]:
    """summary.json, orders.parquet, hourly.csv and (``report``) report.html with its PNGs in ``out_dir``;
    returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {
        "policy": config.policy,
        "engine": config.engine,
        "scenario": log.meta.name,
        "shard": shard_mode(log, config),
    }
    summ = summary(day, wall_seconds=wall_seconds, seed=config.seed, extra=extra)
    summ["dispatch_params"] = config.params.to_dict()
    (out_dir / "summary.json").write_text(json.dumps(summ, indent=2, sort_keys=True) + "\n")
    _write_orders(out_dir / "orders.parquet", log, day)
    hours = hourly(day, log.meta.day_start, log.meta.utc_offset_s)
    with (out_dir / "hourly.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        keys = list(hours)
        w.writerow(keys)
        for h in range(24):
            w.writerow([_cell(hours[k][h]) for k in keys])
    if report:
        from dispatch.sim.report import write_report

        write_report(out_dir, summ, day, hours, (log.sites.x, log.sites.y), log.meta.coordinates)
    return summ


ORDERS_CHUNK_ROWS = 1_000_000


def _write_orders(path: Path, log: OrderLog, day: DayOutcome) -> None:
    """orders.parquet, sorted by order id, written ``ORDERS_CHUNK_ROWS`` at a time (one row group each) so that
    a 25M-order day needs no second copy of its outcome in memory."""
    order = np.argsort(day.order_id, kind="stable")
    columns = {
        "order_id": day.order_id,
        "site_id": day.site_id,
        "placed_at": day.placed,
        "ready_at": day.ready,
        "promised_by": day.promised,
        "assigned_at": day.assigned_at,
        "picked_up_at": day.picked_at,
        "delivered_at": day.delivered_at,
        "rider_id": day.rider_id,
    }
    schema = pa.schema([(k, pa.from_numpy_dtype(v.dtype)) for k, v in columns.items()] + [("on_time", pa.bool_())])
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for lo in range(0, max(order.shape[0], 1), ORDERS_CHUNK_ROWS):
            idx = order[lo : lo + ORDERS_CHUNK_ROWS]
            chunk: dict[str, npt.NDArray[Any]] = {k: v[idx] for k, v in columns.items()}
            chunk["site_id"] = log.sites.site_id[chunk["site_id"]]
            chunk["on_time"] = chunk["delivered_at"] <= chunk["promised_by"]
            writer.write_table(pa.table(chunk, schema=schema))


def _cell(v: Any) -> str:
    f = float(v)
    if np.isnan(f):
        return ""
    return str(int(f)) if f == int(f) else f"{f:.4f}"


def simulate(
    log: OrderLog, out_dir: Path, config: SimConfig, on_shard: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Run the day and write the outputs; returns the summary."""
    t0 = time.perf_counter()
    day, _ = run_day(log, config, on_shard, keep_results=False)
    return write_outputs(out_dir, log, day, config, time.perf_counter() - t0)
