"""Simulate an order log in this process (one shard, one worker) and print its throughput and KPIs; optionally
profile it. Used for the side-by-side simulator figures in benchmarks/RESULTS.md (run it in worktrees of two
commits, one after the other, on a quiet machine).

The dispatch parameters and the promise quoting are the ones the log records from its scenario, as
``dispatch simulate`` takes them (``--defaults``: the DispatchParams defaults and no quoting, as this script ran
before session 18; a peak-day log's quoting then went unmeasured).

    python scripts/sim_rate.py LOGDIR LABEL [--defaults] [--profile N]
"""

import argparse
import cProfile
import pstats
import time

import numpy as np

from dispatch.policy import DispatchParams
from dispatch.sim.log import read_log
from dispatch.sim.quoting import promise_from_record
from dispatch.sim.run import SimConfig, run_day


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", help="an order log directory (dispatch generate, scripts/site_sample.py)")
    ap.add_argument("label", help="a name for the output line")
    ap.add_argument("--defaults", action="store_true", help="default dispatch parameters, no quoting (not the log's)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions (cProfile)")
    args = ap.parse_args()
    log = read_log(args.log)
    rec = log.meta.scenario or {}
    if args.defaults or not isinstance(rec.get("dispatch"), dict):
        params = DispatchParams()
    else:
        params = DispatchParams().with_updates(**rec["dispatch"])
    promise = None if args.defaults else promise_from_record(rec.get("promise"))
    cfg = SimConfig(workers=1, shards=1, params=params, promise=promise)
    prof = cProfile.Profile() if args.profile else None
    t = time.perf_counter()
    if prof is not None:
        prof.enable()
    day, res = run_day(log, cfg)
    if prof is not None:
        prof.disable()
    wall = time.perf_counter() - t
    n = len(day.order_id)
    on_time = float((day.delivered_at <= day.promised).mean()) if n else float("nan")
    km = float(np.sum([r.rider_metres.sum() for r in res])) / 1e3 / max(n, 1)
    deferred, declined = int(day.deferred.sum()), int((day.declined > 0).sum())
    print(f"{args.label}: orders {n} wall {wall:.1f} s, {n / wall:.0f} orders/s, on-time {on_time:.5f}, "
          f"km/order {km:.4f}, deferred {deferred}, declined {declined}")  # fmt: skip
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
