"""Tests for dispatch.kernels.grid.nearest_points against brute force (and scipy's cKDTree for the distances)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from dispatch.kernels.grid import nearest_points


def brute(px, py, qx, qy, k, reach):  # type: ignore[no-untyped-def]
    n = px.shape[0]
    dist = np.full((qx.shape[0], k), np.inf)
    idx = np.full((qx.shape[0], k), n, dtype=np.int64)
    for q in range(qx.shape[0]):
        d = np.sqrt((px - qx[q]) ** 2 + (py - qy[q]) ** 2)
        inside = np.flatnonzero(d < reach)
        order = inside[np.lexsort((inside, d[inside]))][:k]
        dist[q, : order.size] = d[order]
        idx[q, : order.size] = order
    return dist, idx


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    n_q=st.integers(1, 8),
    k=st.integers(1, 40),
    spread=st.sampled_from([0.0, 500.0, 20_000.0, 3_000_000.0]),
    reach=st.sampled_from([300.0, 8_000.0, 1e7]),
    stacked=st.booleans(),
)
def test_nearest_points_equals_brute_force(
    seed: int, n: int, n_q: int, k: int, spread: float, reach: float, stacked: bool
) -> None:
    """The k nearest within reach, nearest first, ties to the lower index, padded like cKDTree; queries may lie
    outside the points' box; many points may share a position (idle riders at a site)."""
    rng = np.random.default_rng(seed)
    px = rng.uniform(-spread, spread, n)
    py = rng.uniform(-spread, spread, n)
    if stacked and n:
        spots = rng.integers(0, min(4, n), n)
        px, py = px[spots], py[spots]  # only four distinct positions
    qx = rng.uniform(-1.5 * spread - 100.0, 1.5 * spread + 100.0, n_q)
    qy = rng.uniform(-1.5 * spread - 100.0, 1.5 * spread + 100.0, n_q)
    if stacked and n:
        qx[0], qy[0] = px[0], py[0]
    dist, idx = nearest_points(px, py, qx, qy, k, reach)
    want_d, want_i = brute(px, py, qx, qy, k, reach)
    np.testing.assert_array_equal(idx, want_i)
    np.testing.assert_array_equal(dist, want_d)
    if n:
        tree_d, _ = cKDTree(np.column_stack([px, py])).query(np.column_stack([qx, qy]), k=k, distance_upper_bound=reach)
        tree_d = np.asarray(tree_d).reshape(n_q, k)
        np.testing.assert_allclose(dist, tree_d, rtol=1e-12)


def test_nearest_points_empty() -> None:
    z = np.zeros(0)
    dist, idx = nearest_points(z, z, np.array([0.0]), np.array([0.0]), 3, 100.0)
    assert np.all(np.isinf(dist)) and np.all(idx == 0)
    dist, idx = nearest_points(np.array([1.0]), np.array([1.0]), z, z, 3, 100.0)
    assert dist.shape == (0, 3) and idx.shape == (0, 3)
