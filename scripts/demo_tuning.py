"""One-parameter changes on the demo log, kernel policy.

Generate the log first: dispatch generate simulations/demo.toml --out /tmp/demo_final/log

Prints on-time rate, median delivery minutes and km per order for each change; figures in benchmarks/RESULTS.md.
"""

from dispatch.policy import DispatchParams
from dispatch.sim.kpi import summary
from dispatch.sim.log import read_log
from dispatch.sim.run import SimConfig, run_day

log = read_log("/tmp/demo_final/log")
base = DispatchParams(tick_s=15.0, hold_s=30.0, max_orders_per_rider=5)
for kw in (dict(weight_late=100.0), dict(weight_time=0.2), dict(max_orders_per_rider=3), dict(hold_s=0.0)):
    p = base.with_updates(**kw)
    day, _ = run_day(log, SimConfig(params=p, workers=2))
    s = summary(day, wall_seconds=1.0, seed=0)
    print(kw, {k: s[k] for k in ("on_time_rate", "delivery_min_p50", "km_per_order")}, flush=True)
