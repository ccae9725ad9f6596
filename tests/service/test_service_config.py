"""Configuration errors name the key; site sources; the ``dispatch serve`` command line; metrics; Quote."""

from __future__ import annotations

import math
import urllib.request
from pathlib import Path

import grpc
import pytest
from svc_fixtures import config_data, make_config, online, order, report, running, wait_for

from dispatch.cli import main
from dispatch.service.config import ConfigError, parse_config
from dispatch.v1 import dispatch_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bogus": 1}, "bogus"),
        ({"limits": {"workers": 0}}, "limits.workers"),
        ({"limits": {"nope": 3}}, "limits.nope"),
        ({"sites": {"list": [{"id": "a", "lat": 100.0, "lng": 0.0}]}}, "sites.list[0].lat"),
        ({"sites": {"list": [{"id": "a", "lat": 1.0}]}}, "sites.list[0]"),
        ({"sites": {"list": [], "scenario": "x.toml"}}, "sites"),
        ({"sites": {"list": [{"id": "a", "lat": 1.0, "lng": 2.0}], "owned": ["zz"]}}, "sites.owned"),
        ({"dispatch": {"tick_s": -1.0}}, "dispatch.tick_s"),
        ({"dispatch": {"nonsense": 1}}, "dispatch.nonsense"),
        ({"auth": {"tokens": [{"token": "t", "roles": ["admin"]}]}}, "auth.tokens[0].roles"),
        (
            {"auth": {"tokens": [{"token_env": "DISPATCH_TEST_UNSET_VAR", "roles": ["ops"]}]}},
            "auth.tokens[0].token_env",
        ),
        ({"journal_sync": "sometimes"}, "journal_sync"),
        ({"policy": "magic"}, "policy"),
        ({"metrics_port": -1}, "metrics_port"),
        ({"policy_nice": 20}, "policy_nice"),
        ({"policy_nice": -1}, "policy_nice"),
        ({"policy_nice": "low"}, "policy_nice"),
        ({"tick_pause_ms": -1.0}, "tick_pause_ms"),
        ({"tick_pause_ms": 500.0}, "tick_pause_ms"),
        ({"grpc_server": "fast"}, "grpc_server"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, changes, field):
    with pytest.raises(ConfigError) as ei:
        parse_config(config_data(tmp_path, **changes), tmp_path)
    assert ei.value.field == field, str(ei.value)


def test_sites_from_a_scenario(tmp_path: Path):
    data = config_data(tmp_path, sites={"scenario": str(ROOT / "simulations" / "demo.toml"), "owned": ["1", "2"]})
    del data["dispatch"]
    cfg = parse_config(data, tmp_path)
    assert [s.id for s in cfg.sites] == ["1", "2", "3", "4", "5"]
    assert cfg.owned_ids == {"1", "2"}
    assert cfg.dispatch.tick_s == 15.0  # the scenario's [dispatch]
    assert all(30.0 < s.lat < 32.0 for s in cfg.sites)


def test_serve_cli_reports_a_bad_config_in_one_line(tmp_path: Path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'listen = "127.0.0.1:0"\ninsecure = true\n[sites]\nlist = []\n[limits]\nworkers = 0\n', encoding="utf-8"
    )
    assert main(["serve", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "limits.workers" in err and "Traceback" not in err
    wide = tmp_path / "wide.toml"
    wide.write_text('[sites]\nlist = [{ id = "a", lat = 31.2, lng = 121.4 }]\n', encoding="utf-8")
    assert main(["serve", "--config", str(wide), "--insecure", "--listen", "0.0.0.0:0"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_metrics_endpoint(tmp_path: Path):
    with running(make_config(tmp_path, metrics_port=0)) as (srv, stub):
        stub.SubmitOrder(pb.SubmitOrderRequest(order=order("m-1")))
        wait_for(lambda: srv.store.ticks >= 2)
        body = urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10).read().decode()
        assert "dispatch_tick_seconds_count" in body
        assert 'dispatch_orders{state="pending"} 1.0' in body
        assert 'dispatch_requests_total{code="OK",method="SubmitOrder"} 1.0' in body


def test_quote(tmp_path: Path):
    with running(make_config(tmp_path)) as (srv, stub):
        report(stub, *(online(f"r{i}", lat=31.2317 + 0.001 * i) for i in range(5)))
        wait_for(lambda: srv.store.ticks >= 2)
        req = pb.QuoteRequest(size=1)
        req.address.lat, req.address.lng = 31.2400, 121.4800
        q = stub.Quote(req)
        # About 1 km from the sites, with riders online there: covered, so options (this caught zones and
        # addresses projected in different frames, which declined every address as outside every zone).
        assert q.options and q.decline_reason == pb.QUOTE_DECLINE_REASON_UNSPECIFIED, q
        for opt in q.options:
            assert opt.site_id in ("s1", "s2")
            assert opt.promised_by.ToSeconds() >= opt.estimated_delivery.ToSeconds() - 1
        far = pb.QuoteRequest(size=1)
        far.address.lat, far.address.lng = 10.0, 10.0
        assert stub.Quote(far).decline_reason == pb.QUOTE_DECLINE_REASON_OUTSIDE_EVERY_ZONE
        for bad, code, field in [
            (pb.QuoteRequest(size=1), grpc.StatusCode.INVALID_ARGUMENT, "address"),
            (
                pb.QuoteRequest(size=1, address=pb.LatLng(lat=math.nan, lng=1.0)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "address.lat",
            ),
            (pb.QuoteRequest(size=0, address=req.address), grpc.StatusCode.INVALID_ARGUMENT, "size"),
            (pb.QuoteRequest(size=1, address=req.address, site_id="zz"), grpc.StatusCode.NOT_FOUND, "site_id"),
        ]:
            with pytest.raises(grpc.RpcError) as ei:
                stub.Quote(bad)
            assert ei.value.code() == code
            assert ei.value.details().startswith(field + ":")


def test_shipped_demo_config_loads():
    from dispatch.service.config import load_config

    cfg = load_config(ROOT / "simulations" / "service" / "demo.toml")
    assert cfg.insecure and cfg.listen == "127.0.0.1:50051"
    assert [s.id for s in cfg.sites] == ["1", "2", "3", "4", "5"]
    assert Path(cfg.journal).resolve() == (ROOT / "out" / "serve_demo.journal").resolve()
    assert cfg.dispatch.tick_s == 5.0 and cfg.dispatch.hold_s == 0.0
