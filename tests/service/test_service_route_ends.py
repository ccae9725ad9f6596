"""The route ends that the policy worker sends with a tick's result: the same numbers the promise engine would
compute itself in the server's process, and the same summary for quotes."""

from __future__ import annotations

import numpy as np

from dispatch.kernels.route import MIXED, evaluate_routes
from dispatch.policy import DispatchParams, make_policy
from dispatch.promise import PromiseEngine, PromiseSites
from dispatch.promise_params import PromiseParams
from dispatch.service.worker import PolicyProcess, route_ends
from dispatch.synthetic import NOW, CitySpec, city_snapshot
from dispatch.zones import disc_zones

SPEC = CitySpec(n_orders=60, n_riders=300, n_sites=5, busy_share=0.3, seed=11)


def test_route_ends_are_the_evaluation_of_every_route():
    params = DispatchParams(hold_s=0.0)
    snap = city_snapshot(SPEC)
    res = make_policy("kernel", params).tick(snap, NOW)
    ends = route_ends(snap, res.routes, params.weights)
    full = evaluate_routes(
        snap.orders.as_tuple(), snap.riders.as_tuple(), res.routes.as_tuple(), snap.travel, params.weights, MIXED
    )[1][0]
    busy = res.routes.length > 0
    assert busy.any() and not busy.all()
    np.testing.assert_array_equal(ends[busy], full[busy])
    assert np.isnan(ends[~busy]).all()


def test_the_worker_sends_route_ends_that_give_the_same_quote_summary():
    params = DispatchParams(hold_s=0.0)
    worker = PolicyProcess()
    try:
        res, ends = worker.tick_ends("kernel", params, city_snapshot(SPEC), NOW)
    finally:
        worker.close()
    snap = city_snapshot(SPEC)
    n = SPEC.n_sites
    # The sites' positions as the orders give them (a pickup is at its site).
    x = np.zeros(n)
    y = np.zeros(n)
    x[snap.orders.site], y[snap.orders.site] = snap.orders.pick_x, snap.orders.pick_y
    sites = PromiseSites.build([str(i) for i in range(n)], x.tolist(), y.tolist(), [120.0] * n)
    zones = disc_zones(x.tolist(), y.tolist(), [SPEC.zone_m] * n)
    left = res.unassigned_order

    def summary(route_end):
        engine = PromiseEngine(sites, zones, snap.travel, PromiseParams())
        return engine.update(snap.orders, snap.riders, res.routes, NOW, pending=left, route_end=route_end)

    own, given = summary(None), summary(ends)
    assert given.free_at.size > 0
    for name in ("free_ptr", "free_at", "waiting", "max_capacity"):
        np.testing.assert_array_equal(getattr(given, name), getattr(own, name), err_msg=name)


def test_promise_warm_up_leaves_the_servers_engine_as_it_was(tmp_path):
    from svc_fixtures import make_config, running

    from dispatch.service.server import warm_promise

    with running(make_config(tmp_path), start_loop=False) as (srv, _stub):
        engine = srv.servicer.promise
        assert engine is not None
        before = engine.summary
        assert warm_promise(srv.store) > 0.0
        assert engine.summary is before
