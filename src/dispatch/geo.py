"""Where things are and how long it takes to get between them.

Positions arrive at the edges as WGS84 degrees and are checked by :func:`check_latlng`; inside the core they
are metres in a local :class:`Projection` around the city. Travel time is a pluggable :class:`TravelTime`
provider whose ``arrays()`` give the kernels' travel tuple (see :mod:`dispatch.kernels.travel`, the one
implementation of the travel maths: the Python methods here call its ``pairwise_seconds`` /
``pairwise_metres``). :class:`ServiceZones` answers which sites cover an address.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import shapely
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon

from dispatch.kernels.travel import (
    N_PARAMS,
    P_BIN,
    P_DETOUR,
    P_ROUND_UP,
    P_USE_MATRIX,
    P_UTC_OFFSET,
    pairwise_metres,
    pairwise_seconds,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

TravelArrays = tuple[F64, F64, F64, F64]
"""The kernels' travel tuple ``(params float64[5], speed_mps float64[B], tmat float64[N, N],
dmat float64[N, N])``."""

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres."""

DAY_S = 86_400.0

__all__ = [
    "EARTH_RADIUS_M",
    "MatrixTravelTime",
    "ProfileTravelTime",
    "Projection",
    "ServiceZones",
    "SpeedProfile",
    "TravelArrays",
    "TravelTime",
    "check_latlng",
    "haversine_m",
]


# ------------------------------------------------------------------------------------------------------------
# Input validation
# ------------------------------------------------------------------------------------------------------------


def _where(arr: npt.NDArray[Any], mask: npt.NDArray[np.bool_]) -> str:
    """' at index i' for the first True of ``mask`` (nothing for a scalar)."""
    if arr.ndim == 0:
        return ""
    i = tuple(int(k) for k in np.unravel_index(int(np.flatnonzero(mask)[0]), arr.shape))
    return f" at index {i[0] if len(i) == 1 else i}"


def _first(arr: npt.NDArray[Any], mask: npt.NDArray[np.bool_]) -> float:
    return float(arr[mask].flat[0]) if arr.ndim else float(arr)


def _float_array(a: npt.ArrayLike, name: str) -> F64:
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected numbers, got {a!r}") from exc


def _finite(a: npt.ArrayLike, name: str) -> F64:
    arr = _float_array(a, name)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name}: must be finite, got {_first(arr, bad)}{_where(arr, bad)}")
    return arr


def _broadcast(arrays: Sequence[F64], names: str) -> list[F64]:
    try:
        return [np.array(a, dtype=np.float64) for a in np.broadcast_arrays(*arrays)]  # own contiguous copies
    except ValueError as exc:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ValueError(f"{names}: shapes {shapes} do not broadcast together") from exc


def check_latlng(lat: npt.ArrayLike, lng: npt.ArrayLike, field: str = "position") -> tuple[F64, F64]:
    """Check WGS84 coordinates and return them as float64 arrays broadcast to a common shape.

    Args:
        lat: latitude in degrees, float64[n] or a scalar; must be finite and in [-90, 90].
        lng: longitude in degrees, float64[n] or a scalar; must be finite and in [-180, 180].
        field: the name used in error messages (for example ``"order.dropoff"``).

    Returns:
        ``(lat, lng)``, float64 arrays of the broadcast shape of the inputs (0-d for scalars).

    Raises:
        ValueError: naming ``field`` (and the first bad index) for NaN or infinite values, a latitude outside
            [-90, 90], a longitude outside [-180, 180], or shapes that do not broadcast.
    """
    la = _finite(lat, f"{field}: latitude")
    lo = _finite(lng, f"{field}: longitude")
    bad = np.abs(la) > 90.0
    if bad.any():
        raise ValueError(f"{field}: latitude must be in [-90, 90], got {_first(la, bad)}{_where(la, bad)}")
    bad = np.abs(lo) > 180.0
    if bad.any():
        raise ValueError(f"{field}: longitude must be in [-180, 180], got {_first(lo, bad)}{_where(lo, bad)}")
    la, lo = _broadcast([la, lo], f"{field}: latitude, longitude")
    return la, lo


# ------------------------------------------------------------------------------------------------------------
# Projection and distances
# ------------------------------------------------------------------------------------------------------------


