"""Scenarios: a simulated day described in TOML (``simulations/*.toml``), parsed into frozen dataclasses.

A scenario names the sites, the rider fleet, the demand, the travel model, the dispatch parameters and a seed;
``dispatch.sim.generate`` draws an order log from it. :func:`load_scenario` validates every field and raises
:class:`ScenarioError` naming the dotted path of the first bad one (``demand.orders_per_day: must be an integer
>= 1, got -3``); unknown keys are rejected by name. Below, a *range* is a number or a two-number list
``[low, high]`` (a value is drawn uniformly from it; a number means that value), a *choice* is a number or a list of
numbers with an optional list of shares of the same length (equal shares by default; shares are normalised).

Top level:

- ``name`` (default: the file's stem): the scenario's name. ``description`` (""): one line about it.
- ``seed`` (required): integer >= 0; the same seed gives the same log, byte for byte.
- ``day`` (2025-06-16): the local calendar date simulated, a TOML date.
- ``utc_offset_h`` (8): local time minus UTC in hours (8 = China).
- ``coordinates`` ("wgs84"): "wgs84" (positions as ``lat``/``lng`` degrees) or "planar_m" (``x``/``y`` metres).
- ``policy`` ("kernel"): the dispatch policy ``dispatch simulate`` uses by default (one of ``policy.POLICIES``).
- ``shard`` ("site"): who may serve whom, which also says how a simulation splits over workers (``dispatch.sim.shard``):
  "site" (a rider serves its home site only; each site a world of its own), "city" (a rider serves any site of its
  home city; each city a world) or "none" (any site; one world). The wider modes let riders help a busy neighbour
  but offer every online rider of the group to each tick, so they run slower on large groups.

``[sites]``, either an explicit ``list`` or ``count`` sites spread over ``cities``:

- ``list``: explicit sites, an array of tables: ``id`` (integer >= 0, unique), ``lat``/``lng`` (``x``/``y`` for
  planar_m), and optionally ``service_s`` and ``zone_m`` (else drawn from the ranges below), ``riders`` (this site's
  fleet, overriding the ``[fleet]`` sizing), ``weight`` (relative demand, else drawn, see
  ``demand.site_weight_sigma``) and ``city`` (a name).
- ``count``: sites to generate, divided among ``cities`` in proportion to their weight (largest remainders; every
  city gets at least one when the count allows); ids 0 .. count-1; each city's sites uniform over its disc.
- ``cities``: ``"china"`` (the embedded table of China's largest cities, :mod:`dispatch.sim.cities`, weighted by
  approximate urban population) or a list whose items are names from that table or tables ``{name, lat, lng (or
  x, y), radius_m, weight}``; a table named after a city in the embedded table gives only the fields it changes.
- ``top_cities`` (all): with ``cities = "china"``, only the N most populous.
- ``zone_m`` (3000): range, a site's service-zone radius in metres.
- ``service_s`` ([60, 180]): range, seconds at the site to pick up a bag.

``[fleet]``, where exactly one of the first three keys sizes each site's fleet:

- ``riders_per_site``: the same number of riders at every site.
- ``riders_per_100_orders``: riders per 100 expected orders a day at the site (rounded up).
- ``orders_per_rider_hour``: size for the peak: enough riders that in every hour the riders on shift times this
  rate cover the site's expected orders of that hour times ``headroom`` (a rider delivers ~2.5-4 orders an hour at
  peak when batching).
- ``headroom`` (1.2): with ``orders_per_rider_hour``, the spare-capacity factor, >= 1.
- ``shifts`` (``DEFAULT_SHIFTS``): an array of ``{start_h, hours, share}``: local start hour in [0, 24), length in
  (0, 24] hours, share of the riders. A shift past midnight also covers the early hours of the day (its instance
  that started the evening before). Every hour with demand must be covered by some shift.
- ``shift_jitter_min`` (15): each shift start moves by up to this many minutes either way.
- ``speed_factor`` ([0.85, 1.15]): range, a rider's speed relative to the travel model.
- ``capacity`` (8): integer range, size units a rider carries at once.
- ``start_radius_m`` (500): a rider comes online within this distance of the home site.

``[demand]``:

- ``orders_per_day`` (required): orders in the day, exactly (drawn multinomially over sites and hours).
- ``hourly_profile`` (``DEFAULT_HOURLY_PROFILE``): 24 weights for local hours 0..23, the share of the day's orders
  placed in each hour (lunch and dinner peaks); orders are uniform within an hour.
- ``site_weight_sigma`` (0.4): a site's demand share is lognormal(0, sigma), normalised (0 = equal shares).
- ``dropoff_radius_m`` (the site's zone): drop-offs are uniform over a disc of this radius around the site.
- ``promise_min`` (60) and ``promise_share``: choice, minutes from placing to the promised deadline ([30, 60] ...).
- ``promise_min_per_km`` (0): minutes added to the promise per km of straight line from the site to the drop-off
  (a distance-based quote: with 3 min/km a 30-minute promise becomes 39 minutes 3 km out).
- ``size_units`` (1) and ``size_share``: choice, size units of an order.
- ``service_drop_s`` ([60, 150]): range, seconds to hand an order over at the door.
- ``[demand.ready]``, the picking/preparation time: ``kind`` ("lognormal": ``median_min`` (6) and ``sigma`` (0.4),
  clipped to [``min_min``, ``max_min``]; or "uniform" between ``min_min`` and ``max_min``), ``min_min`` (2),
  ``max_min`` (20; must be less than the shortest promise, or some orders could never be on time).

``[travel]``: ``kind`` "profile" (default: the e-bike speed profile by hour, time-dependent) or "constant";
``speed_mps`` (profile: B > 1 speeds over B equal bins of the day, default the e-bike profile; constant: one number,
required); ``detour`` (1.3: road over straight-line distance); ``round_up_minutes`` (false; constant only: legs
rounded up to whole minutes, as some benchmark protocols require).

``[dispatch]``: any field of :class:`dispatch.policy.DispatchParams` (``tick_s``, ``hold_s``,
``max_orders_per_rider`` ...), validated by it; errors are named ``dispatch.<field>``.

``[promise]``: promise quotes at checkout (``dispatch.promise``). ``quote`` (false): when true the simulator quotes
every order when it is placed, at its own site (whose zone is the site's ``zone_m`` disc), and the customer takes the
first option: its deadline replaces the demand's promise rule, a declined order is not placed. Any other key is a
field of :class:`dispatch.promise.PromiseParams` (``mode``, ``tiers_min``, ``slot_length_min``,
``slot_horizon_min``, ``min_on_time_probability``, ``prep_min`` ...), validated by it; errors are named
``promise.<field>``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import math
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dispatch.policy import POLICIES, DispatchParams, ParamsError
from dispatch.promise_params import PromiseParams
from dispatch.sim.cities import CITY_TABLES, lookup
from dispatch.sim.log import COORDINATES, SHARD_MODES, TravelModel

Range = tuple[float, float]

READY_KINDS = ("lognormal", "uniform")
DEFAULT_DAY = dt.date(2025, 6, 16)

# Share of the day's orders placed in each local hour (percent; sums to 100). An assumption for hour-level grocery
# and meal delivery in a Chinese city, not a measurement: quiet nights, a lunch peak at 11-13 and a dinner peak at
# 17-20 (18:00 the busiest evening hour), about 10% of the day in each peak hour.
DEFAULT_HOURLY_PROFILE: tuple[float, ...] = (
    1.0, 0.6, 0.4, 0.3, 0.3, 0.5,  # 00-05
    1.0, 2.2, 3.2, 4.0, 5.6, 9.6,  # 06-11
    10.0, 6.6, 4.2, 3.9, 4.6, 7.6,  # 12-17
    9.8, 9.0, 6.3, 4.4, 3.0, 1.9,  # 18-23
)  # fmt: skip


@dataclass(frozen=True)
class ShiftPattern:
    """Riders who start at local hour ``start_h`` and work ``hours``; ``share`` of a site's riders (normalised)."""

    start_h: float
    hours: float
    share: float


