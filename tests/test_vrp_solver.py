"""Our benchmark solver: optimal on instances small enough to enumerate, always feasible by the independent
checker, pickups and deliveries kept together, bad input refused in words. Runs are a fraction of a second."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest

from dispatch.vrp.checker import check
from dispatch.vrp.problem import VrpInstance, VrpSolution
from dispatch.vrp.readers import read_lilim, read_solomon
from dispatch.vrp.solver import SolverParams, solve

DATA = Path(__file__).parent / "data" / "vrp"


def _bks() -> dict[str, tuple[int, float]]:
    with open(DATA / "bks_tiny.csv") as fh:
        return {r["instance"]: (int(r["vehicles"]), float(r["distance"])) for r in csv.DictReader(fh)}


def _random_vrptw(seed: int, n: int, pdp: bool = False, vehicles: int | None = None) -> VrpInstance:
    g = np.random.default_rng(seed)
    x = g.uniform(0, 100, n + 1)
    y = g.uniform(0, 100, n + 1)
    ready = g.uniform(0, 300, n + 1)
    due = ready + g.uniform(30, 300, n + 1)
    ready[0], due[0] = 0.0, 1000.0
    due = np.maximum(due, np.hypot(x - x[0], y - y[0]) + 1.0)  # every task reachable in time
    service = np.full(n + 1, 10.0)
    service[0] = 0.0
    demand = g.integers(1, 20, n + 1).astype(np.float64)
    demand[0] = 0.0
    pickup = np.full(n + 1, -1, dtype=np.int64)
    delivery = np.full(n + 1, -1, dtype=np.int64)
    if pdp:
        for p in range(1, n, 2):
            delivery[p], pickup[p + 1] = p + 1, p
            demand[p + 1] = -demand[p]
            due[p + 1] = max(due[p + 1], ready[p] + 150.0)
    return VrpInstance(
        name=f"rand{seed}",
        n_vehicles=vehicles or n,
        capacity=40.0,
        x=x,
        y=y,
        demand=demand,
        ready=ready,
        due=due,
        service=service,
        pickup=pickup,
        delivery=delivery,
    )


def _route_ok(inst: VrpInstance, route: tuple[int, ...]) -> bool:
    t, q, prev = 0.0, 0.0, 0
    for v in (*route, 0):
        t = max(float(inst.ready[v]), t + float(inst.service[prev]) + float(inst.dist[prev, v]))
        if t > inst.due[v]:
            return False
        q += float(inst.demand[v])
        prev = v
    return q <= inst.capacity


def _brute_force(inst: VrpInstance) -> tuple[int, float]:
    """(vehicles, distance) optimum of a VRPTW by enumerating every set of tasks and every order of each."""
    n = inst.n
    best_route: dict[int, float] = {}
    for mask in range(1, 1 << n):
        tasks = [v + 1 for v in range(n) if mask >> v & 1]
        best = np.inf
        for perm in itertools.permutations(tasks):
            if _route_ok(inst, perm):
                best = min(best, VrpSolution((perm,)).distance(inst))
        if best < np.inf:
            best_route[mask] = best
    full = (1 << n) - 1
    opt: dict[int, tuple[int, float]] = {0: (0, 0.0)}
    for mask in range(1, full + 1):
        low = mask & -mask  # the route holding the lowest task
        cand = (n + 1, np.inf)
        sub = mask
        while sub:
            if sub & low and sub in best_route:
                v, d = opt[mask ^ sub]
                cand = min(cand, (v + 1, d + best_route[sub]))
            sub = (sub - 1) & mask
        opt[mask] = cand
    return opt[full]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_finds_the_enumerated_optimum_of_tiny_instances(seed: int) -> None:
    inst = _random_vrptw(seed, 7)
    want_v, want_d = _brute_force(inst)
    sol = solve(inst, 0.3, seed=0)
    res = check(inst, sol)
    assert res.feasible, res.violations
    assert sol.vehicles == want_v
    assert sol.distance(inst) == pytest.approx(want_d, abs=1e-6)


@pytest.mark.parametrize("name", ["TINY08", "TINY10", "tiny5"])
def test_finds_the_published_optimum_of_the_test_data(name: str) -> None:
    path = DATA / ("lilim" if name.islower() else "solomon") / f"{name}.txt"
    inst = read_lilim(path) if name.islower() else read_solomon(path)
    sol = solve(inst, 0.3, seed=1)
    res = check(inst, sol)
    assert res.feasible, res.violations
    want_v, want_d = _bks()[name]
    assert sol.vehicles == want_v
    assert sol.distance(inst) == pytest.approx(want_d, abs=0.01)


@pytest.mark.parametrize("seed", [4, 5])
def test_pdptw_solutions_keep_pairs_on_one_route_pickup_first(seed: int) -> None:
    inst = _random_vrptw(seed, 30, pdp=True)
    sol = solve(inst, 0.3, seed=seed)
    res = check(inst, sol)
    assert res.feasible, res.violations
    for route in sol.routes:
        pos = {v: k for k, v in enumerate(route)}
        for v in route:
            if inst.delivery[v] >= 0:
                assert pos[int(inst.delivery[v])] > pos[v]
            if inst.pickup[v] >= 0:
                assert pos[int(inst.pickup[v])] < pos[v]


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_larger_vrptw_solutions_are_feasible_and_no_worse_than_one_route_each(seed: int) -> None:
    inst = _random_vrptw(seed, 60)
    sol = solve(inst, 0.3, seed=seed)
    res = check(inst, sol)
    assert res.feasible, res.violations
    assert sorted(v for r in sol.routes for v in r) == list(range(1, inst.n + 1))
    solo = VrpSolution(tuple((v,) for v in range(1, inst.n + 1)))
    assert sol.vehicles < solo.vehicles and sol.distance(inst) < solo.distance(inst)


def test_too_few_vehicles_returns_the_best_found_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    inst = _random_vrptw(9, 20, vehicles=1)
    with caplog.at_level("WARNING", logger="dispatch.vrp.solver"):
        sol = solve(inst, 0.2)
    assert sol.vehicles > 1
    assert any("no solution with <= 1 routes" in r.getMessage() for r in caplog.records)
    assert check(inst, sol).violations == (f"{sol.vehicles} routes, more than the 1 vehicles available",)


def test_same_seed_same_answer_when_the_clock_does_not_cut() -> None:
    # a time limit of 0 stops after the construction, which depends on the seed only
    inst = _random_vrptw(11, 40)
    a, b = solve(inst, 0.0, seed=3), solve(inst, 0.0, seed=3)
    assert a == b and check(inst, a).feasible


def test_bad_input_is_refused_in_words() -> None:
    inst = _random_vrptw(1, 5)
    with pytest.raises(ValueError, match="time_limit_s"):
        solve(inst, -1.0)
    with pytest.raises(ValueError, match="fleet_share must be"):
        SolverParams(fleet_share=2.0)
    with pytest.raises(ValueError, match="restarts must be"):
        SolverParams(restarts=0)
    broken = _random_vrptw(1, 4, pdp=True)
    broken.delivery[1] = 3  # node 3 is a pickup whose own delivery is 4
    with pytest.raises(ValueError, match="does not point back"):
        solve(broken, 0.1)
    lonely = _random_vrptw(2, 4)
    lonely.ready[2], lonely.due[2] = 5000.0, 5001.0  # after the depot closes
    with pytest.raises(ValueError, match="cannot be served"):
        solve(lonely, 0.1)
