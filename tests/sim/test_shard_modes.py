"""Tests for the shard modes (dispatch.sim.shard): who may serve whom. ``site``: a rider serves its home site only;
``city``: any site of its city; ``none``: any site. Groups are kept whole and apart, so the outcome does not depend
on the workers or the partition in any mode."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from daylogs import tiny_log

from dispatch.cli import main
from dispatch.geo import haversine_m
from dispatch.sim.log import OrderLog, write_log
from dispatch.sim.run import SimConfig, run_day, shard_mode
from dispatch.sim.shard import SITE_FRAME_GAP_M, Frames, build_shard, day_window, plan_shards, site_groups


def _two_cities(seed: int = 3) -> OrderLog:
    """tiny_log's six sites, 1-4 km apart, labelled as two cities of three, and one site left without a city."""
    log = tiny_log(seed, n_sites=6, n=600, m=30)
    city = np.array(["a", "b", "a", "b", "a", ""])
    return OrderLog(log.meta, dataclasses.replace(log.sites, city=city), log.orders, log.riders)


def _homes(log: OrderLog) -> dict[int, int]:
    return dict(zip(log.riders.rider_id.tolist(), log.riders.site_id.tolist(), strict=True))


def test_groups_by_mode() -> None:
    log = _two_cities()
    n = len(log.sites)
    assert site_groups(log, "site").tolist() == list(range(n))
    # ids are 3, 10, 17, ... in row order, so a group is named by its first row
    assert site_groups(log, "city").tolist() == [0, 1, 0, 1, 0, 5]
    assert site_groups(log, "none").tolist() == [0] * n
    with pytest.raises(ValueError, match="shard: must be one of site, city, none, got 'town'"):
        site_groups(log, "town")


@pytest.mark.parametrize("mode", ["site", "city", "none"])
def test_plans_keep_groups_whole(mode: str) -> None:
    log = _two_cities()
    group = site_groups(log, mode)
    for k in (1, 2, 3, 10):
        plan = plan_shards(log, k, mode)
        held = np.concatenate(plan.shards)
        assert sorted(held.tolist()) == list(range(len(log.sites)))  # every site once
        assert len(plan.shards) == min(k, len(set(group.tolist())))
        for shard in plan.shards:  # a group never split over shards
            for g in set(group[shard].tolist()):
                assert set(np.flatnonzero(group == g).tolist()) <= set(shard.tolist())


def test_a_city_shares_one_frame_with_true_distances_and_cities_lie_apart() -> None:
    log = _two_cities()
    frames = Frames.of(log, "city")
    sx, sy = frames.sites(log)
    lat, lng = log.sites.y, log.sites.x
    for a, b in ((0, 2), (0, 4), (1, 3)):  # same city: the frame keeps the true distance (to 0.01%)
        true = float(haversine_m(lat[a], lng[a], lat[b], lng[b]))
        assert float(np.hypot(sx[a] - sx[b], sy[a] - sy[b])) == pytest.approx(true, rel=1e-4)
    for a, b in ((0, 1), (0, 5), (1, 5)):  # other cities (and the site without one) far beyond any reach
        assert abs(sx[a] - sx[b]) > SITE_FRAME_GAP_M / 2
    # In site mode each site is the origin of its own frame.
    sx1, sy1 = Frames.of(log, "site").sites(log)
    assert sx1.tolist() == [s * SITE_FRAME_GAP_M for s in range(6)] and sy1.tolist() == [0.0] * 6
    window = day_window(log, 30.0)
    day = build_shard(log, np.arange(6), window, mode="city")
    assert day.rider_site is None  # every online rider is offered: any may serve any site of its city
    assert build_shard(log, np.arange(6), window, mode="site").rider_site is not None


def test_riders_serve_the_sites_of_their_city_and_no_other() -> None:
    log = _two_cities()
    homes = _homes(log)
    group = site_groups(log, "city")
    row_of = {int(s): i for i, s in enumerate(log.sites.site_id.tolist())}
    day, _ = run_day(log, SimConfig(workers=1, shard="city"))
    served = day.rider_id >= 0
    assert served.mean() > 0.9
    order_site = log.sites.site_id[day.site_id[served]]
    rider_home = np.array([homes[int(r)] for r in day.rider_id[served]])
    pairs = zip(rider_home.tolist(), order_site.tolist(), strict=True)
    same_group = np.array([group[row_of[h]] == group[row_of[s]] for h, s in pairs])
    assert same_group.all()
    away = rider_home != order_site
    assert away.sum() > 0  # riders help the other sites of their city
    # The site without a city is served by its own riders only.
    alone = order_site == log.sites.site_id[5]
    assert (rider_home[alone] == log.sites.site_id[5]).all()


def test_same_outcome_whatever_the_workers_and_the_shards() -> None:
    log = _two_cities()
    assert len(plan_shards(log, 3, "city").shards) == 3  # the two cities and the site without one
    one, _ = run_day(log, SimConfig(workers=1, shards=1, shard="city"))
    two, _ = run_day(log, SimConfig(workers=2, shards=3, shard="city"))
    a, b = np.argsort(one.order_id), np.argsort(two.order_id)
    for name in ("order_id", "assigned_at", "picked_at", "delivered_at", "rider_id"):
        np.testing.assert_array_equal(getattr(one, name)[a], getattr(two, name)[b])


def test_the_mode_comes_from_the_config_else_the_log_else_site(tmp_path: Path) -> None:
    log = tiny_log()
    assert shard_mode(log, SimConfig()) == "site"
    meta = dataclasses.replace(log.meta, scenario={"shard": "none"})
    recorded = OrderLog(meta, log.sites, log.orders, log.riders)
    assert shard_mode(recorded, SimConfig()) == "none"
    assert shard_mode(recorded, SimConfig(shard="city")) == "city"
    bad = OrderLog(dataclasses.replace(log.meta, scenario={"shard": "planet"}), log.sites, log.orders, log.riders)
    with pytest.raises(ValueError, match="shard: must be one of"):
        run_day(bad, SimConfig(workers=1))
    # The command line: --shard overrides, and summary.json records the mode used.
    write_log(tmp_path / "log", dataclasses.replace(log.meta, scenario={"shard": "site"}), log.sites,
              log.orders, log.riders)  # fmt: skip
    out = tmp_path / "out"
    assert main(["simulate", str(tmp_path / "log"), "--out", str(out), "--shard", "city", "--quiet", "--workers",
                 "1"]) == 0  # fmt: skip
    assert json.loads((out / "summary.json").read_text())["shard"] == "city"
