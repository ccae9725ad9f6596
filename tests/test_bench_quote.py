"""``dispatch bench quote``: the record on a tiny scenario, and the command's errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatch.bench.quote import run
from dispatch.cli import main

TINY = """
name = "tiny"
seed = 3
[sites]
zone_m = 2500
[[sites.list]]
id = 1
lat = 31.2317
lng = 121.4726
city = "Shanghai"
[[sites.list]]
id = 2
lat = 31.2286
lng = 121.4484
city = "Shanghai"
[fleet]
riders_per_site = 6
[demand]
orders_per_day = 1500
promise_min = 60
[promise]
quote = true
tiers_min = [30, 45, 60]
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("bq") / "tiny.toml"
    p.write_text(TINY)
    return p


def test_record_counts_add_up_and_peer_agrees(tiny: Path) -> None:
    rec = run(tiny, quotes=60, seed=1, warmup_min=10.0)
    assert rec["scenario"] == "tiny" and rec["sites"] == 2 and rec["quotes"] == 60
    assert rec["offered"] + sum(rec["declined"].values()) == 60
    assert 0 <= rec["deferred"] <= rec["offered"]
    assert rec["offered"] > 0 and rec["declined"].get("outside_every_zone", 0) > 0  # 10% of addresses anywhere
    assert rec["same_answers"] is True  # the naive peer finds the same sites
    assert 0 < rec["quote_ms_p50"] <= rec["quote_ms_p99"] <= rec["quote_ms_max"]
    assert rec["riders_online"] > 0 and rec["orders_in_state"] > 0


def test_cli_json_and_errors(tiny: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["bench", "quote", str(tiny), "--quotes", "20", "--warmup-min", "5", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert {"quote_ms_p50", "quote_ms_p99", "naive_ms_p99", "ratio_p99", "quote_cpu_ms_p99"} <= set(rec)
    assert main(["bench", "quote", str(tmp_path / "missing.toml"), "--json"]) == 2
    assert "no such scenario file" in capsys.readouterr().err
    assert main(["bench", "quote", str(tiny), "--quotes", "0"]) == 2
    assert "quotes" in capsys.readouterr().err
