"""Write a sample of an order log's sites (every N-th site, with its orders and riders) as a new log.

    python scripts/site_sample.py LOGDIR OUTDIR --every 10

In the simulator's default shard mode, "site", sites are independent (a rider serves its home site only, each site
has its own frame), so a sampled site's outcome in the sample is exactly its outcome in the full run: a sample
answers fleet-size questions for those sites at a tenth of the cost. Used for the city.toml fleet sweep in
benchmarks/RESULTS.md.
"""

import argparse
import dataclasses
from typing import Any

import numpy as np

from dispatch.sim.log import read_log, write_log


def _take(cols: Any, mask: np.ndarray) -> Any:
    return dataclasses.replace(cols, **{f.name: getattr(cols, f.name)[mask] for f in dataclasses.fields(cols)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("out")
    ap.add_argument("--every", type=int, default=10, help="keep every N-th site (default 10)")
    args = ap.parse_args()
    log = read_log(args.log)
    keep_ids = log.sites.site_id[:: args.every]
    sites = _take(log.sites, np.isin(log.sites.site_id, keep_ids))
    orders = _take(log.orders, np.isin(log.orders.site_id, keep_ids))
    riders = _take(log.riders, np.isin(log.riders.site_id, keep_ids))
    meta = dataclasses.replace(log.meta, name=f"{log.meta.name} (every {args.every}th site)")
    write_log(args.out, meta, sites, orders, riders)
    n_orders, n_shifts = orders.order_id.shape[0], riders.rider_id.shape[0]
    print(f"{args.out}: {len(keep_ids)} sites, {n_orders:,} orders, {n_shifts:,} shifts")


if __name__ == "__main__":
    main()