def haversine_m(lat1: npt.ArrayLike, lng1: npt.ArrayLike, lat2: npt.ArrayLike, lng2: npt.ArrayLike) -> F64:
    """Great-circle distance in metres on a sphere of radius :data:`EARTH_RADIUS_M` (6,371,008.8 m).

    Args:
        lat1, lng1: the first points in degrees, float64[n] (or scalars, broadcast).
        lat2, lng2: the second points in degrees, float64[n] (or scalars, broadcast).

    Returns:
        float64[n], the distance between point ``i`` of each set (0-d for scalar inputs).

    Raises:
        ValueError: for invalid coordinates (see :func:`check_latlng`; the fields are ``"point 1"`` and
            ``"point 2"``).
    """
    a_lat, a_lng = check_latlng(lat1, lng1, "point 1")
    b_lat, b_lng = check_latlng(lat2, lng2, "point 2")
    p1, l1, p2, l2 = (np.radians(v) for v in _broadcast([a_lat, a_lng, b_lat, b_lng], "point 1, point 2"))
    h = np.sin((p2 - p1) / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2.0) ** 2
    out: F64 = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return out


@dataclass(frozen=True)
class Projection:
    """A local projection in metres around a reference point: the spherical azimuthal equidistant projection.

    ``x`` points east and ``y`` north, in metres, with the origin at ``(lat0, lng0)``. Azimuthal equidistant
    rather than a local equirectangular (x = R cos(lat0) dlng): the equirectangular's east-west scale is off
    by about ``tan(lat0) * dlat``, already ~0.5% at 50 km north or south of Shanghai, whereas the azimuthal
    equidistant projection keeps distances from the centre exact and distorts others only to second order
    (of the order of ``(r / R)^2``, < 0.01% within 50 km), while staying closed-form both ways. It uses
    the same sphere as :func:`haversine_m`, so a projected straight line and the great circle agree at city
    scale. It is meant for one city: the error grows with distance from the centre; the antipode is undefined.

    Args:
        lat0, lng0: the reference point in WGS84 degrees (validated).
    """

    lat0: float
    lng0: float

    def __post_init__(self) -> None:
        lat0, lng0 = check_latlng(self.lat0, self.lng0, "Projection: lat0, lng0")
        if lat0.ndim != 0:
            raise ValueError(f"Projection: lat0, lng0 must be scalars, got shape {lat0.shape}")
        object.__setattr__(self, "lat0", float(lat0))
        object.__setattr__(self, "lng0", float(lng0))

    def to_xy(self, lat: npt.ArrayLike, lng: npt.ArrayLike, field: str = "position") -> tuple[F64, F64]:
        """Project WGS84 degrees to local metres.

        Args:
            lat, lng: float64[n] degrees (or scalars, broadcast), validated with :func:`check_latlng`.
            field: the name used in error messages.

        Returns:
            ``(x, y)``: float64[n] metres east and north of the reference point (0-d for scalar inputs).
        """
        la, lo = check_latlng(lat, lng, field)
        phi0 = math.radians(self.lat0)
        phi = np.radians(la)
        dlam = np.radians(lo - self.lng0)
        cos_phi = np.cos(phi)
        a = cos_phi * np.sin(dlam)
        b = math.cos(phi0) * np.sin(phi) - math.sin(phi0) * cos_phi * np.cos(dlam)
        c_cos = math.sin(phi0) * np.sin(phi) + math.cos(phi0) * cos_phi * np.cos(dlam)
        c_sin = np.hypot(a, b)
        c = np.arctan2(c_sin, c_cos)  # angular distance from the centre, stable for small angles
        k = np.divide(c, c_sin, out=np.ones_like(c), where=c_sin > 0.0)
        x: F64 = EARTH_RADIUS_M * k * a
        y: F64 = EARTH_RADIUS_M * k * b
        return x, y

    def to_latlng(self, x: npt.ArrayLike, y: npt.ArrayLike, field: str = "xy") -> tuple[F64, F64]:
        """Inverse of :meth:`to_xy`.

        Args:
            x, y: float64[n] metres (or scalars, broadcast); finite and less than half the Earth's
                circumference from the reference point.
            field: the name used in error messages.

        Returns:
            ``(lat, lng)``: float64[n] WGS84 degrees, longitude wrapped to [-180, 180).

        Raises:
            ValueError: naming ``field`` for non-finite values or points outside the projection's range.
        """
        xa, ya = _broadcast([_finite(x, f"{field}: x"), _finite(y, f"{field}: y")], f"{field}: x, y")
        rho = np.hypot(xa, ya)
        bad = rho >= math.pi * EARTH_RADIUS_M
        if bad.any():
            raise ValueError(f"{field}: point beyond the projection's range{_where(rho, bad)}")
        c = rho / EARTH_RADIUS_M
        sin_c = np.sin(c)
        cos_c = np.cos(c)
        # s = sin(c) / rho, which tends to 1 / R at the centre
        s = np.divide(sin_c, rho, out=np.full_like(rho, 1.0 / EARTH_RADIUS_M), where=rho > 0.0)
        phi0 = math.radians(self.lat0)
        phi = np.arcsin(np.clip(cos_c * math.sin(phi0) + ya * s * math.cos(phi0), -1.0, 1.0))
        dlam = np.arctan2(xa * s, math.cos(phi0) * cos_c - ya * math.sin(phi0) * s)
        lat: F64 = np.degrees(phi)
        lng: F64 = (self.lng0 + np.degrees(dlam) + 180.0) % 360.0 - 180.0
        return lat, lng


