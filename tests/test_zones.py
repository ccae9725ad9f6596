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
