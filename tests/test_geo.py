"""Tests for dispatch.geo: projection, distances, speed profiles, travel-time providers and service zones."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.geo import (
    EARTH_RADIUS_M,
    MatrixTravelTime,
    ProfileTravelTime,
    Projection,
    ServiceZones,
    SpeedProfile,
    TravelTime,
    check_latlng,
    haversine_m,
)

SHANGHAI = (31.2304, 121.4737)


def points_near(lat0: float, lng0: float, radius_m: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n random WGS84 points within radius_m of (lat0, lng0) (rejection sampling in a lat/lng box)."""
    rng = np.random.default_rng(seed)
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlng = dlat / math.cos(math.radians(lat0))
    lat = lat0 + rng.uniform(-dlat, dlat, 4 * n)
    lng = (lng0 + rng.uniform(-dlng, dlng, 4 * n) + 180.0) % 360.0 - 180.0
    keep = haversine_m(lat0, lng0, lat, lng) <= radius_m
    assert keep.sum() >= n
    return lat[keep][:n], lng[keep][:n]


# --- validation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lng", "message"),
    [
        (float("nan"), 121.0, "dropoff: latitude: must be finite"),
        (31.0, float("inf"), "dropoff: longitude: must be finite"),
        (90.5, 121.0, r"dropoff: latitude must be in \[-90, 90\]"),
        (-91.0, 121.0, r"dropoff: latitude must be in \[-90, 90\]"),
        (31.0, 180.5, r"dropoff: longitude must be in \[-180, 180\]"),
        (
            [31.0, 31.0, 31.0],
            [121.0, -181.0, 0.0],
            r"longitude must be in \[-180, 180\], got -181.0 at index 1",
        ),
        ([31.0, 31.0], [121.0, 121.0, 121.0], "dropoff: latitude, longitude: shapes"),
        ("north", 121.0, "dropoff: latitude: expected numbers"),
    ],
)
def test_check_latlng_names_the_field(lat: Any, lng: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_latlng(lat, lng, "dropoff")


def test_check_latlng_accepts_bounds_and_broadcasts() -> None:
    lat, lng = check_latlng([-90.0, 0.0, 90.0], 180.0)
    assert lat.dtype == np.float64 and lng.dtype == np.float64
    np.testing.assert_array_equal(lng, [180.0, 180.0, 180.0])
    lat0, lng0 = check_latlng(31, -180)
    assert lat0.shape == () and float(lng0) == -180.0


def test_projection_and_haversine_validate_input() -> None:
    with pytest.raises(ValueError, match="Projection: lat0, lng0: latitude must be in"):
        Projection(95.0, 0.0)
    proj = Projection(*SHANGHAI)
    with pytest.raises(ValueError, match=r"rider\.position: longitude: must be finite"):
        proj.to_xy(31.0, float("nan"), field="rider.position")
    with pytest.raises(ValueError, match="xy: y: must be finite"):
        proj.to_latlng([0.0, 1.0], [0.0, float("inf")])
    with pytest.raises(ValueError, match="beyond the projection's range"):
        proj.to_latlng(4.0e7, 0.0)
    with pytest.raises(ValueError, match="point 2: latitude must be in"):
        haversine_m(31.0, 121.0, -100.0, 121.0)


# --- projection and distances ------------------------------------------------------------------------------


def test_haversine_known_values() -> None:
    one_degree = EARTH_RADIUS_M * math.pi / 180.0
    np.testing.assert_allclose(haversine_m(0.0, 0.0, 1.0, 0.0), one_degree, rtol=1e-12)
    np.testing.assert_allclose(haversine_m(0.0, 0.0, 0.0, 1.0), one_degree, rtol=1e-12)
    np.testing.assert_allclose(haversine_m(0.0, 179.5, 0.0, -179.5), one_degree, rtol=1e-9)
    d = haversine_m([31.0, 31.0], [121.0, 121.0], [31.0, 32.0], [121.0, 121.0])
    assert d.shape == (2,) and d[0] == 0.0


@pytest.mark.parametrize("centre", [SHANGHAI, (45.75, 126.65), (-33.87, 151.21), (0.0, 179.9)])
def test_projection_round_trip(centre: tuple[float, float]) -> None:
    proj = Projection(*centre)
    lat, lng = points_near(*centre, radius_m=50_000.0, n=500, seed=1)
    x, y = proj.to_xy(lat, lng)
    lat2, lng2 = proj.to_latlng(x, y)
    assert np.max(np.abs(lat2 - lat)) < 1e-6
    dlng = (lng2 - lng + 180.0) % 360.0 - 180.0  # the antimeridian centre wraps longitudes
    assert np.max(np.abs(dlng)) < 1e-6
    x0, y0 = proj.to_xy(*centre)
    assert abs(float(x0)) < 1e-6 and abs(float(y0)) < 1e-6


def test_projection_axes_point_east_and_north() -> None:
    proj = Projection(*SHANGHAI)
    x, y = proj.to_xy([SHANGHAI[0] + 0.01, SHANGHAI[0]], [SHANGHAI[1], SHANGHAI[1] + 0.01])
    assert abs(x[0]) < 1e-6 and y[0] > 1000.0
    assert x[1] > 900.0 and abs(y[1]) < 1.0


def test_projected_distance_matches_haversine_in_shanghai() -> None:
    proj = Projection(*SHANGHAI)
    lat, lng = points_near(*SHANGHAI, radius_m=30_000.0, n=400, seed=2)
    x, y = proj.to_xy(lat, lng)
    # Distance from the centre is exact in an azimuthal equidistant projection.
    np.testing.assert_allclose(np.hypot(x, y), haversine_m(*SHANGHAI, lat, lng), rtol=1e-9, atol=1e-6)
    i, j = np.triu_indices(lat.shape[0], k=1)
    great_circle = haversine_m(lat[i], lng[i], lat[j], lng[j])
    projected = np.hypot(x[i] - x[j], y[i] - y[j])
    far = great_circle > 10.0
    rel = np.abs(projected[far] / great_circle[far] - 1.0)
    assert rel.max() < 0.005


# --- speed profiles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"speed_mps": ()}, "speed_mps: must have at least one bin"),
        ({"speed_mps": (5.0, 0.0) + (5.0,) * 22}, r"speed_mps\[1\]: must be finite and positive"),
        ({"speed_mps": (-1.0,)}, r"speed_mps\[0\]"),
        ({"speed_mps": (float("nan"),)}, r"speed_mps\[0\]"),
        ({"speed_mps": "fast"}, "speed_mps"),
        ({"speed_mps": (5.0,), "bin_seconds": 0.0}, "bin_seconds: must be finite and positive"),
        ({"speed_mps": (5.0,), "bin_seconds": float("inf")}, "bin_seconds"),
        ({"speed_mps": (5.0,) * 24, "bin_seconds": 60.0}, "bin_seconds: 24 bins of 60.0 s span"),
    ],
)
def test_speed_profile_validation_names_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpeedProfile(**kwargs)


