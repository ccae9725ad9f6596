"""Order logs: one simulated (or real) day on disk, as three Parquet files and a JSON header.

A log is a directory::

    meta.json        the header: format version, coordinates, travel model, day start, UTC offset, seed, counts
    sites.parquet    one row per site
    orders.parquet   one row per order, sorted by placed_at (then by order_id)
    riders.parquet   one row per rider shift

``dispatch generate`` writes one from a scenario (deterministically from its seed); a real day's log written to the
same schema can be replayed by ``dispatch simulate LOG_DIR``.

Coordinates. ``meta.json`` declares ``"coordinates"``: ``"wgs84"`` (positions are latitude/longitude degrees, in
columns named ``lat``/``lng``) or ``"planar_m"`` (positions are metres east/north in some plane, as in projected
city data and published benchmark instances, in columns named ``x``/``y``). In memory (``SiteColumns`` and friends)
a position is always the pair ``(x, y)`` in GeoJSON order: ``x`` = longitude or metres east, ``y`` = latitude or
metres north.

Times are float64 seconds. In a real or generated day they are UTC epoch seconds; a benchmark instance may count
from 0 (then ``day_start`` is 0). Sizes and capacities are in the same abstract units (boxes, bags).

sites.parquet

| column | type | meaning |
| --- | --- | --- |
| ``site_id`` | int64 | unique, >= 0 |
| ``lat``, ``lng`` / ``x``, ``y`` | float64 | the site's position (degrees / metres) |
| ``service_s`` | float64 | seconds a rider spends at the site to pick up a bag, >= 0 |
| ``zone_m`` | float64 | radius of the site's service zone in metres, > 0 |
| ``city`` | string | optional: the city the site belongs to (used for per-city reports and sharding) |

orders.parquet (sorted by ``placed_at``; written in row groups so that a day of 25M orders streams)

| column | type | meaning |
| --- | --- | --- |
| ``order_id`` | int64 | unique |
| ``site_id`` | int64 | the pickup site; must be in sites.parquet |
| ``drop_lat``, ``drop_lng`` / ``drop_x``, ``drop_y`` | float64 | the drop-off (degrees / metres) |
| ``placed_at`` | float64 | when the customer placed the order (epoch seconds) |
| ``ready_at`` | float64 | when it is picked and packed at the site, >= placed_at |
| ``promised_by`` | float64 | the promised delivery deadline, >= placed_at |
| ``size`` | int32 | capacity units it takes, >= 1 |
| ``service_drop_s`` | float64 | seconds to hand it over at the door, >= 0 |

riders.parquet (one row per rider shift; a shift crossing midnight appears twice in a generated day: the one
that started the evening before and ends this morning, and the one that starts tonight)

| column | type | meaning |
| --- | --- | --- |
| ``rider_id`` | int64 | unique |
| ``site_id`` | int64 | the rider's home site; must be in sites.parquet |
| ``start_lat``, ``start_lng`` / ``start_x``, ``start_y`` | float64 | where the rider comes online |
| ``shift_start``, ``shift_end`` | float64 | epoch seconds, shift_end > shift_start |
| ``capacity`` | int32 | most size units on board at once, >= 1 |
| ``speed_factor`` | float64 | multiplies the travel model's speed, > 0 (1.0 = the model's speed) |

meta.json (a JSON object)

- ``format``: ``"dispatch-order-log"``; ``version``: 1.
- ``coordinates``: ``"wgs84"`` or ``"planar_m"``.
- ``travel``: ``{"kind", "speed_mps", "detour", "round_up_minutes"}``. ``kind`` ``"profile"`` is the default
  time-dependent model: ``speed_mps`` is a list of B speeds over B equal bins of the local day, a leg is the straight
  line times ``detour`` ridden over the profile. ``kind`` ``"constant"`` is one speed all day (``speed_mps`` a
  number), with each leg's time rounded up to whole minutes when ``round_up_minutes`` is true (as some published
  benchmark protocols require).
- ``day_start``: epoch seconds of the local midnight that starts the day (0 for a benchmark instance).
- ``utc_offset_s``: seconds added to UTC to get local time (28800 for China).
- ``name``, ``description`` (optional): the scenario's name and description.
- ``seed`` (optional): the seed a generated log was drawn from.
- ``counts`` (optional): ``{"sites", "orders", "riders"}`` row counts, checked when present.
- ``scenario`` (optional): settings of the scenario that generated the log (``policy``, ``shard``, ``dispatch``
  parameters, ``source_sha256``), so that simulating the log reproduces them. ``shard`` (one of ``SHARD_MODES``;
  ``"site"`` when absent) says whether riders may serve other sites than their own (``dispatch.sim.shard``).

Reading is strict: a missing file or column, a column of the wrong type, a null, NaN or infinite value, an order
promised (or ready) before it was placed, a site id that is not in sites.parquet, a duplicate id, a shift that ends
before it starts ... each raises :class:`LogError` naming the file and the column (and the first bad row). Columns
not in the schema are ignored. Integer columns accept any integer type, float columns any integer or floating
type, and time columns also Arrow timestamps (converted to epoch seconds; a timestamp without a time zone is read
as UTC).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from dispatch.geo import SpeedProfile
from dispatch.policy import ParamsError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
STR = npt.NDArray[np.str_]

FORMAT = "dispatch-order-log"
VERSION = 1
COORDINATES = ("wgs84", "planar_m")
TRAVEL_KINDS = ("profile", "constant")
# Who may serve whom in a simulation (``dispatch.sim.shard``): a rider serves its home site only, any site of its
# city, or any site at all.
SHARD_MODES = ("site", "city", "none")

META_FILE = "meta.json"
SITES_FILE = "sites.parquet"
ORDERS_FILE = "orders.parquet"
RIDERS_FILE = "riders.parquet"

DEFAULT_ROW_GROUP_ROWS = 1_000_000

__all__ = [
    "COORDINATES",
    "SHARD_MODES",
    "LogError",
    "LogMeta",
    "LogWriter",
    "OrderColumns",
    "OrderLog",
    "RiderColumns",
    "SiteColumns",
    "TravelModel",
    "iter_orders",
    "position_columns",
    "read_log",
    "read_meta",
    "site_index",
    "write_log",
]


class LogError(ValueError):
    """A log is malformed. ``file`` names the file (``orders.parquet``, ``meta.json`` ...) and ``column`` the column
    (or the meta.json key), when there is one."""

    def __init__(self, file: str, column: str | None, message: str) -> None:
        where = file if column is None else f"{file}: {'key' if file == META_FILE else 'column'} {column}"
        super().__init__(f"{where}: {message}")
        self.file = file
        self.column = column


# --------------------------------------------------------------------------------------------------------------
# The travel model and the header
# --------------------------------------------------------------------------------------------------------------


def _default_speeds() -> tuple[float, ...]:
    return SpeedProfile.default_ebike().speed_mps


@dataclass(frozen=True)
class TravelModel:
    """How long legs take in a log (or a scenario).

    Attributes:
        kind: ``"profile"``: the default time-dependent model (the straight line times ``detour`` over a speed
            profile of the local time of day, see :class:`dispatch.geo.ProfileTravelTime`); ``"constant"``: one
            speed all day.
        speed_mps: metres per second: B > 1 values over B equal bins of the local day for ``profile`` (default:
            the e-bike profile of :meth:`dispatch.geo.SpeedProfile.default_ebike`, 24 hourly values), exactly one
            value for ``constant``.
        detour: road distance over straight-line distance, >= 1 (1.0 for benchmark instances measured in
            straight lines).
        round_up_minutes: ``constant`` only: every leg's travel time is rounded up to whole minutes.

    Raises:
        ParamsError: naming the field.
    """

    kind: str = "profile"
    speed_mps: tuple[float, ...] = field(default_factory=_default_speeds)
    detour: float = 1.3
    round_up_minutes: bool = False

    def __post_init__(self) -> None:
        if self.kind not in TRAVEL_KINDS:
            raise ParamsError("kind", f"must be one of {list(TRAVEL_KINDS)}, got {self.kind!r}")
        speeds = self.speed_mps
        if isinstance(speeds, int | float) and not isinstance(speeds, bool):
            speeds = (float(speeds),)
        if not isinstance(speeds, Sequence) or isinstance(speeds, str):
            raise ParamsError("speed_mps", f"must be a number or a list of numbers, got {speeds!r}")
        for b, v in enumerate(speeds):
            if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
                raise ParamsError("speed_mps", f"must be finite numbers > 0, got {v!r} at index {b}")
        speeds = tuple(float(v) for v in speeds)
        if self.kind == "constant" and len(speeds) != 1:
            raise ParamsError("speed_mps", f"a constant travel model takes one speed, got {len(speeds)}")
        if self.kind == "profile" and (len(speeds) < 2 or 86_400 % len(speeds) != 0):
            raise ParamsError(
                "speed_mps",
                f"a profile needs B > 1 speeds over B equal bins of a day (24, 48, 96 ...), got {len(speeds)}",
            )
        d = self.detour
        if isinstance(d, bool) or not isinstance(d, int | float) or not (math.isfinite(d) and d >= 1.0):
            raise ParamsError("detour", f"must be a finite number >= 1, got {d!r}")
        if not isinstance(self.round_up_minutes, bool):
            raise ParamsError("round_up_minutes", f"must be true or false, got {self.round_up_minutes!r}")
        if self.round_up_minutes and self.kind != "constant":
            raise ParamsError(
                "round_up_minutes", 'only a constant travel model rounds up to minutes (kind = "constant")'
            )
        object.__setattr__(self, "speed_mps", speeds)
        object.__setattr__(self, "detour", float(d))

    @property
    def bin_s(self) -> float:
        """Seconds per speed bin (a whole day for ``constant``)."""
        return 86_400.0 / len(self.speed_mps)

    def to_json(self) -> dict[str, Any]:
        speed: Any = self.speed_mps[0] if self.kind == "constant" else list(self.speed_mps)
        return {
            "kind": self.kind,
            "speed_mps": speed,
            "detour": self.detour,
            "round_up_minutes": self.round_up_minutes,
        }

    @staticmethod
    def from_json(obj: Any, where: str = "travel") -> TravelModel:
        """Parse ``to_json``'s output. Raises ParamsError naming ``where.<field>``."""
        if not isinstance(obj, Mapping):
            raise ParamsError(where, f"must be an object, got {obj!r}")
        known = {"kind", "speed_mps", "detour", "round_up_minutes"}
        for k in obj:
            if k not in known:
                raise ParamsError(f"{where}.{k}", f"unknown key (known: {', '.join(sorted(known))})")
        kind = obj.get("kind", "profile")
        kwargs: dict[str, Any] = {"kind": kind}
        for k in ("speed_mps", "detour", "round_up_minutes"):
            if k in obj:
                kwargs[k] = obj[k]
        try:
            return TravelModel(**kwargs)
        except ParamsError as exc:
            raise ParamsError(f"{where}.{exc.field}", str(exc).split(": ", 1)[1]) from None


