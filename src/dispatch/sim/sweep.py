"""``dispatch sweep SWEEP.toml --out DIR``: dispatch parameters and fleet sizes over one day, and the Pareto front.

Runs every point of a grid (or of a random sample) of dispatch parameters, crossed with fleet scales and
policies, over the same order log, and answers the ops question "how few riders keep 95% of promises?".

Outputs in ``DIR``:

- ``log/``: the scenario's day, generated once (when the sweep names a ``scenario``) and replayed at every point;
- ``points/<index>/``: each point's ``summary.json`` (with a ``sweep`` record: index, policy, fleet scale, the swept
  parameters), ``orders.parquet`` and ``hourly.csv`` (as ``dispatch simulate`` writes them, without the report);
- ``sweep.csv``: one row per point: ``index``, ``policy``, ``fleet_scale``, ``riders`` (rider shifts simulated), one
  column per swept parameter, ``orders_total``, ``on_time_rate``, ``km_per_order``, ``rider_hours``,
  ``rider_hours_per_order``, ``orders_per_rider_hour``, ``delivery_min_p90``, ``wall_seconds`` and ``pareto``
  (true on the Pareto front); an empty cell is NaN (nothing delivered);
- ``pareto.png``: on-time rate against rider-hours per order, coloured by policy, each point labelled with its
  fleet scale, the Pareto front as a line (a point is on it when no other point has at most its rider-hours per
  order and at least its on-time rate, one of the two strictly better) and the target as a horizontal line;
- ``answer.json``: per policy, among the points with ``on_time_rate >= target_on_time``, the smallest fleet scale
  (ties: the fewest rider-hours per order, then the lowest index): ``{policy: {"min_fleet_scale", "riders",
  "rider_hours_per_order", "on_time_rate", "point", "params"}}``, every value null when no point reaches the target.

The command prints the answer as a table (``--json``: answer.json's content; ``--quiet``: nothing) and exits 2,
naming the field, on a bad sweep file.

The sweep file (TOML; every key but one of ``scenario`` / ``log`` is optional; unknown keys are rejected)::

    scenario = "demo.toml"      # a scenario file, relative to the sweep file; generated once into DIR/log
    # log = "../out/demo/log"   # ... or an order-log directory (exactly one of scenario and log)
    policy = "kernel"           # a policy or a list of policies to compare (default: the scenario's, else kernel)
    mode = "grid"               # "grid": every combination of [params]; "random": `samples` draws from [params]
    samples = 8                 # random only: parameter settings drawn (each run at every scale and policy)
    seed = 0                    # seeds the random draws and the fleet subsets (default 0)
    target_on_time = 0.95       # the on-time rate a fleet must keep, in (0, 1]
    workers = 2                 # processes (default: one per core); --workers overrides

    [fleet]
    scale = [0.6, 0.8, 1.0]     # multipliers of the log's rider shifts (default [1.0]); see scale_fleet

    [params]                    # dispatch.policy.DispatchParams fields; the rest keep the scenario's values
    hold_s = [0, 30]            # grid: the values (a lone value: just that); random: a list to choose from
    max_orders_per_rider = {low = 3, high = 6}   # random only: uniform in [low, high] (integers for int fields)

Points are policies x parameter settings x fleet scales, numbered in that order (scale fastest). Errors name the
dotted field (``fleet.scale[1]``, ``params.hold_s[0]``); parameter values are validated by
``DispatchParams.with_updates``.

Workers: with two or more points the points run in parallel processes, each point's shards serially; a single
point uses the workers for its shards. With ``--engine ray`` (``--address``) the points run one after another and
each point's shards run as Ray tasks over the cluster (Ray starts once for the sweep). A point's outcome does not
depend on any of this (wall-clock figures aside).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import difflib
import itertools
import json
import math
import multiprocessing as mp
import os
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.policy import POLICIES, DispatchParams, ParamsError
from dispatch.sim.log import OrderLog, RiderColumns
from dispatch.sim.scenario import ScenarioError, _got, _int, _num, _str, _Table

MODES = ("grid", "random")
_TOP_KEYS = ("scenario", "log", "policy", "mode", "samples", "seed", "target_on_time", "workers", "fleet", "params")
_PARAM_FIELDS = {f.name: f.type for f in fields(DispatchParams)}
CSV_KPIS = ("orders_total", "on_time_rate", "km_per_order", "rider_hours", "rider_hours_per_order",
            "orders_per_rider_hour", "delivery_min_p90", "wall_seconds")  # fmt: skip


class SweepError(ValueError):
    """A sweep-file field is bad; ``field`` is its dotted path (``fleet.scale[1]``, ``params.hold_s``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


# --------------------------------------------------------------------------------------------------------------
# The sweep file
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamAxis:
    """One swept DispatchParams field: ``values`` (grid values, or random choices), or a random range
    ``[low, high]`` (integers for an integer field)."""

    name: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file (see the module docstring). ``source`` is a scenario file (``source_kind``
    "scenario") or a log directory ("log"); ``policies`` None means the scenario's policy."""

    source: Path
    source_kind: str
    policies: tuple[str, ...] | None
    mode: str
    samples: int
    seed: int
    scales: tuple[float, ...]
    axes: tuple[ParamAxis, ...]
    target_on_time: float
    workers: int | None


@dataclass(frozen=True)
class Point:
    """One run: its ``index``, policy, fleet scale and the swept parameters' values (in the file's order)."""

    index: int
    policy: str
    fleet_scale: float
    params: tuple[tuple[str, Any], ...]


def _param_value(name: str, v: Any, path: str) -> Any:
    """``v`` as a value of DispatchParams field ``name`` (a whole number is fine for a float), validated."""
    if _PARAM_FIELDS[name] == "float" and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    try:
        DispatchParams().with_updates(**{name: v})
    except ParamsError as exc:
        raise SweepError(path, str(exc).split(": ", 1)[1]) from None
    return v


def _axis(name: str, raw: Any, mode: str) -> ParamAxis:
    path = f"params.{name}"
    if isinstance(raw, Mapping):
        if mode != "random":
            raise SweepError(path, 'a {low, high} range only with mode = "random"; give a list of values')
        t = _Table(raw, path, ("low", "high"))
        kind = _PARAM_FIELDS[name]
        if kind == "int":
            low: float = _int(t.get("low"), t.at("low"))
            high: float = _int(t.get("high"), t.at("high"))
        elif kind == "float":
            low, high = _num(t.get("low"), t.at("low")), _num(t.get("high"), t.at("high"))
        else:
            raise SweepError(path, f"a range only for a number parameter ({name} is {kind}); give a list of choices")
        if high < low:
            raise SweepError(path, f"high must be >= low, got low = {low:g}, high = {high:g}")
        _param_value(name, low, t.at("low"))
        _param_value(name, high, t.at("high"))
        return ParamAxis(name, low=low, high=high)
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise SweepError(path, "must not be an empty list")
    values = tuple(
        _param_value(name, v, f"{path}[{i}]" if isinstance(raw, list) else path) for i, v in enumerate(items)
    )
    for i, v in enumerate(values):
        if v in values[:i]:
            raise SweepError(f"{path}[{i}]", f"value {v!r} is listed twice")
    return ParamAxis(name, values=values)


def _scales(raw: Any) -> tuple[float, ...]:
    t = _Table(raw, "fleet", ("scale",))
    v = t.get("scale", [1.0])
    items = v if isinstance(v, list) else [v]
    if not items:
        raise SweepError("fleet.scale", "must not be an empty list")
    out = tuple(
        _num(x, f"fleet.scale[{i}]" if isinstance(v, list) else "fleet.scale", 0.0, 100.0, lo_open=True)
        for i, x in enumerate(items)
    )
    for i, x in enumerate(out):
        if x in out[:i]:
            raise SweepError(f"fleet.scale[{i}]", f"scale {x:g} is listed twice")
    return out


def _policies(raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        if not raw:
            raise SweepError("policy", "must not be an empty list")
        out = tuple(_str(p, f"policy[{i}]", POLICIES) for i, p in enumerate(raw))
        for i, p in enumerate(out):
            if p in out[:i]:
                raise SweepError(f"policy[{i}]", f"policy {p!r} is listed twice")
        return out
    return (_str(raw, "policy", POLICIES),)


def parse_sweep(data: Mapping[str, Any], base_dir: str | os.PathLike[str] = ".") -> Sweep:
    """Validate a sweep document (as ``tomllib`` returns it); ``scenario`` and ``log`` are relative to ``base_dir``.

    Raises:
        SweepError: naming the dotted path of the first bad field.
    """
    try:
        return _parse(data, Path(base_dir))
    except SweepError:
        raise
    except ScenarioError as exc:  # from the shared field checks of dispatch.sim.scenario
        raise SweepError(exc.field, str(exc).split(": ", 1)[1] if exc.field else str(exc)) from None


def _parse(data: Mapping[str, Any], base: Path) -> Sweep:
    t = _Table(data, "", _TOP_KEYS)
    if t.has("scenario") == t.has("log"):
        raise SweepError("scenario", "give exactly one of scenario (a scenario file) and log (an order-log directory)")
    kind = "scenario" if t.has("scenario") else "log"
    source = base / _str(t.get(kind), kind)
    if kind == "scenario" and not source.is_file():
        raise SweepError("scenario", f"{source}: no such file")
    if kind == "log" and not source.is_dir():
        raise SweepError("log", f"{source}: no such directory")
    mode = _str(t.get("mode", "grid"), "mode", MODES)
    samples = 0
    if mode == "random":
        samples = _int(t.get("samples"), "samples", 1)
    elif t.has("samples"):
        raise SweepError("samples", 'only with mode = "random"')
    raw_params = t.get("params", {})
    if not isinstance(raw_params, Mapping):
        raise SweepError("params", f"must be a table of DispatchParams fields, got {_got(raw_params)}")
    axes = []
    for name, raw in raw_params.items():
        if name not in _PARAM_FIELDS:
            close = difflib.get_close_matches(name, list(_PARAM_FIELDS), 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SweepError(f"params.{name}", f"unknown dispatch parameter{hint}; known: {', '.join(_PARAM_FIELDS)}")
        axes.append(_axis(name, raw, mode))
    if mode == "random" and not axes:
        raise SweepError("params", 'mode = "random" needs at least one parameter to draw')
    workers = _int(t.get("workers"), "workers", 1) if t.has("workers") else None
    return Sweep(
        source=source,
        source_kind=kind,
        policies=_policies(t.get("policy", None)),
        mode=mode,
        samples=samples,
        seed=_int(t.get("seed", 0), "seed", 0),
        scales=_scales(t.get("fleet", {})),
        axes=tuple(axes),
        target_on_time=_num(t.get("target_on_time", 0.95), "target_on_time", 0.0, 1.0, lo_open=True),
        workers=workers,
    )


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
    """Read and validate a sweep file.

    Raises:
        SweepError: naming the dotted path of the first bad field (or the file, when it is not readable TOML).
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise SweepError("", f"{p}: cannot read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SweepError("", f"{p}: not valid TOML ({exc})") from None
    return parse_sweep(data, p.parent)


def param_settings(sweep: Sweep) -> list[tuple[tuple[str, Any], ...]]:
    """The parameter settings of the sweep: every combination of the axes' values (grid, in the file's order,
    the last axis fastest), or ``samples`` draws (random: per sample, per axis in the file's order, a choice or a
    uniform value, from ``numpy.random.default_rng(seed)``). A grid without axes has one empty setting."""
    if sweep.mode == "grid":
        names = [a.name for a in sweep.axes]
        return [tuple(zip(names, combo, strict=True)) for combo in itertools.product(*(a.values for a in sweep.axes))]
    rng = np.random.default_rng(sweep.seed)
    out = []
    for _ in range(sweep.samples):
        setting = []
        for a in sweep.axes:
            if a.values:
                v = a.values[int(rng.integers(len(a.values)))]
            elif _PARAM_FIELDS[a.name] == "int":
                assert a.low is not None and a.high is not None
                v = int(rng.integers(int(a.low), int(a.high) + 1))
            else:
                assert a.low is not None and a.high is not None
                v = float(rng.uniform(a.low, a.high))
            setting.append((a.name, v))
        out.append(tuple(setting))
    return out


def expand(sweep: Sweep, default_policy: str = "kernel") -> list[Point]:
    """Every point: policies x parameter settings x fleet scales (scale fastest), indexed from 0."""
    policies = sweep.policies or (default_policy,)
    combos = itertools.product(policies, param_settings(sweep), sweep.scales)
    return [Point(i, pol, scale, setting) for i, (pol, setting, scale) in enumerate(combos)]


# --------------------------------------------------------------------------------------------------------------
# Fleet scale
# --------------------------------------------------------------------------------------------------------------


def _count(scale: float, n: int) -> int:
    """round(scale * n), halves rounded up (with a guard against 3.4999999 for 0.7 x 5)."""
    x = scale * n
    return math.floor(x + 0.5 + 1e-9 * max(1.0, x))


def scale_fleet(log: OrderLog, scale: float, seed: int) -> OrderLog:
    """The log with its rider shifts scaled by ``scale`` at every site (orders and sites unchanged).

    Per site id, with c shifts, k = round(scale * c) (halves up) shifts are kept, in the order of a permutation of
    the site's shifts drawn from ``numpy.random.default_rng([seed, site_id])``: for k <= c the first k of the
    permutation (rows stay in the log's order), for k > c every shift plus k - c copies of the permutation's
    shifts, cycled, with new rider ids from ``max(rider_id) + 1`` up (in site-id order). So a site's fleet depends
    only on its own shifts, the seed and the scale, and the fleet at a smaller scale is a subset of the fleet at a
    larger one. ``scale == 1`` returns ``log`` itself.

    Raises:
        ValueError: when ``scale`` is not a finite number > 0 or ``seed`` is negative.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: must be a finite number > 0, got {scale!r}")
    if seed < 0:
        raise ValueError(f"seed: must be >= 0, got {seed}")
    if scale == 1.0:
        return log
    r = log.riders
    order = np.argsort(r.site_id, kind="stable")
    sid = r.site_id[order]
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]]) if sid.shape[0] else np.zeros(0, dtype=np.int64)
    bounds = np.r_[starts, sid.shape[0]].astype(np.int64)
    keep: list[npt.NDArray[np.int64]] = []
    copies: list[npt.NDArray[np.int64]] = []
    for g in range(starts.shape[0]):
        rows = order[bounds[g] : bounds[g + 1]]  # this site's shifts, in log order
        c = rows.shape[0]
        k = _count(scale, c)
        perm = np.random.default_rng([seed, int(sid[bounds[g]])]).permutation(c)
        if k <= c:
            keep.append(rows[perm[:k]])
        else:
            keep.append(rows)
            copies.append(rows[perm[np.arange(k - c) % c]])
    kept: RiderColumns = r.take(np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64))
    if not copies:
        return replace(log, riders=kept)
    dup: RiderColumns = r.take(np.concatenate(copies))
    first = int(r.rider_id.max()) + 1
    dup = replace(dup, rider_id=np.arange(first, first + len(dup), dtype=np.int64))
    return replace(log, riders=RiderColumns.concat([kept, dup]))


