"""The ``dispatch`` command line.

Commands (each documented in the README and by ``dispatch COMMAND --help``):

- ``dispatch demo``: one dispatch tick on a generated city, with every policy, side by side;
- ``dispatch generate`` / ``check`` / ``simulate`` / ``sweep``: order logs and the peak-day simulator (dispatch.sim);
- ``dispatch serve``: the gRPC dispatch service (dispatch.service);
- ``dispatch replay`` / ``quote`` / ``stats``: clients of a running server (dispatch.client_cli);
- ``dispatch bench kernel``: the dispatch tick against the dense numpy + scipy peer (dispatch.bench.kernel);
- ``dispatch bench routing``: the routing engine on Solomon / Li & Lim instances beside OR-Tools alone or PyVRP
  (dispatch.bench.routing);
- ``dispatch bench quote``: promise quotes timed in process on a scenario's busiest hour (dispatch.bench.quote).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np

from dispatch.argtypes import positive_int
from dispatch.heap import keep_heap
from dispatch.policy import DispatchParams, ParamsError, Reason, make_policy


def _cmd_bench_kernel(args: argparse.Namespace) -> int:
    from dispatch.bench.kernel import run

    params = DispatchParams(candidate_k=args.candidate_k)
    rec = run(args.orders, args.riders, seed=args.seed, sites=args.sites, repeat=args.repeat, params=params)
    if args.json:
        print(json.dumps(rec))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"dispatch bench kernel: {args.orders} orders x {args.riders} riders, {rec['sites']} sites")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in rec.items():
        if k != "timings_ms":
            t.add_row(k, str(v))
    for k, v in rec["timings_ms"].items():
        t.add_row(f"ours phase {k} (ms)", str(v))
    Console().print(t)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from dispatch.kernels.route import evaluate_routes
    from dispatch.synthetic import NOW, CitySpec, city_snapshot

    console = Console()
    console.print(
        "[bold]dispatch demo[/bold]: one dispatch tick on a generated city, each policy on the same snapshot "
        "(a whole simulated day: dispatch simulate simulations/demo.toml --out out/demo)."
    )
    spec = CitySpec(n_orders=args.orders, n_riders=args.riders, n_sites=args.sites, seed=args.seed)
    table = Table(title=f"one tick: {spec.n_orders} pending orders, {spec.n_riders} riders, {spec.n_sites} sites")
    for col in ("policy", "assigned", "left", "late orders", "late min (sum)", "km added", "rider-min added",
                "tick ms"):  # fmt: skip
        table.add_column(col, justify="right" if col != "policy" else "left")
    reasons: dict[str, dict[str, int]] = {}
    for name in ("kernel", "greedy"):
        params = DispatchParams(hold_s=0.0)
        policy = make_policy(name, params)
        policy.tick(city_snapshot(spec), NOW)  # warm-up: compiles or loads the kernels
        snap = city_snapshot(spec)
        _ev0, tot0 = evaluate_routes(
            snap.orders.as_tuple(), snap.riders.as_tuple(), snap.routes.as_tuple(), snap.travel, params.weights,
            params.mode,
        )  # fmt: skip
        t = time.perf_counter()
        res = policy.tick(snap, NOW)
        ms = (time.perf_counter() - t) * 1e3
        _ev, tot = evaluate_routes(
            snap.orders.as_tuple(), snap.riders.as_tuple(), res.routes.as_tuple(), snap.travel, params.weights,
            params.mode,
        )  # fmt: skip
        eta = res.eta_dropoff(snap.orders.n)
        new = res.assigned_order
        late = np.maximum(0.0, eta[new] - snap.orders.promised[new])
        table.add_row(
            name,
            str(new.shape[0]),
            str(res.unassigned_order.shape[0]),
            str(int((late > 0).sum())),
            f"{late.sum() / 60:.0f}",
            f"{(tot[1].sum() - tot0[1].sum()) / 1000:.1f}",
            f"{(tot[0].sum() - tot0[0].sum()) / 60:.0f}",
            f"{ms:.1f}",
        )
        counts = np.bincount(res.unassigned_reason, minlength=16)
        reasons[name] = {Reason(i).name: int(c) for i, c in enumerate(counts) if c and i in Reason._value2member_map_}
    console.print(table)
    for name, rs in reasons.items():
        if rs:
            console.print(f"  {name}: unassigned by reason: {rs}")
    console.print(
        "  late orders / late min: new orders whose evaluated drop-off ETA is after their promise; km and "
        "rider-min added: growth of all routes' distance and end times."
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispatch", description="Instant-delivery dispatch and routing engine.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="one dispatch tick on a generated city, each policy side by side")
    demo.add_argument("--orders", type=positive_int, default=600, help="pending orders (default 600)")
    demo.add_argument("--riders", type=positive_int, default=800, help="riders (default 800)")
    demo.add_argument("--sites", type=positive_int, default=30, help="sites (default 30)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks against a named peer in the same run")
    bsub = bench.add_subparsers(dest="bench", required=True)
    bk = bsub.add_parser("kernel", help="the dispatch tick against a dense numpy + scipy peer")
    bk.add_argument("--orders", type=positive_int, required=True, help="pending orders")
    bk.add_argument("--riders", type=positive_int, required=True, help="riders")
    bk.add_argument("--sites", type=positive_int, default=None, help="sites (default: orders / 20)")
    bk.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    bk.add_argument("--repeat", type=positive_int, default=5, help="timed runs of ours, best kept (default 5)")
    bk.add_argument(
        "--candidate-k",
        type=positive_int,
        default=DispatchParams().candidate_k,
        help=f"candidate riders per order and orders per rider (default {DispatchParams().candidate_k})",
    )
    bk.add_argument("--json", action="store_true", help="print one JSON object")
    bk.set_defaults(func=_cmd_bench_kernel)
    from dispatch.bench import quote as bench_quote
    from dispatch.bench import routing as bench_routing

    bench_routing.register(bsub)  # bench routing
    bench_quote.register(bsub)  # bench quote

    from dispatch.sim import cli as sim_cli
    from dispatch.sim import simulate_cli, sweep

    sim_cli.register(sub)  # generate, check
    simulate_cli.register(sub)  # simulate
    sweep.register(sub)  # sweep
    from dispatch import client_cli
    from dispatch.service import cli as service_cli

    service_cli.register(sub)  # serve
    client_cli.register(sub)  # replay, quote, stats
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_heap()  # every command's ticks reuse heap pages (dispatch.heap); forked workers inherit it
    try:
        return int(args.func(args))
    except (ParamsError, ValueError) as e:
        print(f"dispatch: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
