"""``dispatch simulate SOURCE --out DIR``: run a scenario file or an order log through the dispatch core.

A scenario (``.toml``) is first generated into ``DIR/log`` (deterministic from its seed); a log directory is read
as it is. The policy and dispatch parameters come from the scenario (or the scenario recorded in the log), unless
``--policy`` overrides the policy. Writes summary.json, orders.parquet, hourly.csv and report.html (with PNG
plots) in ``DIR``; shows a progress bar
and a KPI table (``--json`` prints the summary instead).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from dispatch.policy import POLICIES, DispatchParams, ParamsError
from dispatch.sim.engines import EngineError
from dispatch.sim.log import SHARD_MODES, LogError, OrderLog, read_log
from dispatch.sim.run import ENGINES, SimConfig, shard_mode, simulate

KPI_ROWS = (
    ("orders_total", "orders", "{:,}"),
    ("orders_delivered", "delivered", "{:,}"),
    ("on_time_rate", "on time", "{:.2%}"),
    ("promise_kept_rate", "quoted promises kept", "{:.2%}"),
    ("orders_deferred", "orders deferred (a later tier)", "{:,}"),
    ("orders_declined", "orders declined", "{:,}"),
    ("eta_mae_min", "quoted ETA error, mean minutes", "{:.1f}"),
    ("delivery_min_p50", "delivery minutes p50", "{:.1f}"),
    ("delivery_min_p90", "delivery minutes p90", "{:.1f}"),
    ("km_per_order", "km per order", "{:.3f}"),
    ("rider_hours", "rider-hours", "{:,.1f}"),
    ("orders_per_rider_hour", "orders per rider-hour", "{:.2f}"),
    ("dispatch_tick_ms_p99", "dispatch tick ms p99", "{:.1f}"),
    ("wall_seconds", "wall seconds", "{:.1f}"),
    ("sim_orders_per_second", "simulated orders per second", "{:,.0f}"),
)


def _load(source: Path, out: Path, quiet: bool) -> OrderLog:
    """The order log of ``source``: read a log directory, or generate a scenario's into ``out/log``."""
    if source.is_dir():
        return read_log(source)
    from dispatch.sim.generate import generate
    from dispatch.sim.scenario import load_scenario

    sc = load_scenario(source)
    log_dir = out / "log"
    if not quiet:
        print(f"generating {sc.name} ({sc.demand.orders_per_day:,} orders) into {log_dir}", file=sys.stderr)
    generate(sc, log_dir)
    return read_log(log_dir)


def _config(log: OrderLog, args: argparse.Namespace) -> SimConfig:
    rec: Any = log.meta.scenario or {}
    policy = args.policy or rec.get("policy") or "kernel"
    params = DispatchParams()
    if isinstance(rec.get("dispatch"), dict):
        params = DispatchParams().with_updates(**rec["dispatch"])
    seed = log.meta.seed if log.meta.seed is not None else 0
    if args.address is not None and args.engine != "ray":
        raise ValueError("--address: only with --engine ray")
    from dispatch.sim.quoting import promise_from_record

    return SimConfig(
        policy=policy,
        params=params,
        engine=args.engine,
        workers=args.workers,
        seed=seed,
        address=args.address,
        promise=promise_from_record(rec.get("promise")),
        shard=args.shard,
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    """The command's handler: 0 on success, 2 on a bad scenario, log or option."""
    from dispatch.sim.scenario import ScenarioError

    source = Path(args.source)
    out = Path(args.out)
    try:
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such scenario file or log directory")
        log = _load(source, out, args.quiet or args.json)
        config = _config(log, args)
        summ = _run(log, out, config, show=not (args.quiet or args.json))
    except (ScenarioError, LogError, ParamsError, FileNotFoundError, ValueError) as exc:
        print(f"dispatch simulate: {exc}", file=sys.stderr)
        return 2
    except EngineError as exc:
        print(f"dispatch simulate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summ, sort_keys=True))
    elif not args.quiet:
        _table(summ, out)
    return 0


def _run(log: OrderLog, out: Path, config: SimConfig, show: bool) -> dict[str, Any]:
    if not show:
        return simulate(log, out, config)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    n = len(log.orders)
    with Progress(
        TextColumn(f"simulating {log.meta.name or 'the log'} ({config.policy}, shard mode {shard_mode(log, config)})"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("orders"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("sim", total=n)
        t0 = time.perf_counter()

        def on_shard(orders_done: int, _riders: int) -> None:
            bar.advance(task, orders_done)

        summ = simulate(log, out, config, on_shard)
        bar.update(task, completed=n, description=f"{time.perf_counter() - t0:.1f} s")
    return summ


def _table(summ: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{summ.get('scenario') or 'simulation'}: {summ['policy']} policy")
    t.add_column("KPI")
    t.add_column("value", justify="right")
    for key, label, fmt in KPI_ROWS:
        v = summ.get(key)
        if isinstance(v, float) and v != v:
            t.add_row(label, "- (not quoted)")
        else:
            t.add_row(label, fmt.format(v) if isinstance(v, int | float) else str(v))
    console = Console()
    console.print(t)
    console.print(f"outputs in {out}: summary.json, orders.parquet, hourly.csv, report.html (+ PNG plots)")


def register(sub: Any) -> None:
    """Add ``simulate`` to an argparse subparsers object."""
    p = sub.add_parser(
        "simulate",
        help="replay a scenario or an order log through the dispatch core",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="a scenario file (.toml) or an order log directory")
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--policy", choices=POLICIES, default=None, help="dispatch policy (default: the scenario's)")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="where shards run: local worker processes, or ray tasks (needs the ray extra) (default local)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="ray only: the cluster to join ('auto', or ray://HOST:PORT); default: start a private local Ray",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (local) or CPUs of the private local Ray (default: one per core)",
    )
    p.add_argument(
        "--shard",
        choices=SHARD_MODES,
        default=None,
        help="who may serve whom: site (a rider serves its home site only), city (any site of its city) or none "
        "(any site) (default: the scenario's, else site)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    p.set_defaults(func=cmd_simulate)
