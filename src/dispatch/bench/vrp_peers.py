"""Benchmark peers for ``dispatch bench routing``: OR-Tools alone and PyVRP, on a ``VrpInstance``.

Both peers get integer data (solvers of this kind take integers): distances times ``SCALE`` (1000). Each
returns a ``VrpSolution``; the harness re-evaluates it in double precision with the independent checker, so a
peer's own integer objective is never reported.

- ``solve_ortools``: the classic VRPTW / PDPTW model of OR-Tools' routing library, nothing of ours in it: arc cost
  the rounded scaled distance; a time dimension whose transit is the service time at the origin plus the scaled
  distance rounded **up** (so that a schedule feasible in integers is feasible in double precision), windows on the
  start of service, waiting allowed, every route within the depot's window; a load dimension (Solomon: demands
  loaded at the depot; Li & Lim: + at a pickup, - at its delivery); pickup-and-delivery pairs on one vehicle,
  pickup first; a fixed cost per used vehicle larger than any possible total distance, so that vehicles come
  first (the literature's objective); first solution PARALLEL_CHEAPEST_INSERTION, then GUIDED_LOCAL_SEARCH until
  the time limit. (The dispatch core's OR-Tools adapter is ``dispatch.routing``; this is a benchmark peer, like
  the scipy peer of ``dispatch.bench.dense``.)
- ``solve_pyvrp``: PyVRP's hybrid genetic search through its Python ``Model`` API, the same scaled data and time
  limit, a fixed cost per vehicle as above. Li & Lim pairs are PyVRP shipments (0.14 and
  later). PyVRP is an optional extra (``pip install 'dispatch[bench]'``).
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from dispatch.vrp.problem import F64, I64, VrpInstance, VrpSolution

SCALE = 1000
PEERS = ("ortools", "pyvrp")


class PeerUnavailableError(RuntimeError):
    """A peer that cannot run here (not installed) or cannot model the instance."""


def _scaled(inst: VrpInstance) -> tuple[I64, I64, int]:
    """(cost matrix, travel-time matrix, fixed cost per vehicle): int64 of shape (n + 1, n + 1), the distances
    times ``SCALE`` rounded to nearest (cost) and up (time); the fixed cost exceeds any total of arc costs."""
    d: F64 = inst.dist * SCALE
    cost = np.rint(d).astype(np.int64)
    travel = np.ceil(d - 1e-9).astype(np.int64)
    np.fill_diagonal(travel, 0)
    fixed = int(cost.max(axis=1).sum()) + 1  # every node left once at most: no route set costs more
    return cost, travel, fixed


def _windows(inst: VrpInstance) -> tuple[list[int], list[int], list[int]]:
    """Scaled integer (ready, due, service) per node; ready rounded up and due down, never widening a window."""
    ready = [math.ceil(float(v) * SCALE - 1e-9) for v in inst.ready]
    due = [math.floor(float(v) * SCALE + 1e-9) for v in inst.due]
    service = [math.ceil(float(v) * SCALE - 1e-9) for v in inst.service]
    return ready, due, service


def _demands(inst: VrpInstance) -> tuple[list[int], int]:
    """Scaled integer demands (signed as in the file) and capacity."""
    dem = [round(float(v) * SCALE) for v in inst.demand]
    return dem, round(float(inst.capacity) * SCALE)


def solve_ortools(inst: VrpInstance, time_limit_s: float, seed: int = 0) -> VrpSolution:
    """OR-Tools alone on ``inst`` within ``time_limit_s`` of search; an empty solution when it finds none.

    ``seed`` is unused: OR-Tools' routing search is deterministic for a given time budget and machine load."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    del seed
    n1 = inst.n + 1
    k = inst.n_vehicles
    cost, travel, fixed = _scaled(inst)
    ready, due, service = _windows(inst)
    demand, capacity = _demands(inst)
    horizon = due[0]

    manager = pywrapcp.RoutingIndexManager(n1, k, 0)
    routing = pywrapcp.RoutingModel(manager)
    cost_cb = routing.RegisterTransitMatrix(cost.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(cost_cb)
    routing.SetFixedCostOfAllVehicles(fixed)

    time_mat = travel + np.asarray(service, dtype=np.int64)[:, None]
    np.fill_diagonal(time_mat, 0)
    time_cb = routing.RegisterTransitMatrix(time_mat.tolist())
    routing.AddDimension(time_cb, horizon, horizon, False, "time")
    tdim = routing.GetDimensionOrDie("time")
    for node in range(1, n1):
        tdim.CumulVar(manager.NodeToIndex(node)).SetRange(ready[node], due[node])
    for v in range(k):
        tdim.CumulVar(routing.Start(v)).SetRange(ready[0], due[0])
        tdim.CumulVar(routing.End(v)).SetRange(ready[0], due[0])

    pd = inst.is_pdptw
    # A VRPTW: the load of a route is the sum of its demands, all loaded at the depot.
    load = demand if pd else [abs(v) for v in demand]
    load_cb = routing.RegisterUnaryTransitVector(load)
    routing.AddDimensionWithVehicleCapacity(load_cb, 0, [capacity] * k, True, "load")

    if pd:
        solver = routing.solver()
        for p in range(1, n1):
            d = int(inst.delivery[p])
            if d < 0:
                continue
            pi, di = manager.NodeToIndex(p), manager.NodeToIndex(d)
            routing.AddPickupAndDelivery(pi, di)
            solver.Add(routing.VehicleVar(pi) == routing.VehicleVar(di))
            solver.Add(tdim.CumulVar(pi) <= tdim.CumulVar(di))

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(max(1, round(time_limit_s * 1000)))
    assignment = routing.SolveWithParameters(params)
    if assignment is None:
        return VrpSolution(())
    routes: list[tuple[int, ...]] = []
    for v in range(k):
        idx = routing.Start(v)
        route: list[int] = []
        idx = assignment.Value(routing.NextVar(idx))
        while not routing.IsEnd(idx):
            route.append(int(manager.IndexToNode(idx)))
            idx = assignment.Value(routing.NextVar(idx))
        if route:
            routes.append(tuple(route))
    return VrpSolution(tuple(routes))


def _import_pyvrp() -> Any:
    # Imported by name: PyVRP is an optional extra, so type checking must not need it installed.
    try:
        pyvrp = importlib.import_module("pyvrp")
        importlib.import_module("pyvrp.stop")
    except ImportError:
        raise PeerUnavailableError(
            "the pyvrp peer needs PyVRP, an optional extra: pip install 'dispatch[bench]'"
        ) from None
    return pyvrp


def solve_pyvrp(inst: VrpInstance, time_limit_s: float, seed: int = 0) -> VrpSolution:
    """PyVRP on ``inst`` within ``time_limit_s``: a VRPTW customer is a PyVRP client (a delivery from the
    depot), a PDPTW pickup-delivery pair a PyVRP shipment (one vehicle, pickup first). An empty solution when
    PyVRP ends without a feasible one; ``PeerUnavailableError`` when PyVRP is not installed."""
    pyvrp = _import_pyvrp()

    n1 = inst.n + 1
    cost, travel, fixed = _scaled(inst)
    ready, due, service = _windows(inst)
    demand, capacity = _demands(inst)

    m = pyvrp.Model()
    m.add_vehicle_type(
        num_available=inst.n_vehicles, capacity=capacity, fixed_cost=fixed, tw_early=ready[0], tw_late=due[0]
    )
    locs = [m.add_location(x=float(inst.x[i]), y=float(inst.y[i])) for i in range(n1)]
    m.add_depot(locs[0], tw_early=ready[0], tw_late=due[0])
    client_node: list[int] = []  # PyVRP client index -> our node
    pickup_node: list[int] = []  # PyVRP shipment index -> our pickup node
    for i in range(1, n1):
        p, d = int(inst.pickup[i]), int(inst.delivery[i])
        if d >= 0:
            m.add_shipment(
                locs[i],
                locs[d],
                pickup_tw_early=ready[i],
                pickup_tw_late=due[i],
                pickup_service_duration=service[i],
                delivery_tw_early=ready[d],
                delivery_tw_late=due[d],
                delivery_service_duration=service[d],
                amount=demand[i],
            )
            pickup_node.append(i)
        elif p < 0:
            m.add_client(
                locs[i], delivery=abs(demand[i]), service_duration=service[i], tw_early=ready[i], tw_late=due[i]
            )
            client_node.append(i)
    for i in range(n1):
        for j in range(n1):
            if i != j:
                m.add_edge(locs[i], locs[j], distance=int(cost[i, j]), duration=int(travel[i, j]))
    res = m.solve(stop=pyvrp.stop.MaxRuntime(time_limit_s), seed=seed, display=False)
    if not res.best.is_feasible():
        return VrpSolution(())
    routes: list[tuple[int, ...]] = []
    for r in res.best.routes():
        route: list[int] = []
        for a in r.schedule():
            if a.is_client():
                route.append(client_node[a.idx])
            elif a.is_pickup():
                route.append(pickup_node[a.idx])
            elif a.is_delivery():
                route.append(int(inst.delivery[pickup_node[a.idx]]))
        if route:
            routes.append(tuple(route))
    return VrpSolution(tuple(routes))


def peer_solver(name: str) -> Any:
    """The solve function of peer ``name`` (``ortools`` or ``pyvrp``)."""
    if name == "ortools":
        return solve_ortools
    if name == "pyvrp":
        _import_pyvrp()
        return solve_pyvrp
    raise ValueError(f"unknown peer {name!r}: expected one of {', '.join(PEERS)}")
