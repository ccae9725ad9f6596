"""Rider events handled as batches: plain LOCATION events are checked and applied a run at a time, with the same
outcome as one event at a time (values, refusals and their order)."""

from __future__ import annotations

import gc
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_fixtures import SITES, make_config, online, report, rider_event, running

from dispatch.service import loop as loop_mod
from dispatch.service import validate as v
from dispatch.service.store import Store
from dispatch.v1 import dispatch_pb2 as pb

LOC = pb.RIDER_EVENT_KIND_LOCATION
NOW = 1_800_000_000
# Each field is good most of the time and at an edge of its check otherwise, so that single bad fields are common.
SECONDS = [NOW] * 8 + [-62_135_596_800, -62_135_596_801, 253_402_300_799, 253_402_300_800]
NANOS = [5000] * 8 + [0, 999_999_999, 1_000_000_000, -1]
LAT = [31.23] * 8 + [90.0, -90.0, 90.5, -90.5, math.nan, math.inf, -math.inf]
LNG = [121.47] * 8 + [180.0, -180.0, 180.5, -180.5, math.nan, math.inf, -math.inf]
IDS = ["r1"] * 8 + ["", "x" * 128, "x" * 129, "a\nb", "é"]


@st.composite
def location_like(draw) -> pb.RiderEvent:
    """Mostly LOCATION events, each field either good or at an edge of its check."""
    kind = draw(st.sampled_from([LOC] * 8 + [pb.RIDER_EVENT_KIND_OFFLINE, pb.RIDER_EVENT_KIND_ONLINE, 0, 42]))
    e = pb.RiderEvent(rider_id=draw(st.sampled_from(IDS)), kind=kind)  # type: ignore[arg-type]
    if draw(st.integers(0, 8)):
        e.at.seconds = draw(st.sampled_from(SECONDS))
        e.at.nanos = draw(st.sampled_from(NANOS))
    if draw(st.integers(0, 8)):
        e.position.lat = draw(st.one_of(st.sampled_from(LAT), st.floats(-100, 100)))
        e.position.lng = draw(st.one_of(st.sampled_from(LNG), st.floats(-200, 200)))
    if not draw(st.integers(0, 8)):
        e.order_id = "o1"
    return e


def _reference(events: list[pb.RiderEvent], first: int) -> list[tuple]:
    """One event at a time with ``rider_event``."""
    out: list[tuple] = []
    for i, e in enumerate(events, first):
        try:
            ev = v.rider_event(e)
        except v.RefusalError as exc:
            out.append((i, "refused", e.rider_id[: v.MAX_ID_LEN], exc.code, exc.field, exc.message))
            continue
        out.append((i, "ok", ev.rider_id, ev.kind, ev.at, ev.lat, ev.lng, ev.order_id))
    return out


@settings(max_examples=400, deadline=None)
@given(events=st.lists(location_like(), max_size=12), first=st.integers(0, 50))
def test_batched_checks_equal_one_event_at_a_time(events, first):
    items, refused = v.rider_events(events, first)
    got: list[tuple] = []
    for item in items:
        if isinstance(item, v.LocationRun):
            assert len(item.index) == len(item.rider_id) == len(item.at) == len(item.raw) > 0
            for k, i in enumerate(item.index):
                assert item.raw[k] is events[i - first]
                got.append((i, "ok", item.rider_id[k], LOC, item.at[k], item.lat[k], item.lng[k], ""))
        else:
            i, ev, raw = item
            assert raw is events[i - first]
            assert ev.kind != LOC  # every LOCATION that passes the checks goes into a run
            got.append((i, "ok", ev.rider_id, ev.kind, ev.at, ev.lat, ev.lng, ev.order_id))
    accepted_order = [g[0] for g in got]
    assert accepted_order == sorted(accepted_order)  # items come in message order
    got += [(i, "refused", rid, exc.code, exc.field, exc.message) for i, rid, exc in refused]
    assert sorted(got, key=lambda g: g[0]) == _reference(events, first)


def test_runs_break_at_other_kinds():
    a = rider_event("r1", LOC, now=NOW)
    a.position.lat, a.position.lng = 31.23, 121.47
    items, refused = v.rider_events([a, a, online("r2", now=NOW), a], 0)
    assert not refused
    assert [type(i).__name__ for i in items] == ["LocationRun", "tuple", "LocationRun"]
    assert items[0].index == [0, 1] and items[2].index == [3]  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def two_frames(tmp_path_factory) -> Store:
    store = Store(make_config(tmp_path_factory.mktemp("frame"), sites={"list": SITES, "owned": "all"}))
    assert len(store.projections) == 2  # Shanghai and Beijing: two frames
    return store


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pts=st.lists(st.tuples(st.integers(0, 1), st.floats(30.0, 41.0), st.floats(115.0, 123.0)), min_size=1))
def test_frame_positions_of_a_batch_equal_single_ones(two_frames, pts):
    group = np.array([g for g, _, _ in pts], dtype=np.int64)
    lat = np.array([p[1] for p in pts])
    lng = np.array([p[2] for p in pts])
    xs, ys = two_frames.to_frame_many(group, lat, lng)
    for k, (g, la, lo) in enumerate(pts):
        x, y = two_frames.to_frame(g, la, lo)
        assert xs[k] == pytest.approx(x, abs=1e-6) and ys[k] == pytest.approx(y, abs=1e-6)


