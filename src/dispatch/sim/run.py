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

from dispatch.policy import DispatchParams, make_policy
from dispatch.promise_params import PromiseParams
from dispatch.sim.engines import ENGINES, run_jobs
from dispatch.sim.kpi import DayOutcome, hourly, summary
from dispatch.sim.log import OrderLog
from dispatch.sim.loop import ShardResult, run_shard
from dispatch.sim.quoting import quote_outcome, shard_promise
from dispatch.sim.shard import ShardPlan, build_shard, day_window, order_sites, plan_shards, shard_rows

SHARD_ORDERS = 4_000_000
"""Most orders a shard holds when the number of shards is left to ``default_shards`` (about 0.8 GB of tables)."""


@dataclass(frozen=True)
class SimConfig:
    """How to run: ``policy`` (kernel, greedy, ortools), ``params``, ``engine`` (local, ray), ``workers`` (processes
    or, on ray, CPUs of a private local Ray; None = one per core), ``shards`` (site groups; None =
    ``default_shards``; the outcome does not depend on it), ``seed`` (recorded in the summary), ``address`` (ray
    only: None = a private local Ray, ``auto`` or ``ray://host:port`` = a cluster), ``promise`` (quote every
    order when placed, the customer taking the first option; None = keep the log's promises)."""

    policy: str = "kernel"
    params: DispatchParams = field(default_factory=DispatchParams)
    engine: str = "local"
    workers: int | None = None
    shards: int | None = None
    seed: int = 0
    address: str | None = None
    promise: PromiseParams | None = None


@dataclass(frozen=True)
class _ShardJob:
    """What a worker needs besides the log (which every worker shares): a small object, cheap to send."""

    sites: npt.NDArray[np.int64]
    window: tuple[float, float]
    policy: str
    params: DispatchParams
    promise: PromiseParams | None


def _run_one(log: OrderLog, job: _ShardJob) -> ShardResult:
    """Build the shard from the shared log in the worker, then run it: the parent never holds the shards."""
    day = build_shard(log, job.sites, job.window)
    if job.promise is not None:
        day.promise = shard_promise(log, job.sites, job.promise)
    return run_shard(day, make_policy(job.policy, job.params), job.params)


def default_shards(log: OrderLog, workers: int) -> int:
    """One shard per worker, or more on a large log so that each holds at most ``SHARD_ORDERS`` orders (a shard's
    tables live in its worker for its whole run), in a multiple of ``workers`` to keep them evenly busy."""
    per_worker = max(1, math.ceil(len(log.orders) / (SHARD_ORDERS * workers)))
    return workers * per_worker


def run_day(
    log: OrderLog,
    config: SimConfig,
    on_shard: Callable[[int, int], None] | None = None,
) -> tuple[DayOutcome, list[ShardResult]]:
    """Simulate ``log``; ``on_shard(orders_done, riders_done)`` is called as each shard finishes."""
    if config.engine not in ENGINES:
        raise ValueError(f"engine: must be one of {', '.join(ENGINES)}, got {config.engine!r}")
    make_policy(config.policy, config.params)  # fail early on a bad policy name
    workers = config.workers or os.cpu_count() or 1
    plan = plan_shards(log, config.shards or default_shards(log, workers))
    window = day_window(log, config.params.tick_s)
    jobs = [_ShardJob(sites, window, config.policy, config.params, config.promise) for sites in plan.shards]
    results: list[ShardResult] = []
    for res in run_jobs(config.engine, jobs, _run_one, workers, config.address, shared=log):  # in shard order
        results.append(res)
        if on_shard is not None:
            on_shard(int(res.order_id.shape[0]), int(res.rider_id.shape[0]))
    return _outcome(log, plan, results), results


def _outcome(log: OrderLog, plan: ShardPlan, results: list[ShardResult]) -> DayOutcome:
    def cat(parts: list[Any]) -> Any:
        return np.concatenate(parts) if parts else np.zeros(0)

    o_site = order_sites(log)
    rows = [shard_rows(log, np.sort(sites), o_site) for sites in plan.shards]  # the rows each shard ran, in order
    o_rows = cat([r.orders for r in rows]).astype(np.int64)
    del o_site
    return DayOutcome(
        order_id=cat([r.order_id for r in results]).astype(np.int64),
        site_id=cat([r.order_site for r in rows]).astype(np.int64),
        placed=log.orders.placed_at[o_rows],
        ready=log.orders.ready_at[o_rows],
        **quote_outcome(results),  # promised (the deadlines in force), quoted_eta, declined, deferred
        assigned_at=cat([r.assigned_at for r in results]),
        picked_at=cat([r.picked_at for r in results]),
        delivered_at=cat([r.delivered_at for r in results]),
        rider_id=cat([r.rider for r in results]).astype(np.int64),
        rider_shift_start=log.riders.shift_start[cat([r.riders for r in rows]).astype(np.int64)],
        rider_online_s=cat([r.rider_online_s for r in results]),
        rider_metres=cat([r.rider_metres for r in results]),
        rider_delivered=cat([r.rider_delivered for r in results]).astype(np.int64),
        tick_ms=cat([r.tick_ms for r in results]),
    )


def write_outputs(
    out_dir: Path, log: OrderLog, day: DayOutcome, config: SimConfig, wall_seconds: float, report: bool = True
) -> dict[str, Any]:
    """summary.json, orders.parquet, hourly.csv and (``report``) report.html with its PNGs in ``out_dir``;
    returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {"policy": config.policy, "engine": config.engine, "scenario": log.meta.name}
    summ = summary(day, wall_seconds=wall_seconds, seed=config.seed, extra=extra)
    summ["dispatch_params"] = config.params.to_dict()
    (out_dir / "summary.json").write_text(json.dumps(summ, indent=2, sort_keys=True) + "\n")
    site_ids = log.sites.site_id[day.site_id]
    order = np.argsort(day.order_id, kind="stable")
    table = pa.table(
        {
            "order_id": day.order_id[order],
            "site_id": site_ids[order],
            "placed_at": day.placed[order],
            "ready_at": day.ready[order],
            "promised_by": day.promised[order],
            "assigned_at": day.assigned_at[order],
            "picked_up_at": day.picked_at[order],
            "delivered_at": day.delivered_at[order],
            "rider_id": day.rider_id[order],
            "on_time": (day.delivered_at <= day.promised)[order],
        }
    )
    pq.write_table(table, out_dir / "orders.parquet", compression="zstd")
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
    day, _ = run_day(log, config, on_shard)
    return write_outputs(out_dir, log, day, config, time.perf_counter() - t0)
