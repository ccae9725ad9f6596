"""Readers for the literature's text formats, turned into a ``VrpInstance``.

- Solomon VRPTW: line 1 the name; after ``VEHICLE`` and a ``NUMBER CAPACITY`` header, one line ``K Q``; after
  ``CUSTOMER`` and a header line, rows ``i x y demand ready due service``, row 0 the depot (its ``due`` is the
  horizon).
- Li & Lim PDPTW: line 1 ``K Q S`` (vehicles, capacity, speed); then rows ``i x y demand ready due service p d``,
  row 0 the depot; demand > 0 for a pickup (``d`` its delivery's id, ``p`` 0), < 0 for a delivery (``p`` its
  pickup's id, ``d`` 0). The instance's name is the file's stem.

The readers are strict: a malformed file raises ``InstanceFormatError`` naming the file, the line (1-based) and
what is wrong. Blank lines are skipped; fields are separated by any whitespace (the published files use spaces or
tabs and CRLF line ends).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dispatch.vrp.problem import VrpInstance

FORMATS = ("solomon", "lilim")


class InstanceFormatError(ValueError):
    """A benchmark instance file that does not follow its format."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line
        self.message = message


def _lines(path: str | Path) -> list[tuple[int, str]]:
    """Non-blank lines of the file as (1-based line number, stripped text)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InstanceFormatError(p, None, "no such file") from None
    except IsADirectoryError:
        raise InstanceFormatError(p, None, "is a directory, not an instance file") from None
    except OSError as e:
        raise InstanceFormatError(p, None, f"cannot be read ({e.strerror or e})") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        bad_line = raw[: e.start].count(b"\n") + 1
        raise InstanceFormatError(p, bad_line, "not a text file (a byte that is not ASCII)") from None
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s:
            out.append((i, s))
    return out


def _numbers(path: str | Path, lineno: int, text: str, names: tuple[str, ...]) -> list[float]:
    """Parse the whitespace-separated fields of one row as finite numbers, exactly ``len(names)`` of them."""
    fields = text.split()
    if len(fields) != len(names):
        raise InstanceFormatError(
            path, lineno, f"expected {len(names)} fields ({' '.join(names)}), found {len(fields)}: {text!r}"
        )
    out = []
    for name, f in zip(names, fields, strict=True):
        try:
            v = float(f)
        except ValueError:
            raise InstanceFormatError(path, lineno, f"field {name!r} is not a number: {f!r}") from None
        if not math.isfinite(v):
            raise InstanceFormatError(path, lineno, f"field {name!r} is not finite: {f!r}")
        out.append(v)
    return out


def _whole(path: str | Path, lineno: int, name: str, v: float) -> int:
    if v != int(v):
        raise InstanceFormatError(path, lineno, f"{name} must be a whole number, got {v:g}")
    return int(v)


_TASK = ("i", "x", "y", "demand", "ready", "due", "service")


def _check_rows(path: str | Path, rows: list[tuple[int, list[float]]], capacity: float) -> None:
    """Checks common to both formats: ids 0..n in order, windows, service, the depot's row."""
    if len(rows) < 2:
        raise InstanceFormatError(path, rows[0][0] if rows else None, "needs a depot row and at least one task row")
    for k, (ln, r) in enumerate(rows):
        i = _whole(path, ln, "the id", r[0])
        if i != k:
            raise InstanceFormatError(path, ln, f"ids must run 0, 1, 2, ... in order: expected {k}, found {i}")
        ready, due, service = r[4], r[5], r[6]
        if ready > due:
            raise InstanceFormatError(path, ln, f"node {k}: ready time {ready:g} is after its due time {due:g}")
        if service < 0:
            raise InstanceFormatError(path, ln, f"node {k}: negative service time {service:g}")
        if abs(r[3]) > capacity:
            raise InstanceFormatError(path, ln, f"node {k}: demand {r[3]:g} exceeds the vehicle capacity {capacity:g}")
    ln0, depot = rows[0]
    if depot[3] != 0:
        raise InstanceFormatError(path, ln0, f"the depot (row 0) must have demand 0, got {depot[3]:g}")


def _instance(
    name: str, n_vehicles: int, capacity: float, rows: list[list[float]], pickup: list[int], delivery: list[int]
) -> VrpInstance:
    a = np.asarray(rows, dtype=np.float64)
    return VrpInstance(
        name=name,
        n_vehicles=n_vehicles,
        capacity=capacity,
        x=np.ascontiguousarray(a[:, 1]),
        y=np.ascontiguousarray(a[:, 2]),
        demand=np.ascontiguousarray(a[:, 3]),
        ready=np.ascontiguousarray(a[:, 4]),
        due=np.ascontiguousarray(a[:, 5]),
        service=np.ascontiguousarray(a[:, 6]),
        pickup=np.asarray(pickup, dtype=np.int64),
        delivery=np.asarray(delivery, dtype=np.int64),
    )


def _fleet(path: str | Path, ln: int, k: float, q: float) -> tuple[int, float]:
    n_vehicles = _whole(path, ln, "the number of vehicles", k)
    if n_vehicles < 1:
        raise InstanceFormatError(path, ln, f"the number of vehicles must be >= 1, got {n_vehicles}")
    if not q > 0:
        raise InstanceFormatError(path, ln, f"the capacity must be > 0, got {q:g}")
    return n_vehicles, q