def _loc(rider: str, at: float, lat: float, lng: float) -> pb.RiderEvent:
    e = rider_event(rider, LOC, now=at)
    e.position.lat, e.position.lng = lat, lng
    return e


def test_one_message_mixing_kinds_applies_in_order(tmp_path: Path):
    t = NOW
    batch = [
        _loc("r9", t + 1, 31.2400, 121.4800),  # 0: unknown until its ONLINE (next)
        online("r9", now=t),  # 1
        _loc("r9", t + 2, 31.2410, 121.4810),  # 2: applied
        _loc("r9", t + 1.5, 31.0000, 121.0000),  # 3: older than the last fix: accepted, position kept
        _loc("r9", t + 3, 39.9042, 116.4074),  # 4: Beijing, > 400 km from the rider's area
        _loc("ghost", t + 3, 31.2400, 121.4800),  # 5: unknown rider
        _loc("r9", t + 4, math.nan, 121.4800),  # 6: not a number
        _loc("r9", t + 5, 31.2420, 121.4820),  # 7: applied
    ]
    with running(make_config(tmp_path), start_loop=False) as (srv, stub):
        r = report(stub, *batch)
        assert r.accepted == 4
        got = [(x.index, x.rider_id, x.rejection.code, x.rejection.field) for x in r.rejections]
        assert got == [
            (0, "r9", pb.REJECTION_CODE_NOT_FOUND, "rider_id"),
            (4, "r9", pb.REJECTION_CODE_FAILED_PRECONDITION, "position"),
            (5, "ghost", pb.REJECTION_CODE_NOT_FOUND, "rider_id"),
            (6, "r9", pb.REJECTION_CODE_INVALID_ARGUMENT, "position.lat"),
        ]
        rec = srv.store.riders["r9"]
        assert (rec.lat, rec.lng, rec.at) == (pytest.approx(31.2420), pytest.approx(121.4820), pytest.approx(t + 5))
        x, y = srv.store.to_frame(rec.group, rec.lat, rec.lng)
        assert (rec.x, rec.y) == (pytest.approx(x), pytest.approx(y))
    # The accepted events were journaled in order: a restart restores the same rider.
    with running(make_config(tmp_path), start_loop=False) as (srv, _stub):
        again = srv.store.riders["r9"]
        assert (again.lat, again.lng, again.at) == (
            pytest.approx(31.2420),
            pytest.approx(121.4820),
            pytest.approx(t + 5),
        )
        assert (again.x, again.y) == (pytest.approx(rec.x), pytest.approx(rec.y))


def _collectable(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_the_loop_freezes_the_heap_after_each_slot_and_never_hands_it_back(tmp_path: Path):
    loop = loop_mod.DispatchLoop(Store(make_config(tmp_path)))
    gc.unfreeze()
    try:
        loop._gc_after_slot()
        assert gc.get_freeze_count() == 0  # off unless asked (serve turns it on for its own process)
        loop.freeze_gc = True
        loop._gc_after_slot()
        assert gc.get_freeze_count() > 0
        made = [0]  # made after that slot: collectable (a frozen object is not among gc.get_objects())
        assert _collectable(made)
        for _ in range(5):  # the next slot freezes it, and no later one hands it back
            loop._gc_after_slot()
            assert not _collectable(made)
    finally:
        gc.unfreeze()
        loop.stop()


@settings(max_examples=60, deadline=None)
@given(
    moves=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "ghost"]),
            st.floats(-5.0, 5.0),  # seconds after NOW: older fixes are accepted without moving the rider
            st.one_of(st.floats(31.20, 31.28), st.just(39.9)),  # 39.9: Beijing, refused as too far
            st.floats(121.44, 121.52),
        ),
        max_size=30,
    ),
    split=st.integers(0, 30),
)
def test_the_stores_position_array_follows_every_riders_position(tmp_path_factory, moves, split):
    """``Store.rider_xy`` (what each tick's delta sends) is every rider's ``(x, y)`` after runs of LOCATION events
    that move one rider several times, go back in time or get refused, and after ONLINE events; the loop's delta
    sends the same, and so does a store rebuilt from the journal."""
    cfg = make_config(tmp_path_factory.mktemp("xy"))
    with running(cfg, start_loop=False) as (srv, stub):
        report(stub, *[online(r, lat=31.23 + 0.01 * i, now=NOW) for i, r in enumerate("abc")])
        events = [_loc(r, NOW + dt, la, lo) for r, dt, la, lo in moves]
        report(stub, *events[:split])
        report(stub, online("b", lat=31.25, now=NOW + 1), *events[split:])
        store = srv.store
        want = np.array([(r.x, r.y) for r in store.riders.values()])
        assert [r.row for r in store.riders.values()] == list(range(len(store.riders)))
        assert np.array_equal(store.rider_xy(), want)
        delta = srv.loop._delta(None, True)
        assert np.array_equal(delta.x, want[:, 0]) and np.array_equal(delta.y, want[:, 1])
    with running(cfg, start_loop=False) as (srv, _stub):
        assert np.array_equal(srv.store.rider_xy(), want)
