"""One-parameter changes on an order log, kernel policy (greedy once, for reference).

    dispatch generate simulations/demo.toml --out /tmp/demo/log
    python scripts/demo_tuning.py /tmp/demo/log promise_margin_s=0 promise_margin_s=180 max_orders_per_rider=3

Each argument after the log is one run: a DispatchParams field changed from the defaults (the scenario's own
[dispatch] values are not applied). Prints on-time rate, median delivery minutes and km per order; figures in
benchmarks/RESULTS.md.
"""

import sys
from dataclasses import fields

from dispatch.policy import DispatchParams
from dispatch.sim.kpi import summary
from dispatch.sim.log import read_log
from dispatch.sim.run import SimConfig, run_day

KEYS = ("on_time_rate", "delivery_min_p50", "km_per_order")


def parse(change: str) -> dict[str, object]:
    name, _, text = change.partition("=")
    kind = {f.name: type(getattr(DispatchParams(), f.name)) for f in fields(DispatchParams)}
    if name not in kind:
        raise SystemExit(f"unknown DispatchParams field {name!r}")
    return {name: kind[name](text)}


def main() -> None:
    log = read_log(sys.argv[1])
    runs = [("greedy", {})] + [("kernel", parse(c)) for c in sys.argv[2:]]
    for policy, change in runs:
        p = DispatchParams().with_updates(**change)
        day, _ = run_day(log, SimConfig(policy=policy, params=p, workers=2))
        s = summary(day, wall_seconds=1.0, seed=0)
        print(policy, change, {k: s[k] for k in KEYS}, flush=True)


if __name__ == "__main__":
    main()
