"""Tests for dispatch.sim.sweep: the sweep file (errors name the field), grid and random points, fleet scaling,
the Pareto front, and a whole sweep on a tiny log through the ``dispatch sweep`` command."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from daylogs import tiny_log as _tiny

from dispatch.cli import main
from dispatch.sim.log import OrderLog, RiderColumns, write_log
from dispatch.sim.sweep import (
    SweepError,
    answer,
    expand,
    load_sweep,
    param_settings,
    pareto_front,
    parse_sweep,
    run_sweep,
    scale_fleet,
)


def tiny_log(seed: int = 0, n_sites: int = 3, n: int = 240, m: int = 23) -> OrderLog:
    """A small day (tests/sim/daylogs.py): ``m`` riders over ``n_sites`` sites (uneven counts), 40-min promises."""
    return _tiny(seed, n_sites, n, m, promise_s=2400.0, varied_riders=True)


def _sweep_dir(tmp_path: Path, text: str) -> Path:
    (tmp_path / "s.toml").write_text("seed = 1\n")  # only its existence is checked when the sweep is parsed
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------------------------
# The sweep file
# --------------------------------------------------------------------------------------------------------------

BAD = [
    ('scenario = "s.toml"\nmodes = "grid"\n', "modes", "did you mean 'mode'"),
    ('mode = "grid"\n', "scenario", "exactly one of"),
    ('scenario = "s.toml"\nlog = "."\n', "scenario", "exactly one of"),
    ('scenario = "missing.toml"\n', "scenario", "no such file"),
    ('log = "nowhere"\n', "log", "no such directory"),
    ('scenario = "s.toml"\npolicy = "fast"\n', "policy", "must be one of"),
    ('scenario = "s.toml"\npolicy = ["kernel", "nope"]\n', "policy[1]", "must be one of"),
    ('scenario = "s.toml"\nmode = "best"\n', "mode", "must be one of"),
    ('scenario = "s.toml"\nmode = "random"\n[params]\nhold_s = [0, 30]\n', "samples", "required"),
    ('scenario = "s.toml"\nsamples = 3\n', "samples", 'only with mode = "random"'),
    ('scenario = "s.toml"\nmode = "random"\nsamples = 2\n', "params", "at least one parameter"),
    ('scenario = "s.toml"\ntarget_on_time = 1.5\n', "target_on_time", "<= 1"),
    ('scenario = "s.toml"\nworkers = 0\n', "workers", ">= 1"),
    ('scenario = "s.toml"\nseed = -1\n', "seed", ">= 0"),
    ('scenario = "s.toml"\n[fleet]\nscale = [0.5, -1]\n', "fleet.scale[1]", "> 0"),
    ('scenario = "s.toml"\n[fleet]\nscale = [0.5, 0.5]\n', "fleet.scale[1]", "listed twice"),
    ('scenario = "s.toml"\n[fleet]\nscale = []\n', "fleet.scale", "empty"),
    ('scenario = "s.toml"\n[fleet]\nscales = [1.0]\n', "fleet.scales", "unknown key"),
    ('scenario = "s.toml"\n[params]\nhold = [0]\n', "params.hold", "did you mean 'hold_s'"),
    ('scenario = "s.toml"\n[params]\nhold_s = [0, -5]\n', "params.hold_s[1]", ">= 0"),
    ('scenario = "s.toml"\n[params]\nmax_orders_per_rider = [2.5]\n', "params.max_orders_per_rider[0]", "integer"),
    ('scenario = "s.toml"\n[params]\ntrip_mode = ["diagonal"]\n', "params.trip_mode[0]", "must be one of"),
    ('scenario = "s.toml"\n[params]\nhold_s = []\n', "params.hold_s", "empty"),
    ('scenario = "s.toml"\n[params]\nhold_s = {low = 0, high = 9}\n', "params.hold_s", 'only with mode = "random"'),
    ('scenario = "s.toml"\nmode = "random"\nsamples = 2\n[params]\nhold_s = {low = 9, high = 1}\n', "params.hold_s",
     "high must be >= low"),
    ('scenario = "s.toml"\nmode = "random"\nsamples = 2\n[params]\nhold_s = {low = -9, high = 1}\n',
     "params.hold_s.low", ">= 0"),
    ('scenario = "s.toml"\nmode = "random"\nsamples = 2\n[params]\nhold_s = {low = 0}\n', "params.hold_s.high",
     "required"),
    ('scenario = "s.toml"\nmode = "random"\nsamples = 2\n[params]\ncandidate_k = {low = 2, high = 7.5}\n',
     "params.candidate_k.high", "integer"),
    ('scenario = "s.toml"\nmode = "random"\nsamples = 2\n[params]\ntrip_mode = {low = 0, high = 1}\n',
     "params.trip_mode", "list of choices"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "field", "message"), BAD)
def test_bad_sweep_files_name_the_field(tmp_path: Path, text: str, field: str, message: str) -> None:
    path = _sweep_dir(tmp_path, text)
    with pytest.raises(SweepError) as info:
        load_sweep(path)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert message in str(info.value)


def test_not_toml_names_the_file(tmp_path: Path) -> None:
    path = _sweep_dir(tmp_path, "scenario = \n")
    with pytest.raises(SweepError, match=r"sweep\.toml: not valid TOML"):
        load_sweep(path)


def test_command_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _sweep_dir(tmp_path, 'scenario = "s.toml"\n[params]\nhold_s = [0, -5]\n')
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "dispatch sweep: params.hold_s[1]: must be a finite number >= 0, got -5" in err


def test_defaults_and_paths(tmp_path: Path) -> None:
    sw = load_sweep(_sweep_dir(tmp_path, 'scenario = "s.toml"\n'))
    assert sw.source == tmp_path / "s.toml" and sw.source_kind == "scenario"
    assert sw.policies is None and sw.mode == "grid" and sw.scales == (1.0,) and sw.axes == ()
    assert sw.target_on_time == 0.95 and sw.workers is None and sw.seed == 0
    pts = expand(sw, "greedy")
    assert len(pts) == 1 and pts[0].policy == "greedy" and pts[0].params == ()


def test_grid_expansion(tmp_path: Path) -> None:
    sw = parse_sweep(
        {
            "scenario": "s.toml",
            "policy": ["kernel", "greedy"],
            "fleet": {"scale": [0.5, 1.0, 1.5]},
            "params": {"hold_s": [0, 30], "max_orders_per_rider": [3, 4, 5]},
        },
        _sweep_dir(tmp_path, "").parent,
    )
    pts = expand(sw)
    assert len(pts) == 2 * 3 * 2 * 3
    assert [p.index for p in pts] == list(range(36))
    combos = {(p.policy, p.fleet_scale, p.params) for p in pts}
    assert len(combos) == 36
    assert pts[0].policy == "kernel" and pts[0].fleet_scale == 0.5
    assert pts[0].params == (("hold_s", 0.0), ("max_orders_per_rider", 3))
    assert isinstance(pts[0].params[0][1], float)  # TOML 0 for a float field
    assert [p.fleet_scale for p in pts[:3]] == [0.5, 1.0, 1.5]  # scale fastest
    assert pts[3].params == (("hold_s", 0.0), ("max_orders_per_rider", 4))
    assert pts[18].policy == "greedy"
    values = {p.params for p in pts}
    assert values == {(("hold_s", h), ("max_orders_per_rider", k)) for h in (0.0, 30.0) for k in (3, 4, 5)}


def test_random_sampling_is_seeded_and_within_bounds(tmp_path: Path) -> None:
    base = _sweep_dir(tmp_path, "").parent

    def sweep(seed: int) -> list[tuple[tuple[str, object], ...]]:
        doc = {
            "scenario": "s.toml",
            "mode": "random",
            "samples": 40,
            "seed": seed,
            "params": {
                "hold_s": {"low": 5, "high": 45.5},
                "max_orders_per_rider": {"low": 2, "high": 4},
                "trip_mode": ["single_site", "mixed"],
            },
        }
        return param_settings(parse_sweep(doc, base))

    a, b, c = sweep(7), sweep(7), sweep(8)
    assert a == b and a != c and len(a) == 40
    for setting in a:
        d = dict(setting)
        assert list(d) == ["hold_s", "max_orders_per_rider", "trip_mode"]
        assert isinstance(d["hold_s"], float) and 5.0 <= d["hold_s"] <= 45.5
        assert isinstance(d["max_orders_per_rider"], int) and 2 <= d["max_orders_per_rider"] <= 4
        assert d["trip_mode"] in ("single_site", "mixed")
    assert {dict(s)["max_orders_per_rider"] for s in a} == {2, 3, 4}
    assert {dict(s)["trip_mode"] for s in a} == {"single_site", "mixed"}
    assert len({dict(s)["hold_s"] for s in a}) == 40


# --------------------------------------------------------------------------------------------------------------
# Fleet scale
# --------------------------------------------------------------------------------------------------------------


def _per_site(log: OrderLog) -> dict[int, int]:
    ids, counts = np.unique(log.riders.site_id, return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist(), strict=True))


def _shift_key(r: RiderColumns, i: int) -> tuple[float, ...]:
    return (int(r.site_id[i]), float(r.start_x[i]), float(r.start_y[i]), float(r.shift_start[i]),
            float(r.shift_end[i]), int(r.capacity[i]), float(r.speed_factor[i]))  # fmt: skip


def test_scale_fleet_counts_per_site_and_unique_ids() -> None:
    log = tiny_log(m=23)  # 8, 8 and 7 riders at the three sites
    before = _per_site(log)
    assert sorted(before.values()) == [7, 8, 8]
    for scale in (0.2, 0.5, 0.75, 1.3, 2.0, 2.6):
        out = scale_fleet(log, scale, seed=3)
        want = {s: math.floor(scale * c + 0.5 + 1e-9) for s, c in before.items()}
        assert _per_site(out) == {s: c for s, c in want.items() if c > 0}
        assert np.unique(out.riders.rider_id).shape[0] == len(out.riders)
        assert out.orders is log.orders and out.sites is log.sites
    half = scale_fleet(log, 0.5, seed=3)  # halves round up: 8 -> 4, 7 -> 4 (3.5)
    assert sorted(_per_site(half).values()) == [4, 4, 4]


def test_scale_fleet_is_deterministic_nested_and_copies_shifts() -> None:
    log = tiny_log(m=23)
    assert scale_fleet(log, 1.0, seed=5) is log
    a, b = scale_fleet(log, 0.6, seed=5), scale_fleet(log, 0.6, seed=5)
    np.testing.assert_array_equal(a.riders.rider_id, b.riders.rider_id)
    assert not np.array_equal(a.riders.rider_id, scale_fleet(log, 0.6, seed=6).riders.rider_id)
    # A smaller fleet is a subset of a larger one (same seed), kept in the log's row order.
    small, big = set(scale_fleet(log, 0.3, 5).riders.rider_id.tolist()), set(a.riders.rider_id.tolist())
    assert small < big <= set(log.riders.rider_id.tolist())
    pos = {rid: i for i, rid in enumerate(log.riders.rider_id.tolist())}
    kept = [pos[rid] for rid in a.riders.rider_id.tolist()]
    assert kept == sorted(kept)
    # Above 1: every original shift plus copies of them with new ids above the old ones.
    up = scale_fleet(log, 1.8, seed=5)
    assert np.array_equal(up.riders.rider_id[: len(log.riders)], log.riders.rider_id)
    new = up.riders.rider_id[len(log.riders) :]
    assert new.min() > log.riders.rider_id.max()
    originals = {_shift_key(log.riders, i) for i in range(len(log.riders))}
    assert all(_shift_key(up.riders, i) in originals for i in range(len(log.riders), len(up.riders)))
    np.testing.assert_array_equal(scale_fleet(log, 1.8, seed=5).riders.shift_start, up.riders.shift_start)


def test_scale_fleet_of_a_site_does_not_depend_on_other_sites() -> None:
    log = tiny_log(m=23)
    keep = log.riders.site_id != log.sites.site_id[0]  # drop site 0's riders: the others' subsets stay the same
    other = OrderLog(log.meta, log.sites, log.orders, log.riders.take(np.flatnonzero(keep)))
    a = scale_fleet(log, 0.5, seed=9).riders
    b = scale_fleet(other, 0.5, seed=9).riders
    sel = a.site_id != log.sites.site_id[0]
    np.testing.assert_array_equal(a.rider_id[sel], b.rider_id)


def test_scale_fleet_rejects_bad_scale() -> None:
    with pytest.raises(ValueError, match="scale"):
        scale_fleet(tiny_log(), 0.0, seed=0)


# --------------------------------------------------------------------------------------------------------------
# The front and the answer
# --------------------------------------------------------------------------------------------------------------


def test_pareto_front_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    x = np.round(rng.uniform(0, 1, 60), 1)  # ties on purpose
    y = np.round(rng.uniform(0, 1, 60), 1)
    x[5] = np.nan
    got = pareto_front(x, y)
    for i in range(60):
        dominated = any(
            x[j] <= x[i] and y[j] >= y[i] and (x[j] < x[i] or y[j] > y[i]) for j in range(60) if j != i and x[j] == x[j]
        )
        assert got[i] == (not dominated and not np.isnan(x[i]))
    assert got.any()


def test_answer_picks_the_smallest_scale_reaching_the_target() -> None:
    rows = [
        {"index": 0, "policy": "kernel", "fleet_scale": 0.5, "riders": 5, "on_time_rate": 0.90,
         "rider_hours_per_order": 0.2, "hold_s": 0.0},
        {"index": 1, "policy": "kernel", "fleet_scale": 0.7, "riders": 7, "on_time_rate": 0.96,
         "rider_hours_per_order": 0.4, "hold_s": 0.0},
        {"index": 2, "policy": "kernel", "fleet_scale": 0.7, "riders": 7, "on_time_rate": 0.95,
         "rider_hours_per_order": 0.3, "hold_s": 30.0},
        {"index": 3, "policy": "greedy", "fleet_scale": 1.0, "riders": 10, "on_time_rate": 0.80,
         "rider_hours_per_order": 0.5, "hold_s": 0.0},
    ]  # fmt: skip
    ans = answer(rows, 0.95, ["kernel", "greedy"], ["hold_s"])
    assert ans["kernel"] == {"min_fleet_scale": 0.7, "riders": 7, "rider_hours_per_order": 0.3, "on_time_rate": 0.95,
                             "point": 2, "params": {"hold_s": 30.0}}  # fmt: skip
    assert ans["greedy"]["min_fleet_scale"] is None and ans["greedy"]["point"] is None


# --------------------------------------------------------------------------------------------------------------
# A whole sweep
# --------------------------------------------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_sweep_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tiny_log(2)
    write_log(tmp_path / "day", log.meta, log.sites, log.orders, log.riders)
    path = tmp_path / "sweep.toml"
    path.write_text(
        'log = "day"\npolicy = ["kernel", "greedy"]\ntarget_on_time = 0.5\nworkers = 2\n'
        "[fleet]\nscale = [0.4, 1.0]\n[params]\nhold_s = [0]\n"
    )
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)

    rows = _read_csv(out / "sweep.csv")
    assert list(rows[0]) == ["index", "policy", "fleet_scale", "riders", "hold_s", "orders_total", "on_time_rate",
                             "km_per_order", "rider_hours", "rider_hours_per_order", "orders_per_rider_hour",
                             "delivery_min_p90", "wall_seconds", "pareto"]  # fmt: skip
    assert [(r["index"], r["policy"], r["fleet_scale"], r["hold_s"]) for r in rows] == [
        ("0", "kernel", "0.4", "0.0"), ("1", "kernel", "1.0", "0.0"),
        ("2", "greedy", "0.4", "0.0"), ("3", "greedy", "1.0", "0.0"),
    ]  # fmt: skip
    assert [int(r["riders"]) for r in rows] == [9, 23, 9, 23]  # 8, 8, 7 shifts x 0.4 -> 3 + 3 + 3
    for r in rows:
        assert int(r["orders_total"]) == 240
        assert 0.0 <= float(r["on_time_rate"]) <= 1.0
        hours, per_order = float(r["rider_hours"]), float(r["rider_hours_per_order"])
        assert hours > 0 and per_order > 0
        summ = json.loads((out / "points" / r["index"] / "summary.json").read_text())
        assert summ["on_time_rate"] == float(r["on_time_rate"]) and summ["riders"] == int(r["riders"])
        assert summ["sweep"]["fleet_scale"] == float(r["fleet_scale"]) and summ["sweep"]["policy"] == r["policy"]
        assert summ["dispatch_params"]["hold_s"] == 0.0
    kernel = [r for r in rows if r["policy"] == "kernel"]
    assert float(kernel[0]["rider_hours"]) < float(kernel[1]["rider_hours"])  # fewer riders, fewer rider-hours

    # The front, recomputed from the csv.
    x = np.array([float(r["rider_hours_per_order"]) for r in rows])
    y = np.array([float(r["on_time_rate"]) for r in rows])
    assert [r["pareto"] == "true" for r in rows] == pareto_front(x, y).tolist()
    assert (out / "pareto.png").stat().st_size > 5000

    # The answer, recomputed from the csv.
    ans = json.loads((out / "answer.json").read_text())
    assert ans == printed
    assert set(ans) == {"kernel", "greedy"}
    for pol in ("kernel", "greedy"):
        ok = [r for r in rows if r["policy"] == pol and float(r["on_time_rate"]) >= 0.5]
        if not ok:
            assert ans[pol]["min_fleet_scale"] is None
            continue
        best = min(ok, key=lambda r: (float(r["fleet_scale"]), float(r["rider_hours_per_order"]), int(r["index"])))
        assert ans[pol]["min_fleet_scale"] == float(best["fleet_scale"])
        assert ans[pol]["rider_hours_per_order"] == float(best["rider_hours_per_order"])
        assert ans[pol]["point"] == int(best["index"])
    assert ans["kernel"]["min_fleet_scale"] is not None  # this tiny day is easy: someone keeps half the promises

    # The same points in one process (points one after another) give the same figures.
    again = run_sweep(load_sweep(path), tmp_path / "serial", workers=1)
    for r, s in zip(rows, again.rows, strict=True):
        for k in ("riders", "on_time_rate", "km_per_order", "rider_hours", "delivery_min_p90"):
            assert float(r[k]) == float(s[k])
    assert again.answer == ans


def test_sweep_on_ray_gives_the_local_figures(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    log = tiny_log(2)
    write_log(tmp_path / "day", log.meta, log.sites, log.orders, log.riders)
    path = tmp_path / "sweep.toml"
    path.write_text('log = "day"\npolicy = "kernel"\n[fleet]\nscale = [0.4, 1.0]\n[params]\nhold_s = [0]\n')
    local = run_sweep(load_sweep(path), tmp_path / "local", workers=2)
    on_ray = run_sweep(load_sweep(path), tmp_path / "ray", workers=2, engine="ray")
    for r, s in zip(local.rows, on_ray.rows, strict=True):
        for k in ("riders", "on_time_rate", "km_per_order", "rider_hours", "delivery_min_p90"):
            assert float(r[k]) == float(s[k]), k
    assert on_ray.answer == local.answer
    summ = json.loads((tmp_path / "ray" / "points" / "0" / "summary.json").read_text())
    assert summ["engine"] == "ray"
    with pytest.raises(ValueError, match="only the ray engine"):
        run_sweep(load_sweep(path), tmp_path / "bad", engine="local", address="auto")


def test_shipped_sweep_files_load() -> None:
    from pathlib import Path as _Path

    from dispatch.sim.sweep import expand, load_sweep

    root = _Path(__file__).resolve().parents[2] / "simulations"
    files = sorted(root.glob("sweep_*.toml"))
    assert files
    for f in files:
        assert len(expand(load_sweep(f))) >= 1
