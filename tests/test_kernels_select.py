"""Tests for dispatch.kernels.select against a plain per-group sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.kernels.select import cheapest_per_group


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 600), st.integers(1, 8))
def test_cheapest_per_group_matches_a_sort(seed: int, n: int, n_groups: int) -> None:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, n_groups, n).astype(np.int64)
    key = rng.integers(0, 10, n).astype(np.float64)  # many ties: the lower index wins
    quota = rng.integers(-1, 30, n_groups).astype(np.int64)
    want = []
    for g in range(n_groups):
        items = sorted(np.flatnonzero(group == g).tolist(), key=lambda i: (key[i], i))
        want += items[: max(int(quota[g]), 0)]
    np.testing.assert_array_equal(
        cheapest_per_group(group, key, quota, n_groups), np.sort(np.array(want, dtype=np.int64))
    )
