"""``dispatch bench routing``: our routing engine on the literature's instances, beside a named peer.

Every instance file in a directory (sorted by name; ``*.txt``) is read (``dispatch.vrp.readers``), solved by ours
(``dispatch.vrp.solver.solve``) and optionally by a peer (``ortools``: OR-Tools alone; ``pyvrp``: PyVRP; see
``dispatch.bench.vrp_peers``) with the same time limit and seed, and every answer is judged by the independent
checker (``dispatch.vrp.checker``), in double precision: vehicles, distance, feasibility.

With a best-known-solution table (CSV ``instance,vehicles,distance``, extra columns allowed, instance names
matched case-insensitively to the instance's name or its file's stem):

- ``gap``: the distance gap in % to the best-known distance, ``100 (distance - bks) / bks``, on every feasible
  solution **whatever its vehicle count** (the literature's convention when reporting a gap over a set);
- ``vehicles_equal_bks``: a feasible solution with exactly the best-known vehicle count.

Summary (for ours, and the same with ``peer_`` for the peer): ``n`` instances, ``feasible_rate``, ``avg_gap``
(mean gap over the feasible solutions of instances with a best-known row, ``n_gap`` of them),
``avg_gap_same_vehicles`` (the same over those with the best-known vehicle count), ``vehicles_equal_bks_rate``
(over instances with a best-known row), ``avg_vehicles``, ``avg_distance`` (both over feasible solutions),
``avg_seconds``, ``max_seconds``; and, with a peer, the head-to-head over instances where both are feasible under
the literature's objective (fewer vehicles first, then less distance): ``wins``, ``ties``, ``losses`` and
``distance_ratio`` (mean of ours / peer distance).

Timing: each solve runs alone in its process (``--jobs N`` worker processes, one instance each at a time);
``seconds`` is the wall time of the solve call, model building included, and ``cpu_seconds`` the CPU time the
process got meanwhile (well below ``seconds`` on a busy machine, and then the run is not a fair measurement). Each
process first calls our solver's ``warm_up()`` (when it has one), untimed, so that just-in-time compilation stays
out of the figures. With more jobs than free cores the solvers share cores and the time limit is no longer fair.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispatch.argtypes import positive_float, positive_int
from dispatch.vrp.checker import check
from dispatch.vrp.problem import VrpInstance, VrpSolution
from dispatch.vrp.readers import FORMATS, read_instance

SOLVERS = ("ours", "ortools", "pyvrp")
Solve = Callable[[VrpInstance, float, int], VrpSolution]


class SolverUnavailableError(RuntimeError):
    """A solver the run needs cannot be imported or cannot run here."""


@dataclass(frozen=True)
class Bks:
    vehicles: int
    distance: float


def solver_function(name: str) -> Solve:
    """The solve function of ``name`` (``ours``, ``ortools`` or ``pyvrp``); raises ``SolverUnavailableError``."""
    if name == "ours":
        try:
            from dispatch.vrp.solver import solve
        except ImportError as e:
            raise SolverUnavailableError(f"our solver (dispatch.vrp.solver.solve) cannot be imported: {e}") from None
        return solve
    from dispatch.bench.vrp_peers import PeerUnavailableError, peer_solver

    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}: expected one of {', '.join(SOLVERS)}")
    try:
        fn: Solve = peer_solver(name)
    except PeerUnavailableError as e:
        raise SolverUnavailableError(str(e)) from None
    return fn


def read_bks(path: str | Path) -> dict[str, Bks]:
    """Read a best-known table ``instance,vehicles,distance`` (extra columns allowed); keys upper-cased."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ValueError(f"{p}: cannot read the best-known table ({e.strerror or e})") from None
    reader = csv.DictReader(text.splitlines())
    missing = {"instance", "vehicles", "distance"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(
            f"{p}: the best-known table needs the columns instance,vehicles,distance; missing {sorted(missing)}"
        )
    out: dict[str, Bks] = {}
    for line, row in enumerate(reader, start=2):
        name = (row["instance"] or "").strip()
        if not name:
            raise ValueError(f"{p}, line {line}: empty instance name")
        try:
            vehicles = int(row["vehicles"])
            distance = float(row["distance"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{p}, line {line}: vehicles must be a whole number and distance a number, "
                f"got {row['vehicles']!r} and {row['distance']!r}"
            ) from None
        if vehicles < 1 or not (math.isfinite(distance) and distance > 0):
            raise ValueError(f"{p}, line {line}: vehicles must be >= 1 and distance > 0")
        key = name.upper()
        if key in out:
            raise ValueError(f"{p}, line {line}: instance {name!r} appears twice")
        out[key] = Bks(vehicles, distance)
    return out


def list_instances(path: str | Path, limit: int | None = None) -> list[Path]:
    """The ``*.txt`` files of directory ``path`` sorted by name (or ``path`` itself when it is a file)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise ValueError(f"{p}: no such directory")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".txt" and not f.name.startswith("."))
    if not files:
        raise ValueError(f"{p}: no instance files (*.txt) in this directory")
    return files[:limit] if limit is not None else files


_WARM: set[str] = set()


def _warm_up(solver: str) -> None:
    """Once per process, before the first timed solve of ours: its ``warm_up()`` hook, when it has one (compiles
    the Numba kernels or loads them from the on-disk cache), untimed."""
    if solver != "ours" or solver in _WARM:
        return
    _WARM.add(solver)
    # A failing warm-up shows again, with its message, on the timed run.
    with contextlib.suppress(Exception):
        import dispatch.vrp.solver as ours

        hook = getattr(ours, "warm_up", None)
        if callable(hook):
            hook()


def solve_one(path: str, fmt: str, solver: str, time_limit_s: float, seed: int) -> dict[str, Any]:
    """Solve one instance with one solver and check the answer; runs in a worker process."""
    _warm_up(solver)
    inst = read_instance(path, fmt)
    fn = solver_function(solver)
    error = None
    t, c = time.perf_counter(), time.process_time()
    try:
        sol = fn(inst, time_limit_s, seed)
    except Exception as e:  # a solver crash on one instance is reported, not fatal to the run
        error = f"{type(e).__name__}: {e}"
        sol = VrpSolution(())
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    if error is None and not isinstance(sol, VrpSolution):
        error = f"the solver returned {type(sol).__name__}, not a VrpSolution"
        sol = VrpSolution(())
    res = check(inst, sol)
    violations = list(res.violations)
    if error is not None:
        violations.insert(0, f"solver error: {error}")
    return {
        "vehicles": res.vehicles,
        "distance": res.distance,
        "feasible": res.feasible and error is None,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "n_violations": len(violations),
        "violations": violations[:5],
    }


@dataclass(frozen=True)
class RoutingBenchSpec:
    """What to run: ``directory`` (or one file) of instances in ``fmt``; ``peer`` None for ours alone."""

    directory: str
    fmt: str
    time_limit_s: float = 10.0
    jobs: int = 1
    peer: str | None = None
    seed: int = 0
    limit: int | None = None
    bks: str | None = None
    solver: str = "ours"

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"unknown format {self.fmt!r}: expected one of {', '.join(FORMATS)}")
        if not (math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise ValueError(f"the time limit must be > 0 seconds, got {self.time_limit_s}")
        if self.jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {self.jobs}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}: expected one of {', '.join(SOLVERS)}")
        if self.peer is not None and self.peer not in SOLVERS[1:]:
            raise ValueError(f"unknown peer {self.peer!r}: expected one of {', '.join(SOLVERS[1:])}")


def _record(path: Path, inst: VrpInstance, bks: dict[str, Bks] | None) -> dict[str, Any]:
    b = None
    if bks is not None:
        b = bks.get(inst.name.upper()) or bks.get(path.stem.upper())
    return {
        "instance": inst.name,
        "file": path.name,
        "tasks": inst.n,
        "bks_vehicles": b.vehicles if b else None,
        "bks_distance": b.distance if b else None,
    }


def _merge(rec: dict[str, Any], prefix: str, res: dict[str, Any]) -> None:
    gap = None
    equal = None
    if rec["bks_distance"] is not None:
        equal = bool(res["feasible"] and res["vehicles"] == rec["bks_vehicles"])
        if res["feasible"]:
            gap = round(100.0 * (res["distance"] - rec["bks_distance"]) / rec["bks_distance"], 4)
    rec[prefix + "vehicles"] = res["vehicles"]
    rec[prefix + "distance"] = round(res["distance"], 4)
    rec[prefix + "feasible"] = res["feasible"]
    rec[prefix + "gap"] = gap
    rec[prefix + "vehicles_equal_bks"] = equal
    rec[prefix + "seconds"] = res["seconds"]
    rec[prefix + "cpu_seconds"] = res["cpu_seconds"]
    rec[prefix + "n_violations"] = res["n_violations"]
    rec[prefix + "violations"] = res["violations"]


def _mean(xs: Sequence[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def summarize(records: Sequence[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    """The summary figures of one solver (``prefix`` "" for ours, "peer_" for the peer); see the module doc."""
    n = len(records)
    feas = [r for r in records if r[prefix + "feasible"]]
    with_bks = [r for r in records if r["bks_distance"] is not None]
    gaps = [r[prefix + "gap"] for r in with_bks if r[prefix + "gap"] is not None]
    same = [r[prefix + "gap"] for r in with_bks if r[prefix + "vehicles_equal_bks"]]
    secs = [r[prefix + "seconds"] for r in records]
    out = {
        "n": n,
        "feasible_rate": round(len(feas) / n, 4) if n else None,
        "n_bks": len(with_bks),
        "n_gap": len(gaps),
        "avg_gap": _mean(gaps),
        "avg_gap_same_vehicles": _mean(same),
        "vehicles_equal_bks_rate": (
            round(sum(1 for r in with_bks if r[prefix + "vehicles_equal_bks"]) / len(with_bks), 4) if with_bks else None
        ),
        "avg_vehicles": _mean([r[prefix + "vehicles"] for r in feas]),
        "avg_distance": _mean([r[prefix + "distance"] for r in feas]),
        "avg_seconds": _mean(secs),
        "max_seconds": max(secs) if secs else None,
        "avg_cpu_seconds": _mean([r[prefix + "cpu_seconds"] for r in records]),
    }
    return {prefix + k: v for k, v in out.items()}


def head_to_head(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Ours against the peer where both are feasible, under the literature's objective."""
    both = [r for r in records if r["feasible"] and r["peer_feasible"]]
    wins = ties = losses = 0
    for r in both:
        a = (r["vehicles"], round(r["distance"], 2))
        b = (r["peer_vehicles"], round(r["peer_distance"], 2))
        wins += a < b
        ties += a == b
        losses += a > b
    ratios = [r["distance"] / r["peer_distance"] for r in both if r["peer_distance"] > 0]
    return {"n_both_feasible": len(both), "wins": wins, "ties": ties, "losses": losses, "distance_ratio": _mean(ratios)}


def _progress(i: int, n: int, rec: dict[str, Any], solver: str, peer: str | None) -> str:
    def part(prefix: str, name: str) -> str:
        gap = rec[prefix + "gap"]
        g = f" {gap:+.2f}%" if gap is not None else ""
        ok = "ok" if rec[prefix + "feasible"] else "INFEASIBLE"
        veh, dist, secs = rec[prefix + "vehicles"], rec[prefix + "distance"], rec[prefix + "seconds"]
        return f"{name} {veh} veh {dist:.2f}{g} {ok} {secs:.1f}s"

    line = f"[{i}/{n}] {rec['instance']}: {part('', solver)}"
    if peer is not None:
        line += f" | {part('peer_', peer)}"
    return line


def run(spec: RoutingBenchSpec, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark and return its JSON object: ``instances`` (one record each) and ``summary``."""
    files = list_instances(spec.directory, spec.limit)
    bks = read_bks(spec.bks) if spec.bks is not None else None
    insts = [read_instance(f, spec.fmt) for f in files]  # fail fast on a malformed file, before any solving
    solvers = [spec.solver] + ([spec.peer] if spec.peer is not None else [])
    for s in solvers:
        solver_function(s)  # fail fast when a solver is not available
    records = [_record(f, inst, bks) for f, inst in zip(files, insts, strict=True)]
    tasks = [(i, k, s) for i in range(len(files)) for k, s in enumerate(solvers)]
    results: dict[tuple[int, int], dict[str, Any]] = {}
    done = 0

    def finish(i: int) -> None:
        nonlocal done
        for k in range(len(solvers)):
            _merge(records[i], "" if k == 0 else "peer_", results[(i, k)])
        done += 1
        if progress is not None:
            progress(_progress(done, len(files), records[i], spec.solver, spec.peer))

    if spec.jobs == 1:
        for i, k, s in tasks:
            results[(i, k)] = solve_one(str(files[i]), spec.fmt, s, spec.time_limit_s, spec.seed)
            if k == len(solvers) - 1:
                finish(i)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=spec.jobs, mp_context=ctx) as pool:
            futures: dict[Future[dict[str, Any]], tuple[int, int]] = {
                pool.submit(solve_one, str(files[i]), spec.fmt, s, spec.time_limit_s, spec.seed): (i, k)
                for i, k, s in tasks
            }
            from concurrent.futures import as_completed

            for fut in as_completed(futures):
                i, k = futures[fut]
                results[(i, k)] = fut.result()
                if all((i, kk) in results for kk in range(len(solvers))):
                    finish(i)

    summary: dict[str, Any] = {
        "format": spec.fmt,
        "time_limit_s": spec.time_limit_s,
        "jobs": spec.jobs,
        "seed": spec.seed,
        "solver": spec.solver,
        "peer": spec.peer,
        "bks": spec.bks,
        "gap_definition": "100 (distance - bks_distance) / bks_distance on every feasible solution, any vehicle count",
    }
    summary.update(summarize(records))
    if spec.peer is not None:
        summary.update(summarize(records, "peer_"))
        summary["vs_peer"] = head_to_head(records)
    return {"instances": records, "summary": summary}


# --------------------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------------------


def _fmt(v: Any, spec: str = ".2f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def print_tables(out: dict[str, Any]) -> None:
    """Per-instance and summary tables (rich), ours beside the peer."""
    from rich.console import Console
    from rich.table import Table

    s = out["summary"]
    peer = s["peer"]
    title = f"dispatch bench routing: {s['n']} {s['format']} instances, {s['time_limit_s']:g} s each, jobs {s['jobs']}"
    t = Table(title=title)
    cols = ["instance", "BKS veh", "BKS dist", f"{s['solver']} veh", "dist", "gap %", "ok", "s"]
    if peer:
        cols += [f"{peer} veh", "dist", "gap %", "ok", "s"]
    for c in cols:
        t.add_column(c, justify="left" if c == "instance" else "right")
    for r in out["instances"]:
        row = [r["instance"], _fmt(r["bks_vehicles"]), _fmt(r["bks_distance"])]
        for p in ("", "peer_") if peer else ("",):
            row += [
                _fmt(r[p + "vehicles"]),
                _fmt(r[p + "distance"]),
                _fmt(r[p + "gap"]),
                "ok" if r[p + "feasible"] else "[red]NO[/red]",
                _fmt(r[p + "seconds"], ".1f"),
            ]
        t.add_row(*row)
    # Piped output gets a wide page rather than rich's default of 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(t)
    st = Table(title="summary (gap: distance vs best-known on every feasible solution, any vehicle count)")
    st.add_column("figure")
    st.add_column(s["solver"], justify="right")
    if peer:
        st.add_column(peer, justify="right")
    keys = ["feasible_rate", "avg_gap", "avg_gap_same_vehicles", "vehicles_equal_bks_rate", "avg_vehicles",
            "avg_distance", "avg_seconds", "max_seconds", "avg_cpu_seconds", "n", "n_bks", "n_gap"]  # fmt: skip
    for k in keys:
        row = [k, _fmt(s[k], ".4g")]
        if peer:
            row.append(_fmt(s["peer_" + k], ".4g"))
        st.add_row(*row)
    console.print(st)
    if peer:
        h = s["vs_peer"]
        console.print(
            f"  {s['solver']} vs {peer} where both are feasible ({h['n_both_feasible']}): {h['wins']} better, "
            f"{h['ties']} equal, {h['losses']} worse (fewer vehicles first, then distance); mean distance ratio "
            f"{_fmt(h['distance_ratio'], '.4f')}"
        )
    for r in out["instances"]:
        for p, name in (("", s["solver"]), ("peer_", peer)):
            if name and r.get(p + "violations"):
                console.print(
                    f"  {r['instance']} ({name}): {r[p + 'n_violations']} violations, e.g. {r[p + 'violations'][0]}"
                )


def _cmd(args: argparse.Namespace) -> int:
    spec = RoutingBenchSpec(
        directory=args.dir,
        fmt=args.format,
        time_limit_s=args.time_limit,
        jobs=args.jobs,
        peer=args.peer,
        seed=args.seed,
        limit=args.limit,
        bks=args.bks,
        solver=args.solver,
    )
    quiet = args.json or args.quiet
    try:
        out = run(spec, progress=None if quiet else lambda line: print(line, file=sys.stderr, flush=True))
    except SolverUnavailableError as e:
        print(f"dispatch: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        print_tables(out)
    return 0


def register(bench_sub: Any) -> None:
    """Add ``routing`` to the ``dispatch bench`` subcommands."""
    p = bench_sub.add_parser(
        "routing",
        help="our routing engine on Solomon / Li & Lim instances, beside OR-Tools alone or PyVRP",
        description=(
            "Solve every instance (*.txt, sorted by name) in DIR with our routing engine and, with --peer, a peer "
            "at the same time limit; check every answer with the independent checker; report vehicles, distance, "
            "feasibility, seconds and, with --bks, the gap to the best-known solution. The objective is the "
            "literature's: fewest vehicles first, then least distance. The gap is 100 (distance - BKS distance) / "
            "BKS distance on every feasible solution, whatever its vehicle count (the literature's convention); "
            "avg_gap averages it over the feasible solutions of instances with a BKS row, avg_gap_same_vehicles over "
            "those with the BKS vehicle count, and vehicles_equal_bks_rate says how often the vehicle count matches "
            "(over instances with a BKS row). seconds is the wall time of each solve call, model building included."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="directory of instance files (or one file)")
    p.add_argument("--format", choices=FORMATS, required=True, help="instance format: solomon (VRPTW) or lilim (PDPTW)")
    p.add_argument("--bks", metavar="CSV", default=None, help="best-known table: instance,vehicles,distance")
    p.add_argument(
        "--time-limit", type=positive_float, default=10.0, metavar="S", help="seconds per instance (default 10)"
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="worker processes, one instance each at a time (default 1); more jobs than free cores makes the "
        "time limit unfair, as solvers then share cores",
    )
    p.add_argument("--peer", choices=SOLVERS[1:], default=None, help="run this peer beside ours on every instance")
    p.add_argument(
        "--solver",
        choices=SOLVERS,
        default="ours",
        help="the solver in the main column (default ours; a peer here runs it alone)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for every solver (default 0)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the first N instances")
    p.add_argument("--json", action="store_true", help="print one JSON object: instances and summary")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd)
