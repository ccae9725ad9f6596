"""The simulator with promise quotes: each order quoted when placed, declines counted, the KPIs, the scenario's
[promise] section and the calibration plot."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daylogs import tiny_log

from dispatch.policy import DispatchParams, ParamsError, make_policy
from dispatch.promise import DeclineReason, PromiseParams
from dispatch.sim.kpi import DayOutcome, hourly, summary
from dispatch.sim.log import OrderLog
from dispatch.sim.loop import ShardResult, run_shard
from dispatch.sim.quoting import promise_from_record, quote_outcome, shard_promise
from dispatch.sim.report import CALIBRATION_PLOT, write_report
from dispatch.sim.scenario import ScenarioError, parse_scenario
from dispatch.sim.shard import build_shard, day_window, plan_shards

PARAMS = DispatchParams()
SCENARIOS = Path(__file__).resolve().parents[2] / "simulations"


def _run(log: OrderLog, promise: PromiseParams | None, n_shards: int = 1) -> tuple[list[Any], list[ShardResult]]:
    window = day_window(log, PARAMS.tick_s)
    days, results = [], []
    for sites in plan_shards(log, n_shards).shards:
        day = build_shard(log, sites, window)
        if promise is not None:
            day.promise = shard_promise(log, sites, promise)
        days.append(day)
        results.append(run_shard(day, make_policy("kernel", PARAMS), PARAMS))
    return days, results


def _outcome(days: list[Any], results: list[ShardResult]) -> DayOutcome:
    def cat(xs: list[Any]) -> Any:
        return np.concatenate(xs)

    return DayOutcome(
        order_id=cat([r.order_id for r in results]),
        site_id=cat([d.orders.site for d in days]),
        placed=cat([d.orders.placed for d in days]),
        ready=cat([d.orders.ready for d in days]),
        promised=quote_outcome(results)["promised"],
        assigned_at=cat([r.assigned_at for r in results]),
        picked_at=cat([r.picked_at for r in results]),
        delivered_at=cat([r.delivered_at for r in results]),
        rider_id=cat([r.rider for r in results]),
        rider_shift_start=cat([d.riders.shift_start for d in days]),
        rider_online_s=cat([r.rider_online_s for r in results]),
        rider_metres=cat([r.rider_metres for r in results]),
        rider_delivered=cat([r.rider_delivered for r in results]),
        tick_ms=cat([r.tick_ms for r in results]),
        **{k: v for k, v in quote_outcome(results).items() if k != "promised"},
    )


def test_every_order_is_quoted_when_placed_and_takes_the_first_option() -> None:
    log = tiny_log(4, n=300, m=24)
    days, results = _run(log, PromiseParams())
    day, res = days[0], results[0]
    placed = day.orders.placed
    declined = res.quotes.declined > 0
    tier = res.promised[~declined] - placed[~declined]
    assert set(np.round(tier).tolist()) <= {1800.0, 2700.0, 3600.0}
    assert np.all(res.quotes.quoted_eta[~declined] <= res.promised[~declined])
    assert np.all(res.quotes.quoted_eta[~declined] > placed[~declined])
    # the day given to the loop keeps the log's promises (workers share it)
    np.testing.assert_array_equal(day.orders.promised, log.orders.promised_by[np.argsort(log.orders.placed_at)])
    # declined orders never reach dispatch
    assert np.all(np.isnan(res.assigned_at[declined])) and np.all(np.isnan(res.quotes.quoted_eta[declined]))
    out = _outcome(days, results)
    s = summary(out, wall_seconds=1.0, seed=0)
    assert s["orders_declined"] == int(declined.sum())
    kept = (~declined) & (res.delivered_at <= res.promised)
    assert s["promise_kept_rate"] == pytest.approx(kept.sum() / (~declined).sum(), abs=1e-6)
    assert s["eta_mae_min"] >= 0.0


def test_quotes_do_not_depend_on_the_shard_partition() -> None:
    log = tiny_log(5, n=240, m=16)
    one = _outcome(*_run(log, PromiseParams(), 1))
    four = _outcome(*_run(log, PromiseParams(), 4))
    a, b = np.argsort(one.order_id), np.argsort(four.order_id)
    for name in ("promised", "quoted_eta", "declined", "deferred", "delivered_at"):
        np.testing.assert_array_equal(getattr(one, name)[a], getattr(four, name)[b])


def test_a_short_fleet_defers_and_declines_and_the_kpis_count_them() -> None:
    log = tiny_log(6, n_sites=1, n=400, m=2)  # 400 orders in two hours for two riders
    params = PromiseParams(tiers_min=(30.0, 45.0, 60.0, 90.0, 120.0), max_wait_per_rider=4.0)
    days, results = _run(log, params)
    q = results[0].quotes
    assert q.deferred.sum() > 0
    assert (q.declined == int(DeclineReason.SATURATED)).sum() > 0
    out = _outcome(days, results)
    s = summary(out, wall_seconds=1.0, seed=0)
    assert s["orders_deferred"] == int(q.deferred.sum()) and s["orders_declined"] == int((q.declined > 0).sum())
    assert s["orders_declined_rate"] == pytest.approx(s["orders_declined"] / 400, abs=1e-6)
    h = hourly(out, log.meta.day_start, log.meta.utc_offset_s)
    assert int(h["orders_deferred"].sum()) == s["orders_deferred"]
    assert int(h["orders_declined"].sum()) == s["orders_declined"]


def test_without_quotes_nothing_is_declined_and_kept_is_on_time() -> None:
    log = tiny_log(7, n=120, m=12)
    days, results = _run(log, None)
    out = _outcome(days, results)
    s = summary(out, wall_seconds=1.0, seed=0)
    assert s["orders_declined"] == 0 and s["orders_deferred"] == 0
    assert s["promise_kept_rate"] == pytest.approx(s["on_time_rate"], abs=1e-6)
    assert np.isnan(s["eta_mae_min"])
    np.testing.assert_array_equal(results[0].promised, days[0].orders.promised)


def test_report_has_the_calibration_plot(tmp_path: Path) -> None:
    log = tiny_log(8, n=120, m=12)
    days, results = _run(log, PromiseParams())
    out = _outcome(days, results)
    s = summary(out, wall_seconds=1.0, seed=0)
    h = hourly(out, log.meta.day_start, log.meta.utc_offset_s)
    page = write_report(tmp_path, s, out, h, (log.sites.x, log.sites.y), "wgs84").read_text()
    assert (tmp_path / CALIBRATION_PLOT).stat().st_size > 1000
    assert CALIBRATION_PLOT in page
    no_quotes = replace(out, quoted_eta=None, declined=None, deferred=None)
    other = tmp_path / "plain"
    other.mkdir()
    assert CALIBRATION_PLOT not in write_report(other, s, no_quotes, h, (log.sites.x, log.sites.y), "wgs84").read_text()


def _demo() -> dict[str, Any]:
    return tomllib.loads((SCENARIOS / "demo.toml").read_text())


def test_scenario_promise_section() -> None:
    data = _demo()
    sc = parse_scenario(data, "demo")
    assert sc.promise.quote is True and sc.promise.params.tiers_min == (30.0, 45.0, 60.0)
    del data["promise"]
    assert parse_scenario(data, "demo").promise.quote is False  # scenarios without the section keep their rule
    for key, value, field in (
        ("tiers_min", [45, 30], "promise.tiers_min"),
        ("quote", "yes", "promise.quote"),
        ("min_on_time_probability", 1.5, "promise.min_on_time_probability"),
        ("colour", 1, "promise.colour"),
    ):
        bad = _demo()
        bad["promise"][key] = value
        with pytest.raises(ScenarioError) as err:
            parse_scenario(bad, "demo")
        assert err.value.field == field


def test_the_promise_record_round_trips() -> None:
    sc = parse_scenario(_demo(), "demo")
    rec = sc.promise.to_record()
    assert promise_from_record(rec) == sc.promise.params
    assert promise_from_record({**rec, "quote": False}) is None
    assert promise_from_record(None) is None
    with pytest.raises(ParamsError) as err:
        promise_from_record({**rec, "tiers_min": [60, 30]})
    assert err.value.field == "tiers_min"