@dataclass(frozen=True)
class LogMeta:
    """The header of a log (meta.json).

    Attributes:
        coordinates: ``"wgs84"`` or ``"planar_m"``.
        travel: the travel model.
        day_start: epoch seconds of the local midnight that starts the day (0 for a benchmark instance).
        utc_offset_s: seconds added to UTC to get local time, within +-14 h.
        name, description: the scenario's name and description.
        seed: the seed a generated log was drawn from (None for a real log).
        scenario: settings of the generating scenario (policy, shard, dispatch parameters, source hash), or None.
    """

    coordinates: str
    travel: TravelModel
    day_start: float
    utc_offset_s: float = 0.0
    name: str = ""
    description: str = ""
    seed: int | None = None
    scenario: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.coordinates not in COORDINATES:
            raise LogError(META_FILE, "coordinates", f"must be one of {list(COORDINATES)}, got {self.coordinates!r}")
        if not isinstance(self.travel, TravelModel):
            raise LogError(META_FILE, "travel", f"expected a TravelModel, got {type(self.travel).__name__}")
        for name in ("day_start", "utc_offset_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise LogError(META_FILE, name, f"must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if abs(self.utc_offset_s) > 14 * 3600:
            raise LogError(META_FILE, "utc_offset_s", f"must be within +-50400 (14 h), got {self.utc_offset_s}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise LogError(META_FILE, "seed", f"must be an integer or absent, got {self.seed!r}")
        for name in ("name", "description"):
            if not isinstance(getattr(self, name), str):
                raise LogError(META_FILE, name, f"must be a string, got {getattr(self, name)!r}")

    def to_json(self, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "description": self.description,
            "coordinates": self.coordinates,
            "travel": self.travel.to_json(),
            "day_start": self.day_start,
            "utc_offset_s": self.utc_offset_s,
            "seed": self.seed,
        }
        if counts is not None:
            out["counts"] = dict(counts)
        if self.scenario is not None:
            out["scenario"] = dict(self.scenario)
        return out


# --------------------------------------------------------------------------------------------------------------
# Columns in memory
# --------------------------------------------------------------------------------------------------------------


def position_columns(prefix: str, coordinates: str) -> tuple[str, str]:
    """The file's column names for the in-memory ``(x, y)`` pair: ``(prefix + "lng", prefix + "lat")`` for wgs84,
    ``(prefix + "x", prefix + "y")`` for planar_m."""
    return (f"{prefix}lng", f"{prefix}lat") if coordinates == "wgs84" else (f"{prefix}x", f"{prefix}y")


class _Columns:
    """Shared helpers of the column dataclasses (every field a 1-D numpy array of one length)."""

    def __len__(self) -> int:
        return int(getattr(self, fields(self)[0].name).shape[0])  # type: ignore[arg-type]

    def take(self, idx: npt.NDArray[np.integer[Any]] | slice) -> Any:
        """The rows ``idx`` (an index array or a slice), as a new instance of the same class."""
        return type(self)(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})  # type: ignore[arg-type]

    @classmethod
    def concat(cls, parts: Sequence[Any]) -> Any:
        """The rows of ``parts`` one after another (at least one part)."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class SiteColumns(_Columns):
    """s sites: ``site_id`` int64[s]; ``x``, ``y`` float64[s] (lng/lat degrees or metres east/north);
    ``service_s``, ``zone_m`` float64[s]; ``city`` str[s] ("" when unknown)."""

    site_id: I64
    x: F64
    y: F64
    service_s: F64
    zone_m: F64
    city: STR


@dataclass(frozen=True)
class OrderColumns(_Columns):
    """n orders: ``order_id``, ``site_id`` int64[n]; ``drop_x``, ``drop_y`` float64[n]; ``placed_at``, ``ready_at``,
    ``promised_by`` float64[n] seconds; ``size`` int32[n]; ``service_drop_s`` float64[n]."""

    order_id: I64
    site_id: I64
    drop_x: F64
    drop_y: F64
    placed_at: F64
    ready_at: F64
    promised_by: F64
    size: I32
    service_drop_s: F64


@dataclass(frozen=True)
class RiderColumns(_Columns):
    """m rider shifts: ``rider_id``, ``site_id`` int64[m]; ``start_x``, ``start_y`` float64[m]; ``shift_start``,
    ``shift_end`` float64[m] seconds; ``capacity`` int32[m]; ``speed_factor`` float64[m]."""

    rider_id: I64
    site_id: I64
    start_x: F64
    start_y: F64
    shift_start: F64
    shift_end: F64
    capacity: I32
    speed_factor: F64


@dataclass(frozen=True)
class OrderLog:
    """A whole log in memory: the header and the three tables (orders sorted by placed_at)."""

    meta: LogMeta
    sites: SiteColumns
    orders: OrderColumns
    riders: RiderColumns


# Column layout: (attribute, file column or None for a position, type). Positions are named by position_columns.
_INT64, _INT32, _FLOAT64, _STRING = "int64", "int32", "float64", "string"
_ARROW = {_INT64: pa.int64(), _INT32: pa.int32(), _FLOAT64: pa.float64(), _STRING: pa.string()}
_NUMPY: dict[str, Any] = {_INT64: np.int64, _INT32: np.int32, _FLOAT64: np.float64, _STRING: np.str_}

_SITE_LAYOUT = (("site_id", _INT64), ("x", _FLOAT64), ("y", _FLOAT64), ("service_s", _FLOAT64),
                ("zone_m", _FLOAT64), ("city", _STRING))  # fmt: skip
_ORDER_LAYOUT = (("order_id", _INT64), ("site_id", _INT64), ("drop_x", _FLOAT64), ("drop_y", _FLOAT64),
                 ("placed_at", _FLOAT64), ("ready_at", _FLOAT64), ("promised_by", _FLOAT64), ("size", _INT32),
                 ("service_drop_s", _FLOAT64))  # fmt: skip
_RIDER_LAYOUT = (("rider_id", _INT64), ("site_id", _INT64), ("start_x", _FLOAT64), ("start_y", _FLOAT64),
                 ("shift_start", _FLOAT64), ("shift_end", _FLOAT64), ("capacity", _INT32),
                 ("speed_factor", _FLOAT64))  # fmt: skip
_POS_PREFIX = {SITES_FILE: "", ORDERS_FILE: "drop_", RIDERS_FILE: "start_"}
_OPTIONAL = {(SITES_FILE, "city")}
_TIME_COLUMNS = {"placed_at", "ready_at", "promised_by", "shift_start", "shift_end"}


def _layout(file: str) -> tuple[tuple[str, str], ...]:
    return {SITES_FILE: _SITE_LAYOUT, ORDERS_FILE: _ORDER_LAYOUT, RIDERS_FILE: _RIDER_LAYOUT}[file]


def _file_columns(file: str, coordinates: str) -> list[tuple[str, str, str]]:
    """``(attribute, file column, type)`` in file order (lat before lng for wgs84)."""
    prefix = _POS_PREFIX[file]
    xname, yname = position_columns(prefix, coordinates)
    out: list[tuple[str, str, str]] = []
    for attr, kind in _layout(file):
        if attr == f"{prefix}x":
            continue
        if attr == f"{prefix}y":
            pair = [(f"{prefix}y", yname, kind), (f"{prefix}x", xname, kind)]
            out.extend(pair if coordinates == "wgs84" else pair[::-1])
            continue
        out.append((attr, attr, kind))
    return out


def arrow_schema(file: str, coordinates: str) -> pa.Schema:
    """The Arrow schema ``write_log`` writes for ``file`` (sites.parquet, orders.parquet or riders.parquet)."""
    return pa.schema([pa.field(col, _ARROW[kind], nullable=False) for _, col, kind in _file_columns(file, coordinates)])


# --------------------------------------------------------------------------------------------------------------
# Validation (shared by the writer and the reader)
# --------------------------------------------------------------------------------------------------------------


def _row(offset: int, i: int, ids: I64 | None, id_name: str) -> str:
    return f"row {offset + i}" + ("" if ids is None else f" ({id_name} {int(ids[i])})")


def _check_finite(file: str, col: str, a: F64, offset: int, ids: I64 | None, id_name: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LogError(
            file, col, f"{int(bad.sum())} NaN or infinite values, first {a[i]} at {_row(offset, i, ids, id_name)}"
        )


def _check_min(
    file: str, col: str, a: npt.NDArray[Any], lo: float, strict: bool, offset: int, ids: I64 | None, id_name: str
) -> None:
    bad = a <= lo if strict else a < lo
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        rule = f"> {lo:g}" if strict else f">= {lo:g}"
        raise LogError(file, col, f"must be {rule}: {int(bad.sum())} rows are not, first {a[i]} at "
                                  f"{_row(offset, i, ids, id_name)}")  # fmt: skip


def _check_positions(file: str, coordinates: str, x: F64, y: F64, offset: int, ids: I64 | None, id_name: str) -> None:
    xname, yname = position_columns(_POS_PREFIX[file], coordinates)
    _check_finite(file, xname, x, offset, ids, id_name)
    _check_finite(file, yname, y, offset, ids, id_name)
    if coordinates != "wgs84":
        return
    for col, a, lim in ((yname, y, 90.0), (xname, x, 180.0)):
        bad = np.abs(a) > lim
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise LogError(file, col, f"must be in [-{lim:g}, {lim:g}] degrees, got {a[i]} at "
                                      f"{_row(offset, i, ids, id_name)}")  # fmt: skip


def _check_shapes(file: str, cols: _Columns) -> None:
    n = None
    for f, (attr, kind) in zip(fields(cols), _layout(file), strict=True):  # type: ignore[arg-type]
        a = getattr(cols, f.name)
        if not isinstance(a, np.ndarray) or a.ndim != 1:
            raise LogError(file, attr, f"expected a 1-D numpy array, got {type(a).__name__}")
        if kind == _STRING:
            if a.dtype.kind not in "UO":
                raise LogError(file, attr, f"expected strings, got dtype {a.dtype}")
        elif a.dtype != _NUMPY[kind]:
            raise LogError(file, attr, f"expected dtype {kind}, got {a.dtype}")
        if n is not None and a.shape[0] != n:
            raise LogError(file, attr, f"expected {n} rows like the other columns, got {a.shape[0]}")
        n = a.shape[0]


def site_index(sites: SiteColumns, site_id: npt.ArrayLike, file: str = ORDERS_FILE, offset: int = 0) -> I64:
    """Row of each ``site_id`` in ``sites`` (whose ids are unique, as ``read_log`` checks): int64[n]. Raises
    LogError (naming ``file`` and column site_id) for an id that is not a site."""
    ids = np.asarray(site_id, dtype=np.int64)
    n_sites = sites.site_id.shape[0]
    top = int(sites.site_id.max(initial=-1))
    if n_sites and int(sites.site_id.min()) >= 0 and top < 4 * n_sites + 1024:
        # Small non-negative ids (every generated log: 0..S-1): a lookup table, one gather per order instead of a
        # binary search (the command's process looks a 25M-order log's orders up several times).
        table = np.full(top + 2, -1, dtype=np.int64)  # the last entry (also table[-1]) answers ids out of range
        table[sites.site_id] = np.arange(n_sites, dtype=np.int64)
        out: I64 = table[np.clip(ids, -1, top + 1)]
        bad = out < 0
    else:
        order = np.argsort(sites.site_id, kind="stable")
        sorted_ids = sites.site_id[order]
        pos = np.searchsorted(sorted_ids, ids)
        pos_c = np.minimum(pos, max(n_sites - 1, 0))
        bad = (pos >= n_sites) | (sorted_ids[pos_c] != ids) if n_sites else np.ones(ids.shape, bool)
        out = order[pos_c].astype(np.int64)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LogError(file, "site_id", f"{int(bad.sum())} rows name a site that is not in {SITES_FILE}, first site "
                                        f"{int(ids[i])} at row {offset + i}")  # fmt: skip
    return out


def _check_unique(file: str, col: str, ids: I64) -> None:
    if ids.shape[0] < 2:
        return
    s = np.sort(ids)
    dup = s[1:] == s[:-1]
    if dup.any():
        raise LogError(file, col, f"ids must be unique: {int(dup.sum())} duplicates, first {int(s[1:][dup][0])}")


def _check_sites(s: SiteColumns, coordinates: str) -> None:
    f = SITES_FILE
    _check_shapes(f, s)
    _check_min(f, "site_id", s.site_id, 0, False, 0, None, "")
    _check_unique(f, "site_id", s.site_id)
    _check_positions(f, coordinates, s.x, s.y, 0, s.site_id, "site_id")
    for col in ("service_s", "zone_m"):
        _check_finite(f, col, getattr(s, col), 0, s.site_id, "site_id")
    _check_min(f, "service_s", s.service_s, 0.0, False, 0, s.site_id, "site_id")
    _check_min(f, "zone_m", s.zone_m, 0.0, True, 0, s.site_id, "site_id")


def _check_orders(o: OrderColumns, coordinates: str, sites: SiteColumns, offset: int) -> None:
    f = ORDERS_FILE
    _check_shapes(f, o)
    ids = o.order_id
    site_index(sites, o.site_id, f, offset)
    _check_positions(f, coordinates, o.drop_x, o.drop_y, offset, ids, "order_id")
    for col in ("placed_at", "ready_at", "promised_by", "service_drop_s"):
        _check_finite(f, col, getattr(o, col), offset, ids, "order_id")
    for col in ("ready_at", "promised_by"):
        a = getattr(o, col)
        bad = a < o.placed_at
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise LogError(f, col, f"earlier than placed_at in {int(bad.sum())} rows, first at "
                                   f"{_row(offset, i, ids, 'order_id')}: {a[i]} < {o.placed_at[i]}")  # fmt: skip
    _check_min(f, "size", o.size, 1, False, offset, ids, "order_id")
    _check_min(f, "service_drop_s", o.service_drop_s, 0.0, False, offset, ids, "order_id")


def _check_riders(r: RiderColumns, coordinates: str, sites: SiteColumns) -> None:
    f = RIDERS_FILE
    _check_shapes(f, r)
    ids = r.rider_id
    _check_unique(f, "rider_id", ids)
    site_index(sites, r.site_id, f)
    _check_positions(f, coordinates, r.start_x, r.start_y, 0, ids, "rider_id")
    for col in ("shift_start", "shift_end", "speed_factor"):
        _check_finite(f, col, getattr(r, col), 0, ids, "rider_id")
    bad = r.shift_end <= r.shift_start
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LogError(f, "shift_end", f"must be after shift_start: {int(bad.sum())} rows are not, first at "
                                       f"{_row(0, i, ids, 'rider_id')}")  # fmt: skip
    _check_min(f, "capacity", r.capacity, 1, False, 0, ids, "rider_id")
    _check_min(f, "speed_factor", r.speed_factor, 0.0, True, 0, ids, "rider_id")


def _check_sorted(o: OrderColumns, after: float, offset: int) -> None:
    p = o.placed_at
    if p.shape[0] == 0:
        return
    bad = np.flatnonzero(p[1:] < p[:-1])
    if p[0] < after:
        raise LogError(ORDERS_FILE, "placed_at", f"orders must be sorted by placed_at: row {offset} ({p[0]}) comes "
                                                 f"after a row placed at {after}")  # fmt: skip
    if bad.size:
        i = int(bad[0]) + 1
        raise LogError(ORDERS_FILE, "placed_at", f"orders must be sorted by placed_at: row {offset + i} ({p[i]}) "
                                                 f"comes after {p[i - 1]}")  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def _to_table(file: str, cols: _Columns, coordinates: str) -> pa.Table:
    arrays = []
    names = []
    for attr, col, kind in _file_columns(file, coordinates):
        a = getattr(cols, attr)
        arrays.append(pa.array(a.astype(str) if kind == _STRING else a, type=_ARROW[kind]))
        names.append(col)
    return pa.Table.from_arrays(arrays, schema=arrow_schema(file, coordinates))


_DICTIONARY = ["site_id", "size", "capacity", "city", "service_s", "zone_m"]


class _Stream:
    """Rows buffered into row groups of exactly ``rows`` rows (the last one shorter), so that the bytes written do not
    depend on how the caller batches its writes."""

    def __init__(self, path: Path, schema: pa.Schema, rows: int, compression: str) -> None:
        self.writer = pq.ParquetWriter(path, schema, compression=compression, use_dictionary=_DICTIONARY)
        self.rows = rows
        self.pending: list[pa.Table] = []
        self.n_pending = 0
        self.n = 0

    def write(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.n_pending += table.num_rows
        self.n += table.num_rows
        if self.n_pending >= self.rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self.pending:
            return
        t = pa.concat_tables(self.pending)
        start = 0
        while t.num_rows - start >= self.rows or (final and start < t.num_rows):
            k = min(self.rows, t.num_rows - start)
            self.writer.write_table(t.slice(start, k), row_group_size=self.rows)
            start += k
        rest = t.slice(start)
        self.pending = [rest] if rest.num_rows else []
        self.n_pending = rest.num_rows

    def close(self) -> None:
        self._flush(final=True)
        self.writer.close()


class LogWriter:
    """Writes a log in a streaming way: the sites at once, then orders and riders in batches of any size.

    Orders must come in placed_at order (across batches too); site ids are checked against the sites. meta.json is
    written last, by :meth:`close`, so a directory without it is an incomplete log. Existing log files in
    ``out_dir`` are replaced. Use as a context manager; on an exception meta.json is not written.

    Args:
        out_dir: the log directory (created if missing).
        meta: the header.
        sites: all the sites.
        row_group_rows: rows per Parquet row group (the files' bytes depend on it, the data do not).
        compression: Parquet compression codec.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        meta: LogMeta,
        sites: SiteColumns,
        *,
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
        compression: str = "zstd",
    ) -> None:
        if isinstance(row_group_rows, bool) or not isinstance(row_group_rows, int) or row_group_rows < 1:
            raise ValueError(f"row_group_rows: must be an integer >= 1, got {row_group_rows!r}")
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / META_FILE).unlink(missing_ok=True)
        self.meta = meta
        _check_sites(sites, meta.coordinates)
        self.sites = sites
        c = meta.coordinates
        pq.write_table(_to_table(SITES_FILE, sites, c), self.dir / SITES_FILE, compression=compression,
                       use_dictionary=_DICTIONARY, row_group_size=row_group_rows)  # fmt: skip
        self._orders = _Stream(self.dir / ORDERS_FILE, arrow_schema(ORDERS_FILE, c), row_group_rows, compression)
        self._riders = _Stream(self.dir / RIDERS_FILE, arrow_schema(RIDERS_FILE, c), row_group_rows, compression)
        self._last_placed = -math.inf
        self._closed = False

    def write_orders(self, batch: OrderColumns) -> None:
        """Append orders (validated; sorted by placed_at, after every order written before)."""
        _check_orders(batch, self.meta.coordinates, self.sites, self._orders.n)
        _check_sorted(batch, self._last_placed, self._orders.n)
        if len(batch):
            self._last_placed = float(batch.placed_at[-1])
        self._orders.write(_to_table(ORDERS_FILE, batch, self.meta.coordinates))

    def write_riders(self, batch: RiderColumns) -> None:
        """Append rider shifts (validated)."""
        _check_riders(batch, self.meta.coordinates, self.sites)
        self._riders.write(_to_table(RIDERS_FILE, batch, self.meta.coordinates))

    @property
    def counts(self) -> dict[str, int]:
        return {"sites": len(self.sites), "orders": self._orders.n, "riders": self._riders.n}

    def close(self) -> Path:
        """Finish the Parquet files and write meta.json; returns the log directory."""
        if not self._closed:
            self._closed = True
            self._orders.close()
            self._riders.close()
            text = json.dumps(self.meta.to_json(self.counts), indent=2, sort_keys=False, allow_nan=False)
            (self.dir / META_FILE).write_text(text + "\n", encoding="utf-8")
        return self.dir

    def abort(self) -> None:
        """Close the files without writing meta.json (the directory stays an incomplete log)."""
        if not self._closed:
            self._closed = True
            self._orders.writer.close()
            self._riders.writer.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_log(
    out_dir: str | os.PathLike[str],
    meta: LogMeta,
    sites: SiteColumns,
    orders: OrderColumns | Iterable[OrderColumns],
    riders: RiderColumns | Iterable[RiderColumns],
    *,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
) -> Path:
    """Write a whole log. ``orders`` and ``riders`` are one table each or iterables of batches; a single orders table
    is sorted by (placed_at, order_id) first, batches must already be in placed_at order. Returns ``out_dir``.

    Raises:
        LogError: naming the file and column of the first bad value.
    """
    if isinstance(orders, OrderColumns):
        _check_shapes(ORDERS_FILE, orders)
        orders = [orders.take(np.lexsort((orders.order_id, orders.placed_at)))]
    if isinstance(riders, RiderColumns):
        riders = [riders]
    with LogWriter(out_dir, meta, sites, row_group_rows=row_group_rows) as w:
        for o in orders:
            w.write_orders(o)
        for r in riders:
            w.write_riders(r)
    return Path(out_dir)


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