def test_default_ebike_profile() -> None:
    prof = SpeedProfile.default_ebike()
    kmh = np.array(prof.speed_mps) * 3.6
    assert len(prof.speed_mps) == 24 and prof.bin_seconds == 3600.0
    assert kmh[2] == pytest.approx(18.0)  # free-flowing at night
    for peak in (8, 12, 18):  # morning rush, lunch, dinner
        assert kmh[peak] <= 14.5
        assert kmh[peak] < kmh[2]
    assert kmh.min() >= 12.0 and kmh.max() <= 20.0
    assert SpeedProfile.constant(4.0) == SpeedProfile((4.0,), 86_400.0)
    assert prof.as_array().dtype == np.float64


# --- travel time providers ---------------------------------------------------------------------------------


def oracle_seconds(prof: SpeedProfile, offset: float, metres: float, depart: float, dt: float) -> float:
    """Ride ``metres`` from ``depart`` in small time steps at the speed of the bin each step starts in."""
    n_bins = len(prof.speed_mps)
    t = depart
    remaining = metres
    while remaining > 0.0:
        v = prof.speed_mps[math.floor((t + offset) / prof.bin_seconds) % n_bins]
        step = min(dt, remaining / v)
        t += step
        remaining -= v * step
    return t - depart


def test_profile_travel_time_matches_step_oracle() -> None:
    rng = np.random.default_rng(7)
    speeds = tuple(float(v) for v in rng.uniform(2.0, 6.0, 96))
    prof = SpeedProfile(speeds, 900.0)  # 15-minute bins, so legs cross several
    offset = 8 * 3600.0
    travel = ProfileTravelTime(prof, detour=1.25, utc_offset_s=offset)
    day0 = 1_700_000_000.0 - (1_700_000_000.0 + offset) % 86_400.0  # a local midnight
    n = 12
    xa, ya = rng.uniform(-8000.0, 8000.0, n), rng.uniform(-8000.0, 8000.0, n)
    xb, yb = rng.uniform(-8000.0, 8000.0, n), rng.uniform(-8000.0, 8000.0, n)
    # Departures just before bin boundaries, and two before local midnight (the profile wraps).
    depart = day0 + rng.integers(1, 96, n) * 900.0 - rng.uniform(1.0, 120.0, n)
    depart[:2] = day0 + 86_400.0 - np.array([30.0, 400.0])
    got = travel.seconds(xa, ya, xb, yb, depart)
    metres = travel.metres(xa, ya, xb, yb)
    np.testing.assert_allclose(metres, 1.25 * np.hypot(xb - xa, yb - ya), rtol=1e-12)
    dt = 0.05
    for i in range(n):
        want = oracle_seconds(prof, offset, float(metres[i]), float(depart[i]), dt)
        bins_crossed = math.floor((depart[i] + got[i] + offset) / 900.0) - math.floor((depart[i] + offset) / 900.0)
        tol = dt * (bins_crossed + 1) * max(speeds) / min(speeds)
        assert abs(got[i] - want) <= tol, (i, got[i], want)
    crossed = np.floor((depart + got + offset) / 900.0) - np.floor((depart + offset) / 900.0)
    assert (crossed >= 1).all() and crossed.max() >= 3