# --------------------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """The rows of sweep.csv (dicts, in point order), the Pareto mask over them, and answer.json's content."""

    rows: list[dict[str, Any]]
    pareto: npt.NDArray[np.bool_]
    answer: dict[str, dict[str, Any]]
    param_names: tuple[str, ...]
    out_dir: Path


def load_source(sweep: Sweep, out_dir: Path, quiet: bool = True) -> OrderLog:
    """The sweep's order log: read the log directory, or generate the scenario into ``out_dir/log`` and read it.

    Raises:
        SweepError: naming ``scenario`` when the scenario file is bad; LogError for a bad log.
    """
    from dispatch.sim.log import read_log

    if sweep.source_kind == "log":
        return read_log(sweep.source)
    from dispatch.sim.generate import generate
    from dispatch.sim.scenario import load_scenario

    try:
        sc = load_scenario(sweep.source)
    except ScenarioError as exc:
        raise SweepError("scenario", f"{sweep.source}: {exc}") from None
    log_dir = out_dir / "log"
    if not quiet:
        print(f"generating {sc.name} ({sc.demand.orders_per_day:,} orders) into {log_dir}", file=sys.stderr)
    generate(sc, log_dir)
    return read_log(log_dir)


def base_config(log: OrderLog) -> tuple[str, DispatchParams]:
    """The policy and dispatch parameters the log's scenario recorded (kernel and the defaults otherwise)."""
    rec: Any = log.meta.scenario or {}
    params = DispatchParams()
    if isinstance(rec.get("dispatch"), dict):
        params = params.with_updates(**rec["dispatch"])
    return str(rec.get("policy") or "kernel"), params


