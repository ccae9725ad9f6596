"""Small hand-built order logs for the simulator's tests (a few sites in central Shanghai around local noon)."""

from __future__ import annotations

import numpy as np

from dispatch.sim.log import LogMeta, OrderColumns, OrderLog, RiderColumns, SiteColumns, TravelModel

DAY0 = 1_750_003_200.0  # 2025-06-15 16:00 UTC: local midnight in UTC+8


def tiny_log(
    seed: int = 0,
    n_sites: int = 4,
    n: int = 400,
    m: int = 40,
    promise_s: float = 3600.0,
    varied_riders: bool = False,
) -> OrderLog:
    """``n`` orders placed 11:00-13:00 local at ``n_sites`` sites 1-4 km apart, ``m`` riders spread over the sites
    (``m % n_sites`` sites get one more). ``varied_riders``: shift starts spread over 30 min, permuted rider ids and
    speed factors 0.9-1.1 (else all start at 10:30, ids 5000.., speed 1)."""
    rng = np.random.default_rng(seed)
    slat = 31.2 + rng.uniform(-0.02, 0.02, n_sites)
    slng = 121.4 + rng.uniform(-0.02, 0.02, n_sites)
    sites = SiteColumns(site_id=np.arange(n_sites, dtype=np.int64) * 7 + 3, x=slng, y=slat,
                        service_s=np.full(n_sites, 60.0), zone_m=np.full(n_sites, 2500.0),
                        city=np.array(["sh"] * n_sites))  # fmt: skip
    site = rng.integers(0, n_sites, n)
    placed = np.sort(DAY0 + 11 * 3600.0 + rng.uniform(0.0, 2 * 3600.0, n))
    r = 2000.0 * np.sqrt(rng.random(n))
    a = rng.random(n) * 2 * np.pi
    orders = OrderColumns(
        order_id=rng.permutation(n).astype(np.int64) + 100,
        site_id=sites.site_id[site],
        drop_x=slng[site] + r * np.cos(a) / 95_000.0,
        drop_y=slat[site] + r * np.sin(a) / 111_000.0,
        placed_at=placed,
        ready_at=placed + rng.uniform(60.0, 480.0, n),
        promised_by=placed + promise_s,
        size=np.ones(n, dtype=np.int32),
        service_drop_s=np.full(n, 60.0),
    )
    home = np.arange(m) % n_sites
    start = DAY0 + 10.5 * 3600.0
    if varied_riders:
        starts = start + rng.uniform(0.0, 1800.0, m)
        ids = rng.permutation(m).astype(np.int64) * 3 + 5000
        speed = rng.uniform(0.9, 1.1, m)
    else:
        starts, ids, speed = np.full(m, start), np.arange(m, dtype=np.int64) + 5000, np.ones(m)
    riders = RiderColumns(rider_id=ids, site_id=sites.site_id[home], start_x=slng[home], start_y=slat[home],
                          shift_start=starts, shift_end=starts + 4 * 3600.0, capacity=np.full(m, 5, dtype=np.int32),
                          speed_factor=speed)  # fmt: skip
    return OrderLog(LogMeta("wgs84", TravelModel(), DAY0, 8 * 3600.0, name="tiny", seed=seed), sites, orders, riders)
