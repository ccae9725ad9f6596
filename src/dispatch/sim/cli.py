"""Simulator commands: ``generate`` (a scenario to an order log) and ``check`` (validate a scenario or a log).

Run as ``python -m dispatch.sim generate SCENARIO.toml --out DIR``. ``register(subparsers)`` adds the same
subcommands to another parser (for the ``dispatch`` command); each sets ``func`` to its handler.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dispatch.argtypes import positive_int
from dispatch.sim.generate import generate
from dispatch.sim.log import LogError, read_log
from dispatch.sim.scenario import ScenarioError, load_scenario


def cmd_generate(args: argparse.Namespace) -> int:
    """``generate SCENARIO --out DIR``: prints a summary (JSON with ``--json``); 2 on a bad scenario."""
    try:
        sc = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"{args.scenario}: {exc}", file=sys.stderr)
        return 2
    progress: Any = None
    if not args.quiet and not args.json:
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task(f"generating {sc.name}", total=sc.demand.orders_per_day)
        bar.start()

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

    try:
        summary = generate(sc, args.out, progress, workers=args.workers, row_group_rows=args.row_group_rows)
    finally:
        if progress is not None:
            bar.stop()
    if args.json:
        print(json.dumps(summary.to_dict()))
        return 0
    print(
        f"{summary.name}: {summary.n_orders:,} orders, {summary.n_sites:,} sites, {summary.n_riders:,} rider shifts "
        f"-> {summary.out_dir} ({summary.bytes / 1e6:.1f} MB) in {summary.seconds:.1f} s; "
        f"busiest hour {max(summary.orders_by_hour):,} orders, at most "
        f"{summary.peak_orders_per_rider_hour:.2f} orders per on-shift rider in any hour"
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``check PATH``: validate a scenario file or a log directory; 0 when valid, 2 with the error otherwise."""
    path = Path(args.path)
    try:
        if path.is_dir():
            log = read_log(path)
            what = f"{len(log.sites):,} sites, {len(log.orders):,} orders, {len(log.riders):,} rider shifts"
            print(f"{path}: a valid order log ({log.meta.coordinates}, travel {log.meta.travel.kind}): {what}")
        else:
            sc = load_scenario(path)
            print(f"{path}: a valid scenario {sc.name!r}: {sc.sites.n_sites:,} sites, "
                  f"{sc.demand.orders_per_day:,} orders a day, seed {sc.seed}")  # fmt: skip
    except (ScenarioError, LogError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    return 0


def register(sub: Any) -> None:
    """Add ``generate`` and ``check`` to an argparse subparsers object."""
    g = sub.add_parser("generate", help="draw an order log from a scenario (deterministic from its seed)")
    g.add_argument("scenario", help="scenario TOML file (see simulations/)")
    g.add_argument("--out", required=True, help="log directory to write (created; log files in it are replaced)")
    g.add_argument("--workers", type=positive_int, default=1, help="threads drawing orders (default 1)")
    g.add_argument("--row-group-rows", type=positive_int, default=1_000_000, help="Parquet row-group size")
    g.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_generate)
    c = sub.add_parser("check", help="validate a scenario file or an order-log directory")
    c.add_argument("path")
    c.set_defaults(func=cmd_check)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dispatch.sim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
