"""Simulate an order log in this process (one shard, one worker) and print its throughput and KPIs; optionally
profile it. Used for the side-by-side simulator figures in benchmarks/RESULTS.md (run it in worktrees of two
commits, one after the other, on a quiet machine).

The dispatch parameters and the promise quoting are the ones the log records from its scenario, as
``dispatch simulate`` takes them (``--defaults``: the DispatchParams defaults and no quoting, as this script ran
before session 18; a peak-day log's quoting then went unmeasured).

    python scripts/sim_rate.py LOGDIR LABEL [--defaults] [--shard MODE] [--shards N] [--profile N]
                               [--save OUT.npz] [--compare OUT.npz]

``--save`` keeps the run's outcome (every order's assigned, picked-up and delivered times, rider and promise, by
order id, and every rider's metres, by rider id); ``--compare`` checks a run against a saved one, array by array,
to the last bit: how a change that must not alter any decision is checked (run it in worktrees of both commits).
"""

import argparse
import cProfile
import pstats
import sys
import time

import numpy as np

from dispatch.policy import DispatchParams
from dispatch.sim.log import SHARD_MODES, read_log
from dispatch.sim.quoting import promise_from_record
from dispatch.sim.run import SimConfig, run_day


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", help="an order log directory (dispatch generate, scripts/site_sample.py)")
    ap.add_argument("label", help="a name for the output line")
    ap.add_argument("--defaults", action="store_true", help="default dispatch parameters, no quoting (not the log's)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions (cProfile)")
    ap.add_argument("--shard", choices=SHARD_MODES, default=None,
                    help="who may serve whom (default: the log's scenario setting; logs written before 9e6310f "
                         "record a mode that was not honoured then: pass site to replay them as measured)")  # fmt: skip
    ap.add_argument("--shards", type=int, default=1, metavar="N", help="site groups, run in turn (default 1)")
    ap.add_argument("--save", metavar="OUT.npz", help="save the outcome arrays")
    ap.add_argument("--compare", metavar="OUT.npz", help="compare the outcome with a saved one; exit 1 if it differs")
    args = ap.parse_args()
    log = read_log(args.log)
    rec = log.meta.scenario or {}
    if args.defaults or not isinstance(rec.get("dispatch"), dict):
        params = DispatchParams()
    else:
        params = DispatchParams().with_updates(**rec["dispatch"])
    promise = None if args.defaults else promise_from_record(rec.get("promise"))
    cfg = SimConfig(workers=1, shards=args.shards, params=params, promise=promise, shard=args.shard)
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
    by_order = np.argsort(day.order_id, kind="stable")
    rider_ids = np.concatenate([r.rider_id for r in res])
    outcome = {
        "assigned_at": day.assigned_at[by_order],
        "picked_at": day.picked_at[by_order],
        "delivered_at": day.delivered_at[by_order],
        "rider_id": day.rider_id[by_order],
        "promised": day.promised[by_order],
        "rider_metres": np.concatenate([r.rider_metres for r in res])[np.argsort(rider_ids, kind="stable")],
    }
    if args.save:
        np.savez(args.save, **outcome)
    if args.compare:
        saved = np.load(args.compare)
        diff = [k for k, v in outcome.items() if k not in saved or not np.array_equal(saved[k], v, equal_nan=True)]
        print("outcome: the same to the last bit" if not diff else f"outcome differs in: {', '.join(diff)}")
        if diff:
            sys.exit(1)


if __name__ == "__main__":
    main()