# Jobs for forked workers: set in the parent just before the pool starts, so the logs are not pickled.
_JOBS: list[tuple[OrderLog, Any, Path, dict[str, Any]]] = []


def _run_point(
    log: OrderLog,
    config: Any,
    out_dir: Path,
    record: dict[str, Any],
    on_shard: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Simulate one point (``config``: a SimConfig) and write its outputs, without the report, in ``out_dir``;
    the summary gets a ``sweep`` record (index, policy, fleet scale, swept parameters)."""
    from dispatch.sim.run import run_day, write_outputs

    t0 = time.perf_counter()
    day, _ = run_day(log, config, on_shard, keep_results=False)
    summ = write_outputs(out_dir, log, day, config, time.perf_counter() - t0, report=False)
    summ["sweep"] = record
    (out_dir / "summary.json").write_text(json.dumps(summ, indent=2, sort_keys=True) + "\n")
    return summ


def _run_job(i: int) -> tuple[int, dict[str, Any]]:
    return i, _run_point(*_JOBS[i])


def run_sweep(
    sweep: Sweep,
    out_dir: str | os.PathLike[str],
    *,
    log: OrderLog | None = None,
    workers: int | None = None,
    on_point: Callable[[int, dict[str, Any]], None] | None = None,
    on_shard: Callable[[int, int], None] | None = None,
    engine: str = "local",
    address: str | None = None,
) -> SweepResult:
    """Run every point and write sweep.csv, pareto.png, answer.json and points/<index>/ in ``out_dir``.

    Args:
        sweep: a validated sweep.
        out_dir: the output directory (created).
        log: the order log, when already loaded (else ``load_source``).
        workers: processes (default: the sweep's ``workers``, else one per core); see the module docstring.
        on_point: called as ``on_point(index, summary)`` as each point finishes (in any order).
        on_shard: passed to ``run_day`` when points run one after another in this process.
        engine: ``local`` (points in parallel over forked processes, each point's shards in its process) or
            ``ray`` (points one after another, each point's shards as Ray tasks over the cluster; Ray starts once).
        address: ``ray`` only: the cluster (see ``dispatch.sim.engines``); None = a private local Ray.
    """
    from dispatch.sim.engines import ENGINES, ray_session
    from dispatch.sim.run import SimConfig

    if engine not in ENGINES:
        raise ValueError(f"engine: must be one of {', '.join(ENGINES)}, got {engine!r}")
    if address is not None and engine != "ray":
        raise ValueError("address: only the ray engine takes a cluster address")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if log is None:
        log = load_source(sweep, out)
    policy, params = base_config(log)
    points = expand(sweep, policy)
    n_workers = workers or sweep.workers or os.cpu_count() or 1
    fork = "fork" in mp.get_all_start_methods()
    parallel = engine == "local" and n_workers > 1 and len(points) > 1 and fork
    logs = {s: scale_fleet(log, s, sweep.seed) for s in sweep.scales}
    jobs = []
    for p in points:
        config = SimConfig(
            policy=p.policy,
            params=params.with_updates(**dict(p.params)),
            workers=1 if parallel else n_workers,
            seed=log.meta.seed if log.meta.seed is not None else 0,
            engine=engine,
            address=address,
        )
        record = {"index": p.index, "policy": p.policy, "fleet_scale": p.fleet_scale, "params": dict(p.params)}
        jobs.append((logs[p.fleet_scale], config, out / "points" / str(p.index), record))
    summaries: dict[int, dict[str, Any]] = {}
    if parallel:
        _JOBS[:] = jobs
        try:
            with mp.get_context("fork").Pool(min(n_workers, len(jobs))) as pool:
                for i, summ in pool.imap_unordered(_run_job, range(len(jobs)), chunksize=1):
                    summaries[i] = summ
                    if on_point is not None:
                        on_point(i, summ)
        finally:
            _JOBS.clear()
    else:
        with ray_session(n_workers, address) if engine == "ray" else contextlib.nullcontext():
            for i, job in enumerate(jobs):
                summ = _run_point(*job, on_shard=on_shard)
                summaries[i] = summ
                if on_point is not None:
                    on_point(i, summ)
    names = tuple(a.name for a in sweep.axes)
    rows = [_row(p, summaries[p.index], names) for p in points]
    front = pareto_front(
        np.array([r["rider_hours_per_order"] for r in rows], dtype=np.float64),
        np.array([r["on_time_rate"] for r in rows], dtype=np.float64),
    )
    for r, on in zip(rows, front.tolist(), strict=True):
        r["pareto"] = on
    ans = answer(rows, sweep.target_on_time, sweep.policies or (policy,), names)
    write_csv(out / "sweep.csv", rows, names)
    write_pareto_plot(out / "pareto.png", rows, front, sweep.target_on_time)
    (out / "answer.json").write_text(json.dumps(ans, indent=2) + "\n")
    return SweepResult(rows, front, ans, names, out)


def _row(p: Point, summ: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"index": p.index, "policy": p.policy, "fleet_scale": p.fleet_scale,
                           "riders": summ["riders"]}  # fmt: skip
    values = dict(p.params)
    for n in names:
        row[n] = values[n]
    for k in CSV_KPIS:
        row[k] = summ[k]
    return row


# --------------------------------------------------------------------------------------------------------------
# The front, the answer and the files
# --------------------------------------------------------------------------------------------------------------


def pareto_front(cost: npt.NDArray[np.float64], value: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """bool[n]: the points no other point dominates, for ``cost`` float64[n] (rider-hours per order: lower is
    better) and ``value`` float64[n] (on-time rate: higher is better). q dominates p when q's cost <= p's, q's value
    >= p's and one of the two is strictly better. A point with a NaN is never on the front. O(n^2)."""
    ok = np.isfinite(cost) & np.isfinite(value)
    c = cost[:, None]
    v = value[:, None]
    dominated = (cost[None, :] <= c) & (value[None, :] >= v) & ((cost[None, :] < c) | (value[None, :] > v))
    dominated &= ok[None, :]
    return np.asarray(ok & ~dominated.any(axis=1), dtype=np.bool_)


def answer(
    rows: Sequence[Mapping[str, Any]], target: float, policies: Sequence[str], names: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Per policy: the point with the smallest fleet scale among those with ``on_time_rate >= target`` (ties: the
    fewest rider-hours per order, then the lowest index), or nulls when none reaches the target."""
    out: dict[str, dict[str, Any]] = {}
    for pol in policies:
        ok = [r for r in rows if r["policy"] == pol and _finite(r["on_time_rate"]) and r["on_time_rate"] >= target]
        if not ok:
            out[pol] = {"min_fleet_scale": None, "riders": None, "rider_hours_per_order": None,
                        "on_time_rate": None, "point": None, "params": None}  # fmt: skip
            continue
        best = min(ok, key=lambda r: (r["fleet_scale"], r["rider_hours_per_order"], r["index"]))
        out[pol] = {
            "min_fleet_scale": best["fleet_scale"],
            "riders": best["riders"],
            "rider_hours_per_order": best["rider_hours_per_order"],
            "on_time_rate": best["on_time_rate"],
            "point": best["index"],
            "params": {n: best[n] for n in names},
        }
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return ""
    return str(v)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    """sweep.csv: the columns of the module docstring, one row per point."""
    cols = ["index", "policy", "fleet_scale", "riders", *names, *CSV_KPIS, "pareto"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            w.writerow([_cell(r[c]) for c in cols])


def write_pareto_plot(
    path: Path, rows: Sequence[Mapping[str, Any]], front: npt.NDArray[np.bool_], target: float
) -> None:
    """pareto.png: on-time rate (%) against rider-hours per order, by policy, the front and the target."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no display backend

    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    x = np.array([r["rider_hours_per_order"] for r in rows], dtype=np.float64)
    y = 100.0 * np.array([r["on_time_rate"] for r in rows], dtype=np.float64)
    pol = np.array([r["policy"] for r in rows])
    for name in dict.fromkeys(pol.tolist()):
        sel = pol == name
        ax.scatter(x[sel], y[sel], s=28, label=name, zorder=3)
    for xi, yi, r in zip(x, y, rows, strict=True):
        if math.isfinite(xi) and math.isfinite(yi):
            ax.annotate(f"x{r['fleet_scale']:g}", (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
    if front.any():
        o = np.argsort(x[front], kind="stable")
        ax.plot(x[front][o], y[front][o], color="black", lw=1.2, drawstyle="steps-post", label="Pareto front",
                zorder=2)  # fmt: skip
    ax.axhline(100.0 * target, color="tab:red", ls="--", lw=1.0, label=f"target {100 * target:g}%")
    ax.set(xlabel="rider-hours per order", ylabel="% of orders on time",
           title="Sweep: promises kept against rider time (labels: fleet scale)")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------------------


def cmd_sweep(args: argparse.Namespace) -> int:
    """The command's handler: 0 on success, 2 on a bad sweep file, scenario, log or option."""
    from dispatch.sim.engines import EngineError
    from dispatch.sim.log import LogError

    quiet = args.quiet or args.json
    out = Path(args.out)
    try:
        if args.workers is not None and args.workers < 1:
            raise SweepError("--workers", f"must be >= 1, got {args.workers}")
        sweep = load_sweep(args.sweep)
        log = load_source(sweep, out, quiet)
        n_points = len(expand(sweep, base_config(log)[0]))
        if quiet:
            result = run_sweep(sweep, out, log=log, workers=args.workers, engine=args.engine, address=args.address)
        else:
            result = _run_with_bar(sweep, out, log, args, n_points)
    except (SweepError, LogError, ParamsError, ValueError, EngineError) as exc:
        print(f"dispatch sweep: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.answer, sort_keys=True))
    elif not args.quiet:
        _table(result, sweep.target_on_time)
    return 0


def _run_with_bar(sweep: Sweep, out: Path, log: OrderLog, args: argparse.Namespace, n_points: int) -> SweepResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    n_orders = max(1, len(log.orders))
    with Progress(
        TextColumn(f"sweep over {log.meta.name or 'the log'}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("points"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("sweep", total=n_points)
        done = 0

        def on_point(_i: int, _summ: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            bar.update(task, completed=done)

        def on_shard(orders_done: int, _riders: int) -> None:  # points run one by one: show progress within one
            bar.advance(task, orders_done / n_orders)

        return run_sweep(sweep, out, log=log, workers=args.workers, on_point=on_point, on_shard=on_shard,
                         engine=args.engine, address=args.address)  # fmt: skip


def _table(result: SweepResult, target: float) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Smallest fleet keeping {100 * target:g}% of promises")
    for col in ("policy", "fleet scale", "riders", "rider-h/order", "on time", "point"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    notes = []
    for pol, a in result.answer.items():
        if a["min_fleet_scale"] is None:
            mine = [r for r in result.rows if r["policy"] == pol and _finite(r["on_time_rate"])]
            best = max(mine, key=lambda r: (r["on_time_rate"], -r["index"]), default=None)
            t.add_row(pol, "none", "", "", "", "")
            if best is not None:
                notes.append(f"{pol}: no point reaches {100 * target:g}%; the best is {best['on_time_rate']:.2%} "
                             f"(point {best['index']}, fleet scale {best['fleet_scale']:g})")  # fmt: skip
            continue
        t.add_row(pol, f"{a['min_fleet_scale']:g}", f"{a['riders']:,}", f"{a['rider_hours_per_order']:.4f}",
                  f"{a['on_time_rate']:.2%}", str(a["point"]))  # fmt: skip
        if a["params"]:
            values = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in a["params"].items())
            notes.append(f"{pol}: point {a['point']} has {values}")
    console = Console()
    console.print(t)
    for n in notes:
        console.print(n)
    console.print(f"outputs in {result.out_dir}: sweep.csv ({len(result.rows)} points), pareto.png, answer.json, "
                  "points/<index>/summary.json")  # fmt: skip


def register(sub: Any) -> None:
    """Add ``sweep`` to an argparse subparsers object."""
    p = sub.add_parser(
        "sweep",
        help="run a grid or random sample of dispatch parameters and fleet sizes; Pareto plot and answer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep", help="a sweep file (.toml; see simulations/sweep_demo.toml)")
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: the file's, else one per core)")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: points in parallel over processes; ray: points in turn, each point's shards over a Ray cluster",
    )
    p.add_argument("--address", default=None, help="ray only: 'auto' or ray://HOST:PORT (default: a private local Ray)")
    p.add_argument("--json", action="store_true", help="print answer.json's content instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    p.set_defaults(func=cmd_sweep)