def read_solomon(path: str | Path) -> VrpInstance:
    """Read a Solomon VRPTW file (see the module docstring); every demand is a delivery from the depot."""
    lines = _lines(path)
    if not lines:
        raise InstanceFormatError(path, None, "the file is empty")
    name = lines[0][1].split()[0]
    upper = [s.upper() for _, s in lines]
    try:
        iv = upper.index("VEHICLE")
    except ValueError:
        raise InstanceFormatError(path, None, "no 'VEHICLE' section") from None
    if iv + 2 >= len(lines) or not upper[iv + 1].startswith("NUMBER"):
        raise InstanceFormatError(
            path, lines[iv][0], "'VEHICLE' must be followed by a 'NUMBER CAPACITY' header and a line 'K Q'"
        )
    ln_fleet, fleet_text = lines[iv + 2]
    k, q = _numbers(path, ln_fleet, fleet_text, ("vehicles", "capacity"))
    n_vehicles, capacity = _fleet(path, ln_fleet, k, q)
    try:
        ic = upper.index("CUSTOMER", iv + 3)
    except ValueError:
        raise InstanceFormatError(path, None, "no 'CUSTOMER' section after the 'VEHICLE' section") from None
    if ic + 1 >= len(lines) or lines[ic + 1][1][:1].isdigit():
        raise InstanceFormatError(path, lines[ic][0], "'CUSTOMER' must be followed by a header line, then the rows")
    rows = [(ln, _numbers(path, ln, s, _TASK)) for ln, s in lines[ic + 2 :]]
    _check_rows(path, rows, capacity)
    for ln, r in rows[1:]:
        if r[3] < 0:
            raise InstanceFormatError(path, ln, f"node {int(r[0])}: negative demand {r[3]:g} in a VRPTW")
    n1 = len(rows)
    return _instance(name, n_vehicles, capacity, [r for _, r in rows], [-1] * n1, [-1] * n1)


_PDP = (*_TASK, "p", "d")


def read_lilim(path: str | Path) -> VrpInstance:
    """Read a Li & Lim PDPTW file (see the module docstring); the name is the file's stem."""
    lines = _lines(path)
    if not lines:
        raise InstanceFormatError(path, None, "the file is empty")
    ln_head, head = lines[0]
    k, q, speed = _numbers(path, ln_head, head, ("vehicles", "capacity", "speed"))
    n_vehicles, capacity = _fleet(path, ln_head, k, q)
    if speed != 1:
        raise InstanceFormatError(
            path, ln_head, f"speed {speed:g} is not supported: travel time equals distance (speed 1)"
        )
    rows = [(ln, _numbers(path, ln, s, _PDP)) for ln, s in lines[1:]]
    _check_rows(path, rows, capacity)
    n1 = len(rows)
    pickup = [-1] * n1
    delivery = [-1] * n1
    ln0, depot = rows[0]
    if depot[7] != 0 or depot[8] != 0:
        raise InstanceFormatError(path, ln0, "the depot (row 0) must have p = 0 and d = 0")
    for i, (ln, r) in enumerate(rows[1:], start=1):
        p = _whole(path, ln, "p", r[7])
        d = _whole(path, ln, "d", r[8])
        dem = r[3]
        if dem > 0:
            if p != 0 or not 1 <= d < n1:
                raise InstanceFormatError(
                    path, ln, f"node {i} is a pickup (demand {dem:g} > 0): needs p = 0 and d a node id in 1..{n1 - 1}"
                )
            delivery[i] = d
        elif dem < 0:
            if d != 0 or not 1 <= p < n1:
                raise InstanceFormatError(
                    path, ln, f"node {i} is a delivery (demand {dem:g} < 0): needs d = 0 and p a node id in 1..{n1 - 1}"
                )
            pickup[i] = p
        else:
            raise InstanceFormatError(path, ln, f"node {i} has demand 0: neither a pickup nor a delivery")
    for i in range(1, n1):
        ln, r = rows[i]
        if delivery[i] >= 0:
            d = delivery[i]
            if pickup[d] != i:
                raise InstanceFormatError(
                    path, ln, f"pickup {i} names delivery {d}, but node {d} does not name {i} as its pickup"
                )
            if rows[d][1][3] != -r[3]:
                raise InstanceFormatError(
                    path, ln, f"pickup {i} has demand {r[3]:g} but its delivery {d} has {rows[d][1][3]:g}"
                )
        elif pickup[i] >= 0 and delivery[pickup[i]] != i:
            raise InstanceFormatError(
                path, ln, f"delivery {i} names pickup {pickup[i]}, but node {pickup[i]} does not name {i}"
            )
    return _instance(Path(path).stem, n_vehicles, capacity, [r for _, r in rows], pickup, delivery)


def read_instance(path: str | Path, fmt: str) -> VrpInstance:
    """Read ``path`` in format ``fmt`` (``solomon`` or ``lilim``)."""
    if fmt == "solomon":
        return read_solomon(path)
    if fmt == "lilim":
        return read_lilim(path)
    raise ValueError(f"unknown instance format {fmt!r}: expected one of {', '.join(FORMATS)}")