# Shift patterns chosen (by a small linear programme over candidate shifts) so that the riders on shift follow the
# default hourly profile: at every hour, orders per rider on shift are at most 0.2 x the day's orders per rider.
DEFAULT_SHIFTS: tuple[ShiftPattern, ...] = (
    ShiftPattern(7.0, 8.0, 0.16),  # early: 07:00-15:00, breakfast and lunch
    ShiftPattern(9.0, 10.0, 0.34),  # day: 09:00-19:00, lunch and the start of dinner
    ShiftPattern(16.5, 4.0, 0.22),  # dinner peak only (part-time): 16:30-20:30
    ShiftPattern(17.0, 9.0, 0.23),  # evening: 17:00-02:00
    ShiftPattern(22.0, 9.0, 0.05),  # night: 22:00-07:00
)


class ScenarioError(ValueError):
    """A scenario field is bad; ``field`` is its dotted path (``demand.orders_per_day``, ``sites.list[3].lat``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


@dataclass(frozen=True)
class City:
    """A city over which sites are generated: centre ``(x, y)`` (lng/lat degrees for wgs84, metres for planar_m),
    the radius of the disc its sites are spread over, and its weight (share of the sites)."""

    name: str
    x: float
    y: float
    radius_m: float
    weight: float


@dataclass(frozen=True)
class SiteSpec:
    """An explicit site; None fields are drawn (service_s, zone_m, weight) or sized by the fleet spec (riders)."""

    site_id: int
    x: float
    y: float
    service_s: float | None = None
    zone_m: float | None = None
    riders: int | None = None
    weight: float | None = None
    city: str = ""


@dataclass(frozen=True)
class SitesSpec:
    """Either ``explicit`` sites, or ``count`` sites generated over ``cities``; ``zone_m`` and ``service_s`` are the
    ranges drawn from when a site does not give them."""

    explicit: tuple[SiteSpec, ...] = ()
    count: int = 0
    cities: tuple[City, ...] = ()
    zone_m: Range = (3000.0, 3000.0)
    service_s: Range = (60.0, 180.0)

    @property
    def n_sites(self) -> int:
        return len(self.explicit) if self.explicit else self.count


@dataclass(frozen=True)
class FleetSpec:
    """Riders per site (exactly one of the three sizing rules is set) and what each rider is like."""

    riders_per_site: int | None = None
    riders_per_100_orders: float | None = None
    orders_per_rider_hour: float | None = None
    headroom: float = 1.2
    shifts: tuple[ShiftPattern, ...] = DEFAULT_SHIFTS
    shift_jitter_min: float = 15.0
    speed_factor: Range = (0.85, 1.15)
    capacity: tuple[int, int] = (8, 8)
    start_radius_m: float = 500.0


@dataclass(frozen=True)
class ReadySpec:
    """Picking/preparation minutes: lognormal(log(median_min), sigma) clipped to [min_min, max_min], or uniform."""

    kind: str = "lognormal"
    median_min: float = 6.0
    sigma: float = 0.4
    min_min: float = 2.0
    max_min: float = 20.0


@dataclass(frozen=True)
class DemandSpec:
    """The day's orders. ``hourly_profile`` is normalised to sum to 1; shares too."""

    orders_per_day: int
    hourly_profile: tuple[float, ...]
    site_weight_sigma: float = 0.4
    dropoff_radius_m: float | None = None
    ready: ReadySpec = ReadySpec()
    promise_min: tuple[float, ...] = (60.0,)
    promise_share: tuple[float, ...] = (1.0,)
    promise_min_per_km: float = 0.0
    size_units: tuple[int, ...] = (1,)
    size_share: tuple[float, ...] = (1.0,)
    service_drop_s: Range = (60.0, 150.0)