def test_profile_travel_time_on_grid_is_exact() -> None:
    # Two bins a day: 4 m/s in the local morning, 2 m/s in the afternoon. Leave 100 s before local noon.
    travel = ProfileTravelTime(SpeedProfile((4.0, 2.0), 43_200.0), detour=1.0, utc_offset_s=3600.0)
    noon_utc = 43_200.0 - 3600.0
    s = travel.seconds(0.0, 0.0, 1000.0, 0.0, noon_utc - 100.0)
    np.testing.assert_allclose(s, [100.0 + 600.0 / 2.0], rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    speeds=st.lists(st.floats(0.5, 12.0), min_size=24, max_size=24),
    metres=st.floats(0.0, 30_000.0),
    start=st.floats(0.0, 3 * 86_400.0),
    gaps=st.lists(st.floats(0.0, 4000.0), min_size=1, max_size=30),
)
def test_profile_travel_time_is_fifo(speeds: list[float], metres: float, start: float, gaps: list[float]) -> None:
    travel = ProfileTravelTime(SpeedProfile(tuple(speeds)), detour=1.0)
    depart = start + np.cumsum([0.0, *gaps])
    arrive = depart + travel.seconds(0.0, 0.0, metres, 0.0, depart)
    assert np.all(np.diff(arrive) >= -1e-6 * (1.0 + np.abs(arrive[1:])))


def test_speed_factor_divides_duration() -> None:
    travel = ProfileTravelTime(SpeedProfile.constant(5.0), detour=1.0)
    s = travel.seconds(0.0, 0.0, [1000.0, 1000.0], 0.0, 1.7e9, speed_factor=[1.0, 2.0])
    np.testing.assert_allclose(s, [200.0, 100.0], rtol=1e-12)
    with pytest.raises(ValueError, match="speed_factor: must be positive"):
        travel.seconds(0.0, 0.0, 1000.0, 0.0, 1.7e9, speed_factor=0.0)


