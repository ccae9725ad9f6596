"""Scenarios: the shipped files load, and every kind of bad field is reported by its dotted path."""

from __future__ import annotations

import copy
import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dispatch.policy import DispatchParams
from dispatch.sim.cities import CHINA_CITIES
from dispatch.sim.generate import allocate, plan
from dispatch.sim.scenario import (
    DEFAULT_HOURLY_PROFILE,
    DEFAULT_SHIFTS,
    ScenarioError,
    hourly_coverage,
    load_scenario,
    parse_scenario,
)

SIMULATIONS = Path(__file__).resolve().parents[2] / "simulations"
DEMO = SIMULATIONS / "demo.toml"
_DELETE = object()


def _demo_data() -> dict[str, Any]:
    return tomllib.loads(DEMO.read_text(encoding="utf-8"))


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with the dotted ``path`` (``a.b[2].c``) set to ``value`` (or deleted with _DELETE)."""
    out = copy.deepcopy(data)
    parts = [p for p in re.split(r"\.|\[(\d+)\]", path) if p]
    node: Any = out
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
    last = parts[-1]
    key: Any = int(last) if last.isdigit() else last
    if value is _DELETE:
        del node[key]
    else:
        node[key] = value
    return out


def test_every_shipped_scenario_loads() -> None:
    files = sorted(f for f in SIMULATIONS.glob("*.toml") if not f.stem.startswith("sweep_"))  # sweep files: test_sweep
    assert {f.stem for f in files} >= {"demo", "city", "peak_day"}
    for f in files:
        sc = load_scenario(f)
        assert sc.name == f.stem
        assert sc.source_sha256 and len(sc.source_sha256) == 64


def test_shipped_scenarios_have_the_sizes_the_issue_asks_for() -> None:
    demo = load_scenario(SIMULATIONS / "demo.toml")
    city = load_scenario(SIMULATIONS / "city.toml")
    peak = load_scenario(SIMULATIONS / "peak_day.toml")
    assert demo.sites.n_sites == 5 and demo.demand.orders_per_day == 20_000
    assert city.sites.n_sites == 100 and city.demand.orders_per_day == 1_000_000
    assert len({c.name for c in city.sites.cities}) == 1
    assert peak.sites.n_sites == 2000 and peak.demand.orders_per_day == 25_000_000
    assert [c.name for c in peak.sites.cities] == [r.name for r in CHINA_CITIES]
    for sc in (demo, city, peak):
        assert sc.fleet.orders_per_rider_hour is not None and 2.5 <= sc.fleet.orders_per_rider_hour <= 4.0


def test_demo_reads_every_section() -> None:
    sc = load_scenario(DEMO)
    assert sc.seed == 20250616
    assert sc.day == dt.date(2025, 6, 16)
    assert sc.day_start == 1_750_003_200.0  # 2025-06-16 00:00 +08:00
    assert [s.site_id for s in sc.sites.explicit] == [1, 2, 3, 4, 5]
    assert sc.sites.explicit[0].y == pytest.approx(31.2317) and sc.sites.explicit[0].x == pytest.approx(121.4726)
    assert sc.demand.promise_min == (20.0, 45.0) and sc.demand.promise_min_per_km == 4.0
    assert sc.demand.promise_share == pytest.approx((0.4, 0.6))
    assert sum(sc.demand.hourly_profile) == pytest.approx(1.0)
    assert sc.fleet.shifts == DEFAULT_SHIFTS
    assert sc.dispatch == DispatchParams(tick_s=15.0, hold_s=30.0, max_orders_per_rider=5, trip_mode="single_site")
    assert sc.travel.kind == "profile" and len(sc.travel.speed_mps) == 24


def test_default_hourly_profile_has_lunch_and_dinner_peaks() -> None:
    p = DEFAULT_HOURLY_PROFILE
    assert len(p) == 24 and sum(p) == pytest.approx(100.0)
    lunch = max(range(24), key=lambda h: p[h] if h < 15 else -1)
    dinner = max(range(15, 24), key=lambda h: p[h])
    assert 11 <= lunch <= 13 and 17 <= dinner <= 20
    assert p[15] < p[lunch] / 2 and p[15] < p[dinner] / 2 and max(p[0:6]) < 2.0


def test_default_shifts_cover_every_hour_with_demand() -> None:
    cover = hourly_coverage(DEFAULT_SHIFTS)
    assert all(c > 0 for c in cover)
    # The defaults were fitted so that no hour needs more than 0.2 riders per daily order (see DEFAULT_SHIFTS).
    need = max(DEFAULT_HOURLY_PROFILE[h] / 100 / cover[h] for h in range(24))
    assert need == pytest.approx(0.2, abs=0.005)


BAD_FIELDS = [
    ("demand.orders_per_day", -3, "demand.orders_per_day: must be an integer >= 1, got -3"),
    ("demand.orders_per_day", "20k", "demand.orders_per_day: must be an integer >= 1, got '20k' (a string)"),
    ("demand.orders_per_day", 2.5, "demand.orders_per_day: must be an integer >= 1, got 2.5"),
    ("demand.orders_per_day", _DELETE, "demand.orders_per_day: required"),
    ("demand.order_per_day", 5, "demand.order_per_day: unknown key (did you mean 'orders_per_day'?)"),
    ("sead", 1, "sead: unknown key (did you mean 'seed'?)"),
    ("seed", _DELETE, "seed: required"),
    ("seed", -1, "seed: must be an integer >= 0, got -1"),
    ("seed", True, "seed: must be an integer >= 0, got true (a boolean)"),
    ("fleet.orders_per_rider_hour", -2.0, "fleet.orders_per_rider_hour: must be a finite number > 0, got -2.0"),
    ("fleet.capacity", 0, "fleet.capacity: must be an integer >= 1, got 0"),
    ("fleet.capacity", [6, 4], "fleet.capacity: high must be >= low"),
    ("fleet.speed_factor", [0.9], "fleet.speed_factor: a range is a number or [low, high]"),
    ("fleet.riders_per_site", 10, "fleet: give exactly one of"),
    ("fleet.shifts[1].hours", 30, "fleet.shifts[1].hours: must be a finite number > 0 and <= 24, got 30"),
    ("fleet.shifts[0].start", 7, "fleet.shifts[0].start: unknown key (did you mean 'start_h'?)"),
    ("sites.list[1].lat", 95.0, "sites.list[1].lat: must be a finite number >= -90 and <= 90, got 95.0"),
    ("sites.list[1].id", 1, "sites.list[1].id: site id 1 is already used by sites.list[0]"),
    ("sites.list[2].riders", -4, "sites.list[2].riders: must be an integer >= 0, got -4"),
    ("sites.list[0].zone_m", 0, "sites.list[0].zone_m: must be a finite number > 0, got 0"),
    ("sites.count", 10, "sites: give either an explicit list"),
    ("sites.list", [], "sites.list: must be a non-empty array of site tables"),
    ("demand.hourly_profile", [1.0] * 23, "demand.hourly_profile: must be a list of 24 weights"),
    ("demand.hourly_profile[3]", -1.0, "demand.hourly_profile[3]: must be a finite number >= 0, got -1.0"),
    ("demand.ready.max_min", 40.0, "demand.ready.max_min: must be less than the shortest promise (20 min)"),
    ("demand.promise_min_per_km", -1, "demand.promise_min_per_km: must be a finite number >= 0 and <= 60, got -1"),
    ("demand.ready.kind", "gamma", "demand.ready.kind: must be one of 'lognormal', 'uniform', got 'gamma'"),
    ("demand.promise_share", [1.0, 1.0, 1.0], "demand.promise_share: must be a list of 2 shares"),
    ("demand.size_units", [1, 0], "demand.size_units[1]: must be an integer >= 1, got 0"),
    ("travel.kind", "constant", 'travel.speed_mps: required with kind = "constant"'),
    ("travel.round_up_minutes", True, "travel.round_up_minutes: only a constant travel model rounds up"),
    ("travel.detour", 0.5, "travel.detour: must be a finite number >= 1, got 0.5"),
    ("travel.speed_mps", [4.0] * 23, "travel.speed_mps: a profile needs B > 1 speeds"),
    ("dispatch.tick_s", -1.0, "dispatch.tick_s: must be a finite number > 0, got -1.0"),
    ("dispatch.max_orders_per_rider", 2.5, "dispatch.max_orders_per_rider: must be an integer >= 1, got 2.5"),
    ("dispatch.trip_mode", "any", "dispatch.trip_mode: must be one of"),
    ("dispatch.tick", 10, "dispatch.tick: unknown key (did you mean 'tick_s'?)"),
    ("policy", "best", "policy: must be one of 'kernel', 'greedy'"),  # (more policies may follow)
    ("shard", "planet", "shard: must be one of 'site', 'city', 'none', got 'planet'"),
    ("day", "16/06/2025", "day: must be a date like 2025-06-16, got '16/06/2025' (a string)"),
    ("utc_offset_h", 15, "utc_offset_h: must be a finite number >= -14 and <= 14, got 15"),
    ("coordinates", "utm", "coordinates: must be one of 'wgs84', 'planar_m', got 'utm'"),
    ("coordinates", "planar_m", 'sites.list[0].lat: coordinates = "planar_m" takes x and y'),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_FIELDS, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD_FIELDS])
def test_bad_field_is_named(path: str, value: Any, message: str) -> None:
    data = _set(_demo_data(), path, value)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "demo")
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.field == message.split(":")[0]


def test_unknown_key_lists_the_known_keys() -> None:
    with pytest.raises(ScenarioError, match=r"known keys: .*orders_per_day") as info:
        parse_scenario(_set(_demo_data(), "demand.colour", "red"), "demo")
    assert info.value.field == "demand.colour"


def test_hour_without_riders_is_an_error_naming_the_shifts() -> None:
    data = _set(_demo_data(), "fleet.shifts", [{"start_h": 8.0, "hours": 12.0, "share": 1.0}])
    with pytest.raises(ScenarioError, match=r"^fleet.shifts: no shift covers local hour 0"):
        parse_scenario(data, "demo")
    # Zero demand in the uncovered hours makes it fine.
    data["demand"]["hourly_profile"] = [0.0] * 8 + [1.0] * 12 + [0.0] * 4
    assert parse_scenario(data, "demo").fleet.shifts[0].hours == 12.0


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text("seed = \n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"broken.toml: not valid TOML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match=r"cannot read"):
        load_scenario(tmp_path / "missing.toml")


def test_whole_numbers_are_accepted_for_float_dispatch_fields() -> None:
    sc = parse_scenario(_set(_demo_data(), "dispatch.tick_s", 10), "demo")
    assert sc.dispatch.tick_s == 10.0 and isinstance(sc.dispatch.tick_s, float)


def test_generated_sites_over_named_and_custom_cities() -> None:
    data = _set(_demo_data(), "sites", {
        "count": 7,
        "cities": [{"name": "Shanghai", "radius_m": 10_000.0}, "Beijing",
                   {"name": "Testville", "lat": 10.0, "lng": 20.0, "radius_m": 5000.0, "weight": 2.0}],
    })  # fmt: skip
    sc = parse_scenario(data, "x")
    sh, bj, tv = sc.sites.cities
    assert (sh.radius_m, sh.y, sh.weight) == (10_000.0, CHINA_CITIES[0].lat, CHINA_CITIES[0].population_m)
    assert bj.radius_m == CHINA_CITIES[1].radius_m
    assert (tv.x, tv.y, tv.weight) == (20.0, 10.0, 2.0)
    with pytest.raises(ScenarioError, match=r"^sites.cities\[1\].name: 'Atlantis' is not in the embedded table"):
        parse_scenario(_set(data, "sites.cities[1]", "Atlantis"), "x")
    with pytest.raises(ScenarioError, match=r"^sites.cities: must be one of 'china' or a list"):
        parse_scenario(_set(data, "sites.cities", "mars"), "x")
    with pytest.raises(ScenarioError, match=r"^sites.top_cities: only with cities = \"china\""):
        parse_scenario(_set(data, "sites.top_cities", 3), "x")


def test_planar_scenario() -> None:
    data = _set(_demo_data(), "coordinates", "planar_m")
    data["sites"] = {"list": [{"id": 0, "x": 0.0, "y": 0.0}, {"id": 9, "x": 5000.0, "y": -2000.0, "riders": 3}]}
    data["travel"] = {"kind": "constant", "speed_mps": 5.0, "detour": 1.0, "round_up_minutes": True}
    sc = parse_scenario(data, "bench")
    assert sc.coordinates == "planar_m" and sc.sites.explicit[1].x == 5000.0 and sc.sites.explicit[1].riders == 3
    assert sc.travel.speed_mps == (5.0,) and sc.travel.round_up_minutes
    with pytest.raises(ScenarioError, match=r"^sites.cities: the embedded table 'china' is in WGS84"):
        parse_scenario(_set(data, "sites", {"count": 3, "cities": "china"}), "bench")


def test_allocate_is_proportional_and_exact() -> None:
    assert allocate(10, [1.0, 1.0, 2.0]) == [3, 2, 5]  # quotas 2.5, 2.5, 5: the tie goes to the first
    assert allocate(2, [5.0, 1.0, 1.0]) == [2, 0, 0]
    assert allocate(3, [100.0, 1.0, 1.0]) == [1, 1, 1]  # everyone gets one when the count allows
    weights = [r.population_m for r in CHINA_CITIES]
    counts = allocate(2000, weights)
    assert sum(counts) == 2000 and min(counts) >= 1
    total = sum(weights)
    for c, w in zip(counts, weights, strict=True):
        assert abs(c - 2000 * w / total) < 1.0


def test_peak_day_plan_spreads_sites_by_population() -> None:
    sc = load_scenario(SIMULATIONS / "peak_day.toml")
    pl = plan(sc)
    assert len(pl.sites) == 2000 and int(pl.counts.sum()) == 25_000_000
    per_city = {r.name: int((pl.sites.city == r.name).sum()) for r in CHINA_CITIES}
    assert per_city == dict(zip([r.name for r in CHINA_CITIES], allocate(2000, [r.population_m for r in CHINA_CITIES]),
                                strict=True))  # fmt: skip
    assert per_city["Shanghai"] > per_city["Hangzhou"] > per_city["Urumqi"] >= 1
    # Peak sizing: every site's riders times its orders per rider-hour cover its busiest hour, with room to spare.
    rate = sc.fleet.orders_per_rider_hour
    assert rate is not None
    cover = hourly_coverage(sc.fleet.shifts)
    profile = sc.demand.hourly_profile  # normalised: shares of the day
    expected_peak = max(profile[h] / cover[h] for h in range(24)) * 25_000_000 * pl.weight
    assert (pl.riders * rate >= expected_peak * 1.2 - 1e-6).all()
    assert (pl.riders * rate < expected_peak * 1.2 + rate).all()
    # "Hundreds of thousands of riders": fewer than a million on shift at any minute of the patterns (the hourly
    # coverage averages away overlaps, such as one shift starting before another ends).
    total = sum(s.share for s in sc.fleet.shifts)
    minutes = np.arange(24 * 60) + 0.5
    on = sum(s.share / total * (((minutes / 60.0 - s.start_h) % 24.0) < s.hours) for s in sc.fleet.shifts)
    assert 300_000 < float(np.max(on)) * int(pl.riders.sum()) < 1_000_000
