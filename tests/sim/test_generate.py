"""The generator: deterministic from the seed whatever the chunking, and the day it draws follows the scenario."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dispatch.geo import haversine_m
from dispatch.sim.cli import main
from dispatch.sim.generate import generate, plan
from dispatch.sim.log import read_log
from dispatch.sim.scenario import Scenario, hourly_coverage, load_scenario

SMALL = """
name = "small"
seed = 42
day = 2025-06-16
utc_offset_h = 8

[sites]
zone_m = [2000, 3000]
service_s = [60, 180]
list = [
  { id = 3, lat = 31.2317, lng = 121.4726, weight = 2.0 },
  { id = 8, lat = 31.1950, lng = 121.4365, zone_m = 1500 },
  { id = 21, lat = 31.3019, lng = 121.5136, riders = 7, service_s = 30 },
]

[fleet]
orders_per_rider_hour = 3.0
headroom = 1.2
capacity = [6, 9]

[demand]
orders_per_day = 6000
promise_min = [30, 60]
promise_share = [0.25, 0.75]
size_units = [1, 2]
size_share = [0.8, 0.2]

[demand.ready]
kind = "uniform"
min_min = 3
max_min = 12
"""

PLANAR = """
name = "bench"
seed = 5
coordinates = "planar_m"

[sites]
count = 6
cities = [
  { name = "A", x = 0.0, y = 0.0, radius_m = 8000, weight = 2 },
  { name = "B", x = 50000, y = 0, radius_m = 4000 },
]

[fleet]
riders_per_site = 4

[demand]
orders_per_day = 3000
dropoff_radius_m = 2500

