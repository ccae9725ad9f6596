"""Synthetic dispatch instances (one tick's snapshot of a city) for benchmarks, tests and the demo.

A city is a disc of ``radius_m`` metres with ``n_sites`` sites; riders are spread around the sites, some idle and
some carrying a route of up to ``max_route_stops`` stops from their own site (some of those orders already
picked up, so only their drop-off remains); pending orders are placed at random sites within the last few minutes,
with drop-offs within ``zone_m`` of their site, picking times of a few minutes and promises of 30 to 60 minutes.
Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dispatch.geo import ProfileTravelTime
from dispatch.policy import Snapshot
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes

NOW = 1_750_046_400.0  # 2025-06-16 04:00 UTC: midday in UTC+8, the lunch peak of the default speed profile


@dataclass(frozen=True)
class CitySpec:
    """Shape of a synthetic city tick (see the module docstring)."""

    n_orders: int = 2000
    n_riders: int = 2000
    n_sites: int = 100
    radius_m: float = 12_000.0
    zone_m: float = 3_000.0
    max_route_stops: int = 8
    busy_share: float = 0.6
    capacity: int = 8
    seed: int = 0


def _disc(rng: np.random.Generator, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    r = radius * np.sqrt(rng.random(n))
    a = rng.random(n) * 2 * np.pi
    return r * np.cos(a), r * np.sin(a)


def city_snapshot(spec: CitySpec, now: float = NOW) -> Snapshot:
    """One tick's snapshot: pending orders are the first ``n_orders`` orders; the rest are in routes."""
    rng = np.random.default_rng(spec.seed)
    sx, sy = _disc(rng, spec.n_sites, spec.radius_m)
    service_site = rng.uniform(60.0, 180.0, spec.n_sites)

    # Riders: near a home site, shifts running all afternoon.
    home = rng.integers(0, spec.n_sites, spec.n_riders)
    dx, dy = _disc(rng, spec.n_riders, 1500.0)
    busy = rng.random(spec.n_riders) < spec.busy_share
    max_bag = max(1, spec.max_route_stops // 2)

    # Orders already in routes: each busy rider gets a bag from its home site.
    stops: list[list[tuple[int, int]]] = []
    frozen: list[int] = []
    ro_site: list[int] = []
    ro_placed: list[float] = []
    n_route_orders = 0
    for r in range(spec.n_riders):
        if not busy[r]:
            stops.append([])
            frozen.append(0)
            continue
        bag = int(rng.integers(1, max_bag + 1))
        picked = bool(rng.random() < 0.5)
        ids = list(range(spec.n_orders + n_route_orders, spec.n_orders + n_route_orders + bag))
        n_route_orders += bag
        ro_site.extend([int(home[r])] * bag)
        ro_placed.extend((now - rng.uniform(300.0, 1500.0, bag)).tolist())
        seq = [] if picked else [(o, PICKUP) for o in ids]
        seq += [(o, DROPOFF) for o in ids]
        stops.append(seq)
        frozen.append(1)

    n_total = spec.n_orders + n_route_orders
    site = np.concatenate([rng.integers(0, spec.n_sites, spec.n_orders), np.array(ro_site, dtype=np.int64)])
    placed = np.concatenate([now - rng.uniform(0.0, 240.0, spec.n_orders), np.array(ro_placed)])
    ox, oy = _disc(rng, n_total, spec.zone_m)
    ready = placed + rng.uniform(120.0, 720.0, n_total)
    promise = rng.choice(np.array([1800.0, 2700.0, 3600.0]), n_total)
    orders = OrderTable.build(
        pick_x=sx[site],
        pick_y=sy[site],
        drop_x=sx[site] + ox,
        drop_y=sy[site] + oy,
        site=site,
        ready=ready,
        promised=placed + promise,
        size=rng.integers(1, 3, n_total),
        service_pick=service_site[site],
        service_drop=rng.uniform(60.0, 150.0, n_total),
        placed=placed,
    )
    riders = RiderTable.build(
        x=sx[home] + dx,
        y=sy[home] + dy,
        avail=np.full(spec.n_riders, now),
        shift_start=np.full(spec.n_riders, now - 3 * 3600.0),
        shift_end=np.full(spec.n_riders, now + 5 * 3600.0),
        capacity=np.full(spec.n_riders, spec.capacity),
        speed=rng.uniform(0.9, 1.1, spec.n_riders),
    )
    routes = Routes.from_lists(stops, spec.max_route_stops + 2, frozen)
    travel = ProfileTravelTime().arrays()
    return Snapshot(orders, riders, routes, np.arange(spec.n_orders, dtype=np.int64), travel)


def site_snapshot(n_orders: int = 150, n_riders: int = 300, seed: int = 0, now: float = NOW) -> Snapshot:
    """One busy site's tick: ``n_orders`` pending orders at one site, ``n_riders`` riders around it."""
    return city_snapshot(CitySpec(n_orders=n_orders, n_riders=n_riders, n_sites=1, radius_m=0.0, seed=seed), now=now)