# ------------------------------------------------------------------------------------------------------------
# Speed profiles
# ------------------------------------------------------------------------------------------------------------

# Assumed e-bike riding speeds in a large Chinese city, km/h, by local hour 0..23. Not measured: free-flowing
# at night (~18 km/h: the legal cap of GB 17761 is 25 km/h, less stops at junctions), slowest in the morning
# rush (07-09), the lunch peak (11-13, when riders also queue in lobbies and at lifts) and the evening rush
# and dinner peak (17-20), ~14 km/h. Replace with speeds fitted to rider GPS traces when they exist.
_EBIKE_KMH: tuple[float, ...] = (
    18.0, 18.0, 18.0, 18.0, 18.0, 17.5,  # 00-05: night, free-flowing
    16.5, 14.5, 14.0, 15.0, 16.0, 14.5,  # 06-11: morning rush 07-09, lunch build-up at 11
    14.0, 15.0, 16.5, 16.5, 16.0, 14.5,  # 12-17: lunch peak at 12, afternoon, evening rush from 17
    14.0, 14.0, 15.5, 16.5, 17.0, 17.5,  # 18-23: dinner peak 18-19, then easing
)  # fmt: skip


@dataclass(frozen=True)
class SpeedProfile:
    """A rider's base speed by time of day: ``speed_mps[b]`` over local seconds ``[b, b + 1) * bin_seconds``.

    Several bins must span exactly one day (24 x 3600, 48 x 1800, 96 x 900 ...), so that a bin is always the
    same time of day; a single bin is a constant speed, whatever its width.

    Args:
        speed_mps: metres per second in each bin; non-empty, finite and positive.
        bin_seconds: the width of a bin in seconds; finite and positive.
    """

    speed_mps: tuple[float, ...]
    bin_seconds: float = 3600.0

    def __post_init__(self) -> None:
        try:
            speeds = tuple(float(v) for v in self.speed_mps)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"speed_mps: expected a sequence of numbers, got {self.speed_mps!r}") from exc
        if not speeds:
            raise ValueError("speed_mps: must have at least one bin")
        for b, v in enumerate(speeds):
            if not (math.isfinite(v) and v > 0.0):
                raise ValueError(f"speed_mps[{b}]: must be finite and positive, got {v}")
        bin_s = float(self.bin_seconds)
        if not (math.isfinite(bin_s) and bin_s > 0.0):
            raise ValueError(f"bin_seconds: must be finite and positive, got {self.bin_seconds}")
        if len(speeds) > 1 and abs(len(speeds) * bin_s - DAY_S) > 1e-6:
            raise ValueError(
                f"bin_seconds: {len(speeds)} bins of {bin_s} s span {len(speeds) * bin_s} s, not a day ({DAY_S:.0f} s)"
            )
        object.__setattr__(self, "speed_mps", speeds)
        object.__setattr__(self, "bin_seconds", bin_s)

    @classmethod
    def default_ebike(cls) -> SpeedProfile:
        """24 hourly e-bike speeds in a Chinese city: ~18 km/h at night, ~14 km/h in rush hours and at meals.

        The numbers are assumptions, not measurements (see ``_EBIKE_KMH`` in this module).
        """
        return cls(tuple(v / 3.6 for v in _EBIKE_KMH), 3600.0)

    @classmethod
    def constant(cls, mps: float) -> SpeedProfile:
        """The same speed ``mps`` (metres per second) all day: one bin of 86,400 s (validated)."""
        return cls((mps,), DAY_S)

    def as_array(self) -> F64:
        """float64[B], the speeds in metres per second."""
        return np.array(self.speed_mps, dtype=np.float64)


# ------------------------------------------------------------------------------------------------------------
# Travel time providers
# ------------------------------------------------------------------------------------------------------------


