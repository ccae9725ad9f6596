"""GetParams / UpdateParams: validation naming the field, field masks, versions, journaled across restarts."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from svc_fixtures import make_config, running

from dispatch.v1 import dispatch_pb2 as pb


def _update(stub, params: pb.Params, *paths: str) -> pb.UpdateParamsResponse:
    req = pb.UpdateParamsRequest(params=params)
    req.update_mask.paths.extend(paths)
    return stub.UpdateParams(req)


def test_update_with_mask_applies_from_next_tick_and_survives_restart(tmp_path: Path):
    cfg = make_config(tmp_path)
    with running(cfg, start_loop=False) as (srv, stub):
        start = stub.GetParams(pb.GetParamsRequest())
        assert start.version == 1
        assert start.params.dispatch.tick.ToMilliseconds() == 200
        p = pb.Params()
        p.dispatch.tick.FromMilliseconds(500)
        p.dispatch.max_orders_per_rider = 99  # not in the mask: ignored
        resp = _update(stub, p, "dispatch.tick")
        assert resp.version == 2
        assert resp.params.dispatch.tick.ToMilliseconds() == 500
        assert resp.params.dispatch.max_orders_per_rider == start.params.dispatch.max_orders_per_rider
        assert srv.store.params.tick_s == 0.5
        tiers = pb.Params()
        for minutes in (20, 40):
            tiers.promise.tiers.add().FromSeconds(minutes * 60)
        assert _update(stub, tiers, "promise.tiers").version == 3
    with running(cfg, start_loop=False) as (srv, stub):
        got = stub.GetParams(pb.GetParamsRequest())
        assert got.version == 3
        assert got.params.dispatch.tick.ToMilliseconds() == 500
        assert [t.seconds for t in got.params.promise.tiers] == [1200, 2400]


def _set(path: str, value: object):
    def f(p: pb.Params) -> None:
        *parents, name = path.split(".")
        msg = p
        for part in parents:
            msg = getattr(msg, part)
        setattr(msg, name, value)

    return f


@pytest.mark.parametrize(
    ("mutate", "paths", "field"),
    [
        (lambda p: p.dispatch.tick.FromSeconds(0), ["dispatch.tick"], "params.dispatch.tick"),
        (lambda p: p.dispatch.tick.FromSeconds(-3), ["dispatch.tick"], "params.dispatch.tick"),
        (
            _set("dispatch.max_orders_per_rider", 0),
            ["dispatch.max_orders_per_rider"],
            "params.dispatch.max_orders_per_rider",
        ),
        (
            _set("dispatch.cost_weights.per_metre", float("nan")),
            ["dispatch.cost_weights"],
            "params.dispatch.cost_weights.per_metre",
        ),
        (_set("dispatch.candidate_k", 0), ["dispatch.candidate_k"], "params.dispatch.candidate_k"),
        (_set("dispatch.trip_mode", 0), ["dispatch.trip_mode"], "params.dispatch.trip_mode"),
        (_set("dispatch.routing.trigger", 3), ["dispatch.routing.trigger"], "params.dispatch.routing.trigger"),
        (
            _set("promise.min_on_time_probability", 1.5),
            ["promise.min_on_time_probability"],
            "params.promise.min_on_time_probability",
        ),
        (lambda p: None, ["dispatch.nope"], "update_mask.paths[0]"),
        (lambda p: None, ["dispatch.max_orders_per_rider.x"], "update_mask.paths[0]"),
        (lambda p: None, [], "params.dispatch"),  # an empty mask replaces everything: an empty set is invalid
    ],
)
def test_invalid_updates_name_the_field_and_change_nothing(tmp_path: Path, mutate, paths, field):
    with running(make_config(tmp_path), start_loop=False) as (_srv, stub):
        before = stub.GetParams(pb.GetParamsRequest())
        p = pb.Params()
        mutate(p)
        with pytest.raises(grpc.RpcError) as ei:
            _update(stub, p, *paths)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ei.value.details().startswith(field), ei.value.details()
        assert stub.GetParams(pb.GetParamsRequest()) == before


def test_tiers_must_increase(tmp_path: Path):
    with running(make_config(tmp_path), start_loop=False) as (_srv, stub):
        p = pb.Params()
        for minutes in (40, 20):
            p.promise.tiers.add().FromSeconds(minutes * 60)
        with pytest.raises(grpc.RpcError) as ei:
            _update(stub, p, "promise.tiers")
        assert ei.value.details().startswith("params.promise.tiers")
