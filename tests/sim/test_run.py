"""Tests for dispatch.sim.shard and dispatch.sim.run: the same summary whatever the worker count and the shard
partition, sites kept apart, and the output files."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from daylogs import DAY0, tiny_log

import dispatch.sim.shard as shard_mod
from dispatch.sim.kpi import WALL_CLOCK_FIELDS
from dispatch.sim.log import LogMeta, OrderLog, TravelModel
from dispatch.sim.report import PLOTS
from dispatch.sim.run import SimConfig, run_day, simulate
from dispatch.sim.shard import build_shard, day_window, plan_shards


def test_same_outcome_whatever_the_workers_and_the_shards() -> None:
    log = tiny_log()
    one, _ = run_day(log, SimConfig(workers=1))
    two, _ = run_day(log, SimConfig(workers=2))
    assert len(plan_shards(log, 4).shards) == 4
    per_site, _ = run_day(log, SimConfig(workers=2, shards=4))
    assert (~np.isnan(one.delivered_at)).sum() > 0.9 * log.orders.order_id.shape[0]
    for other in (two, per_site):
        a = np.argsort(one.order_id)
        b = np.argsort(other.order_id)
        for name in ("order_id", "assigned_at", "picked_at", "delivered_at", "rider_id"):
            np.testing.assert_array_equal(getattr(one, name)[a], getattr(other, name)[b])
        assert one.rider_metres.sum() == pytest.approx(other.rider_metres.sum(), rel=1e-12)
        assert one.rider_online_s.sum() == pytest.approx(other.rider_online_s.sum(), rel=1e-12)


def test_riders_serve_their_own_site_only() -> None:
    log = tiny_log(1)
    day, _ = run_day(log, SimConfig(workers=1))
    served = ~np.isnan(day.assigned_at)
    home = dict(zip(log.riders.rider_id.tolist(), log.riders.site_id.tolist(), strict=True))
    order_site = log.sites.site_id[day.site_id]
    assert all(home[int(r)] == int(s) for r, s in zip(day.rider_id[served], order_site[served], strict=True))


def test_outputs(tmp_path: Path) -> None:
    log = tiny_log(2)
    summ = simulate(log, tmp_path, SimConfig(workers=1, seed=2))
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    for key in ("orders_total", "orders_delivered", "on_time_rate", "delivery_min_p50", "delivery_min_p90",
                "km_per_order", "orders_per_rider_hour", "dispatch_tick_ms_p99", "wall_seconds",
                "sim_orders_per_second", "seed"):  # fmt: skip
        assert key in on_disk
    assert on_disk["orders_total"] == 400 and on_disk["seed"] == 2
    assert 0.0 <= on_disk["on_time_rate"] <= 1.0
    assert summ["orders_delivered"] == on_disk["orders_delivered"]
    table = pq.read_table(tmp_path / "orders.parquet")
    assert table.num_rows == 400
    assert sorted(table.column("order_id").to_pylist()) == sorted(log.orders.order_id.tolist())
    delivered = np.array(table.column("delivered_at").to_pylist(), dtype=float)
    assert int((~np.isnan(delivered)).sum()) == on_disk["orders_delivered"]
    rows = list(csv.DictReader((tmp_path / "hourly.csv").open()))
    assert len(rows) == 24
    assert sum(int(r["orders_placed"]) for r in rows) == 400
    assert sum(int(r["orders_placed"]) for r in rows[11:13]) == 400  # placed 11:00-13:00 local
    assert set(WALL_CLOCK_FIELDS) <= set(on_disk)
    page = (tmp_path / "report.html").read_text()
    for png in PLOTS:
        assert (tmp_path / png).stat().st_size > 1000 and png in page


def test_frames_keep_sites_apart_and_window_is_shared() -> None:
    log = tiny_log(3)
    window = day_window(log, 15.0)
    assert (window[0] - DAY0) % 15.0 == 0.0
    plan = plan_shards(log, 2)
    assert sorted(np.concatenate(plan.shards).tolist()) == list(range(4))
    days = [build_shard(log, s, window) for s in plan.shards]
    assert all(d.start == window[0] and d.end == window[1] for d in days)
    d = days[0]
    gap = np.abs(d.orders.pick_x[:, None] - d.orders.pick_x[None, :])
    assert np.all((gap == 0) | (gap >= shard_mod.SITE_FRAME_GAP_M / 2))
    # Drop-offs lie within the zone (2.5 km here) of their site, in metres.
    dist = np.hypot(d.orders.drop_x - d.orders.pick_x, d.orders.drop_y - d.orders.pick_y)
    assert dist.max() < 2600.0


def _drop_gaps(log: OrderLog, day) -> np.ndarray:  # type: ignore[no-untyped-def]
    """For each rider's consecutive drop-offs with no pickup between: the seconds from leaving the first (its
    arrival plus service) to reaching the second, the ride of one leg."""
    a = np.argsort(day.order_id)
    b = np.argsort(log.orders.order_id)
    service = log.orders.service_drop_s[b]
    gaps = []
    for r in np.unique(day.rider_id[day.rider_id >= 0]):
        mine = np.flatnonzero(day.rider_id[a] == r)
        mine = mine[~np.isnan(day.delivered_at[a][mine])]
        mine = mine[np.argsort(day.delivered_at[a][mine])]
        picks = day.picked_at[a][mine]
        for u, v in itertools.pairwise(mine):
            left, reached = day.delivered_at[a][u] + service[u], day.delivered_at[a][v]
            if not np.any((picks > left) & (picks < reached)):
                gaps.append(reached - left)
    return np.asarray(gaps)


@pytest.mark.parametrize("round_up", [False, True])
def test_travel_rounded_up_to_whole_minutes(round_up: bool) -> None:
    """A log with a constant speed and legs rounded up to whole minutes is simulated so: every ride from one
    drop-off to the next takes a whole number of minutes (without rounding, nearly none does)."""
    log = tiny_log()
    meta = LogMeta("wgs84", TravelModel(kind="constant", speed_mps=(5.0,), round_up_minutes=round_up), DAY0, 0.0)
    day, _ = run_day(OrderLog(meta, log.sites, log.orders, log.riders), SimConfig(workers=1))
    assert (~np.isnan(day.delivered_at)).sum() > 0.9 * log.orders.order_id.shape[0]
    gaps = _drop_gaps(log, day)
    assert gaps.size >= 20
    whole = np.abs(gaps / 60.0 - np.round(gaps / 60.0)) < 1e-6
    if round_up:
        assert whole.all() and gaps.min() >= 60.0 - 1e-6
    else:
        assert whole.mean() < 0.1