@runtime_checkable
class TravelTime(Protocol):
    """A travel-time provider: the kernels read ``arrays()``; Python callers use ``seconds`` and ``metres``.

    Positions are projected metres; ``la``/``lb`` are int64 travel-matrix location indices (-1 when unused).
    """

    def arrays(self) -> TravelArrays:
        """The kernels' travel tuple ``(params float64[5], speed_mps float64[B], tmat float64[N, N],
        dmat float64[N, N])``, see :mod:`dispatch.kernels.travel`."""
        ...

    def seconds(
        self,
        xa: npt.ArrayLike,
        ya: npt.ArrayLike,
        xb: npt.ArrayLike,
        yb: npt.ArrayLike,
        depart: npt.ArrayLike,
        speed_factor: npt.ArrayLike | None = None,
        la: npt.ArrayLike | None = None,
        lb: npt.ArrayLike | None = None,
    ) -> F64:
        """float64[n] seconds from a to b leaving at epoch ``depart`` (float64[n] inputs, int64[n] la/lb)."""
        ...

    def metres(
        self,
        xa: npt.ArrayLike,
        ya: npt.ArrayLike,
        xb: npt.ArrayLike,
        yb: npt.ArrayLike,
        la: npt.ArrayLike | None = None,
        lb: npt.ArrayLike | None = None,
    ) -> F64:
        """float64[n] metres from a to b (float64[n] inputs, int64[n] la/lb)."""
        ...


def _legs(
    xa: npt.ArrayLike,
    ya: npt.ArrayLike,
    xb: npt.ArrayLike,
    yb: npt.ArrayLike,
    extra: Sequence[tuple[npt.ArrayLike, str]],
    la: npt.ArrayLike | None,
    lb: npt.ArrayLike | None,
    n_loc: int | None,
) -> tuple[list[F64], I64, I64]:
    """Validate and broadcast leg inputs to contiguous 1-D arrays of one length n.

    ``n_loc`` is the matrix size: when given, ``la`` and ``lb`` are required and checked against it; when None
    they are ignored and filled with -1.
    """
    floats = [_finite(a, name) for a, name in [(xa, "xa"), (ya, "ya"), (xb, "xb"), (yb, "yb"), *extra]]
    locs: list[I64] = []
    for a, name in [(la, "la"), (lb, "lb")]:
        if n_loc is None:
            locs.append(np.full((), -1, dtype=np.int64))
            continue
        if a is None:
            raise ValueError(f"{name}: matrix travel times need location indices")
        arr = np.asarray(a)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name}: location indices must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        bad = (arr < 0) | (arr >= n_loc)
        if bad.any():
            got = int(arr[bad].flat[0])
            raise ValueError(f"{name}: location index must be in [0, {n_loc}), got {got}{_where(arr, bad)}")
        locs.append(arr)
    names = ", ".join(["xa", "ya", "xb", "yb", *(name for _, name in extra)])
    if n_loc is not None:
        names += ", la, lb"
    try:
        out = np.broadcast_arrays(*floats, *locs)
    except ValueError as exc:
        raise ValueError(f"{names}: shapes do not broadcast together") from exc
    if out[0].ndim > 1:
        raise ValueError(f"{names}: expected 1-D arrays, got shape {out[0].shape}")
    flat = [np.ascontiguousarray(np.atleast_1d(a)) for a in out]
    return flat[: len(floats)], flat[-2], flat[-1]


def _leg_seconds(
    travel: TravelArrays,
    xa: npt.ArrayLike,
    ya: npt.ArrayLike,
    xb: npt.ArrayLike,
    yb: npt.ArrayLike,
    depart: npt.ArrayLike,
    speed_factor: npt.ArrayLike | None,
    la: npt.ArrayLike | None,
    lb: npt.ArrayLike | None,
    n_loc: int | None,
) -> F64:
    """Typed wrapper of the kernel ``pairwise_seconds`` with validated, broadcast inputs."""
    sf = 1.0 if speed_factor is None else speed_factor
    (fxa, fya, fxb, fyb, dep, spf), ila, ilb = _legs(
        xa, ya, xb, yb, [(depart, "depart"), (sf, "speed_factor")], la, lb, n_loc
    )
    bad = spf <= 0.0
    if bad.any():
        raise ValueError(f"speed_factor: must be positive, got {_first(spf, bad)}{_where(spf, bad)}")
    out: F64 = pairwise_seconds(travel, fxa, fya, ila, fxb, fyb, ilb, dep, spf)
    return out