def test_profile_travel_time_validation_and_arrays() -> None:
    with pytest.raises(ValueError, match="detour"):
        ProfileTravelTime(detour=0.9)
    with pytest.raises(ValueError, match="utc_offset_s"):
        ProfileTravelTime(utc_offset_s=20 * 3600.0)
    with pytest.raises(ValueError, match="profile"):
        ProfileTravelTime(profile=(5.0,) * 24)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depart: must be finite"):
        ProfileTravelTime().seconds(0.0, 0.0, 1.0, 1.0, float("nan"))
    with pytest.raises(ValueError, match="shapes do not broadcast"):
        ProfileTravelTime().metres([0.0, 1.0], 0.0, [1.0, 2.0, 3.0], 0.0)
    travel = ProfileTravelTime()
    assert isinstance(travel, TravelTime)
    params, speed, tmat, dmat = travel.arrays()
    np.testing.assert_array_equal(params, [3600.0, 1.3, 28_800.0, 0.0, 0.0])
    assert speed.shape == (24,) and tmat.shape == (1, 1) and dmat.shape == (1, 1)
    assert all(a.dtype == np.float64 and a.flags.c_contiguous for a in travel.arrays())
    assert travel == ProfileTravelTime() and hash(travel) == hash(ProfileTravelTime())
    assert travel.seconds(5.0, 5.0, 5.0, 5.0, 0.0)[0] == 0.0


def test_matrix_travel_time_lookup() -> None:
    seconds = np.array([[0.0, 60.0, 90.0], [70.0, 0.0, 30.0], [95.0, 35.0, 0.0]])
    metres = seconds * 5.0
    travel = MatrixTravelTime(seconds, metres)
    assert isinstance(travel, TravelTime) and travel.n_locations == 3
    la = np.array([0, 1, 2, 2], dtype=np.int64)
    lb = np.array([1, 0, 1, 2], dtype=np.int64)
    zeros = np.zeros(4)
    np.testing.assert_array_equal(travel.seconds(zeros, zeros, zeros, zeros, 1.7e9, la=la, lb=lb), seconds[la, lb])
    np.testing.assert_array_equal(
        travel.seconds(0.0, 0.0, 0.0, 0.0, 0.0, speed_factor=2.0, la=la, lb=lb), seconds[la, lb] / 2.0
    )
    np.testing.assert_array_equal(travel.metres(0.0, 0.0, 0.0, 0.0, la=la, lb=lb), metres[la, lb])
    params, speed, tmat, dmat = travel.arrays()
    assert params[3] == 1.0 and speed.shape == (1,)
    np.testing.assert_array_equal(tmat, seconds)
    np.testing.assert_array_equal(dmat, metres)
    seconds[0, 1] = 1e9  # the provider keeps its own copy
    assert travel.seconds(0.0, 0.0, 0.0, 0.0, 0.0, la=0, lb=1)[0] == 60.0


def test_matrix_metres_default_to_seconds() -> None:
    travel = MatrixTravelTime([[0, 7], [8, 0]])
    np.testing.assert_array_equal(travel.metres(0.0, 0.0, 0.0, 0.0, la=[0, 1], lb=[1, 0]), [7.0, 8.0])
    assert travel.metres_matrix is not travel.seconds_matrix