[travel]
kind = "constant"
speed_mps = 5.0
detour = 1.0
round_up_minutes = true
"""

FILES = ("meta.json", "sites.parquet", "orders.parquet", "riders.parquet")


def _scenario(tmp_path: Path, text: str = SMALL, name: str = "small.toml") -> Scenario:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_scenario(path)


def _bytes(d: Path) -> dict[str, bytes]:
    return {f: (d / f).read_bytes() for f in FILES}


def _same_columns(a: Any, b: Any) -> None:
    for f in fields(a):
        np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name), err_msg=f.name)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    sc = _scenario(tmp_path)
    generate(sc, tmp_path / "a")
    generate(sc, tmp_path / "b")
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    generate(replace(sc, seed=43), tmp_path / "c")
    assert _bytes(tmp_path / "c")["orders.parquet"] != _bytes(tmp_path / "a")["orders.parquet"]


def test_chunking_and_threads_do_not_change_the_log(tmp_path: Path) -> None:
    sc = _scenario(tmp_path)
    generate(sc, tmp_path / "ref", row_group_rows=500)
    generate(sc, tmp_path / "chunked", workers=3, chunk_sites=1, row_group_rows=500)
    assert _bytes(tmp_path / "ref") == _bytes(tmp_path / "chunked")  # same row groups: same bytes
    generate(sc, tmp_path / "groups", chunk_sites=2, row_group_rows=97)
    ref, other = read_log(tmp_path / "ref"), read_log(tmp_path / "groups")
    for name in ("sites", "orders", "riders"):
        _same_columns(getattr(ref, name), getattr(other, name))


def test_summary_and_totals(tmp_path: Path) -> None:
    sc = _scenario(tmp_path)
    seen: list[tuple[int, int]] = []
    s = generate(sc, tmp_path / "log", progress=lambda done, total: seen.append((done, total)))
    log = read_log(tmp_path / "log")
    assert s.n_orders == len(log.orders) == 6000 and s.n_sites == 3 and s.n_riders == len(log.riders)
    assert sum(s.orders_by_hour) == 6000 and len(seen) == 24 and seen[-1] == (6000, 6000)
    assert s.bytes == sum((tmp_path / "log" / f).stat().st_size for f in FILES)
    assert log.meta.name == "small" and log.meta.seed == 42 and log.meta.day_start == sc.day_start
    assert log.meta.scenario is not None and log.meta.scenario["source_sha256"] == sc.source_sha256
    assert log.meta.scenario["dispatch"]["tick_s"] == 15.0
    np.testing.assert_array_equal(log.orders.order_id, np.arange(6000))
    assert np.all(np.diff(log.orders.placed_at) >= 0)


def test_orders_follow_the_demand_spec(tmp_path: Path) -> None:
    sc = _scenario(tmp_path)
    generate(sc, tmp_path / "log")
    log = read_log(tmp_path / "log")
    o = log.orders
    day0 = sc.day_start
    assert o.placed_at.min() >= day0 and o.placed_at.max() < day0 + 86_400
    wait = (o.ready_at - o.placed_at) / 60.0
    assert wait.min() >= 3.0 and wait.max() <= 12.0 and abs(wait.mean() - 7.5) < 0.2  # uniform [3, 12] minutes
    promise = (o.promised_by - o.placed_at) / 60.0
    assert set(np.round(promise, 6)) == {30.0, 60.0}
    assert abs(np.mean(promise == 30.0) - 0.25) < 0.03
    assert set(o.size.tolist()) == {1, 2} and abs(np.mean(o.size == 2) - 0.2) < 0.03
    assert o.service_drop_s.min() >= 60.0 and o.service_drop_s.max() <= 150.0
    # Drop-offs fill each site's zone disc: inside it, and uniform over its area (half the orders beyond r / sqrt 2).
    sites = log.sites
    row = {int(s): i for i, s in enumerate(sites.site_id)}
    idx = np.array([row[int(s)] for s in o.site_id])
    d = haversine_m(o.drop_y, o.drop_x, sites.y[idx], sites.x[idx])
    zone = sites.zone_m[idx]
    assert np.all(d <= zone * (1 + 1e-6))
    assert abs(np.mean(d > zone / math.sqrt(2)) - 0.5) < 0.03
    assert sites.zone_m[list(sites.site_id).index(8)] == 1500.0 and sites.service_s[2] == 30.0
    assert np.all((sites.zone_m >= 1500.0) & (sites.zone_m <= 3000.0))
    # Site 3 has weight 2, the others a drawn lognormal weight: its share is the plan's.
    pl = plan(sc)
    for i, sid in enumerate(sites.site_id):
        assert abs(np.mean(o.site_id == sid) - pl.weight[i]) < 0.02


def test_promise_grows_with_distance(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, SMALL.replace("promise_share = [0.25, 0.75]", "promise_share = [0.25, 0.75]\n"
                                                                           "promise_min_per_km = 4.0"))  # fmt: skip
    assert sc.demand.promise_min_per_km == 4.0
    generate(sc, tmp_path / "log")
    log = read_log(tmp_path / "log")
    o, sites = log.orders, log.sites
    row = {int(s): i for i, s in enumerate(sites.site_id)}
    idx = np.array([row[int(s)] for s in o.site_id])
    km = haversine_m(o.drop_y, o.drop_x, sites.y[idx], sites.x[idx]) / 1000.0
    base = (o.promised_by - o.placed_at) / 60.0 - 4.0 * km
    np.testing.assert_allclose(np.minimum(np.abs(base - 30.0), np.abs(base - 60.0)), 0.0, atol=1e-6)


def test_hourly_profile_is_respected(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, SMALL.replace("orders_per_day = 6000", "orders_per_day = 200000"))
    pl = plan(sc)
    hours = pl.counts.sum(axis=0)
    assert hours.sum() == 200_000
    expected = 200_000 * np.asarray(sc.demand.hourly_profile)
    z = (hours - expected) / np.sqrt(expected)
    assert np.all(np.abs(z) < 5)  # multinomial noise only
    assert hours[12] > 2 * hours[15] and hours[18] > 2 * hours[15] and hours[3] < hours[12] / 10
    # And the orders written sit in their hour, spread over it (not bunched at the start).
    smaller = replace(sc, demand=replace(sc.demand, orders_per_day=20000))
    generate(smaller, tmp_path / "log")
    o = read_log(tmp_path / "log").orders
    local_h = (o.placed_at - sc.day_start) / 3600.0
    by_hour = np.bincount(local_h.astype(int), minlength=24)
    np.testing.assert_array_equal(by_hour, plan(smaller).counts.sum(0))
    frac = local_h - np.floor(local_h)
    assert abs(frac.mean() - 0.5) < 0.02


def test_riders_follow_the_fleet_spec(tmp_path: Path) -> None:
    sc = _scenario(tmp_path)
    s = generate(sc, tmp_path / "log")
    log = read_log(tmp_path / "log")
    r = log.riders
    pl = plan(sc)
    assert pl.riders[2] == 7  # the explicit riders = 7 of site 21
    # Peak sizing: riders x 3 orders/h cover the busiest expected hour x 1.2.
    cover = hourly_coverage(sc.fleet.shifts)
    need = max(sc.demand.hourly_profile[h] / cover[h] for h in range(24))
    assert pl.riders[0] == math.ceil(1.2 * 6000 * pl.weight[0] * need / 3.0 - 1e-9)
    assert s.peak_orders_per_rider_hour <= 3.5
    np.testing.assert_array_equal(r.rider_id, np.arange(len(r)))
    assert set(r.capacity.tolist()) <= set(range(6, 10)) and r.speed_factor.min() >= 0.85
    # Shifts: a pattern's length, starts within the jitter of the pattern; night shifts appear twice.
    length_h = np.round((r.shift_end - r.shift_start) / 3600.0, 6)
    assert set(length_h.tolist()) <= {s.hours for s in sc.fleet.shifts}
    local = (r.shift_start - sc.day_start) / 3600.0
    starts = np.array([s.start_h for s in sc.fleet.shifts])
    off = np.min(np.abs(((local[:, None] - starts[None, :]) + 12) % 24 - 12), axis=1)
    assert off.max() <= 0.25 + 1e-9
    assert (local < 0).any() and (r.shift_end.min() > sc.day_start)  # yesterday's night shift ends this morning
    per_site = np.bincount([list(log.sites.site_id).index(int(x)) for x in r.site_id], minlength=3)
    wraps = sum(s.share for s in sc.fleet.shifts if s.start_h + s.hours > 24)
    assert np.all(np.abs(per_site - pl.riders * (1 + wraps)) <= 2)
    home = np.array([list(log.sites.site_id).index(int(x)) for x in r.site_id])
    d = haversine_m(r.start_y, r.start_x, log.sites.y[home], log.sites.x[home])
    assert d.max() <= 500.0 * (1 + 1e-6)


def test_planar_scenario_with_constant_travel(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, PLANAR, "bench.toml")
    generate(sc, tmp_path / "log")
    log = read_log(tmp_path / "log")
    assert log.meta.coordinates == "planar_m" and log.meta.travel.round_up_minutes
    assert log.meta.travel.speed_mps == (5.0,) and log.meta.travel.kind == "constant"
    assert list(log.sites.city).count("A") == 4 and list(log.sites.city).count("B") == 2  # 6 x 2/3, 6 x 1/3
    a = log.sites.city == "A"
    assert np.all(np.hypot(log.sites.x[a], log.sites.y[a]) <= 8000.0)
    row = {int(s): i for i, s in enumerate(log.sites.site_id)}
    idx = np.array([row[int(s)] for s in log.orders.site_id])
    d = np.hypot(log.orders.drop_x - log.sites.x[idx], log.orders.drop_y - log.sites.y[idx])
    assert d.max() <= 2500.0 and d.max() > 2400.0
    yesterday = int(np.sum(log.riders.shift_start < sc.day_start))  # the instances of shifts past midnight
    assert yesterday > 0 and len(log.riders) == 6 * 4 + yesterday


def test_cli_generate_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL, encoding="utf-8")
    assert main(["generate", str(path), "--out", str(tmp_path / "log"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_orders"] == 6000 and summary["name"] == "small"
    assert main(["check", str(tmp_path / "log")]) == 0
    assert "a valid order log" in capsys.readouterr().out
    path.write_text(SMALL.replace("orders_per_day = 6000", "orders_per_day = -3"), encoding="utf-8")
    assert main(["check", str(path)]) == 2
    assert "demand.orders_per_day: must be an integer >= 1, got -3" in capsys.readouterr().err
    assert main(["generate", str(path), "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_demo_generates_quickly(tmp_path: Path) -> None:
    sc = load_scenario(Path(__file__).resolve().parents[2] / "simulations" / "demo.toml")
    s = generate(sc, tmp_path / "demo")
    assert s.n_orders == 20_000 and s.n_sites == 5
    assert s.seconds < 10.0
    assert s.peak_orders_per_rider_hour <= 3.0  # sized at 3 orders per rider-hour with 20% spare