def _leg_metres(
    travel: TravelArrays,
    xa: npt.ArrayLike,
    ya: npt.ArrayLike,
    xb: npt.ArrayLike,
    yb: npt.ArrayLike,
    la: npt.ArrayLike | None,
    lb: npt.ArrayLike | None,
    n_loc: int | None,
) -> F64:
    """Typed wrapper of the kernel ``pairwise_metres`` with validated, broadcast inputs."""
    (fxa, fya, fxb, fyb), ila, ilb = _legs(xa, ya, xb, yb, [], la, lb, n_loc)
    out: F64 = pairwise_metres(travel, fxa, fya, ila, fxb, fyb, ilb)
    return out


def _params(bin_seconds: float, detour: float, utc_offset_s: float, use_matrix: bool, round_up_s: float = 0.0) -> F64:
    params = np.zeros(N_PARAMS, dtype=np.float64)
    params[P_ROUND_UP] = round_up_s
    # Legs rounded up are marked by a negative bin length (see dispatch.kernels.travel).
    params[P_BIN] = -bin_seconds if round_up_s > 0.0 else bin_seconds
    params[P_DETOUR] = detour
    params[P_UTC_OFFSET] = utc_offset_s
    params[P_USE_MATRIX] = 1.0 if use_matrix else 0.0
    return params


@dataclass(frozen=True)
class ProfileTravelTime:
    """The default provider: the straight line in projected metres times ``detour``, over a speed profile.

    A leg's duration integrates ``profile`` over the time-of-day bins it crosses (local time = UTC epoch
    seconds + ``utc_offset_s``), so leaving later never means arriving earlier. ``speed_factor`` divides the
    duration. Matrix indices are ignored.

    Args:
        profile: the base speed by time of day (default :meth:`SpeedProfile.default_ebike`).
        detour: road distance over straight-line distance; finite and >= 1 (default 1.3).
        utc_offset_s: seconds added to UTC to get the profile's local time; within +-14 h (default 8 h,
            China Standard Time).
        round_up_s: when > 0, every leg's duration (after ``speed_factor``) is rounded up to a whole multiple of
            it, a zero-length leg staying 0 (60: whole minutes, as some published benchmark protocols count
            travel). Only with a constant speed (every bin of ``profile`` the same), where rounding keeps the
            FIFO property; default 0, no rounding.
    """

    profile: SpeedProfile = field(default_factory=SpeedProfile.default_ebike)
    detour: float = 1.3
    utc_offset_s: float = 8 * 3600.0
    round_up_s: float = 0.0
    _arrays: TravelArrays = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.profile, SpeedProfile):
            raise ValueError(f"profile: expected a SpeedProfile, got {type(self.profile).__name__}")
        detour = float(self.detour)
        if not (math.isfinite(detour) and detour >= 1.0):
            raise ValueError(f"detour: must be finite and >= 1, got {self.detour}")
        offset = float(self.utc_offset_s)
        if not (math.isfinite(offset) and abs(offset) <= 14 * 3600.0):
            raise ValueError(f"utc_offset_s: must be finite and within +-50400 s (14 h), got {self.utc_offset_s}")
        round_up = float(self.round_up_s)
        if not (math.isfinite(round_up) and round_up >= 0.0):
            raise ValueError(f"round_up_s: must be finite and >= 0, got {self.round_up_s}")
        if round_up > 0.0 and len(set(self.profile.speed_mps)) > 1:
            raise ValueError("round_up_s: legs are rounded up only under a constant speed (a profile of one speed)")
        object.__setattr__(self, "round_up_s", round_up)
        object.__setattr__(self, "detour", detour)
        object.__setattr__(self, "utc_offset_s", offset)
        unused = np.zeros((1, 1), dtype=np.float64)
        arrays = (
            _params(self.profile.bin_seconds, detour, offset, use_matrix=False, round_up_s=round_up),
            self.profile.as_array(),
            unused,
            unused.copy(),
        )
        object.__setattr__(self, "_arrays", arrays)

    def arrays(self) -> TravelArrays:
        """``(params float64[5], speed_mps float64[B], tmat float64[1, 1], dmat float64[1, 1])``.

        Shared, not copied: do not mutate."""
        return self._arrays

    def seconds(
        self,
        xa: npt.ArrayLike,
        ya: npt.ArrayLike,
        xb: npt.ArrayLike,
        yb: npt.ArrayLike,
        depart: npt.ArrayLike,
        speed_factor: npt.ArrayLike | None = None,
        la: npt.ArrayLike | None = None,
        lb: npt.ArrayLike | None = None,
    ) -> F64:
        """Seconds from a to b leaving at ``depart``.

        Args:
            xa, ya, xb, yb: float64[n] projected metres (scalars broadcast).
            depart: float64[n] UTC epoch seconds.
            speed_factor: float64[n] positive multipliers of the profile speed (default 1).
            la, lb: ignored (int64[n] matrix indices in the protocol).

        Returns:
            float64[n] seconds.
        """
        return _leg_seconds(self._arrays, xa, ya, xb, yb, depart, speed_factor, la, lb, None)

    def metres(
        self,
        xa: npt.ArrayLike,
        ya: npt.ArrayLike,
        xb: npt.ArrayLike,
        yb: npt.ArrayLike,
        la: npt.ArrayLike | None = None,
        lb: npt.ArrayLike | None = None,
    ) -> F64:
        """Road metres from a to b: ``hypot(xb - xa, yb - ya) * detour``.

        Args:
            xa, ya, xb, yb: float64[n] projected metres (scalars broadcast).
            la, lb: ignored (int64[n] matrix indices in the protocol).

        Returns:
            float64[n] metres.
        """
        return _leg_metres(self._arrays, xa, ya, xb, yb, la, lb, None)