def _meta_get(obj: Mapping[str, Any], key: str, kinds: tuple[type, ...], required: bool = True) -> Any:
    if key not in obj:
        if required:
            raise LogError(META_FILE, key, "missing")
        return None
    v = obj[key]
    if v is None and not required:
        return None
    if (isinstance(v, bool) and bool not in kinds) or not isinstance(v, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise LogError(META_FILE, key, f"expected {names}, got {v!r}")
    return v


def read_meta(log_dir: str | os.PathLike[str]) -> tuple[LogMeta, dict[str, int] | None]:
    """The header of the log in ``log_dir`` and its recorded row counts (None when absent).

    Raises:
        LogError: naming meta.json and the key.
    """
    path = Path(log_dir) / META_FILE
    if not Path(log_dir).is_dir():
        raise LogError(str(log_dir), None, "not a directory (an order log is a directory)")
    if not path.is_file():
        raise LogError(META_FILE, None, f"missing in {log_dir} (not a log, or an incomplete one)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LogError(META_FILE, None, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise LogError(META_FILE, None, "expected a JSON object")
    if obj.get("format") != FORMAT:
        raise LogError(META_FILE, "format", f"expected {FORMAT!r}, got {obj.get('format')!r}")
    version = _meta_get(obj, "version", (int,))
    if version != VERSION:
        raise LogError(META_FILE, "version", f"this reader knows version {VERSION}, got {version!r}")
    try:
        travel = TravelModel.from_json(obj.get("travel"), "travel")
    except ParamsError as exc:
        raise LogError(META_FILE, exc.field, str(exc).split(": ", 1)[1]) from None
    counts = _meta_get(obj, "counts", (dict,), required=False)
    if counts is not None:
        for k in ("sites", "orders", "riders"):
            v = counts.get(k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise LogError(META_FILE, f"counts.{k}", f"expected a count, got {v!r}")
    scenario = _meta_get(obj, "scenario", (dict,), required=False)
    meta = LogMeta(
        coordinates=_meta_get(obj, "coordinates", (str,)),
        travel=travel,
        day_start=_meta_get(obj, "day_start", (int, float)),
        utc_offset_s=_meta_get(obj, "utc_offset_s", (int, float)),
        name=_meta_get(obj, "name", (str,), required=False) or "",
        description=_meta_get(obj, "description", (str,), required=False) or "",
        seed=_meta_get(obj, "seed", (int,), required=False),
        scenario=scenario,
    )
    return meta, counts


def _open(log_dir: Path, file: str) -> pq.ParquetFile:
    path = log_dir / file
    if not path.is_file():
        raise LogError(file, None, f"missing in {log_dir}")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise LogError(file, None, f"not a readable Parquet file ({exc})") from None


def _check_schema(pf: pq.ParquetFile, file: str, coordinates: str) -> list[tuple[str, str, str]]:
    """The layout columns present, after checking that required ones exist with acceptable types."""
    schema = pf.schema_arrow
    present = []
    for attr, col, kind in _file_columns(file, coordinates):
        if col not in schema.names:
            if (file, attr) in _OPTIONAL:
                continue
            have = ", ".join(schema.names)
            hint = ""
            other = "planar_m" if coordinates == "wgs84" else "wgs84"
            if any(name in schema.names for name in position_columns(_POS_PREFIX[file], other)):
                hint = f" (meta.json declares coordinates {coordinates!r}, but the file has {other} columns)"
            raise LogError(file, col, f"missing (columns present: {have}){hint}")
        t = schema.field(col).type
        ok = (
            (kind in (_INT64, _INT32) and pa.types.is_integer(t))
            or (kind == _FLOAT64 and (pa.types.is_floating(t) or pa.types.is_integer(t)))
            or (kind == _FLOAT64 and attr in _TIME_COLUMNS and pa.types.is_timestamp(t))
            or (kind == _STRING and (pa.types.is_string(t) or pa.types.is_large_string(t)))
        )
        if not ok:
            want = {_INT64: "an integer type", _INT32: "an integer type", _FLOAT64: "a number type",
                    _STRING: "strings"}[kind]  # fmt: skip
            raise LogError(file, col, f"expected {want}, got {t}")
        present.append((attr, col, kind))
    return present


def _to_numpy(arr: pa.ChunkedArray | pa.Array, file: str, col: str, kind: str, offset: int) -> npt.NDArray[Any]:
    if arr.null_count:
        valid = np.asarray(arr.is_valid())
        i = int(np.flatnonzero(~valid)[0])
        raise LogError(file, col, f"{arr.null_count} null values, first at row {offset + i}")
    t = arr.type
    if kind == _STRING:
        return np.array(arr.to_pylist(), dtype=str)
    if pa.types.is_timestamp(t):
        per_s = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
        out_t: F64 = np.asarray(arr.cast(pa.int64()).to_numpy(), dtype=np.float64) / per_s
        return out_t
    raw = np.asarray(arr.to_numpy())
    if kind == _FLOAT64:
        return raw.astype(np.float64, copy=False)
    if raw.dtype.kind == "u" and raw.size and raw.max() > np.iinfo(np.int64).max:
        raise LogError(file, col, f"value {raw.max()} does not fit in int64")
    if kind == _INT32:
        info = np.iinfo(np.int32)
        if raw.size and (raw.max() > info.max or raw.min() < info.min):
            bad = int(np.flatnonzero((raw > info.max) | (raw < info.min))[0])
            raise LogError(file, col, f"value {raw[bad]} at row {offset + bad} does not fit in int32")
        return raw.astype(np.int32, copy=False)
    return raw.astype(np.int64, copy=False)


def _read_columns(
    pf: pq.ParquetFile, file: str, coordinates: str, cls: type[Any], data: Any = None, offset: int = 0
) -> Any:
    """Columns of ``cls`` from a whole file (``data`` None) or from one record batch."""
    present = _check_schema(pf, file, coordinates)
    out: dict[str, Any] = {}
    n = pf.metadata.num_rows if data is None else data.num_rows
    for attr, col, kind in present:
        arr = pf.read(columns=[col]).column(0) if data is None else data.column(col)
        out[attr] = _to_numpy(arr, file, col, kind, offset)
    for attr, kind in _layout(file):
        if attr not in out:  # an optional column
            out[attr] = np.full(n, "", dtype=str) if kind == _STRING else np.zeros(n, dtype=_NUMPY[kind])
    return cls(**out)


def _read_sites(d: Path, meta: LogMeta) -> SiteColumns:
    sites: SiteColumns = _read_columns(_open(d, SITES_FILE), SITES_FILE, meta.coordinates, SiteColumns)
    _check_sites(sites, meta.coordinates)
    return sites


def _check_count(counts: Mapping[str, int] | None, key: str, file: str, n: int) -> None:
    if counts is not None and counts[key] != n:
        raise LogError(file, None, f"has {n} rows but meta.json counts.{key} says {counts[key]} (a truncated copy?)")


def read_log(log_dir: str | os.PathLike[str]) -> OrderLog:
    """Read and validate the whole log in ``log_dir``.

    Orders come back sorted by placed_at (a log whose orders are not sorted is sorted on reading, ties by
    order_id). Memory: about 70 bytes per order (25M orders: ~1.8 GB).

    Raises:
        LogError: naming the file and the column of the first problem found.
    """
    d = Path(log_dir)
    meta, counts = read_meta(d)
    c = meta.coordinates
    sites = _read_sites(d, meta)
    _check_count(counts, "sites", SITES_FILE, len(sites))
    orders: OrderColumns = _read_columns(_open(d, ORDERS_FILE), ORDERS_FILE, c, OrderColumns)
    _check_count(counts, "orders", ORDERS_FILE, len(orders))
    _check_orders(orders, c, sites, 0)
    _check_unique(ORDERS_FILE, "order_id", orders.order_id)
    p = orders.placed_at
    if p.shape[0] > 1 and np.any(p[1:] < p[:-1]):
        orders = orders.take(np.lexsort((orders.order_id, p)))
    riders: RiderColumns = _read_columns(_open(d, RIDERS_FILE), RIDERS_FILE, c, RiderColumns)
    _check_count(counts, "riders", RIDERS_FILE, len(riders))
    _check_riders(riders, c, sites)
    return OrderLog(meta, sites, orders, riders)


def iter_orders(log_dir: str | os.PathLike[str], batch_rows: int = DEFAULT_ROW_GROUP_ROWS) -> Iterator[OrderColumns]:
    """The orders of the log in ``log_dir`` in batches of at most ``batch_rows``, validated as they are read
    (order ids are not checked for uniqueness across batches). The file must be sorted by placed_at.

    Raises:
        LogError: naming the file and column (for example placed_at when the file is not sorted).
    """
    d = Path(log_dir)
    meta, _ = read_meta(d)
    sites = _read_sites(d, meta)
    pf = _open(d, ORDERS_FILE)
    cols = [col for _, col, _ in _check_schema(pf, ORDERS_FILE, meta.coordinates)]
    offset = 0
    last = -math.inf
    for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
        o: OrderColumns = _read_columns(pf, ORDERS_FILE, meta.coordinates, OrderColumns, batch, offset)
        _check_orders(o, meta.coordinates, sites, offset)
        _check_sorted(o, last, offset)
        if len(o):
            last = float(o.placed_at[-1])
        offset += len(o)
        yield o