@dataclass(frozen=True)
class PromiseSpec:
    """``quote``: whether the simulator quotes each order when placed (else the demand's promise rule holds);
    ``params``: the promise parameters."""

    quote: bool = False
    params: PromiseParams = field(default_factory=PromiseParams)

    def to_record(self) -> dict[str, Any]:
        """``{"quote": bool, **params}``: what a generated log records (``dispatch.sim.quoting.promise_from_record``
        reads it back)."""
        return {"quote": self.quote, **self.params.to_dict()}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario (see the module docstring for every field)."""

    name: str
    seed: int
    sites: SitesSpec
    fleet: FleetSpec
    demand: DemandSpec
    travel: TravelModel = field(default_factory=TravelModel)
    dispatch: DispatchParams = field(default_factory=DispatchParams)
    promise: PromiseSpec = field(default_factory=PromiseSpec)
    description: str = ""
    day: dt.date = DEFAULT_DAY
    utc_offset_s: float = 8 * 3600.0
    coordinates: str = "wgs84"
    policy: str = "kernel"
    shard: str = "site"
    source_sha256: str = ""

    @property
    def day_start(self) -> float:
        """UTC epoch seconds of local midnight at the start of ``day``."""
        tz = dt.timezone(dt.timedelta(seconds=self.utc_offset_s))
        return dt.datetime(self.day.year, self.day.month, self.day.day, tzinfo=tz).timestamp()


# --------------------------------------------------------------------------------------------------------------
# Field checks: each takes the value and its dotted path
# --------------------------------------------------------------------------------------------------------------

_REQUIRED: Any = object()


def _got(v: Any) -> str:
    if isinstance(v, bool):
        return f"{str(v).lower()} (a boolean)"
    if isinstance(v, str):
        return f"{v!r} (a string)"
    if isinstance(v, Mapping):
        return "a table"
    if isinstance(v, list):
        text = repr(v)
        return f"a list {text if len(text) < 60 else text[:57] + '...'}"
    if isinstance(v, dt.date | dt.time):
        return f"{v.isoformat()} (a date/time)"
    return repr(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any, path: str, lo: int | None = None, hi: int | None = None) -> int:
    ok = isinstance(v, int) and not isinstance(v, bool) and (lo is None or v >= lo) and (hi is None or v <= hi)
    if not ok:
        bounds = " ".join(b for b in (f">= {lo}" if lo is not None else "", f"<= {hi}" if hi is not None else "") if b)
        raise ScenarioError(path, f"must be an integer{' ' + bounds if bounds else ''}, got {_got(v)}")
    return int(v)


def _num(v: Any, path: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> float:
    ok = _is_number(v)
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v <= hi
    if not ok:
        parts = [f"{'>' if lo_open else '>='} {lo:g}" if lo is not None else "", f"<= {hi:g}" if hi is not None else ""]
        bounds = " and ".join(p for p in parts if p)
        raise ScenarioError(path, f"must be a finite number{' ' + bounds if bounds else ''}, got {_got(v)}")
    return float(v)


def _str(v: Any, path: str, choices: Sequence[str] | None = None) -> str:
    if not isinstance(v, str):
        raise ScenarioError(path, f"must be a string, got {_got(v)}")
    if choices is not None and v not in choices:
        raise ScenarioError(path, f"must be one of {', '.join(repr(c) for c in choices)}, got {v!r}")
    return v


def _range(v: Any, path: str, lo: float, lo_open: bool = False) -> Range:
    if isinstance(v, list):
        if len(v) != 2:
            raise ScenarioError(path, f"a range is a number or [low, high], got {_got(v)}")
        a = _num(v[0], f"{path}[0]", lo, lo_open=lo_open)
        b = _num(v[1], f"{path}[1]", lo, lo_open=lo_open)
        if b < a:
            raise ScenarioError(path, f"high must be >= low, got [{a:g}, {b:g}]")
        return (a, b)
    x = _num(v, path, lo, lo_open=lo_open)
    return (x, x)


def _int_range(v: Any, path: str, lo: int) -> tuple[int, int]:
    if isinstance(v, list):
        if len(v) != 2:
            raise ScenarioError(path, f"an integer range is an integer or [low, high], got {_got(v)}")
        a, b = _int(v[0], f"{path}[0]", lo), _int(v[1], f"{path}[1]", lo)
        if b < a:
            raise ScenarioError(path, f"high must be >= low, got [{a}, {b}]")
        return (a, b)
    x = _int(v, path, lo)
    return (x, x)


def _shares(v: Any, path: str, n: int) -> tuple[float, ...]:
    if not isinstance(v, list) or len(v) != n:
        raise ScenarioError(path, f"must be a list of {n} shares (one per choice), got {_got(v)}")
    out = tuple(_num(x, f"{path}[{i}]", 0.0) for i, x in enumerate(v))
    total = sum(out)
    if total <= 0:
        raise ScenarioError(path, "shares must not all be 0")
    return tuple(x / total for x in out)


class _Table:
    """A TOML table at ``path`` whose keys must all be in ``known``."""

    def __init__(self, data: Any, path: str, known: Iterable[str]) -> None:
        if not isinstance(data, Mapping):
            raise ScenarioError(path, f"must be a table, got {_got(data)}")
        self.data = data
        self.path = path
        names = tuple(known)
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(key, names, 1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ScenarioError(self.at(key), f"unknown key{hint}; known keys: {', '.join(names)}")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = _REQUIRED) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise ScenarioError(self.at(key), "required")
        return default


# --------------------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------------------


def _position(t: _Table, coordinates: str) -> tuple[float, float]:
    """``(x, y)``: (lng, lat) for wgs84, (x, y) metres for planar_m."""
    if coordinates == "wgs84":
        for wrong in ("x", "y"):
            if t.has(wrong):
                raise ScenarioError(t.at(wrong), 'coordinates = "wgs84" takes lat and lng, not x and y')
        return _num(t.get("lng"), t.at("lng"), -180.0, 180.0), _num(t.get("lat"), t.at("lat"), -90.0, 90.0)
    for wrong in ("lat", "lng"):
        if t.has(wrong):
            raise ScenarioError(t.at(wrong), 'coordinates = "planar_m" takes x and y, not lat and lng')
    return _num(t.get("x"), t.at("x")), _num(t.get("y"), t.at("y"))


_CITY_KEYS = ("name", "lat", "lng", "x", "y", "radius_m", "weight")
_SITE_KEYS = ("id", "lat", "lng", "x", "y", "service_s", "zone_m", "riders", "weight", "city")


def _cities(t: _Table, coordinates: str) -> tuple[City, ...]:
    raw = t.get("cities")
    path = t.at("cities")
    if isinstance(raw, str):
        if raw not in CITY_TABLES:
            raise ScenarioError(
                path, f"must be one of {', '.join(repr(k) for k in CITY_TABLES)} or a list, got {raw!r}"
            )
        if coordinates != "wgs84":
            raise ScenarioError(path, f'the embedded table {raw!r} is in WGS84; use coordinates = "wgs84"')
        rows = CITY_TABLES[raw]
        top = _int(t.get("top_cities", len(rows)), t.at("top_cities"), 1, len(rows))
        return tuple(City(r.name, r.lng, r.lat, r.radius_m, r.population_m) for r in rows[:top])
    if t.has("top_cities"):
        raise ScenarioError(t.at("top_cities"), 'only with cities = "china" (an embedded table)')
    if not isinstance(raw, list) or not raw:
        raise ScenarioError(path, f'must be "china" or a non-empty list of city names or tables, got {_got(raw)}')
    out = []
    for i, item in enumerate(raw):
        p = f"{path}[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        c = _Table(item, p, _CITY_KEYS)
        name = _str(c.get("name"), c.at("name"))
        row = lookup(name)
        if row is not None and coordinates == "wgs84":
            lng = _num(c.get("lng", row.lng), c.at("lng"), -180.0, 180.0)
            lat = _num(c.get("lat", row.lat), c.at("lat"), -90.0, 90.0)
            radius = c.get("radius_m", row.radius_m)
            weight = c.get("weight", row.population_m)
            x, y = lng, lat
        else:
            if row is None and not c.has("lat") and not c.has("x"):
                known = ", ".join(r.name for r in CITY_TABLES["china"])
                raise ScenarioError(c.at("name"), f"{name!r} is not in the embedded table ({known}); give its "
                                                  "position, radius_m and weight")  # fmt: skip
            x, y = _position(c, coordinates)
            radius = c.get("radius_m")
            weight = c.get("weight", 1.0)
        out.append(
            City(name, x, y, _num(radius, c.at("radius_m"), 0.0), _num(weight, c.at("weight"), 0.0, lo_open=True))
        )
    names = [c.name for c in out]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ScenarioError(f"{path}[{i}].name", f"city {n!r} is listed twice")
    return tuple(out)


def _sites(raw: Any, coordinates: str) -> SitesSpec:
    t = _Table(raw, "sites", ("list", "count", "cities", "top_cities", "zone_m", "service_s"))
    zone = _range(t.get("zone_m", 3000.0), t.at("zone_m"), 0.0, lo_open=True)
    service = _range(t.get("service_s", [60.0, 180.0]), t.at("service_s"), 0.0)
    if t.has("list") == t.has("count"):
        raise ScenarioError("sites", "give either an explicit list (sites.list) or a count over cities (sites.count)")
    if t.has("count"):
        count = _int(t.get("count"), t.at("count"), 1)
        cities = _cities(t, coordinates)
        return SitesSpec(count=count, cities=cities, zone_m=zone, service_s=service)
    for k in ("cities", "top_cities"):
        if t.has(k):
            raise ScenarioError(t.at(k), "only with sites.count (generated sites), not with an explicit sites.list")
    items = t.get("list")
    if not isinstance(items, list) or not items:
        raise ScenarioError(t.at("list"), f"must be a non-empty array of site tables, got {_got(items)}")
    out: list[SiteSpec] = []
    seen: dict[int, int] = {}
    for i, item in enumerate(items):
        s = _Table(item, f"sites.list[{i}]", _SITE_KEYS)
        sid = _int(s.get("id"), s.at("id"), 0)
        if sid in seen:
            raise ScenarioError(s.at("id"), f"site id {sid} is already used by sites.list[{seen[sid]}]")
        seen[sid] = i
        x, y = _position(s, coordinates)
        out.append(
            SiteSpec(
                site_id=sid,
                x=x,
                y=y,
                service_s=_num(s.get("service_s"), s.at("service_s"), 0.0) if s.has("service_s") else None,
                zone_m=_num(s.get("zone_m"), s.at("zone_m"), 0.0, lo_open=True) if s.has("zone_m") else None,
                riders=_int(s.get("riders"), s.at("riders"), 0) if s.has("riders") else None,
                weight=_num(s.get("weight"), s.at("weight"), 0.0, lo_open=True) if s.has("weight") else None,
                city=_str(s.get("city", ""), s.at("city")),
            )
        )
    return SitesSpec(explicit=tuple(out), zone_m=zone, service_s=service)


def hourly_coverage(shifts: Sequence[ShiftPattern]) -> tuple[float, ...]:
    """Share of a site's riders on shift during each local hour 0..23 (minute resolution; shifts wrap midnight)."""
    total = sum(s.share for s in shifts)
    out = []
    for h in range(24):
        on = 0.0
        for s in shifts:
            minutes = sum(1 for m in range(60) if ((h + (m + 0.5) / 60.0 - s.start_h) % 24.0) < s.hours)
            on += s.share * minutes / 60.0
        out.append(on / total)
    return tuple(out)