@pytest.mark.parametrize(
    ("seconds", "metres", "message"),
    [
        ([1.0, 2.0], None, "seconds: expected a non-empty square matrix"),
        (np.zeros((2, 3)), None, "seconds: expected a non-empty square matrix"),
        (np.zeros((0, 0)), None, "seconds: expected a non-empty square matrix"),
        ([[0.0, float("nan")], [1.0, 0.0]], None, r"seconds: must be finite, got nan at index \(0, 1\)"),
        ([[0.0, -1.0], [1.0, 0.0]], None, "seconds: must be non-negative"),
        (np.zeros((2, 2)), np.zeros((3, 3)), "metres: shape"),
        (np.zeros((2, 2)), [[0.0, float("inf")], [1.0, 0.0]], "metres: must be finite"),
    ],
)
def test_matrix_travel_time_validation(seconds: Any, metres: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MatrixTravelTime(seconds, metres)


def test_matrix_travel_time_needs_valid_indices() -> None:
    travel = MatrixTravelTime(np.ones((3, 3)))
    with pytest.raises(ValueError, match="la: matrix travel times need location indices"):
        travel.seconds(0.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="lb: matrix travel times need location indices"):
        travel.metres(0.0, 0.0, 0.0, 0.0, la=0)
    with pytest.raises(ValueError, match=r"lb: location index must be in \[0, 3\), got 3 at index 1"):
        travel.metres(0.0, 0.0, 0.0, 0.0, la=[0, 0], lb=[1, 3])
    with pytest.raises(ValueError, match="la: location index must be in"):
        travel.metres(0.0, 0.0, 0.0, 0.0, la=-1, lb=0)
    with pytest.raises(ValueError, match="la: location indices must be integers"):
        travel.metres(0.0, 0.0, 0.0, 0.0, la=[0.5], lb=[0])


# --- service zones -----------------------------------------------------------------------------------------


def square(lat: float, lng: float, half: float) -> list[list[float]]:
    """A closed GeoJSON ring ([lng, lat] pairs) around (lat, lng)."""
    return [
        [lng - half, lat - half],
        [lng + half, lat - half],
        [lng + half, lat + half],
        [lng - half, lat + half],
        [lng - half, lat - half],
    ]


def test_radius_zones_cover_inside_not_outside() -> None:
    zones = ServiceZones.from_radius([0.0, 3000.0, -5000.0], [0.0, 0.0, 2000.0], [2000.0, 1500.0, 500.0], [11, 12, 13])
    assert len(zones) == 3
    np.testing.assert_array_equal(zones.site_ids, [11, 12, 13])
    angles = np.linspace(0.0, 2.0 * np.pi, 37)
    for k, (cx, cy, r) in enumerate([(0.0, 0.0, 2000.0), (3000.0, 0.0, 1500.0), (-5000.0, 2000.0, 500.0)]):
        for a in angles:
            inside = zones.covering(cx + 0.95 * r * math.cos(a), cy + 0.95 * r * math.sin(a))
            outside = zones.covering(cx + 1.01 * r * math.cos(a), cy + 1.01 * r * math.sin(a))
            assert k in inside
            assert k not in outside
    both = zones.covering(1800.0, 0.0)  # in the overlap of zones 0 and 1
    assert both.dtype == np.int64
    np.testing.assert_array_equal(both, [0, 1])
    assert zones.covering(0.0, 10_000.0).shape == (0,)
    with pytest.raises(ValueError, match="radius_m: must be positive"):
        ServiceZones.from_radius([0.0], [0.0], 0.0)
    with pytest.raises(ValueError, match="site_ids"):
        ServiceZones.from_radius([0.0, 1.0], [0.0, 1.0], 10.0, site_ids=[1])


def test_geojson_zones() -> None:
    proj = Projection(*SHANGHAI)
    lat0, lng0 = SHANGHAI
    features = {
        "type": "FeatureCollection",
        "features": [
            {  # a square with a hole around the centre
                "type": "Feature",
                "properties": {"site_id": 101},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [square(lat0, lng0, 0.02), square(lat0, lng0, 0.005)],
                },
            },
            {
                "type": "Feature",
                "properties": {"site_id": 202},
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [[square(lat0, lng0, 0.003)], [square(lat0 + 0.1, lng0, 0.01)]],
                },
            },
        ],
    }
    zones = ServiceZones.from_geojson(features, proj)
    np.testing.assert_array_equal(zones.site_ids, [101, 202])

    def covering(lat: float, lng: float) -> list[int]:
        x, y = proj.to_xy(lat, lng)
        return [int(i) for i in zones.covering(float(x), float(y))]

    assert covering(lat0, lng0) == [1]  # in the hole of zone 0, inside zone 1's first part
    assert covering(lat0 + 0.01, lng0) == [0]
    assert covering(lat0 + 0.1, lng0 + 0.005) == [1]
    assert covering(lat0 + 0.05, lng0) == []
    assert covering(lat0, lng0 + 0.03) == []
    # A list of features works as well as a FeatureCollection.
    assert len(ServiceZones.from_geojson(features["features"], proj)) == 2


