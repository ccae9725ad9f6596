"""Tests for dispatch.kernels.promise helpers that the batch tests (test_promise_batch.py) do not cover."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.kernels.promise import by_site_then_time


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 300), st.integers(1, 12))
def test_site_then_time_order_is_lexsort(seed: int, n: int, n_sites: int) -> None:
    rng = np.random.default_rng(seed)
    site = rng.integers(0, n_sites, n).astype(np.int64)
    t = rng.integers(0, 20, n).astype(np.float64) * 7.5  # coarse times: many ties
    got = by_site_then_time(site, t, n_sites)
    np.testing.assert_array_equal(got, np.lexsort((t, site)))