def _fleet(raw: Any, hourly: Sequence[float]) -> FleetSpec:
    known = ("riders_per_site", "riders_per_100_orders", "orders_per_rider_hour", "headroom", "shifts",
             "shift_jitter_min", "speed_factor", "capacity", "start_radius_m")  # fmt: skip
    t = _Table(raw, "fleet", known)
    rules = [k for k in known[:3] if t.has(k)]
    if len(rules) != 1:
        got = f"got {', '.join(rules)}" if rules else "got none"
        raise ScenarioError("fleet", f"give exactly one of riders_per_site, riders_per_100_orders, "
                                     f"orders_per_rider_hour ({got})")  # fmt: skip
    per_site = _int(t.get("riders_per_site"), t.at("riders_per_site"), 1) if t.has("riders_per_site") else None
    per_100 = None
    if t.has("riders_per_100_orders"):
        per_100 = _num(t.get("riders_per_100_orders"), t.at("riders_per_100_orders"), 0.0, lo_open=True)
    rate = None
    if t.has("orders_per_rider_hour"):
        rate = _num(t.get("orders_per_rider_hour"), t.at("orders_per_rider_hour"), 0.0, lo_open=True)
    elif t.has("headroom"):
        raise ScenarioError(t.at("headroom"), "only with fleet.orders_per_rider_hour")
    headroom = _num(t.get("headroom", 1.2), t.at("headroom"), 1.0)
    shifts = DEFAULT_SHIFTS
    if t.has("shifts"):
        items = t.get("shifts")
        if not isinstance(items, list) or not items:
            raise ScenarioError(
                t.at("shifts"), f"must be a non-empty array of {{start_h, hours, share}}, got {_got(items)}"
            )
        parsed = []
        for i, item in enumerate(items):
            s = _Table(item, f"fleet.shifts[{i}]", ("start_h", "hours", "share"))
            start = _num(s.get("start_h"), s.at("start_h"), 0.0)
            if start >= 24.0:
                raise ScenarioError(s.at("start_h"), f"must be a local hour in [0, 24), got {start:g}")
            hours = _num(s.get("hours"), s.at("hours"), 0.0, 24.0, lo_open=True)
            parsed.append(ShiftPattern(start, hours, _num(s.get("share", 1.0), s.at("share"), 0.0, lo_open=True)))
        shifts = tuple(parsed)
    cover = hourly_coverage(shifts)
    for h in range(24):
        if hourly[h] > 0 and cover[h] == 0:
            raise ScenarioError(t.at("shifts"), f"no shift covers local hour {h}, where demand.hourly_profile expects "
                                                f"orders; add a shift or set that hour's weight to 0")  # fmt: skip
    jitter = _num(t.get("shift_jitter_min", 15.0), t.at("shift_jitter_min"), 0.0, 120.0)
    speed = _range(t.get("speed_factor", [0.85, 1.15]), t.at("speed_factor"), 0.0, lo_open=True)
    capacity = _int_range(t.get("capacity", 8), t.at("capacity"), 1)
    start_r = _num(t.get("start_radius_m", 500.0), t.at("start_radius_m"), 0.0)
    return FleetSpec(per_site, per_100, rate, headroom, shifts, jitter, speed, capacity, start_r)


