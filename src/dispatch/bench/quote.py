"""``dispatch bench quote SCENARIO``: promise quotes in process, with a city's state loaded, beside a naive peer.

1. The scenario's order log is generated (into a temporary directory, deterministic from its seed).
2. Its busiest local hour is found (most orders placed) and the simulator runs every site of the busiest city
   from ``warmup_min`` before that hour to its start, so that riders are out on routes and queues are as the
   dispatch core leaves them; the final state is moved from the simulator's per-site frames into one city
   projection.
3. A :class:`~dispatch.promise.PromiseEngine` over the city's sites (disc zones of the log's ``zone_m``) is updated
   with that state (``update_ms``), and ``quotes`` random addresses are quoted in process (``quote(lat, lng)``, the
   public path, projection included): 90% uniform over the disc of 1.2 x the zone radius around a random site
   (weighted by its orders), 10% uniform over the city's bounding box.
4. The naive peer quotes the same addresses with the same engine and state, except that it finds the covering
   sites by testing every zone in turn instead of the STRtree query. Ours and the peer alternate address by
   address, so machine noise hits both alike; ``ratio_p50`` / ``ratio_p99`` = peer / ours.

Figures: ``quote_ms_p50`` / ``_p99`` / ``_max`` (ours, wall clock), ``naive_ms_p50`` / ``_p99``; the same as CPU
time of the thread (``quote_cpu_ms_*``, ``naive_cpu_ms_*``: on a shared machine the wall-clock tail is mostly the
scheduler's time slices, which CPU time leaves out); how many quotes offered an option, how many of those were
deferred, and the declines by reason.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.geo import Projection
from dispatch.policy import make_policy
from dispatch.promise import PromiseEngine, PromiseParams, PromiseSites
from dispatch.sim.log import OrderLog, read_log, site_index
from dispatch.sim.loop import ShardDay, run_shard
from dispatch.sim.shard import SITE_FRAME_GAP_M, build_shard, day_window
from dispatch.state import OrderTable, RiderTable, Routes
from dispatch.zones import SiteZones, ZoneSpec

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class _ScanZones(SiteZones):
    """The peer's zones: every zone tested in turn."""

    def covering_xy(self, x: float, y: float) -> I64:
        return self.covering_scan(x, y)


