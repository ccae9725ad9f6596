"""Service zones of sites, by site index: which sites deliver to an address.

A site's zone is a disc of ``radius_m`` around it or an explicit polygon (WGS84 vertices, as the proto's
``ServiceZone``; or GeoJSON features). :class:`SiteZones` projects every zone into the city's
:class:`~dispatch.geo.Projection` (metres) and indexes them with the shapely STRtree of
:class:`dispatch.geo.ServiceZones`, so that ``covering(lat, lng)`` costs one tree query, whatever the number of
sites. Zones are numbered like the sites (zone ``i`` belongs to site index ``i``); a site may have no zone (it
then covers nothing).

:meth:`SiteZones.contains_xy` answers "does site s deliver here" for many (site, point) pairs at once (the
simulator's batch quotes): a distance test against discs just inside and just outside each zone decides the points
away from its boundary, and shapely's prepared ``contains_xy`` the few near it.

:meth:`SiteZones.covering_scan` is the naive peer of the benchmark: it tests every zone in turn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon

from dispatch.geo import Projection, ServiceZones

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

__all__ = ["SiteZones", "ZoneError", "ZoneSpec"]

DISC_SEGMENTS = 32
"""Quarter-circle segments of a disc zone (a 128-gon inscribed in the circle)."""

_DISC_MARGIN = 1e-6
"""Relative margin of the inner and outer discs of :meth:`SiteZones.contains_xy`'s quick test: far above the rounding
of the distances, so that only points truly inside (outside) a zone pass (fail) it; the others get a shapely test."""


class ZoneError(ValueError):
    """A zone is bad; the message names the site (and the vertex or feature) at fault."""


@dataclass(frozen=True)
class ZoneSpec:
    """One site's zone: exactly one of ``radius_m`` (a disc around the site, metres, > 0) or ``polygon`` (the
    outer ring as ``(lat, lng)`` pairs in WGS84 degrees, at least 3 distinct vertices, closed implicitly)."""

    radius_m: float | None = None
    polygon: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        if (self.radius_m is None) == (self.polygon is None):
            raise ZoneError("zone: give exactly one of radius_m or polygon")
        if self.radius_m is not None:
            r = float(self.radius_m)
            if not (math.isfinite(r) and r > 0.0):
                raise ZoneError(f"zone.radius_m: must be finite and > 0, got {self.radius_m!r}")
            object.__setattr__(self, "radius_m", r)
        if self.polygon is not None:
            object.__setattr__(self, "polygon", tuple((float(a), float(b)) for a, b in self.polygon))


def _ring_polygon(ring_latlng: Sequence[tuple[float, float]], projection: Projection, name: str) -> Polygon:
    """A polygon in projected metres from an outer ring of (lat, lng) pairs (closed implicitly)."""
    try:
        pts = np.asarray(ring_latlng, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ZoneError(f"{name}: vertices must be (lat, lng) pairs of numbers") from exc
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ZoneError(f"{name}: expected (lat, lng) pairs, got an array of shape {pts.shape}")
    if pts.shape[0] > 1 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]  # an explicitly closed ring: the closing vertex is implicit here
    if np.unique(pts, axis=0).shape[0] < 3:
        raise ZoneError(f"{name}: a polygon needs at least 3 distinct vertices, got {np.unique(pts, axis=0).shape[0]}")
    try:
        x, y = projection.to_xy(pts[:, 0], pts[:, 1], f"{name} vertices")
    except ValueError as exc:
        raise ZoneError(str(exc)) from None
    poly = Polygon(np.column_stack([x, y]))
    if not poly.is_valid:
        raise ZoneError(f"{name}: invalid polygon ({shapely.is_valid_reason(poly)})")
    if poly.area <= 0.0:
        raise ZoneError(f"{name}: the polygon has no area")
    return poly


class SiteZones:
    """The zones of n sites in one city, projected and indexed.

    Args:
        projection: the city's projection (WGS84 degrees <-> metres).
        site_x, site_y: float64[n], the sites' positions in projected metres.
        zones: n ``ZoneSpec`` (or None: the site covers nothing), numbered like the sites.
        names: n names used in error messages (default ``site 0`` ...).

    Raises:
        ZoneError: naming the site for a bad zone (too few vertices, self-intersecting, no area, bad numbers).
    """

    __slots__ = ("_discs", "_index", "_n", "_one_zone", "_site_ptr", "_site_zones", "projection")

    def __init__(
        self,
        projection: Projection,
        site_x: npt.ArrayLike,
        site_y: npt.ArrayLike,
        zones: Sequence[ZoneSpec | None],
        names: Sequence[str] | None = None,
    ) -> None:
        sx = np.asarray(site_x, dtype=np.float64).reshape(-1)
        sy = np.asarray(site_y, dtype=np.float64).reshape(-1)
        n = sx.shape[0]
        if sy.shape != (n,) or len(zones) != n:
            raise ZoneError(f"zones: expected one zone per site ({n} sites), got {len(zones)} zones")
        labels = list(names) if names is not None else [f"site {i}" for i in range(n)]
        geoms: list[Any] = []
        ids: list[int] = []
        for i, spec in enumerate(zones):
            if spec is None:
                continue
            name = f"{labels[i]} zone"
            if spec.radius_m is not None:
                if not (math.isfinite(sx[i]) and math.isfinite(sy[i])):
                    raise ZoneError(f"{name}: the site's position must be finite")
                geoms.append(shapely.Point(sx[i], sy[i]).buffer(spec.radius_m, quad_segs=DISC_SEGMENTS))
            else:
                assert spec.polygon is not None
                geoms.append(_ring_polygon(spec.polygon, projection, name))
            ids.append(i)
        self.projection = projection
        self._n = n
        try:
            self._index = ServiceZones(geoms, np.asarray(ids, dtype=np.int64))
        except ValueError as exc:
            raise ZoneError(str(exc)) from None
        self._index_sites()

    @classmethod
    def from_geojson(
        cls,
        projection: Projection,
        site_keys: Sequence[Any],
        features: Any,
    ) -> SiteZones:
        """Zones from GeoJSON features (WGS84, ``[lng, lat]``), each with ``properties.site_id`` equal to one of
        ``site_keys`` (sites without a feature cover nothing; a site with several features gets their union).

        Raises:
            ZoneError: naming the feature for an unknown site id or a bad geometry.
        """
        position = {k: i for i, k in enumerate(site_keys)}
        if isinstance(features, Mapping):
            features = features.get("features", []) if features.get("type") == "FeatureCollection" else [features]
        renumbered: list[Any] = []
        for j, feat in enumerate(features):
            props = feat.get("properties") if isinstance(feat, Mapping) else None
            key = props.get("site_id") if isinstance(props, Mapping) else None
            if not isinstance(props, Mapping) or key not in position:
                raise ZoneError(f"feature {j}: properties.site_id {key!r} is not a known site")
            renumbered.append({**feat, "properties": {**props, "site_id": position[key]}})
        try:
            idx = ServiceZones.from_geojson(renumbered, projection)
        except ValueError as exc:
            raise ZoneError(str(exc)) from None
        out = cls.__new__(cls)
        out.projection = projection
        out._n = len(site_keys)
        # Several features of one site: one zone each; covering() reports the site once.
        out._index = idx
        out._index_sites()
        return out

    def _index_sites(self) -> None:
        """Per-site lookups for :meth:`contains_xy`: the zones of each site as CSR rows (``_site_ptr``: int64[n + 1],
        ``_site_zones``: int64[z]), ``_one_zone`` (int64[n]: the site's only zone, -1 for none, -2 for several), and
        per zone ``_discs`` (float64[z, 4]: ``cx, cy, r_in^2, r_out^2``): a centre inside the zone, the square of a
        radius a little smaller than its distance to the zone's boundary (a point nearer than that is inside the
        zone) and of one a little larger than its farthest vertex (a point farther is outside). Every geometry is
        prepared for the point tests of the points in between."""
        ids = self._index.site_ids
        geoms = self._index.geoms
        order = np.argsort(ids, kind="stable").astype(np.int64)
        self._site_zones = order
        self._site_ptr = np.searchsorted(ids[order], np.arange(self._n + 1)).astype(np.int64)
        counts = np.diff(self._site_ptr)
        one_zone = np.full(self._n, -1, dtype=np.int64)
        single = counts == 1
        one_zone[single] = order[self._site_ptr[:-1][single]]
        one_zone[counts > 1] = -2
        self._one_zone = one_zone
        discs = np.zeros((len(geoms), 4), dtype=np.float64)
        for z, g in enumerate(geoms):
            shapely.prepare(g)
            centre = shapely.centroid(g)
            if not shapely.contains(g, centre):
                centre = shapely.point_on_surface(g)
            cx, cy = float(shapely.get_x(centre)), float(shapely.get_y(centre))
            r_in = float(shapely.distance(centre, shapely.boundary(g))) * (1.0 - _DISC_MARGIN)
            xy = shapely.get_coordinates(g)
            r_out = float(np.sqrt(((xy[:, 0] - cx) ** 2 + (xy[:, 1] - cy) ** 2).max())) * (1.0 + _DISC_MARGIN)
            inside = shapely.contains(g, centre) and r_in > 0.0
            discs[z] = (cx, cy, r_in * r_in if inside else -1.0, r_out * r_out)
        self._discs = discs

    @property
    def n_sites(self) -> int:
        return self._n

    @property
    def zones(self) -> ServiceZones:
        """The underlying geometries (projected metres) and their site indices."""
        return self._index

    def covering(self, lat: float, lng: float) -> I64:
        """int64[k]: the site indices whose zone contains ``(lat, lng)`` (WGS84 degrees), ascending; empty when
        the address is outside every zone. Raises ValueError naming the address for bad coordinates."""
        x, y = self.projection.to_xy(lat, lng, "address")
        return self.covering_xy(float(x), float(y))

    def covering_xy(self, x: float, y: float) -> I64:
        """int64[k]: the site indices whose zone contains the point ``(x, y)`` (projected metres), ascending."""
        zi = self._index.covering(x, y)
        return np.unique(self._index.site_ids[zi])

    def contains_xy(self, site: npt.ArrayLike, x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """bool[k]: whether the zone of site index ``site[i]`` contains the point ``(x[i], y[i])`` (projected metres),
        for k points at once: the same answer as ``site[i] in covering_xy(x[i], y[i])`` (a site with several zones
        contains the points of any of them; a site with no zone contains nothing).

        Args:
            site: int64[k], site indices in [0, n_sites); x, y: float64[k], finite.

        Raises:
            ValueError: arrays of different lengths, non-finite coordinates or a site index out of range (naming
                the first bad point).
        """
        s = np.asarray(site).reshape(-1)
        xs = np.asarray(x, dtype=np.float64).reshape(-1)
        ys = np.asarray(y, dtype=np.float64).reshape(-1)
        k = s.shape[0]
        if xs.shape != (k,) or ys.shape != (k,):
            raise ValueError(f"x, y: expected {k} coordinates each (one per site), got {xs.shape[0]} and {ys.shape[0]}")
        if k and (not np.issubdtype(s.dtype, np.integer) or s.dtype == np.bool_):
            raise ValueError(f"site: must be site indices (integers), got dtype {s.dtype}")
        for name, a in (("x", xs), ("y", ys)):
            bad = ~np.isfinite(a)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"{name}: must be finite, got {a[i]!r} (point {i})")
        bad = (s < 0) | (s >= self._n)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"site: index {s[i]} out of range [0, {self._n}) (point {i})")
        out = np.zeros(k, dtype=bool)
        if k == 0:
            return out
        # A site with one zone: decided by the distance to the zone's centre, except near its boundary.
        zone = self._one_zone[s]
        one = np.flatnonzero(zone >= 0)
        disc = self._discs[zone[one]]
        d2 = (xs[one] - disc[:, 0]) ** 2 + (ys[one] - disc[:, 1]) ** 2
        out[one] = d2 < disc[:, 2]
        near_edge = one[(d2 >= disc[:, 2]) & (d2 <= disc[:, 3])]
        rest = np.flatnonzero(zone == -2)
        rest = np.concatenate([near_edge, rest]) if rest.size else near_edge
        if rest.size:
            out[rest] = self._contains_scan(s[rest], xs[rest], ys[rest])
        return out

    def _contains_scan(self, s: I64, xs: F64, ys: F64) -> npt.NDArray[np.bool_]:
        """:meth:`contains_xy` by shapely point tests, one call per site and zone (validated input, k > 0)."""
        k = s.shape[0]
        out = np.zeros(k, dtype=bool)
        s = s.astype(np.int64, copy=False)
        by_site = np.argsort(s, kind="stable")
        sorted_sites = s[by_site]
        starts = np.flatnonzero(np.r_[True, sorted_sites[1:] != sorted_sites[:-1]])
        ends = np.r_[starts[1:], k]
        geoms = self._index.geoms
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            g = int(sorted_sites[lo])
            z0, z1 = int(self._site_ptr[g]), int(self._site_ptr[g + 1])
            if z0 == z1:
                continue  # a site with no zone covers nothing
            sel = by_site[lo:hi]
            px, py = xs[sel], ys[sel]
            hit = shapely.contains_xy(geoms[int(self._site_zones[z0])], px, py)
            for z in range(z0 + 1, z1):
                hit |= shapely.contains_xy(geoms[int(self._site_zones[z])], px, py)
            out[sel] = hit
        return out

    def covering_scan(self, x: float, y: float) -> I64:
        """The same answer as :meth:`covering_xy` by testing every zone in turn (the benchmark's naive peer)."""
        p = shapely.Point(x, y)
        hits = [int(self._index.site_ids[i]) for i, g in enumerate(self._index.geoms) if g.contains(p)]
        return np.unique(np.asarray(hits, dtype=np.int64))


def disc_zones(
    site_x: npt.ArrayLike, site_y: npt.ArrayLike, radius_m: npt.ArrayLike, projection: Projection | None = None
) -> SiteZones:
    """Disc zones around n sites given in projected metres (float64[n] x, y; radius float64[n] or a scalar).

    ``projection`` (default: one at 0 N 0 E, for planar worlds where lat/lng are not used)."""
    sx = np.asarray(site_x, dtype=np.float64).reshape(-1)
    r = np.broadcast_to(np.asarray(radius_m, dtype=np.float64), sx.shape)
    specs: list[ZoneSpec | None] = [ZoneSpec(radius_m=float(v)) for v in r]
    return SiteZones(projection or Projection(0.0, 0.0), sx, site_y, specs)
