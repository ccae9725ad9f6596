"""Service zones by site index: radius discs, polygons, GeoJSON, the STRtree answer against the naive scan."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.geo import Projection
from dispatch.zones import SiteZones, ZoneError, ZoneSpec, disc_zones

PROJ = Projection(31.23, 121.47)


def _sites() -> tuple[np.ndarray, np.ndarray]:
    return PROJ.to_xy([31.23, 31.25, 31.20], [121.47, 121.50, 121.44])


def test_discs_cover_the_addresses_within_their_radius() -> None:
    sx, sy = _sites()
    zones = SiteZones(PROJ, sx, sy, [ZoneSpec(radius_m=3000.0), ZoneSpec(radius_m=3000.0), None])
    assert zones.covering(31.23, 121.47).tolist() == [0]  # site 0 itself; site 1 is ~3.5 km away
    assert zones.covering(31.24, 121.485).tolist() == [0, 1]  # between the two
    assert zones.covering(31.20, 121.44).size == 0  # site 2 has no zone, and it is > 3 km from site 0
    assert zones.covering(30.0, 120.0).size == 0


def test_polygon_zone_in_wgs84_and_implicitly_closed() -> None:
    sx, sy = _sites()
    square = ((31.22, 121.46), (31.22, 121.48), (31.24, 121.48), (31.24, 121.46))
    zones = SiteZones(PROJ, sx[:1], sy[:1], [ZoneSpec(polygon=square)])
    assert zones.covering(31.23, 121.47).tolist() == [0]
    assert zones.covering(31.25, 121.47).size == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ZoneSpec(polygon=((31.22, 121.46), (31.22, 121.48))), "at least 3 distinct vertices"),
        (ZoneSpec(polygon=((31.22, 121.46), (31.24, 121.48), (31.22, 121.48), (31.24, 121.46))), "invalid polygon"),
        (ZoneSpec(polygon=((95.0, 121.46), (31.22, 121.48), (31.24, 121.48))), "lat"),
    ],
)
def test_bad_polygons_name_the_site(spec: ZoneSpec, message: str) -> None:
    sx, sy = _sites()
    with pytest.raises(ZoneError, match=message) as err:
        SiteZones(PROJ, sx[:1], sy[:1], [spec], names=["site 'sh-7'"])
    assert "sh-7" in str(err.value)


def test_zone_spec_needs_exactly_one_shape() -> None:
    with pytest.raises(ZoneError, match="exactly one"):
        ZoneSpec()
    with pytest.raises(ZoneError, match="radius_m"):
        ZoneSpec(radius_m=-5.0)


def test_geojson_features_by_site_key() -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"site_id": 11},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[121.46, 31.22], [121.48, 31.22], [121.48, 31.24], [121.46, 31.24], [121.46, 31.22]]
                    ],
                },
            }
        ],
    }
    zones = SiteZones.from_geojson(PROJ, [10, 11, 12], fc)
    assert zones.covering(31.23, 121.47).tolist() == [1]
    bad = {"type": "FeatureCollection", "features": [{**fc["features"][0], "properties": {"site_id": 99}}]}
    with pytest.raises(ZoneError, match="99"):
        SiteZones.from_geojson(PROJ, [10, 11, 12], bad)


@settings(max_examples=60, deadline=None)
@given(st.floats(-6000.0, 6000.0), st.floats(-6000.0, 6000.0))
def test_tree_query_equals_the_scan(x: float, y: float) -> None:
    zones = disc_zones([0.0, 2500.0, -3000.0], [0.0, 1000.0, -500.0], [2000.0, 1500.0, 2500.0])
    assert zones.covering_xy(x, y).tolist() == zones.covering_scan(x, y).tolist()
    # and the discs by distance (away from the boundaries, where the inscribed polygon differs from the circle)
    d = np.hypot(np.array([0.0, 2500.0, -3000.0]) - x, np.array([0.0, 1000.0, -500.0]) - y)
    r = np.array([2000.0, 1500.0, 2500.0])
    inside = set(np.flatnonzero(d < r * 0.999).tolist())
    outside = set(np.flatnonzero(d > r).tolist())
    got = set(zones.covering_xy(x, y).tolist())
    assert inside <= got and not (got & outside)


def _square(cx: float, cy: float, half: float) -> list[list[float]]:
    """A closed GeoJSON ring ([lng, lat]) of the square of half-side ``half`` metres around (cx, cy) metres."""
    xs = np.array([cx - half, cx + half, cx + half, cx - half, cx - half])
    ys = np.array([cy - half, cy - half, cy + half, cy + half, cy - half])
    lat, lng = PROJ.to_latlng(xs, ys)
    return [[float(a), float(b)] for a, b in zip(lng, lat, strict=True)]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_sites=st.integers(1, 4), k=st.integers(0, 60))
def test_contains_xy_equals_covering_membership(seed: int, n_sites: int, k: int) -> None:
    # Sites with zero, one or several (overlapping or apart) square zones; points around them, some on vertices.
    rng = np.random.default_rng(seed)
    features = []
    for s in range(n_sites):
        for _ in range(int(rng.integers(0, 4))):
            cx, cy, half = rng.uniform(-3000.0, 3000.0), rng.uniform(-3000.0, 3000.0), rng.uniform(300.0, 2000.0)
            geometry = {"type": "Polygon", "coordinates": [_square(cx, cy, half)]}
            features.append({"type": "Feature", "properties": {"site_id": f"s{s}"}, "geometry": geometry})
    zones = SiteZones.from_geojson(PROJ, [f"s{s}" for s in range(n_sites)], features)
    x, y = rng.uniform(-5000.0, 5000.0, k), rng.uniform(-5000.0, 5000.0, k)
    corners = (
        np.concatenate([np.asarray(g.exterior.coords) for g in zones.zones.geoms]) if features else np.zeros((0, 2))
    )
    on_vertex = (rng.random(k) < 0.2) & (corners.shape[0] > 0)
    if on_vertex.any():
        pick = corners[rng.integers(0, corners.shape[0], int(on_vertex.sum()))]
        x[on_vertex], y[on_vertex] = pick[:, 0], pick[:, 1]
    site = rng.integers(0, n_sites, k)
    got = zones.contains_xy(site, x, y)
    want = [int(site[i]) in zones.covering_xy(float(x[i]), float(y[i])).tolist() for i in range(k)]
    assert got.tolist() == want


def test_contains_xy_rejects_bad_input() -> None:
    zones = disc_zones([0.0, 5000.0], [0.0, 0.0], 2000.0)
    assert zones.contains_xy([0, 1, 1], [10.0, 10.0, 5100.0], [0.0, 0.0, 0.0]).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="site: index 2"):
        zones.contains_xy([2], [0.0], [0.0])
    with pytest.raises(ValueError, match="x: must be finite"):
        zones.contains_xy([0], [np.nan], [0.0])
    with pytest.raises(ValueError, match="expected 2 coordinates"):
        zones.contains_xy([0, 1], [0.0], [0.0])
    with pytest.raises(ValueError, match="integers"):
        zones.contains_xy([0.5], [0.0], [0.0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_sites=st.integers(1, 4), k=st.integers(0, 80), far=st.booleans())
def test_contains_xy_near_disc_boundaries(seed: int, n_sites: int, k: int, far: bool) -> None:
    # Disc zones (some sites without one), possibly far from the origin as the simulator's site frames are; points
    # at the centre, on vertices, and within a few millionths of the radius of the boundary on either side.
    rng = np.random.default_rng(seed)
    sx = np.arange(n_sites) * (1e6 if far else 5000.0) + rng.uniform(-100.0, 100.0, n_sites)
    sy = rng.uniform(-100.0, 100.0, n_sites)
    radius = rng.uniform(500.0, 3000.0, n_sites)
    specs = [None if rng.random() < 0.2 else ZoneSpec(radius_m=float(r)) for r in radius]
    zones = SiteZones(PROJ, sx, sy, specs)
    site = rng.integers(0, n_sites, k)
    theta = np.where(rng.random(k) < 0.3, rng.integers(0, 128, k) * (2 * np.pi / 128), rng.uniform(0, 2 * np.pi, k))
    rel = rng.choice([0.0, 1.0 - 1e-5, 1.0 - 1e-6, 1.0 - 1e-7, 1.0, 1.0 + 1e-7, 1.0 + 1e-6, 0.5, 1.2], k)
    x = sx[site] + rel * radius[site] * np.cos(theta)
    y = sy[site] + rel * radius[site] * np.sin(theta)
    got = zones.contains_xy(site, x, y)
    want = [int(site[i]) in zones.covering_xy(float(x[i]), float(y[i])).tolist() for i in range(k)]
    assert got.tolist() == want