def _choice(
    t: _Table, key: str, share_key: str, default: Any, integer: bool
) -> tuple[tuple[Any, ...], tuple[float, ...]]:
    raw = t.get(key, default)
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ScenarioError(t.at(key), "must not be an empty list")
    path = t.at(key)
    values: tuple[Any, ...]
    if integer:
        values = tuple(_int(v, f"{path}[{i}]" if isinstance(raw, list) else path, 1) for i, v in enumerate(items))
    else:
        values = tuple(
            _num(v, f"{path}[{i}]" if isinstance(raw, list) else path, 0.0, lo_open=True) for i, v in enumerate(items)
        )
    if t.has(share_key):
        shares = _shares(t.get(share_key), t.at(share_key), len(values))
    else:
        shares = tuple(1.0 / len(values) for _ in values)
    return values, shares


def _demand(raw: Any) -> DemandSpec:
    known = ("orders_per_day", "hourly_profile", "site_weight_sigma", "dropoff_radius_m", "ready", "promise_min",
             "promise_share", "promise_min_per_km", "size_units", "size_share", "service_drop_s")  # fmt: skip
    t = _Table(raw, "demand", known)
    n = _int(t.get("orders_per_day"), t.at("orders_per_day"), 1)
    prof_raw = t.get("hourly_profile", list(DEFAULT_HOURLY_PROFILE))
    if not isinstance(prof_raw, list) or len(prof_raw) != 24:
        raise ScenarioError(
            t.at("hourly_profile"), f"must be a list of 24 weights (local hours 0..23), got {_got(prof_raw)}"
        )
    prof = [_num(v, f"demand.hourly_profile[{h}]", 0.0) for h, v in enumerate(prof_raw)]
    if sum(prof) <= 0:
        raise ScenarioError(t.at("hourly_profile"), "weights must not all be 0")
    sigma = _num(t.get("site_weight_sigma", 0.4), t.at("site_weight_sigma"), 0.0, 3.0)
    drop = None
    if t.has("dropoff_radius_m"):
        drop = _num(t.get("dropoff_radius_m"), t.at("dropoff_radius_m"), 0.0, lo_open=True)
    r = _Table(t.get("ready", {}), "demand.ready", ("kind", "median_min", "sigma", "min_min", "max_min"))
    kind = _str(r.get("kind", "lognormal"), r.at("kind"), READY_KINDS)
    if kind == "uniform":
        for k in ("median_min", "sigma"):
            if r.has(k):
                raise ScenarioError(r.at(k), 'only with kind = "lognormal"')
    ready = ReadySpec(
        kind=kind,
        median_min=_num(r.get("median_min", 6.0), r.at("median_min"), 0.0, lo_open=True),
        sigma=_num(r.get("sigma", 0.4), r.at("sigma"), 0.0, 3.0),
        min_min=_num(r.get("min_min", 2.0), r.at("min_min"), 0.0),
        max_min=_num(r.get("max_min", 20.0), r.at("max_min"), 0.0, lo_open=True),
    )
    if ready.max_min < ready.min_min:
        raise ScenarioError(
            r.at("max_min"), f"must be >= demand.ready.min_min ({ready.min_min:g}), got {ready.max_min:g}"
        )
    promise, promise_share = _choice(t, "promise_min", "promise_share", 60.0, integer=False)
    if ready.max_min >= min(promise):
        raise ScenarioError(r.at("max_min"), f"must be less than the shortest promise ({min(promise):g} min), or "
                                             f"some orders could never be on time; got {ready.max_min:g}")  # fmt: skip
    size, size_share = _choice(t, "size_units", "size_share", 1, integer=True)
    total = sum(prof)
    return DemandSpec(
        orders_per_day=n,
        hourly_profile=tuple(p / total for p in prof),
        site_weight_sigma=sigma,
        dropoff_radius_m=drop,
        ready=ready,
        promise_min=promise,
        promise_share=promise_share,
        promise_min_per_km=_num(t.get("promise_min_per_km", 0.0), t.at("promise_min_per_km"), 0.0, 60.0),
        size_units=size,
        size_share=size_share,
        service_drop_s=_range(t.get("service_drop_s", [60.0, 150.0]), t.at("service_drop_s"), 0.0),
    )


