"""Simulate an order log in this process (one shard, one worker) and print its throughput and KPIs; optionally
profile it. Used for the side-by-side simulator figures in benchmarks/RESULTS.md (run it in worktrees of two
commits, one after the other, on a quiet machine).

    python scripts/sim_rate.py LOGDIR LABEL [--quote] [--profile N]
"""

import argparse
import cProfile
import pstats
import time

import numpy as np

from dispatch.promise_params import PromiseParams
from dispatch.sim.log import read_log
from dispatch.sim.run import SimConfig, run_day


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", help="an order log directory (dispatch generate, scripts/site_sample.py)")
    ap.add_argument("label", help="a name for the output line")
    ap.add_argument("--quote", action="store_true", help="quote every order when placed (default promise parameters)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions (cProfile)")
    args = ap.parse_args()
    log = read_log(args.log)
    cfg = SimConfig(workers=1, shards=1, promise=PromiseParams() if args.quote else None)
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
