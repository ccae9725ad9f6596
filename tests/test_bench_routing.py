"""``dispatch bench routing`` end to end on tests/data/vrp (OR-Tools alone, ours, PyVRP when installed), the
best-known table and its join, the summary arithmetic, and the command's errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from dispatch.bench import routing as bench
from dispatch.bench.routing import Bks, RoutingBenchSpec, head_to_head, list_instances, read_bks, run, summarize
from dispatch.bench.vrp_peers import solve_ortools
from dispatch.cli import main
from dispatch.vrp.checker import check
from dispatch.vrp.problem import VrpInstance, VrpSolution
from dispatch.vrp.readers import read_instance

DATA = Path(__file__).parent / "data" / "vrp"
BKS = str(DATA / "bks_tiny.csv")
OPTIMUM = {"TINY08": (2, 216.0430), "TINY10": (3, 273.9517), "tiny5": (3, 328.1195)}
SUMMARY_KEYS = {"n", "feasible_rate", "avg_gap", "vehicles_equal_bks_rate", "avg_vehicles", "avg_seconds"}


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["bench", "routing", *args, "--json"]) == 0
    out = capsys.readouterr()
    assert out.err == ""  # --json: no progress lines
    data: dict[str, Any] = json.loads(out.out)
    return data


def _no_better_than_optimum(rec: dict[str, Any], prefix: str = "") -> None:
    """Nobody beats an exact optimum: a feasible answer has at least its vehicles, and at least its distance
    with as many vehicles."""
    veh, dist = OPTIMUM[rec["instance"]]
    assert rec[prefix + "feasible"]
    assert rec[prefix + "vehicles"] >= veh
    if rec[prefix + "vehicles"] == veh:
        assert rec[prefix + "distance"] >= dist - 1e-3


def test_ortools_alone_beside_itself_json(capsys: pytest.CaptureFixture[str]) -> None:
    out = _cli_json(
        capsys, str(DATA / "solomon"), "--format", "solomon", "--bks", BKS, "--time-limit", "0.5",
        "--solver", "ortools", "--peer", "ortools",
    )  # fmt: skip
    assert set(out) == {"instances", "summary"}
    recs = out["instances"]
    assert [r["instance"] for r in recs] == ["TINY08", "TINY10"]  # sorted by file name
    for r in recs:
        assert (r["bks_vehicles"], r["bks_distance"]) == {"TINY08": (2, 216.04), "TINY10": (3, 273.95)}[r["instance"]]
        for p in ("", "peer_"):
            _no_better_than_optimum(r, p)
            assert r[p + "gap"] == pytest.approx(
                100 * (r[p + "distance"] - r["bks_distance"]) / r["bks_distance"], abs=2e-4
            )
            assert r[p + "vehicles_equal_bks"] == (r[p + "vehicles"] == r["bks_vehicles"])
            assert r[p + "violations"] == [] and r[p + "n_violations"] == 0
    s = out["summary"]
    assert set(s) >= SUMMARY_KEYS | {"peer_" + k for k in SUMMARY_KEYS}
    assert (s["n"], s["peer_n"], s["n_bks"], s["format"], s["solver"], s["peer"]) == (
        2,
        2,
        2,
        "solomon",
        "ortools",
        "ortools",
    )
    assert s["feasible_rate"] == 1.0 and s["peer_feasible_rate"] == 1.0
    assert s["avg_gap"] == pytest.approx(sum(r["gap"] for r in recs) / 2, abs=1e-4)
    assert set(s["vs_peer"]) == {"n_both_feasible", "wins", "ties", "losses", "distance_ratio"}
    assert s["vs_peer"]["n_both_feasible"] == 2
    assert s["vs_peer"]["wins"] + s["vs_peer"]["ties"] + s["vs_peer"]["losses"] == 2


def test_ours_beside_ortools_on_lilim(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dispatch.vrp.solver")
    out = _cli_json(
        capsys, str(DATA / "lilim"), "--format", "lilim", "--bks", BKS, "--time-limit", "0.5", "--peer", "ortools",
    )  # fmt: skip
    (rec,) = out["instances"]
    assert rec["instance"] == "tiny5" and rec["tasks"] == 10
    _no_better_than_optimum(rec)
    _no_better_than_optimum(rec, "peer_")
    assert out["summary"]["solver"] == "ours" and out["summary"]["peer"] == "ortools"


def test_without_bks_and_with_limit(capsys: pytest.CaptureFixture[str]) -> None:
    out = _cli_json(capsys, str(DATA / "solomon"), "--format", "solomon", "--time-limit", "0.3", "--solver", "ortools",
                    "--limit", "1")  # fmt: skip
    (rec,) = out["instances"]
    assert rec["instance"] == "TINY08"
    assert rec["bks_vehicles"] is None and rec["gap"] is None and rec["vehicles_equal_bks"] is None
    s = out["summary"]
    assert (s["n"], s["n_bks"], s["n_gap"], s["avg_gap"], s["vehicles_equal_bks_rate"]) == (1, 0, 0, None, None)
    assert "peer_n" not in s and "vs_peer" not in s


def test_table_output_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "routing", str(DATA / "lilim"), "--format", "lilim", "--bks", BKS, "--time-limit", "0.3",
                 "--solver", "ortools"]) == 0  # fmt: skip
    out = capsys.readouterr()
    assert out.err.startswith("[1/1] tiny5: ortools 3 veh 328.12")
    assert "tiny5" in out.out and "feasible_rate" in out.out and "vehicles_equal_bks_rate" in out.out


def test_two_jobs_give_the_same_records() -> None:
    spec = RoutingBenchSpec(str(DATA / "solomon"), "solomon", time_limit_s=0.3, jobs=2, solver="ortools", bks=BKS)
    out = run(spec)
    assert [r["instance"] for r in out["instances"]] == ["TINY08", "TINY10"]
    for r in out["instances"]:
        _no_better_than_optimum(r)
    assert out["summary"]["jobs"] == 2 and out["summary"]["feasible_rate"] == 1.0


def test_a_solver_crash_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(inst: VrpInstance, time_limit_s: float, seed: int = 0) -> VrpSolution:
        raise RuntimeError("boom")

    real = bench.solver_function
    monkeypatch.setattr(bench, "solver_function", lambda name: broken if name == "ours" else real(name))
    out = run(RoutingBenchSpec(str(DATA / "lilim"), "lilim", time_limit_s=0.2, peer="ortools", bks=BKS))
    (rec,) = out["instances"]
    assert rec["feasible"] is False and rec["gap"] is None and rec["vehicles_equal_bks"] is False
    assert rec["violations"][0] == "solver error: RuntimeError: boom"
    assert "task 1 is not served" in rec["violations"]
    assert rec["peer_feasible"] is True
    s = out["summary"]
    assert s["feasible_rate"] == 0.0 and s["avg_gap"] is None and s["vehicles_equal_bks_rate"] == 0.0
    assert s["vs_peer"]["n_both_feasible"] == 0


def test_pyvrp_peer_when_installed() -> None:
    pytest.importorskip("pyvrp")
    for path, fmt in (("solomon/TINY10.txt", "solomon"), ("lilim/tiny5.txt", "lilim")):
        out = run(RoutingBenchSpec(str(DATA / path), fmt, time_limit_s=0.3, solver="pyvrp", bks=BKS))
        (rec,) = out["instances"]
        _no_better_than_optimum(rec)


def test_ortools_peer_returns_checked_solutions() -> None:
    for path, fmt in (("solomon/TINY08.txt", "solomon"), ("lilim/tiny5.txt", "lilim")):
        inst = read_instance(DATA / path, fmt)
        res = check(inst, solve_ortools(inst, 0.3))
        assert res.feasible, res.violations
        assert res.vehicles == OPTIMUM[inst.name][0]


# ---- the best-known table -------------------------------------------------------------------------------------


def test_read_bks(tmp_path: Path) -> None:
    bks = read_bks(BKS)
    assert bks["TINY08"] == Bks(2, 216.04) and bks["TINY5"] == Bks(3, 328.12)  # keys upper-cased
    shared = Path(__file__).resolve().parents[2] / "shared" / "benchdata" / "solomon" / "bks_solomon_hierarchical.csv"
    if shared.is_file():  # extra columns (source, note) are allowed
        assert read_bks(shared)["C101"] == Bks(10, 828.94) and len(read_bks(shared)) == 56
    p = tmp_path / "b.csv"
    p.write_text("name,vehicles,distance\nX,1,2\n")
    with pytest.raises(ValueError, match=r"b.csv: the best-known table needs the columns .* missing \['instance'\]"):
        read_bks(p)
    p.write_text("instance,vehicles,distance\nX,one,2\n")
    with pytest.raises(ValueError, match=r"b.csv, line 2: vehicles must be a whole number"):
        read_bks(p)
    p.write_text("instance,vehicles,distance\nX,1,2\nx,1,3\n")
    with pytest.raises(ValueError, match=r"b.csv, line 3: instance 'x' appears twice"):
        read_bks(p)
    p.write_text("instance,vehicles,distance\nX,0,2\n")
    with pytest.raises(ValueError, match=r"line 2: vehicles must be >= 1"):
        read_bks(p)
    with pytest.raises(ValueError, match="cannot read the best-known table"):
        read_bks(tmp_path / "missing.csv")


def test_list_instances(tmp_path: Path) -> None:
    assert [p.name for p in list_instances(DATA / "solomon")] == ["TINY08.txt", "TINY10.txt"]
    assert [p.name for p in list_instances(DATA / "solomon", limit=1)] == ["TINY08.txt"]
    assert list_instances(DATA / "lilim" / "tiny5.txt") == [DATA / "lilim" / "tiny5.txt"]
    with pytest.raises(ValueError, match="no such directory"):
        list_instances(tmp_path / "nope")
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(ValueError, match=r"no instance files \(\*.txt\)"):
        list_instances(tmp_path)


# ---- summary arithmetic ---------------------------------------------------------------------------------------


def _rec(
    name: str, bks: tuple[int, float] | None, veh: int, dist: float, feasible: bool, secs: float
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "instance": name,
        "bks_vehicles": bks[0] if bks else None,
        "bks_distance": bks[1] if bks else None,
    }
    bench._merge(r, "", {"vehicles": veh, "distance": dist, "feasible": feasible, "seconds": secs, "cpu_seconds": secs,
                         "n_violations": 0 if feasible else 1, "violations": [] if feasible else ["x"]})  # fmt: skip
    return r


def test_summary_definitions() -> None:
    recs = [
        _rec("A", (10, 100.0), 10, 101.0, True, 1.0),  # gap 1 %, vehicles equal
        _rec("B", (5, 200.0), 6, 190.0, True, 2.0),  # gap -5 % with one more vehicle: counted in avg_gap
        _rec("C", (3, 50.0), 3, 40.0, False, 3.0),  # infeasible: no gap, not equal
        _rec("D", None, 4, 80.0, True, 4.0),  # no best-known row
    ]
    s = summarize(recs)
    assert s["n"] == 4 and s["n_bks"] == 3 and s["n_gap"] == 2
    assert s["feasible_rate"] == 0.75
    assert s["avg_gap"] == pytest.approx((1.0 - 5.0) / 2)
    assert s["avg_gap_same_vehicles"] == pytest.approx(1.0)
    assert s["vehicles_equal_bks_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["avg_vehicles"] == pytest.approx((10 + 6 + 4) / 3, abs=1e-4)
    assert s["avg_seconds"] == 2.5 and s["max_seconds"] == 4.0
    assert set(summarize(recs, "")) == set(s)


def test_head_to_head() -> None:
    def pair(veh: int, dist: float, pveh: int, pdist: float, pfeas: bool = True) -> dict[str, Any]:
        return {"vehicles": veh, "distance": dist, "feasible": True,
                "peer_vehicles": pveh, "peer_distance": pdist, "peer_feasible": pfeas}  # fmt: skip

    recs = [
        pair(9, 900.0, 10, 800.0),
        pair(10, 800.0, 10, 800.001),
        pair(10, 810.0, 10, 800.0),
        pair(3, 1, 3, 1, False),
    ]
    h = head_to_head(recs)
    assert (h["n_both_feasible"], h["wins"], h["ties"], h["losses"]) == (3, 1, 1, 1)
    assert h["distance_ratio"] == pytest.approx((900 / 800 + 800 / 800.001 + 810 / 800) / 3, abs=1e-4)


# ---- errors ---------------------------------------------------------------------------------------------------


def test_user_errors_exit_2_with_a_message(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["bench", "routing", str(tmp_path / "nope"), "--format", "solomon"]) == 2
    assert "no such directory" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.txt").write_text((DATA / "malformed" / "solomon_not_a_number.txt").read_text())
    assert main(["bench", "routing", str(bad), "--format", "solomon", "--solver", "ortools"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dispatch: error: ") and "x.txt, line 13: field 'y' is not a number" in err
    assert (
        main(["bench", "routing", str(DATA / "solomon"), "--format", "solomon", "--bks", str(tmp_path / "no.csv")]) == 2
    )
    assert "cannot read the best-known table" in capsys.readouterr().err
    bad_args = (
        ["--format", "tsplib"],
        ["--format", "solomon", "--time-limit", "0"],
        ["--format", "solomon", "--jobs", "0"],
        ["--format", "solomon", "--peer", "vroom"],
        [],
    )
    for args in bad_args:
        with pytest.raises(SystemExit) as e:
            main(["bench", "routing", str(DATA / "solomon"), *args])
        assert e.value.code == 2
    capsys.readouterr()


def test_pyvrp_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pyvrp", None)  # an import of pyvrp now fails, installed or not
    monkeypatch.setitem(sys.modules, "pyvrp.stop", None)
    args = ["bench", "routing", str(DATA / "solomon"), "--format", "solomon", "--time-limit", "0.1"]
    assert main([*args, "--solver", "ortools", "--peer", "pyvrp"]) == 2
    err = capsys.readouterr().err
    assert err == "dispatch: error: the pyvrp peer needs PyVRP, an optional extra: pip install 'dispatch[bench]'\n"
