"""Tests for dispatch.state: validating builders (errors name the field), defaults, dtypes, and Routes helpers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes


def order_args(n: int = 3) -> dict[str, Any]:
    return {
        "pick_x": np.zeros(n),
        "pick_y": np.zeros(n),
        "drop_x": np.arange(n, dtype=float) * 100.0,
        "drop_y": np.ones(n),
        "site": np.zeros(n, dtype=np.int64),
        "ready": np.full(n, 1000.0),
        "promised": np.full(n, 4600.0),
    }


def rider_args(m: int = 2) -> dict[str, Any]:
    return {
        "x": np.zeros(m),
        "y": np.zeros(m),
        "avail": np.full(m, 1000.0),
        "shift_end": np.full(m, 9000.0),
        "capacity": np.full(m, 4),
    }


ORDER_FLOATS = ["pick_x", "pick_y", "drop_x", "drop_y", "ready", "promised", "service_pick", "service_drop", "placed"]
RIDER_FLOATS = ["x", "y", "avail", "shift_start", "shift_end", "speed"]


def test_order_table_defaults_and_dtypes() -> None:
    t = OrderTable.build(**order_args(3))
    assert t.n == 3
    np.testing.assert_array_equal(t.size, [1, 1, 1])
    np.testing.assert_array_equal(t.service_pick, 0.0)
    np.testing.assert_array_equal(t.service_drop, 0.0)
    np.testing.assert_array_equal(t.placed, t.ready)
    np.testing.assert_array_equal(t.pinned, -1)
    np.testing.assert_array_equal(t.pick_loc, -1)
    np.testing.assert_array_equal(t.drop_loc, -1)
    for name in ORDER_FLOATS:
        assert getattr(t, name).dtype == np.float64 and getattr(t, name).flags.c_contiguous
    for name in ("pick_loc", "drop_loc", "site", "size", "pinned"):
        assert getattr(t, name).dtype == np.int64
    tup = t.as_tuple()
    assert len(tup) == 12
    order = ["pick_x", "pick_y", "pick_loc", "drop_x", "drop_y", "drop_loc", "site", "ready", "promised", "size"]
    order += ["service_pick", "service_drop"]
    for a, name in zip(tup, order, strict=True):
        assert a is getattr(t, name)


def test_order_table_accepts_lists_and_copies_nothing_it_need_not() -> None:
    args = {k: v.tolist() for k, v in order_args(2).items()}
    t = OrderTable.build(**args, size=[2, 3], pinned=[1, -1])
    np.testing.assert_array_equal(t.size, [2, 3])
    np.testing.assert_array_equal(t.pinned, [1, -1])


@pytest.mark.parametrize("name", ORDER_FLOATS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_order_table_rejects_non_finite_naming_the_field(name: str, bad: float) -> None:
    args = order_args(3)
    arr = np.ones(3)
    arr[1] = bad
    args[name] = arr
    with pytest.raises(ValueError, match=rf"\borders\.{name}\b"):
        OrderTable.build(**args)


@pytest.mark.parametrize("name", [*ORDER_FLOATS, "site", "size", "pinned", "pick_loc", "drop_loc"])
def test_order_table_rejects_wrong_shapes_naming_the_field(name: str) -> None:
    args = order_args(3)
    args[name] = np.ones(4, dtype=np.int64 if name in ("site", "size", "pinned", "pick_loc", "drop_loc") else float)
    # pick_x sets n, so a longer pick_x is reported on the next field.
    with pytest.raises(ValueError, match=rf"\b{'pick_y' if name == 'pick_x' else name}\b.*shape"):
        OrderTable.build(**args)
    args[name] = np.ones((3, 1))
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        OrderTable.build(**args)


@pytest.mark.parametrize("size", [0, -1])
def test_order_table_rejects_size_not_positive(size: int) -> None:
    with pytest.raises(ValueError, match=r"orders\.size"):
        OrderTable.build(**order_args(3), size=[1, size, 1])


@pytest.mark.parametrize("name", ["service_pick", "service_drop"])
def test_order_table_rejects_negative_service(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        OrderTable.build(**order_args(2), **{name: [0.0, -1.0]})


def test_rider_table_defaults_and_dtypes() -> None:
    t = RiderTable.build(**rider_args(2))
    assert t.m == 2
    np.testing.assert_array_equal(t.shift_start, t.avail)
    np.testing.assert_array_equal(t.speed, 1.0)
    np.testing.assert_array_equal(t.online, True)
    np.testing.assert_array_equal(t.loc, -1)
    assert t.online.dtype == np.bool_ and t.capacity.dtype == np.int64 and t.loc.dtype == np.int64
    names = ["x", "y", "loc", "avail", "shift_start", "shift_end", "capacity", "speed"]
    for a, name in zip(t.as_tuple(), names, strict=True):
        assert a is getattr(t, name)


@pytest.mark.parametrize("name", RIDER_FLOATS)
def test_rider_table_rejects_non_finite_naming_the_field(name: str) -> None:
    args = rider_args(2)
    args[name] = np.array([1.0, np.nan])
    with pytest.raises(ValueError, match=rf"\briders\.{name}\b"):
        RiderTable.build(**args)


@pytest.mark.parametrize(("name", "value"), [("speed", 0.0), ("speed", -1.0), ("capacity", 0), ("capacity", -2)])
def test_rider_table_rejects_not_positive(name: str, value: float) -> None:
    args = rider_args(2)
    args[name] = np.array([1, value])
    with pytest.raises(ValueError, match=rf"riders\.{name}"):
        RiderTable.build(**args)


@pytest.mark.parametrize("name", [*RIDER_FLOATS, "capacity", "loc", "online"])
def test_rider_table_rejects_wrong_shapes_naming_the_field(name: str) -> None:
    args = rider_args(2)
    args[name] = np.ones(3, dtype=bool if name == "online" else float)
    # x sets m, so a longer x is reported on the next field.
    with pytest.raises(ValueError, match=rf"\b{'y' if name == 'x' else name}\b"):
        RiderTable.build(**args)


def test_routes_from_lists_round_trip() -> None:
    stops = [
        [(0, PICKUP), (1, PICKUP), (0, DROPOFF), (1, DROPOFF)],
        [],
        [(2, DROPOFF)],
    ]
    r = Routes.from_lists(stops, 3, [1, 0, 1])
    assert r.width == 4  # widened to the longest route
    assert [r.stops(i) for i in range(3)] == stops
    np.testing.assert_array_equal(r.length, [4, 0, 1])
    np.testing.assert_array_equal(r.frozen, [1, 0, 1])
    assert r.order.dtype == np.int64 and r.kind.dtype == np.int64
    assert r.order[1, 0] == -1 and r.order[2, 1] == -1  # padding
    assert r.as_tuple()[0] is r.length and r.as_tuple()[3] is r.kind
    assert Routes.from_lists(stops, 10).width == 10
    np.testing.assert_array_equal(Routes.from_lists(stops, 4).frozen, 0)


def test_routes_widened_and_copy_are_independent() -> None:
    stops = [[(0, PICKUP), (0, DROPOFF)], [(1, DROPOFF)]]
    r = Routes.from_lists(stops, 2, [1, 0])
    w = r.widened(6)
    assert w.width == 6
    assert [w.stops(i) for i in range(2)] == stops
    np.testing.assert_array_equal(w.frozen, r.frozen)
    np.testing.assert_array_equal(w.order[:, 2:], -1)
    same = r.widened(1)  # never narrower: a copy
    assert same.width == 2 and [same.stops(i) for i in range(2)] == stops
    for c in (w, same, r.copy()):
        c.order[0, 0] = 99
        c.length[1] = 0
        c.frozen[0] = 0
    assert r.stops(0) == stops[0] and r.stops(1) == stops[1] and r.frozen[0] == 1


def test_routes_empty() -> None:
    r = Routes.empty(3, 5)
    assert r.order.shape == (3, 5) and r.width == 5
    np.testing.assert_array_equal(r.length, 0)
    assert all(r.stops(i) == [] for i in range(3))


@pytest.mark.parametrize("frozen", [[3, 0], [-1, 0], [0, 1]])
def test_routes_from_lists_rejects_bad_frozen(frozen: list[int]) -> None:
    with pytest.raises(ValueError, match=r"routes\.frozen"):
        Routes.from_lists([[(0, PICKUP), (0, DROPOFF)], []], 2, frozen)


@pytest.mark.parametrize(
    ("table", "name", "value"),
    [
        ("orders", "site", np.array([0.0, np.nan, 0.0])),
        ("orders", "size", np.array([1.0, 1.5, 1.0])),
        ("orders", "pinned", np.array([-1.0, 0.5, -1.0])),
        ("riders", "capacity", np.array([4.0, 2.5])),
    ],
    ids=["site-nan", "size-fraction", "pinned-fraction", "capacity-fraction"],
)
def test_integer_fields_reject_nan_and_fractions(table: str, name: str, value: np.ndarray) -> None:
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        if table == "orders":
            OrderTable.build(**{**order_args(3), name: value})
        else:
            RiderTable.build(**{**rider_args(2), name: value})


def test_tables_never_alias_the_callers_arrays() -> None:
    """The simulator moves riders by writing into ``avail``; a shared input array must not change other fields."""
    t = np.array([10.0, 20.0])
    riders = RiderTable.build(x=[0.0, 1.0], y=[0.0, 1.0], avail=t, shift_start=t, shift_end=t + 100, capacity=[2, 2])
    riders.avail[:] = 99.0
    assert riders.shift_start.tolist() == [10.0, 20.0] and t.tolist() == [10.0, 20.0]
    orders = OrderTable.build(
        pick_x=[0.0], pick_y=[0.0], drop_x=[1.0], drop_y=[1.0], site=[0], ready=[5.0], promised=[9.0]
    )
    orders.ready[:] = 6.0
    assert orders.placed.tolist() == [5.0]