def _matrix(a: npt.ArrayLike, name: str) -> F64:
    arr = np.array(_float_array(a, name), dtype=np.float64, order="C", copy=True)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty square matrix float64[N, N], got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name}: must be finite, got {_first(arr, bad)}{_where(arr, bad)}")
    bad = arr < 0.0
    if bad.any():
        raise ValueError(f"{name}: must be non-negative, got {_first(arr, bad)}{_where(arr, bad)}")
    return arr


@dataclass(frozen=True, eq=False, init=False, repr=False)
class MatrixTravelTime:
    """Explicit travel times and distances between N indexed locations (benchmarks, road-network tables).

    Every leg needs matrix indices ``la`` and ``lb``; positions are accepted but ignored, and so is the time
    of day. ``speed_factor`` divides the seconds. The matrices are copied on construction.

    Args:
        seconds: float64[N, N] travel seconds from location i to location j; finite and non-negative.
        metres: float64[N, N] travel metres, same shape; defaults to ``seconds`` (as in benchmark instances
            where travel time equals distance).

    ``__init__`` is written by hand because its parameters share their names with the protocol's ``seconds`` /
    ``metres`` methods; the validated copies are kept as ``seconds_matrix`` / ``metres_matrix``.
    """

    seconds_matrix: F64
    metres_matrix: F64
    _arrays: TravelArrays = field(repr=False)

    def __init__(self, seconds: npt.ArrayLike, metres: npt.ArrayLike | None = None) -> None:
        object.__setattr__(self, "seconds_matrix", seconds)
        object.__setattr__(self, "metres_matrix", seconds if metres is None else metres)
        self.__post_init__()

    def __post_init__(self) -> None:
        tmat = _matrix(self.seconds_matrix, "seconds")
        dmat = _matrix(self.metres_matrix, "metres")
        if dmat.shape != tmat.shape:
            raise ValueError(f"metres: shape {dmat.shape} differs from seconds {tmat.shape}")
        object.__setattr__(self, "seconds_matrix", tmat)
        object.__setattr__(self, "metres_matrix", dmat)
        params = _params(DAY_S, 1.0, 0.0, use_matrix=True)
        object.__setattr__(self, "_arrays", (params, np.ones(1, dtype=np.float64), tmat, dmat))

    def __repr__(self) -> str:
        return f"MatrixTravelTime(n_locations={self.n_locations})"

    @property
    def n_locations(self) -> int:
        """N, the number of locations."""
        return int(self.seconds_matrix.shape[0])

    def arrays(self) -> TravelArrays:
        """``(params float64[5], speed_mps float64[1], tmat float64[N, N], dmat float64[N, N])``.

        Shared, not copied: do not mutate."""
        return self._arrays

    def seconds(
        self,
        xa: npt.ArrayLike,
        ya: npt.ArrayLike,
        xb: npt.ArrayLike,
        yb: npt.ArrayLike,
        depart: npt.ArrayLike,
        speed_factor: npt.ArrayLike | None = None,
        la: npt.ArrayLike | None = None,
        lb: npt.ArrayLike | None = None,
    ) -> F64:
        """``seconds[la, lb] / speed_factor``.

        Args:
            xa, ya, xb, yb: float64[n] positions, ignored (but must be finite and broadcast).
            depart: float64[n] epoch seconds, ignored (but must be finite).
            speed_factor: float64[n] positive divisors (default 1).
            la, lb: int64[n] location indices in [0, N); required.

        Returns:
            float64[n] seconds.
        """
        return _leg_seconds(self.arrays(), xa, ya, xb, yb, depart, speed_factor, la, lb, self.n_locations)

    def metres(
        self,
        xa: npt.ArrayLike,
        ya: npt.ArrayLike,
        xb: npt.ArrayLike,
        yb: npt.ArrayLike,
        la: npt.ArrayLike | None = None,
        lb: npt.ArrayLike | None = None,
    ) -> F64:
        """``metres[la, lb]``.

        Args:
            xa, ya, xb, yb: float64[n] positions, ignored (but must be finite and broadcast).
            la, lb: int64[n] location indices in [0, N); required.

        Returns:
            float64[n] metres.
        """
        return _leg_metres(self.arrays(), xa, ya, xb, yb, la, lb, self.n_locations)


