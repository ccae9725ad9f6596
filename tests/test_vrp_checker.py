"""The independent checker: each kind of violation caught on hand-built instances, the published-optimum routes of
the test data accepted, and its distance equal to the problem's own on random solutions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.vrp.checker import check
from dispatch.vrp.problem import VrpInstance, VrpSolution
from dispatch.vrp.readers import read_instance

DATA = Path(__file__).parent / "data" / "vrp"


def _inst(
    xy: list[tuple[float, float]],
    demand: list[float],
    windows: list[tuple[float, float]],
    service: list[float],
    capacity: float = 10.0,
    vehicles: int = 3,
    pairs: tuple[tuple[int, int], ...] = (),
) -> VrpInstance:
    n1 = len(xy)
    pickup = np.full(n1, -1, dtype=np.int64)
    delivery = np.full(n1, -1, dtype=np.int64)
    for p, d in pairs:
        delivery[p], pickup[d] = d, p
    a = np.asarray(xy, dtype=np.float64)
    w = np.asarray(windows, dtype=np.float64)
    return VrpInstance(
        name="hand",
        n_vehicles=vehicles,
        capacity=capacity,
        x=a[:, 0].copy(),
        y=a[:, 1].copy(),
        demand=np.asarray(demand, dtype=np.float64),
        ready=w[:, 0].copy(),
        due=w[:, 1].copy(),
        service=np.asarray(service, dtype=np.float64),
        pickup=pickup,
        delivery=delivery,
    )


# A line: depot at 0, tasks at x = 3, 4 (a 3-4-5 triangle for node 3 at (0, 4)).
def _vrptw(**kw: object) -> VrpInstance:
    base: dict[str, object] = {
        "xy": [(0, 0), (3, 0), (3, 4), (0, 4)],
        "demand": [0, 3, 3, 3],
        "windows": [(0, 100), (0, 50), (0, 50), (0, 50)],
        "service": [0, 1, 1, 1],
    }
    base.update(kw)
    return _inst(**base)  # type: ignore[arg-type]


def test_feasible_solution_and_its_distance() -> None:
    inst = _vrptw()
    res = check(inst, VrpSolution(((1, 2, 3),)))
    assert res.feasible and res.violations == ()
    assert res.vehicles == 1
    assert res.distance == pytest.approx(3 + 4 + 3 + 4)


def test_waiting_is_allowed() -> None:
    # Task 1 opens at 40: arriving at 3 means waiting, not a violation; then 2 and 3 must still fit their windows.
    inst = _vrptw(windows=[(0, 100), (40, 50), (0, 50), (0, 50)])
    res = check(inst, VrpSolution(((1, 2, 3),)))
    assert res.feasible, res.violations
    # 2 is reached at 41 + 4 = 45 and starts then; closing 2 at 44 breaks it.
    late = check(_vrptw(windows=[(0, 100), (40, 50), (0, 44), (0, 50)]), VrpSolution(((1, 2, 3),)))
    assert not late.feasible
    assert late.violations == ("route 0, stop 1: service at task 2 starts at 45.000000, after its due time 44",)


def test_not_served_and_served_twice() -> None:
    inst = _vrptw()
    res = check(inst, VrpSolution(((1, 2),)))
    assert res.violations == ("task 3 is not served",)
    res = check(inst, VrpSolution(((1, 2, 3), (2,))))
    assert res.violations == ("task 2 is served 2 times",)
    assert res.vehicles == 2


def test_nodes_that_are_not_tasks() -> None:
    inst = _vrptw()
    res = check(inst, VrpSolution(((0, 1, 2, 3),)))
    assert not res.feasible and "nodes [0] are not tasks" in res.violations[0]
    res = check(inst, VrpSolution(((1, 2, 3), (4,))))
    assert not res.feasible and "nodes [4] are not tasks (tasks are 1..3)" in res.violations[0]


def test_numpy_integers_are_tasks() -> None:
    inst = _vrptw()
    route = tuple(np.asarray([1, 2, 3], dtype=np.int64).tolist())
    assert check(inst, VrpSolution((route,))).feasible
    assert check(inst, VrpSolution((tuple(np.arange(1, 4, dtype=np.int64)),))).feasible  # type: ignore[arg-type]


def test_capacity_vrptw() -> None:
    inst = _vrptw(demand=[0, 4, 4, 4], capacity=10.0)
    res = check(inst, VrpSolution(((1, 2, 3),)))  # 12 loaded at the depot
    assert res.violations == ("route 0: leaves the depot with load 12 > capacity 10",)
    assert check(inst, VrpSolution(((1, 2), (3,)))).feasible


def test_horizon() -> None:
    inst = _vrptw(windows=[(0, 16), (0, 50), (0, 50), (0, 50)])  # route ends at 14 + 3 service = 17
    res = check(inst, VrpSolution(((1, 2, 3),)))
    assert res.violations == ("route 0: back at the depot at 17.000000, after the horizon 16",)
    assert check(_vrptw(windows=[(0, 17), (0, 50), (0, 50), (0, 50)]), VrpSolution(((1, 2, 3),))).feasible


def test_vehicle_limit_counts_non_empty_routes() -> None:
    inst = _vrptw(vehicles=2)
    res = check(inst, VrpSolution(((1,), (2,), (3,))))
    assert res.violations == ("3 routes, more than the 2 vehicles available",)
    res = check(inst, VrpSolution(((1, 2), (), (3,))))
    assert res.feasible and res.vehicles == 2


def _pdptw(capacity: float = 10.0) -> VrpInstance:
    # Pairs (1 -> 2) and (3 -> 4), 6 each.
    return _inst(
        xy=[(0, 0), (1, 0), (2, 0), (1, 1), (2, 1)],
        demand=[0, 6, -6, 6, -6],
        windows=[(0, 100)] * 5,
        service=[0, 0, 0, 0, 0],
        capacity=capacity,
        pairs=((1, 2), (3, 4)),
    )


def test_pdptw_precedence_and_same_route() -> None:
    inst = _pdptw()
    assert check(inst, VrpSolution(((1, 2, 3, 4),))).feasible
    res = check(inst, VrpSolution(((2, 1, 3, 4),)))
    assert res.violations == ("route 0: delivery 2 comes before its pickup 1",)
    res = check(_pdptw(capacity=12.0), VrpSolution(((1, 3, 4), (2,))))
    assert res.violations == ("pickup 1 is on route 0 but its delivery 2 is on route 1",)


def test_pdptw_capacity_at_every_point() -> None:
    inst = _pdptw(capacity=10.0)
    assert check(inst, VrpSolution(((1, 2, 3, 4),))).feasible  # never more than 6 on board
    res = check(inst, VrpSolution(((1, 3, 2, 4),)))  # 12 on board after the second pickup
    assert res.violations == ("route 0, stop 1: load 12 after task 3 > capacity 10",)
    assert check(_pdptw(capacity=12.0), VrpSolution(((1, 3, 2, 4),))).feasible


OPTIMA = [
    ("solomon/TINY08.txt", "solomon", ((7, 8, 4, 5), (3, 6, 2, 1)), 216.04296346276394),
    ("solomon/TINY10.txt", "solomon", ((8, 3, 4, 6), (2, 7), (1, 9, 10, 5)), 273.9517183110337),
    ("lilim/tiny5.txt", "lilim", ((9, 10), (8, 4, 3, 7), (1, 5, 6, 2)), 328.1195373195436),
]


@pytest.mark.parametrize(("path", "fmt", "routes", "distance"), OPTIMA)
def test_documented_optima_are_feasible(
    path: str, fmt: str, routes: tuple[tuple[int, ...], ...], distance: float
) -> None:
    inst = read_instance(DATA / path, fmt)
    res = check(inst, VrpSolution(routes))
    assert res.feasible, res.violations
    assert res.vehicles == len(routes)
    assert res.distance == pytest.approx(distance, rel=1e-12)


def test_optimum_reversed_route_breaks_windows() -> None:
    inst = read_instance(DATA / "solomon" / "TINY08.txt", "solomon")
    res = check(inst, VrpSolution(((5, 4, 8, 7), (3, 6, 2, 1))))
    assert not res.feasible
    assert all("after its due time" in v or "after the horizon" in v for v in res.violations)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 15), st.integers(0, 2**31 - 1))
def test_distance_and_vehicles_match_the_problem(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    xy = [(float(a), float(b)) for a, b in rng.uniform(-100, 100, (n + 1, 2))]
    inst = _inst(
        xy=xy,
        demand=[0.0] + [1.0] * n,
        windows=[(0.0, 1e9)] * (n + 1),
        service=[0.0, *rng.uniform(0, 10, n).tolist()],
        capacity=float(n),
        vehicles=n,
    )
    order = (rng.permutation(n) + 1).tolist()
    cuts = sorted(rng.choice(np.arange(1, n), size=int(rng.integers(0, n)), replace=False).tolist()) if n > 1 else []
    routes = tuple(tuple(order[a:b]) for a, b in zip([0, *cuts], [*cuts, n], strict=True))
    sol = VrpSolution(routes)
    res = check(inst, sol)
    # Wide windows, capacity for everything: any partition into routes is feasible.
    assert res.feasible, res.violations
    assert res.vehicles == sol.vehicles == len(routes)
    assert res.distance == pytest.approx(sol.distance(inst), rel=1e-12, abs=1e-9)
