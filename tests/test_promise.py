"""Promise quotes: options, admission (deferral and saturation), declines with a reason, parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.geo import ProfileTravelTime, Projection
from dispatch.policy import ParamsError
from dispatch.promise import (
    DeclineReason,
    PromiseEngine,
    PromiseParams,
    PromiseSites,
    UnknownSiteError,
)
from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes
from dispatch.zones import SiteZones, ZoneSpec

PROJ = Projection(31.23, 121.47)
NOW = 1_750_046_400.0  # 2025-06-16 12:00 local (UTC+8): the lunch peak's speeds
TRAVEL = ProfileTravelTime()
SERVICE_S = 120.0


def _engine(params: PromiseParams | None = None, radius: float = 3000.0) -> PromiseEngine:
    sx, sy = PROJ.to_xy([31.23, 31.25], [121.47, 121.50])
    sites = PromiseSites.build(["a", "b"], sx, sy, SERVICE_S)
    zones = SiteZones(PROJ, sx, sy, [ZoneSpec(radius_m=radius), ZoneSpec(radius_m=radius)])
    return PromiseEngine(sites, zones, TRAVEL, params or PromiseParams())


def _riders(eng: PromiseEngine, per_site: int, capacity: int = 8) -> RiderTable:
    s = np.repeat(np.arange(eng.sites.n), per_site)
    return RiderTable.build(
        x=eng.sites.x[s], y=eng.sites.y[s], avail=np.full(s.size, NOW), shift_end=np.full(s.size, NOW + 8 * 3600.0),
        capacity=np.full(s.size, capacity),
    )  # fmt: skip


def _waiting(eng: PromiseEngine, site: int, k: int) -> OrderTable:
    """k orders waiting for a rider at ``site``."""
    x, y = float(eng.sites.x[site]), float(eng.sites.y[site])
    return OrderTable.build(
        pick_x=np.full(k, x), pick_y=np.full(k, y), drop_x=np.full(k, x + 1000.0), drop_y=np.full(k, y),
        site=np.full(k, site), ready=np.full(k, NOW), promised=np.full(k, NOW + 3600.0),
    )  # fmt: skip


def _state(eng: PromiseEngine, per_site: int, waiting_at_0: int = 0) -> None:
    riders = _riders(eng, per_site)
    orders = _waiting(eng, 0, waiting_at_0)
    eng.update(orders, riders, Routes.empty(riders.m, 12), NOW)


def test_options_earliest_first_from_every_covering_site() -> None:
    eng = _engine()
    _state(eng, per_site=3)
    q = eng.quote(31.238, 121.485, 1, NOW)  # between the two sites: both cover it
    assert q.declined_reason is None and q.detail == ""
    assert {o.site_id for o in q.options} == {"a", "b"}
    promised = [o.promised_by for o in q.options]
    assert promised == sorted(promised)
    for o in q.options:
        assert o.eta <= o.promised_by
        assert o.on_time_prob >= eng.params.min_on_time_probability
        assert o.tier == pytest.approx(o.promised_by - NOW)
        assert not o.deferred
    only_b = eng.quote(31.238, 121.485, 1, NOW, site_id="b")
    assert {o.site_id for o in only_b.options} == {"b"}


@settings(max_examples=80, deadline=None)
@given(
    r=st.floats(0.0, 2990.0),
    angle=st.floats(0.0, 2 * math.pi),
    riders=st.integers(0, 4),
    waiting=st.integers(0, 30),
    busy_until_min=st.floats(0.0, 90.0),
    slots=st.booleans(),
    min_prob=st.floats(0.5, 0.999),
    prep=st.floats(0.0, 20.0),
    hour=st.floats(0.0, 24.0),
)
def test_never_earlier_than_the_travel_time_allows(
    r: float,
    angle: float,
    riders: int,
    waiting: int,
    busy_until_min: float,
    slots: bool,
    min_prob: float,
    prep: float,
    hour: float,
) -> None:
    params = PromiseParams(
        mode="slots" if slots else "tiers",
        tiers_min=(20.0, 30.0, 45.0, 60.0, 90.0),
        slot_length_min=30.0,
        min_on_time_probability=min_prob,
        prep_min=prep,
        batch_extra_min=0.0,
        dropoff_service_min=0.0,
    )
    eng = _engine(params)
    now = NOW + hour * 3600.0
    rt = _riders(eng, riders)
    rt.avail[:] = now + busy_until_min * 60.0  # riders busy elsewhere until then
    orders = _waiting(eng, 0, waiting)
    eng.update(orders, rt, Routes.empty(rt.m, 12), now)
    x = float(eng.sites.x[0]) + r * math.cos(angle)
    y = float(eng.sites.y[0]) + r * math.sin(angle)
    q = eng.quote_xy(x, y, 1, now, site=0)
    ride = float(TRAVEL.seconds(eng.sites.x[0], eng.sites.y[0], x, y, now + SERVICE_S)[0])
    earliest = now + SERVICE_S + ride  # pickup service and the ride, leaving at once (FIFO: later is never sooner)
    for o in q.options:
        assert o.promised_by >= o.eta >= earliest - 1e-6
        assert 0.0 <= o.on_time_prob <= 1.0
    if not q.options:
        assert q.declined_reason == DeclineReason.SATURATED


def test_a_saturated_site_defers_then_declines() -> None:
    params = PromiseParams(tiers_min=(30.0, 45.0, 60.0, 90.0), max_wait_per_rider=10.0, batch_extra_min=3.0)
    eng = _engine(params)
    addr = (31.232, 121.474)  # ~300 m from site a, > 3 km from site b
    _state(eng, per_site=2)
    calm = eng.quote(*addr, 1, NOW)
    assert calm.options[0].tier == 1800.0 and not calm.options[0].deferred
    _state(eng, per_site=2, waiting_at_0=4)  # a queue of 4 orders for 2 riders taking 2 each: the next trip
    busy = eng.quote(*addr, 1, NOW)
    assert busy.options, busy
    assert busy.options[0].promised_by > calm.options[0].promised_by
    assert busy.options[0].eta > calm.options[0].eta
    assert all(o.deferred for o in busy.options)
    _state(eng, per_site=2, waiting_at_0=21)  # beyond 10 waiting orders per rider: admission closes
    full = eng.quote(*addr, 1, NOW)
    assert full.options == () and full.declined_reason == DeclineReason.SATURATED
    assert "tiers" in full.detail


def test_admitted_orders_join_the_queue_until_the_next_update() -> None:
    eng = _engine(PromiseParams(batch_orders=1, max_wait_per_rider=2.0))
    _state(eng, per_site=1)
    before = eng.quote(31.232, 121.474, 1, NOW, site_id="a")
    for _ in range(2):
        eng.admit(0)
    after = eng.quote(31.232, 121.474, 1, NOW, site_id="a")
    assert after.options == () or after.options[0].eta > before.options[0].eta
    _state(eng, per_site=1)
    assert eng.quote(31.232, 121.474, 1, NOW, site_id="a") == before


def test_riders_busy_on_routes_are_free_later() -> None:
    eng = _engine()
    riders = _riders(eng, 1)
    far = OrderTable.build(
        pick_x=[eng.sites.x[0]], pick_y=[eng.sites.y[0]], drop_x=[eng.sites.x[0] - 2900.0], drop_y=[eng.sites.y[0]],
        site=[0], ready=[NOW], promised=[NOW + 3600.0],
    )  # fmt: skip
    routes = Routes.from_lists([[(0, PICKUP), (0, DROPOFF)], []], 12)
    eng.update(far, riders, routes, NOW)
    lo, hi = eng.summary.free_ptr[0], eng.summary.free_ptr[1]
    assert hi - lo == 1
    # out 2.9 km (west, away from site b) x 1.3 and back: well after now
    assert eng.summary.free_at[lo] > NOW + 2 * 2900.0 * 1.3 / 6.0
    assert eng.summary.waiting.tolist() == [0, 0]


def test_outside_every_zone_is_declined_with_a_reason() -> None:
    eng = _engine()
    _state(eng, per_site=2)
    q = eng.quote(31.40, 121.30, 1, NOW)
    assert q.options == ()
    assert q.declined_reason == DeclineReason.OUTSIDE_EVERY_ZONE
    assert "outside every service zone" in q.detail
    q = eng.quote(31.232, 121.474, 1, NOW, site_id="b")
    assert q.declined_reason == DeclineReason.OUTSIDE_SITE_ZONE and "'b'" in q.detail


def test_too_large_and_no_riders() -> None:
    eng = _engine()
    riders = _riders(eng, 1, capacity=3)
    eng.update(_waiting(eng, 0, 0), riders, Routes.empty(riders.m, 12), NOW)
    q = eng.quote(31.232, 121.474, 4, NOW)
    assert q.declined_reason == DeclineReason.TOO_LARGE
    eng2 = _engine()
    _state(eng2, per_site=0)
    assert eng2.quote(31.232, 121.474, 1, NOW).declined_reason == DeclineReason.SATURATED


def test_bad_requests_raise_clear_errors() -> None:
    eng = _engine()
    with pytest.raises(UnknownSiteError, match="zz"):
        eng.quote(31.23, 121.47, 1, NOW, site_id="zz")
    with pytest.raises(ValueError, match="address"):
        eng.quote(float("nan"), 121.47, 1, NOW)
    with pytest.raises(ValueError, match="size"):
        eng.quote(31.23, 121.47, 0, NOW)


def test_slot_mode_offers_slots_on_the_clock_grid() -> None:
    eng = _engine(PromiseParams(mode="slots", slot_length_min=30.0, slot_horizon_min=120.0))
    _state(eng, per_site=2)
    now = NOW + 7 * 60.0  # 12:07
    q = eng.quote(31.232, 121.474, 1, now, site_id="a")
    assert q.options
    for o in q.options:
        assert o.tier == 1800.0
        assert o.promised_by % 1800.0 == 0.0
        assert now < o.promised_by <= now + 7200.0
    assert len({o.promised_by for o in q.options}) == len(q.options)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mode": "asap"}, "mode"),
        ({"tiers_min": (45.0, 30.0)}, "tiers_min"),
        ({"tiers_min": (30.0, -1.0)}, "tiers_min[1]"),
        ({"slot_length_min": 0.0}, "slot_length_min"),
        ({"slot_horizon_min": 10.0}, "slot_horizon_min"),
        ({"min_on_time_probability": 0.3}, "min_on_time_probability"),
        ({"batch_orders": 0}, "batch_orders"),
        ({"sigma_min": float("nan")}, "sigma_min"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_params_name_the_bad_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ParamsError) as err:
        PromiseParams().with_updates(**changes)
    assert err.value.field == field


def test_params_round_trip_and_swap() -> None:
    p = PromiseParams().with_updates(tiers_min=[20, 40])
    assert p.tiers_min == (20.0, 40.0)
    assert PromiseParams(**{**p.to_dict(), "tiers_min": tuple(p.to_dict()["tiers_min"])}) == p
    eng = _engine()
    _state(eng, per_site=2)
    eng.set_params(p)
    assert {o.tier for o in eng.quote(31.232, 121.474, 1, NOW).options} <= {1200.0, 2400.0}