# ------------------------------------------------------------------------------------------------------------
# Service zones
# ------------------------------------------------------------------------------------------------------------


class ServiceZones:
    """Service zones: one (Multi)Polygon in projected metres per zone, indexed with a shapely STRtree.

    Zone ``i`` belongs to site ``site_ids[i]``. A point is covered by a zone when it lies in the zone's
    interior (shapely ``within``; a point exactly on the boundary is not covered).

    Args:
        polygons: n shapely ``Polygon`` or ``MultiPolygon`` in projected metres; each valid and non-empty.
        site_ids: int64[n] site ids (default ``0 .. n - 1``).

    Raises:
        ValueError: naming the zone (index and site) for a geometry of the wrong type, empty or invalid.
    """

    __slots__ = ("_geoms", "_site_ids", "_tree")

    def __init__(self, polygons: Iterable[Any], site_ids: npt.ArrayLike | None = None) -> None:
        geoms = tuple(polygons)
        n = len(geoms)
        if site_ids is None:
            ids = np.arange(n, dtype=np.int64)
        else:
            raw = np.asarray(site_ids)
            if raw.shape != (n,) or (n and not np.issubdtype(raw.dtype, np.integer)):
                raise ValueError(f"site_ids: expected int64[{n}], got dtype {raw.dtype} shape {raw.shape}")
            ids = raw.astype(np.int64)
        for i, g in enumerate(geoms):
            _check_zone(g, f"zone {i} (site {ids[i]})")
        ids.setflags(write=False)
        self._geoms = geoms
        self._site_ids = ids
        self._tree = shapely.STRtree(np.array(geoms, dtype=object))

    @classmethod
    def from_radius(
        cls,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        radius_m: npt.ArrayLike,
        site_ids: npt.ArrayLike | None = None,
    ) -> ServiceZones:
        """Disc-shaped zones around n sites.

        Each disc is a 128-gon inscribed in the circle, so a zone never reaches beyond ``radius_m`` and falls
        short of it by at most 0.03% between vertices.

        Args:
            x, y: float64[n] site positions in projected metres.
            radius_m: float64[n] or a scalar, radius in metres; finite and positive.
            site_ids: int64[n] site ids (default ``0 .. n - 1``).
        """
        xs, ys, rs = _broadcast([_finite(x, "x"), _finite(y, "y"), _finite(radius_m, "radius_m")], "x, y, radius_m")
        if xs.ndim != 1:
            raise ValueError(f"x, y: expected float64[n], got shape {xs.shape}")
        bad = rs <= 0.0
        if bad.any():
            raise ValueError(f"radius_m: must be positive, got {_first(rs, bad)}{_where(rs, bad)}")
        discs = shapely.buffer(shapely.points(xs, ys), rs, quad_segs=32)
        return cls(list(discs), site_ids)

    @classmethod
    def from_geojson(cls, features: Any, projection: Projection) -> ServiceZones:
        """Zones from GeoJSON features in WGS84 (``[lng, lat]`` order), projected with ``projection``.

        Args:
            features: a FeatureCollection mapping or a sequence of Feature mappings; each with a ``Polygon``
                or ``MultiPolygon`` geometry and an integer ``properties["site_id"]``.
            projection: the city's projection.

        Raises:
            ValueError: naming the feature (index, and ``id`` when present) for a missing or non-integer site
                id, a geometry of another type, bad coordinates, or an empty or invalid polygon.
        """
        if isinstance(features, Mapping):
            if features.get("type") != "FeatureCollection":
                got = repr(features)[:80]
                raise ValueError(f"features: expected a FeatureCollection or a list of Features, got {got}")
            features = features.get("features", [])
        geoms: list[Any] = []
        ids: list[int] = []
        for i, feat in enumerate(features):
            name = f"feature {i}"
            if not isinstance(feat, Mapping):
                raise ValueError(f"{name}: expected a GeoJSON Feature mapping, got {type(feat).__name__}")
            if feat.get("id") is not None:
                name += f" (id {feat['id']!r})"
            props = feat.get("properties") or {}
            site = props.get("site_id") if isinstance(props, Mapping) else None
            if isinstance(site, bool) or not isinstance(site, int | np.integer):
                raise ValueError(f"{name}: properties.site_id must be an integer, got {site!r}")
            geom = feat.get("geometry")
            if not isinstance(geom, Mapping):
                raise ValueError(f"{name}: missing geometry")
            gtype = geom.get("type")
            coords = geom.get("coordinates")
            if gtype == "Polygon":
                shape: Any = _geojson_polygon(coords, projection, name)
            elif gtype == "MultiPolygon":
                if not isinstance(coords, Sequence) or not coords:
                    raise ValueError(f"{name}: MultiPolygon needs a non-empty list of polygons")
                shape = MultiPolygon(
                    [_geojson_polygon(p, projection, f"{name} polygon {j}") for j, p in enumerate(coords)]
                )
            else:
                raise ValueError(f"{name}: geometry must be Polygon or MultiPolygon, got {gtype!r}")
            _check_zone(shape, f"{name} (site {site})")
            geoms.append(shape)
            ids.append(int(site))
        return cls(geoms, np.array(ids, dtype=np.int64))

    def __len__(self) -> int:
        return len(self._geoms)

    @property
    def geoms(self) -> tuple[Any, ...]:
        """The n zone geometries (shapely Polygon / MultiPolygon, projected metres)."""
        return self._geoms

    @property
    def site_ids(self) -> I64:
        """int64[n], the site of each zone (read-only)."""
        return self._site_ids

    def covering(self, x: float, y: float) -> I64:
        """Indices of the zones that contain the point ``(x, y)`` (projected metres).

        Returns:
            int64[k], sorted ascending; empty when no zone covers the point (``site_ids[result]`` are the
            sites).
        """
        px = _finite(x, "x")
        py = _finite(y, "y")
        if px.ndim or py.ndim:
            raise ValueError("x, y: expected scalars (use covering_many for arrays)")
        idx = self._tree.query(shapely.Point(float(px), float(py)), predicate="within")
        return np.sort(np.asarray(idx, dtype=np.int64))

    def covering_many(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[I64, I64]:
        """Every (point, zone) pair where zone contains point, for n points at once.

        Args:
            x, y: float64[n] projected metres.

        Returns:
            ``(point_idx, zone_idx)``: int64[q] each, sorted by point then zone.
        """
        xs, ys = _broadcast([_finite(x, "x"), _finite(y, "y")], "x, y")
        if xs.ndim != 1:
            raise ValueError(f"x, y: expected float64[n], got shape {xs.shape}")
        pairs = np.asarray(self._tree.query(shapely.points(xs, ys), predicate="within"), dtype=np.int64)
        pairs = pairs.reshape(2, -1)
        order = np.lexsort((pairs[1], pairs[0]))
        return np.ascontiguousarray(pairs[0, order]), np.ascontiguousarray(pairs[1, order])


def _check_zone(geom: Any, name: str) -> None:
    if not isinstance(geom, Polygon | MultiPolygon):
        raise ValueError(f"{name}: expected a Polygon or MultiPolygon, got {type(geom).__name__}")
    if geom.is_empty:
        raise ValueError(f"{name}: empty geometry")
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise ValueError(f"{name}: coordinates must be finite")
    if not geom.is_valid:
        raise ValueError(f"{name}: invalid geometry ({shapely.is_valid_reason(geom)})")


def _geojson_polygon(rings: Any, projection: Projection, name: str) -> Polygon:
    """A GeoJSON Polygon's rings (``[[[lng, lat], ...], ...]``, exterior first) projected to metres."""
    if not isinstance(rings, Sequence) or not rings:
        raise ValueError(f"{name}: Polygon needs a non-empty list of rings")
    projected = []
    for r, ring in enumerate(rings):
        try:
            pts = np.asarray(ring, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} ring {r}: coordinates must be [lng, lat] pairs of numbers") from exc
        if pts.ndim != 2 or pts.shape[1] not in (2, 3) or pts.shape[0] < 4:
            raise ValueError(f"{name} ring {r}: expected >= 4 [lng, lat] positions, got shape {pts.shape}")
        x, y = projection.to_xy(pts[:, 1], pts[:, 0], f"{name} ring {r}")
        projected.append(np.column_stack([x, y]))
    try:
        return Polygon(projected[0], projected[1:])
    except (ValueError, GEOSException) as exc:
        raise ValueError(f"{name}: cannot build a polygon ({exc})") from exc