def _feature(geometry: Any, site_id: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"site_id": site_id}, "geometry": geometry, **extra}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            _feature({"type": "LineString", "coordinates": [[121.0, 31.0], [121.1, 31.1]]}),
            "feature 1: geometry",
        ),
        (  # a bow tie: self-intersecting
            _feature(
                {
                    "type": "Polygon",
                    "coordinates": [[[121.0, 31.0], [121.1, 31.1], [121.1, 31.0], [121.0, 31.1], [121.0, 31.0]]],
                }
            ),
            r"feature 1 \(site 1\): invalid geometry",
        ),
        (
            _feature({"type": "Polygon", "coordinates": []}),
            "feature 1: Polygon needs a non-empty list of rings",
        ),
        (_feature({"type": "Polygon", "coordinates": [[[121.0, 31.0], [121.1, 31.1]]]}), "feature 1 ring 0"),
        (
            _feature({"type": "Polygon", "coordinates": [square(95.0, 121.0, 0.01)]}),
            "feature 1 ring 0: latitude must be in",
        ),
        (_feature({"type": "Polygon", "coordinates": [square(31.0, 121.0, 0.01)]}, site_id="a"), "site_id"),
        (_feature(None, id="shop-9"), r"feature 1 \(id 'shop-9'\): missing geometry"),
        (_feature({"type": "MultiPolygon", "coordinates": []}), "feature 1: MultiPolygon"),
    ],
)
def test_geojson_bad_features_are_named(bad: dict[str, Any], message: str) -> None:
    good = _feature({"type": "Polygon", "coordinates": [square(31.2, 121.4, 0.01)]})
    with pytest.raises(ValueError, match=message):
        ServiceZones.from_geojson([good, bad], Projection(*SHANGHAI))


def test_zone_constructor_rejects_bad_geometry() -> None:
    with pytest.raises(ValueError, match=r"zone 1 \(site 1\): expected a Polygon or MultiPolygon, got Point"):
        ServiceZones([shapely.box(0, 0, 1, 1), shapely.Point(0, 0)])
    with pytest.raises(ValueError, match=r"zone 0 \(site 0\): empty geometry"):
        ServiceZones([shapely.Polygon()])


def test_covering_many_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    discs = ServiceZones.from_radius(rng.uniform(0, 10_000, 15), rng.uniform(0, 10_000, 15), rng.uniform(500, 3000, 15))
    polys = [
        *discs.geoms,
        shapely.box(2000, 2000, 6000, 4000),
        shapely.box(0, 0, 10_000, 10_000).difference(shapely.box(4000, 4000, 6000, 6000)),
    ]
    zones = ServiceZones(polys)
    x = rng.uniform(-1000, 11_000, 300)
    y = rng.uniform(-1000, 11_000, 300)
    pi, zi = zones.covering_many(x, y)
    assert pi.dtype == np.int64 and zi.dtype == np.int64
    got = list(zip(pi.tolist(), zi.tolist(), strict=True))
    want = [
        (i, k) for i in range(x.shape[0]) for k, g in enumerate(polys) if shapely.contains(g, shapely.Point(x[i], y[i]))
    ]
    assert got == want
    assert len(want) > 300  # enough overlap to mean something
    for i in range(0, 300, 25):
        np.testing.assert_array_equal(zones.covering(x[i], y[i]), zi[pi == i])