def _travel(raw: Any) -> TravelModel:
    t = _Table(raw, "travel", ("kind", "speed_mps", "detour", "round_up_minutes"))
    kind = _str(t.get("kind", "profile"), t.at("kind"), ("profile", "constant"))
    if kind == "constant" and not t.has("speed_mps"):
        raise ScenarioError(t.at("speed_mps"), 'required with kind = "constant"')
    kwargs: dict[str, Any] = {"kind": kind}
    for k in ("speed_mps", "detour", "round_up_minutes"):
        if t.has(k):
            kwargs[k] = t.get(k)
    try:
        return TravelModel(**kwargs)
    except ParamsError as exc:
        raise ScenarioError(f"travel.{exc.field}", str(exc).split(": ", 1)[1]) from None


def _dispatch(raw: Any) -> DispatchParams:
    known = tuple(f.name for f in fields(DispatchParams))
    t = _Table(raw, "dispatch", known)
    kwargs: dict[str, Any] = {}
    for f in fields(DispatchParams):
        if t.has(f.name):
            v = t.get(f.name)
            # TOML writes 15 for 15.0: a whole number is fine for a float field (bool is not).
            if f.type == "float" and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            kwargs[f.name] = v
    try:
        return DispatchParams(**kwargs)
    except ParamsError as exc:
        raise ScenarioError(f"dispatch.{exc.field}", str(exc).split(": ", 1)[1]) from None