def _busiest_hour(log: OrderLog) -> int:
    local_h = ((log.orders.placed_at + log.meta.utc_offset_s) // 3600).astype(np.int64) % 24
    return int(np.argmax(np.bincount(local_h, minlength=24)))


def _city_sites(log: OrderLog) -> I64:
    """Rows of the sites of the city with the most orders (every site when cities are not named)."""
    rows = site_index(log.sites, log.orders.site_id)
    cities = log.sites.city
    if not np.any(cities != ""):
        return np.arange(len(log.sites), dtype=np.int64)
    per_city = Counter(cities[rows].tolist())
    top = per_city.most_common(1)[0][0]
    return np.flatnonzero(cities == top).astype(np.int64)


def _warm_state(
    log: OrderLog, sites: I64, t0: float, warmup_s: float
) -> tuple[OrderTable, RiderTable, Routes, I64, float, ShardDay]:
    """Simulate ``sites`` from ``t0 - warmup_s`` to ``t0`` (orders placed in that window only) and return the final
    state in the simulator's frames and the day it ran."""
    params = _dispatch_params(log)
    start = t0 - warmup_s
    day = build_shard(log, sites, day_window(log, params.tick_s))
    sel = np.flatnonzero((day.orders.placed >= start) & (day.orders.placed < t0)).astype(np.int64)
    day = ShardDay(day.orders.take(sel), day.order_id[sel], day.riders, day.rider_id, day.travel, start, t0)
    state: list[Any] = []
    run_shard(day, make_policy("kernel", params), params, at_end=lambda *a: state.extend(a))
    orders, riders, routes, pending, now = state
    return orders, riders, routes, pending, float(now), day


def _dispatch_params(log: OrderLog) -> Any:
    from dispatch.policy import DispatchParams

    rec: Any = log.meta.scenario or {}
    if isinstance(rec.get("dispatch"), dict):
        return DispatchParams().with_updates(**rec["dispatch"])
    return DispatchParams()


def _to_city(
    log: OrderLog, frame_site: I64, x: F64, y: F64, proj: Projection, site_proj: dict[int, Projection]
) -> tuple[F64, F64]:
    """Points in the simulator's site frames (``frame_site``: the log site row of each point's frame) to metres
    in the city projection."""
    lx = x - frame_site * SITE_FRAME_GAP_M
    if log.meta.coordinates != "wgs84":
        return lx + log.sites.x[frame_site], y + log.sites.y[frame_site]
    out_x = np.empty_like(x)
    out_y = np.empty_like(y)
    for s in np.unique(frame_site).tolist():
        sel = frame_site == s
        lat, lng = site_proj[s].to_latlng(lx[sel], y[sel])
        out_x[sel], out_y[sel] = proj.to_xy(lat, lng)
    return out_x, out_y


def run(
    scenario: str | Path,
    quotes: int = 2000,
    seed: int = 0,
    warmup_min: float = 15.0,
    params: PromiseParams | None = None,
    log_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return its JSON record (see the module docstring)."""
    if quotes < 1:
        raise ValueError(f"quotes: must be >= 1, got {quotes}")
    if not (warmup_min > 0):
        raise ValueError(f"warmup_min: must be > 0, got {warmup_min}")
    from dispatch.sim.generate import generate
    from dispatch.sim.scenario import load_scenario

    sc = load_scenario(scenario)
    params = params or sc.promise.params
    with tempfile.TemporaryDirectory(prefix="bench_quote_") as tmp:
        where = Path(log_dir) if log_dir is not None else Path(tmp) / "log"
        t = time.perf_counter()
        if not (where / "meta.json").exists():
            generate(sc, where)
        log = read_log(where)
        gen_s = time.perf_counter() - t
    hour = _busiest_hour(log)
    t0 = log.meta.day_start + hour * 3600.0
    rows = _city_sites(log)
    t = time.perf_counter()
    orders, riders, routes, pending, now, _day = _warm_state(log, rows, t0, 60.0 * warmup_min)
    warm_s = time.perf_counter() - t

    # The city: one projection at the sites' centre; sites, riders and orders moved into it.
    wgs = log.meta.coordinates == "wgs84"
    if wgs:
        proj = Projection(float(np.mean(log.sites.y[rows])), float(np.mean(log.sites.x[rows])))
        site_proj = {int(s): Projection(float(log.sites.y[s]), float(log.sites.x[s])) for s in rows.tolist()}
        sx, sy = proj.to_xy(log.sites.y, log.sites.x)
    else:
        proj = Projection(0.0, 0.0)
        site_proj = {}
        sx, sy = log.sites.x.astype(np.float64), log.sites.y.astype(np.float64)
    r_frame = np.clip(np.round(riders.x / SITE_FRAME_GAP_M).astype(np.int64), 0, len(log.sites) - 1)
    rx, ry = _to_city(log, r_frame, riders.x, riders.y, proj, site_proj)
    city_riders = RiderTable(**{**riders.__dict__, "x": rx, "y": ry})
    dx, dy = _to_city(log, orders.site, orders.drop_x, orders.drop_y, proj, site_proj)
    city_orders = OrderTable(**{**orders.__dict__, "pick_x": sx[orders.site], "pick_y": sy[orders.site],
                                "drop_x": dx, "drop_y": dy})  # fmt: skip
    specs: list[ZoneSpec | None] = [None] * len(log.sites)
    for s in rows.tolist():
        specs[s] = ZoneSpec(radius_m=float(log.sites.zone_m[s]))
    sites = PromiseSites.build(log.sites.site_id.tolist(), sx, sy, log.sites.service_s)
    zones = SiteZones(proj, sx, sy, specs)
    peer_zones = _ScanZones(proj, sx, sy, specs)
    ours = PromiseEngine(sites, zones, _day.travel, params)
    peer = PromiseEngine(sites, peer_zones, _day.travel, params)
    t = time.perf_counter()
    ours.update(city_orders, city_riders, routes, now, pending)
    update_ms = (time.perf_counter() - t) * 1e3
    peer.update(city_orders, city_riders, routes, now, pending)

    # Addresses: near a site (by its orders) or anywhere in the city's box.
    rng = np.random.default_rng(seed)
    weight = np.bincount(site_index(log.sites, log.orders.site_id), minlength=len(log.sites))[rows].astype(float)
    pick = rows[rng.choice(rows.size, quotes, p=(weight + 1) / (weight + 1).sum())]
    rad = 1.2 * log.sites.zone_m[pick] * np.sqrt(rng.random(quotes))
    ang = rng.random(quotes) * 2 * np.pi
    ax, ay = sx[pick] + rad * np.cos(ang), sy[pick] + rad * np.sin(ang)
    anywhere = rng.random(quotes) < 0.1
    ax[anywhere] = rng.uniform(sx[rows].min() - 5000, sx[rows].max() + 5000, int(anywhere.sum()))
    ay[anywhere] = rng.uniform(sy[rows].min() - 5000, sy[rows].max() + 5000, int(anywhere.sum()))
    if wgs:
        alat, alng = proj.to_latlng(ax, ay)
    else:
        alat, alng = ay, ax  # planar worlds: the engine's projection is not used by quote_xy
    sizes = rng.choice(log.orders.size.astype(np.int64), quotes)

    def one(eng: PromiseEngine, i: int) -> tuple[float, float, Any]:
        c = time.thread_time()
        a = time.perf_counter()
        if wgs:
            q = eng.quote(float(alat[i]), float(alng[i]), int(sizes[i]), now)
        else:
            q = eng.quote_xy(float(ax[i]), float(ay[i]), int(sizes[i]), now)
        return (time.perf_counter() - a) * 1e3, (time.thread_time() - c) * 1e3, q

    for i in range(min(50, quotes)):  # warm-up: kernels compiled or loaded from the cache, caches filled
        one(ours, i)
        one(peer, i)
    ours_ms, ours_cpu = np.empty(quotes), np.empty(quotes)
    peer_ms, peer_cpu = np.empty(quotes), np.empty(quotes)
    offered = deferred = 0
    declined: Counter[str] = Counter()
    mismatch = 0
    for i in range(quotes):
        ours_ms[i], ours_cpu[i], q = one(ours, i)
        peer_ms[i], peer_cpu[i], qp = one(peer, i)
        mismatch += int(q != qp)
        if q.options:
            offered += 1
            deferred += int(q.options[0].deferred)
        else:
            assert q.declined_reason is not None
            declined[q.declined_reason.name.lower()] += 1
    p50, p99 = (float(np.percentile(ours_ms, q)) for q in (50, 99))
    n50, n99 = (float(np.percentile(peer_ms, q)) for q in (50, 99))
    return {
        "scenario": sc.name,
        "seed": seed,
        "busiest_hour": hour,
        "warmup_min": warmup_min,
        "sites": int(rows.size),
        "riders_in_state": int(riders.m),
        "riders_online": int(riders.online.sum()),
        "orders_in_state": int(orders.n),
        "orders_waiting": int(pending.size),
        "riders_on_routes": int((routes.length > 0).sum()),
        "quotes": quotes,
        "quote_ms_p50": round(p50, 4),
        "quote_ms_p99": round(p99, 4),
        "quote_ms_max": round(float(ours_ms.max()), 4),
        "naive_ms_p50": round(n50, 4),
        "naive_ms_p99": round(n99, 4),
        "ratio_p50": round(n50 / p50, 2),
        "ratio_p99": round(n99 / p99, 2),
        "quote_cpu_ms_p50": round(float(np.percentile(ours_cpu, 50)), 4),
        "quote_cpu_ms_p99": round(float(np.percentile(ours_cpu, 99)), 4),
        "naive_cpu_ms_p50": round(float(np.percentile(peer_cpu, 50)), 4),
        "naive_cpu_ms_p99": round(float(np.percentile(peer_cpu, 99)), 4),
        "same_answers": mismatch == 0,
        "update_ms": round(update_ms, 3),
        "offered": offered,
        "deferred": deferred,
        "declined": dict(sorted(declined.items())),
        "generate_s": round(gen_s, 2),
        "warmup_sim_s": round(warm_s, 2),
    }


def register(sub: Any) -> None:
    """Add ``quote`` to the ``bench`` subparsers."""
    import argparse

    p = sub.add_parser(
        "quote",
        help="promise quotes in process with a city's state loaded, beside a naive zone-scanning peer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", help="a scenario file (.toml)")
    p.add_argument("--quotes", type=int, default=2000, help="quotes timed (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random addresses (default 0)")
    p.add_argument("--warmup-min", type=float, default=15.0, help="simulated minutes before the busiest hour")
    p.add_argument("--log", default=None, help="reuse (or write) the generated order log in this directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    import json
    import sys

    from dispatch.policy import ParamsError
    from dispatch.sim.scenario import ScenarioError

    try:
        if not Path(args.scenario).is_file():
            raise FileNotFoundError(f"{args.scenario}: no such scenario file")
        rec = run(args.scenario, quotes=args.quotes, seed=args.seed, warmup_min=args.warmup_min, log_dir=args.log)
    except (ScenarioError, ParamsError, FileNotFoundError, ValueError) as exc:
        print(f"dispatch bench quote: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rec))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"dispatch bench quote: {rec['scenario']}, {rec['sites']} sites, hour {rec['busiest_hour']}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in rec.items():
        t.add_row(k, str(v))
    Console().print(t)
    return 0
