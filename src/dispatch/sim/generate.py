"""Draw a day's order log from a scenario, deterministically from its seed.

Every random draw comes from a stream keyed by what it is for, ``SeedSequence(seed, spawn_key=(stream, ...))``:
the cities' site positions by city, a site's attributes and riders by site id, the orders of one site in one local
hour by (site id, hour), and the day's order counts (one multinomial over every site x hour cell, so the day has
exactly ``orders_per_day`` orders) from one stream. So the log does not depend on how the work is chunked, on the
number of worker threads or on the Parquet row-group size.

The day is generated one local hour at a time: every site's orders of that hour (placed uniformly within the hour,
drop-offs uniform over the site's zone disc, ready = placed + picking time, promised = placed + the promise, plus
``promise_min_per_km`` per km from the site), sorted
by placed_at, numbered, and streamed to the Parquet writer; memory stays at about one hour of orders (~150 bytes
an order while it is drawn and written).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.geo import Projection
from dispatch.sim.log import (
    DEFAULT_ROW_GROUP_ROWS,
    LogMeta,
    LogWriter,
    OrderColumns,
    RiderColumns,
    SiteColumns,
)
from dispatch.sim.scenario import Scenario, hourly_coverage

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Stream keys (first element of every spawn key). Never renumber: a log depends on them.
_CITY_SITES, _SITE, _COUNTS, _RIDERS, _ORDERS = 1, 2, 3, 4, 5

HOUR_S = 3600.0
DAY_S = 86_400.0

Progress = Callable[[int, int], None]
"""``progress(orders_written, orders_total)``, called after each hour is written."""


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _disc(rng: np.random.Generator, n: int, radius: F64 | float) -> tuple[F64, F64]:
    """n points uniform over discs of ``radius`` (float64[n] or a scalar) around the origin: (dx, dy) metres."""
    u = rng.random((2, n))
    r = np.sqrt(u[0]) * radius
    a = 2.0 * math.pi * u[1]
    return r * np.cos(a), r * np.sin(a)


def allocate(count: int, weights: Sequence[float]) -> list[int]:
    """Divide ``count`` among ``weights`` in proportion by the largest-remainder rule (ties to the earlier entry);
    then, when ``count`` is at least the number of entries, an entry left with none takes one from the largest."""
    k = len(weights)
    total = float(sum(weights))
    quotas = [count * w / total for w in weights]
    out = [math.floor(q) for q in quotas]
    order = sorted(range(k), key=lambda i: (-(quotas[i] - out[i]), i))
    for i in order[: count - sum(out)]:
        out[i] += 1
    if count >= k:
        for i in range(k):
            if out[i] == 0:
                out[max(range(k), key=lambda j: (out[j], -j))] -= 1
                out[i] = 1
    return out


@dataclass(frozen=True)
class Plan:
    """Everything fixed before any order is drawn.

    Attributes:
        sites: the sites (positions as (x, y): lng/lat degrees or metres).
        weight: float64[s], each site's share of the day's demand (sums to 1).
        counts: int64[s, 24], orders of each site in each local hour (sums to orders_per_day).
        riders: int64[s], riders sized for each site (before shifts past midnight add yesterday's instance).
    """

    sites: SiteColumns
    weight: F64
    counts: I64
    riders: I64


def _site_draws(seed: int, site_id: int, service: tuple[float, float], zone: tuple[float, float]) -> tuple[float, ...]:
    """A site's own draws: (service_s, zone_m, popularity z), from its stream."""
    rng = _rng(seed, _SITE, site_id)
    u = rng.random(2)
    z = float(rng.standard_normal())
    return (service[0] + (service[1] - service[0]) * u[0], zone[0] + (zone[1] - zone[0]) * u[1], z)


def _sites(sc: Scenario) -> tuple[SiteColumns, F64]:
    """The sites and their unnormalised demand weights."""
    spec = sc.sites
    ids: list[int] = []
    xs: list[float] = []
    ys: list[float] = []
    service: list[float] = []
    zone: list[float] = []
    weight: list[float] = []
    city: list[str] = []
    sigma = sc.demand.site_weight_sigma
    if spec.explicit:
        for s in spec.explicit:
            sv, zn, z = _site_draws(sc.seed, s.site_id, spec.service_s, spec.zone_m)
            ids.append(s.site_id)
            xs.append(s.x)
            ys.append(s.y)
            service.append(sv if s.service_s is None else s.service_s)
            zone.append(zn if s.zone_m is None else s.zone_m)
            weight.append(math.exp(sigma * z) if s.weight is None else s.weight)
            city.append(s.city)
    else:
        per_city = allocate(spec.count, [c.weight for c in spec.cities])
        for ci, (c, k) in enumerate(zip(spec.cities, per_city, strict=True)):
            if k == 0:
                continue
            dx, dy = _disc(_rng(sc.seed, _CITY_SITES, ci), k, c.radius_m)
            if sc.coordinates == "wgs84":
                lat, lng = Projection(c.y, c.x).to_latlng(dx, dy, f"sites in {c.name}")
                px, py = lng, lat
            else:
                px, py = c.x + dx, c.y + dy
            for j in range(k):
                sid = len(ids)
                sv, zn, z = _site_draws(sc.seed, sid, spec.service_s, spec.zone_m)
                ids.append(sid)
                xs.append(float(px[j]))
                ys.append(float(py[j]))
                service.append(sv)
                zone.append(zn)
                weight.append(math.exp(sigma * z))
                city.append(c.name)
    sites = SiteColumns(
        site_id=np.array(ids, dtype=np.int64),
        x=np.array(xs, dtype=np.float64),
        y=np.array(ys, dtype=np.float64),
        service_s=np.array(service, dtype=np.float64),
        zone_m=np.array(zone, dtype=np.float64),
        city=np.array(city, dtype=str),
    )
    return sites, np.array(weight, dtype=np.float64)


def plan(sc: Scenario) -> Plan:
    """The sites, their demand shares, the day's order counts per site and hour, and each site's fleet size."""
    sites, w = _sites(sc)
    weight = w / w.sum()
    hourly = np.asarray(sc.demand.hourly_profile, dtype=np.float64)
    p = (weight[:, None] * hourly[None, :]).ravel()
    p = p / p.sum()
    n = sc.demand.orders_per_day
    counts = _rng(sc.seed, _COUNTS).multinomial(n, p).reshape(len(sites), 24).astype(np.int64)

    f = sc.fleet
    expected = n * weight  # orders a day per site
    if f.riders_per_site is not None:
        riders = np.full(len(sites), f.riders_per_site, dtype=np.int64)
    elif f.riders_per_100_orders is not None:
        riders = np.ceil(expected * f.riders_per_100_orders / 100.0 - 1e-9).astype(np.int64)
    else:
        assert f.orders_per_rider_hour is not None
        cover = np.asarray(hourly_coverage(f.shifts))
        need = np.where(cover > 0, hourly / np.where(cover > 0, cover, 1.0), 0.0).max()  # riders per daily order
        riders = np.ceil(f.headroom * expected * need / f.orders_per_rider_hour - 1e-9).astype(np.int64)
    riders = np.maximum(riders, 1)
    for i, s in enumerate(sc.sites.explicit):
        if s.riders is not None:
            riders[i] = s.riders
    return Plan(sites, weight, counts, riders)


def _to_xy(sc: Scenario, proj: Projection | None, sx: float, sy: float, dx: F64, dy: F64, what: str) -> tuple[F64, F64]:
    """Offsets in metres around a site to the log's (x, y): (lng, lat) for wgs84, metres for planar_m."""
    if proj is None:
        return sx + dx, sy + dy
    lat, lng = proj.to_latlng(dx, dy, what)
    return lng, lat


def _projections(sc: Scenario, sites: SiteColumns) -> list[Projection | None]:
    if sc.coordinates != "wgs84":
        return [None] * len(sites)
    return [Projection(float(sites.y[i]), float(sites.x[i])) for i in range(len(sites))]


def riders_for(sc: Scenario, pl: Plan, projections: Sequence[Projection | None] | None = None) -> RiderColumns:
    """Every rider shift of the day, numbered 0.. in site order, by shift start within a site.

    A site's ``pl.riders[i]`` riders are spread over the shift patterns by systematic sampling (so each pattern gets
    its share, give or take one rider); a pattern that runs past midnight also gets, for each of its riders, an
    instance that started the evening before (covering this day's early hours).
    """
    f = sc.fleet
    shares = np.array([s.share for s in f.shifts], dtype=np.float64)
    cum = np.cumsum(shares / shares.sum())
    start_h = np.array([s.start_h for s in f.shifts])
    hours = np.array([s.hours for s in f.shifts])
    projs = _projections(sc, pl.sites) if projections is None else projections
    parts: list[dict[str, Any]] = []
    for i in range(len(pl.sites)):
        n = int(pl.riders[i])
        if n == 0:
            continue
        sid = int(pl.sites.site_id[i])
        rng = _rng(sc.seed, _RIDERS, sid)
        offset = rng.random()
        pat = np.minimum(np.searchsorted(cum, (np.arange(n) + offset) / n, side="right"), len(cum) - 1)
        wraps = start_h[pat] + hours[pat] > 24.0
        day_shift = np.concatenate([np.zeros(n), np.full(int(wraps.sum()), -DAY_S)])
        pat = np.concatenate([pat, pat[wraps]])
        m = pat.shape[0]
        u = rng.random((3, m))
        jitter = (2.0 * u[0] - 1.0) * f.shift_jitter_min * 60.0
        start = sc.day_start + start_h[pat] * HOUR_S + jitter + day_shift
        speed = f.speed_factor[0] + (f.speed_factor[1] - f.speed_factor[0]) * u[1]
        cap: npt.NDArray[np.int32] = np.asarray(rng.integers(f.capacity[0], f.capacity[1] + 1, m), dtype=np.int32)
        dx, dy = _disc(rng, m, f.start_radius_m)
        x, y = _to_xy(sc, projs[i], float(pl.sites.x[i]), float(pl.sites.y[i]), dx, dy, f"riders of site {sid}")
        order = np.argsort(start, kind="stable")
        parts.append({
            "site_id": np.full(m, sid, dtype=np.int64), "start_x": x[order], "start_y": y[order],
            "shift_start": start[order], "shift_end": start[order] + hours[pat][order] * HOUR_S,
            "capacity": cap[order], "speed_factor": speed[order],
        })  # fmt: skip
    total = sum(p["site_id"].shape[0] for p in parts)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else None
    if cols is None:
        empty = np.zeros(0)
        return RiderColumns(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty, empty, empty,
                            np.zeros(0, np.int32), empty)  # fmt: skip
    return RiderColumns(rider_id=np.arange(total, dtype=np.int64), **cols)


def _cell(sc: Scenario, pl: Plan, proj: Projection | None, i: int, hour: int) -> dict[str, Any] | None:
    """The orders of site row ``i`` in local hour ``hour`` (unsorted, without ids)."""
    n = int(pl.counts[i, hour])
    if n == 0:
        return None
    d = sc.demand
    sid = int(pl.sites.site_id[i])
    rng = _rng(sc.seed, _ORDERS, sid, hour)
    u = rng.random((6, n))
    placed = sc.day_start + (hour + u[0]) * HOUR_S
    radius = d.dropoff_radius_m if d.dropoff_radius_m is not None else float(pl.sites.zone_m[i])
    r = np.sqrt(u[1]) * radius
    a = 2.0 * math.pi * u[2]
    x, y = _to_xy(sc, proj, float(pl.sites.x[i]), float(pl.sites.y[i]), r * np.cos(a), r * np.sin(a),
                  f"drop-offs of site {sid}")  # fmt: skip
    rd = d.ready
    if rd.kind == "lognormal":
        minutes = np.clip(rd.median_min * np.exp(rd.sigma * rng.standard_normal(n)), rd.min_min, rd.max_min)
    else:
        minutes = rd.min_min + (rd.max_min - rd.min_min) * rng.random(n)
    promise = np.asarray(d.promise_min)[_pick(d.promise_share, u[3])] + d.promise_min_per_km * (r / 1000.0)
    size = np.asarray(d.size_units, dtype=np.int32)[_pick(d.size_share, u[4])]
    lo, hi = d.service_drop_s
    return {
        "site_id": np.full(n, sid, dtype=np.int64),
        "drop_x": x,
        "drop_y": y,
        "placed_at": placed,
        "ready_at": placed + minutes * 60.0,
        "promised_by": placed + promise * 60.0,
        "size": size,
        "service_drop_s": lo + (hi - lo) * u[5],
    }


def _pick(shares: Sequence[float], u: F64) -> I64:
    cum = np.cumsum(np.asarray(shares, dtype=np.float64))
    out: I64 = np.minimum(np.searchsorted(cum, u * cum[-1], side="right"), len(cum) - 1).astype(np.int64)
    return out


def _hour(
    sc: Scenario,
    pl: Plan,
    projs: Sequence[Projection | None],
    hour: int,
    first_id: int,
    pool: ThreadPoolExecutor | None,
    chunk_sites: int,
) -> OrderColumns:
    """Every site's orders of local hour ``hour``, sorted by placed_at, numbered from ``first_id``."""
    s = len(pl.sites)

    def chunk(lo: int) -> list[dict[str, Any]]:
        return [c for i in range(lo, min(lo + chunk_sites, s)) if (c := _cell(sc, pl, projs[i], i, hour)) is not None]

    starts = range(0, s, chunk_sites)
    parts = [c for lst in (pool.map(chunk, starts) if pool else map(chunk, starts)) for c in lst]
    if not parts:
        z = np.zeros(0)
        return OrderColumns(np.zeros(0, np.int64), np.zeros(0, np.int64), z, z, z, z, z, np.zeros(0, np.int32), z)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(cols["placed_at"], kind="stable")
    n = order.shape[0]
    return OrderColumns(order_id=np.arange(first_id, first_id + n, dtype=np.int64),
                        **{k: v[order] for k, v in cols.items()})  # fmt: skip


@dataclass(frozen=True)
class GenerateSummary:
    """What ``generate`` wrote: counts, orders per local hour, riders on shift at the middle of each local hour,
    the most orders per on-shift rider in any hour, wall seconds and bytes on disk."""

    out_dir: str
    name: str
    n_sites: int
    n_orders: int
    n_riders: int
    orders_by_hour: tuple[int, ...]
    riders_on_shift_by_hour: tuple[int, ...]
    peak_orders_per_rider_hour: float
    seconds: float
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_meta(sc: Scenario) -> LogMeta:
    """The header of the log generated from ``sc``."""
    return LogMeta(
        coordinates=sc.coordinates,
        travel=sc.travel,
        day_start=sc.day_start,
        utc_offset_s=sc.utc_offset_s,
        name=sc.name,
        description=sc.description,
        seed=sc.seed,
        scenario={
            "policy": sc.policy,
            "shard": sc.shard,
            "dispatch": sc.dispatch.to_dict(),
            "promise": sc.promise.to_record(),
            "source_sha256": sc.source_sha256,
        },
    )


def generate(
    scenario: Scenario,
    out_dir: str | os.PathLike[str],
    progress: Progress | None = None,
    *,
    workers: int = 1,
    chunk_sites: int = 64,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
) -> GenerateSummary:
    """Draw the scenario's day and write it as an order log in ``out_dir`` (see ``dispatch.sim.log``).

    The files are the same byte for byte for the same scenario and ``row_group_rows``, whatever ``workers`` and
    ``chunk_sites``; the data are the same whatever all three.

    Args:
        scenario: a validated scenario.
        out_dir: the log directory (created; existing log files in it are replaced).
        progress: called as ``progress(orders_written, orders_total)`` after each local hour.
        workers: threads drawing orders (numpy releases the GIL in most of the work).
        chunk_sites: sites per task handed to a thread.
        row_group_rows: Parquet row-group size.

    Returns:
        A GenerateSummary.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: must be an integer >= 1, got {workers!r}")
    if isinstance(chunk_sites, bool) or not isinstance(chunk_sites, int) or chunk_sites < 1:
        raise ValueError(f"chunk_sites: must be an integer >= 1, got {chunk_sites!r}")
    t0 = time.perf_counter()
    pl = plan(scenario)
    projs = _projections(scenario, pl.sites)
    riders = riders_for(scenario, pl, projs)
    total = int(pl.counts.sum())
    done = 0
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        with LogWriter(out_dir, log_meta(scenario), pl.sites, row_group_rows=row_group_rows) as w:
            w.write_riders(riders)
            for hour in range(24):
                batch = _hour(scenario, pl, projs, hour, done, pool, chunk_sites)
                w.write_orders(batch)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
    finally:
        if pool is not None:
            pool.shutdown()
    mid: F64 = scenario.day_start + (np.arange(24, dtype=np.float64) + 0.5) * HOUR_S
    on = _on_shift(riders, mid)
    by_hour = pl.counts.sum(axis=0)
    ratio = float(np.max(np.where(on > 0, by_hour / np.maximum(on, 1), np.where(by_hour > 0, np.inf, 0.0))))
    size = sum(p.stat().st_size for p in Path(out_dir).iterdir() if p.is_file())
    return GenerateSummary(
        out_dir=str(out_dir),
        name=scenario.name,
        n_sites=len(pl.sites),
        n_orders=total,
        n_riders=len(riders),
        orders_by_hour=tuple(int(v) for v in by_hour),
        riders_on_shift_by_hour=tuple(int(v) for v in on),
        peak_orders_per_rider_hour=ratio,
        seconds=time.perf_counter() - t0,
        bytes=int(size),
    )


def _on_shift(riders: RiderColumns, at: F64) -> I64:
    """int64[k]: riders on shift (shift_start <= t < shift_end) at each time t of ``at``."""
    starts = np.sort(riders.shift_start)
    ends = np.sort(riders.shift_end)
    out: I64 = (np.searchsorted(starts, at, side="right") - np.searchsorted(ends, at, side="right")).astype(np.int64)
    return out