def _promise(raw: Any) -> PromiseSpec:
    known = ("quote", *(f.name for f in fields(PromiseParams)))
    t = _Table(raw, "promise", known)
    quote = t.get("quote", False)
    if not isinstance(quote, bool):
        raise ScenarioError(t.at("quote"), f"must be true or false, got {_got(quote)}")
    kwargs: dict[str, Any] = {}
    for f in fields(PromiseParams):
        if t.has(f.name):
            v = t.get(f.name)
            if f.type == "float" and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    try:
        return PromiseSpec(quote=quote, params=PromiseParams(**kwargs))
    except ParamsError as exc:
        raise ScenarioError(f"promise.{exc.field}", str(exc).split(": ", 1)[1]) from None


def _day(v: Any, path: str) -> dt.date:
    if isinstance(v, dt.datetime | dt.time):
        raise ScenarioError(path, f"must be a date like 2025-06-16 (no time of day), got {_got(v)}")
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            pass
    raise ScenarioError(path, f"must be a date like 2025-06-16, got {_got(v)}")


_TOP_KEYS = ("name", "description", "seed", "day", "utc_offset_h", "coordinates", "policy", "shard", "sites",
             "fleet", "demand", "travel", "dispatch", "promise")  # fmt: skip


def parse_scenario(data: Mapping[str, Any], name: str = "scenario", source_sha256: str = "") -> Scenario:
    """Validate a scenario already parsed from TOML (a mapping as ``tomllib`` returns it).

    Args:
        data: the document.
        name: the name used when the document has no ``name``.
        source_sha256: hash of the source text, kept for provenance (written to generated logs).

    Raises:
        ScenarioError: naming the dotted path of the first bad field.
    """
    t = _Table(data, "", _TOP_KEYS)
    coordinates = _str(t.get("coordinates", "wgs84"), "coordinates", COORDINATES)
    demand = _demand(t.get("demand"))
    return Scenario(
        name=_str(t.get("name", name), "name"),
        description=_str(t.get("description", ""), "description"),
        seed=_int(t.get("seed"), "seed", 0),
        day=_day(t.get("day", DEFAULT_DAY), "day"),
        utc_offset_s=3600.0 * _num(t.get("utc_offset_h", 8), "utc_offset_h", -14.0, 14.0),
        coordinates=coordinates,
        sites=_sites(t.get("sites"), coordinates),
        fleet=_fleet(t.get("fleet"), demand.hourly_profile),
        demand=demand,
        travel=_travel(t.get("travel", {})),
        dispatch=_dispatch(t.get("dispatch", {})),
        promise=_promise(t.get("promise", {})),
        policy=_str(t.get("policy", "kernel"), "policy", POLICIES),
        shard=_str(t.get("shard", "site"), "shard", SHARD_MODES),
        source_sha256=source_sha256,
    )


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario TOML file.

    Raises:
        ScenarioError: naming the dotted path of the first bad field (for a TOML syntax error or an unreadable
            file, the message names the file instead).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ScenarioError("", f"{p}: cannot read ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError("", f"{p}: not valid TOML ({exc})") from None
    return parse_scenario(data, name=p.stem, source_sha256=hashlib.sha256(raw).hexdigest())
