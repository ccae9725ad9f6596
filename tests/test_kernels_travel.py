"""Travel-time kernels: the bin-hinted leg time equals the plain one to the last bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from dispatch.geo import ProfileTravelTime, SpeedProfile
from dispatch.kernels.travel import HINT_MARGIN_S, bin_hint, profile_seconds, profile_seconds_hinted


@njit(cache=False)
def _both(params, speed_mps, metres, depart, speed_factor, anchor):  # type: ignore[no-untyped-def]
    """For each leg: the plain time, and the hinted time with the hint of ``anchor`` (each float64[n])."""
    n = metres.shape[0]
    plain = np.empty(n)
    hinted = np.empty(n)
    for i in range(n):
        hint = bin_hint(params, speed_mps, anchor[i], speed_factor[i])
        plain[i] = profile_seconds(params, speed_mps, metres[i], depart[i], speed_factor[i])
        hinted[i] = profile_seconds_hinted(params, speed_mps, metres[i], depart[i], speed_factor[i], hint)
    return plain, hinted


@settings(max_examples=80, deadline=None)
@given(
    speeds=st.lists(st.floats(0.5, 12.0), min_size=24, max_size=24),
    bin_s=st.sampled_from([900.0, 3600.0]),
    offset=st.sampled_from([0.0, 8 * 3600.0, -5 * 3600.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_hinted_leg_time_equals_plain(speeds: list[float], bin_s: float, offset: float, seed: int) -> None:
    n_bins = 24 if bin_s == 3600.0 else 96
    profile = SpeedProfile(tuple((speeds * 4)[:n_bins]), bin_s)
    params, speed_mps, _t, _d = ProfileTravelTime(profile, detour=1.3, utc_offset_s=offset).arrays()
    rng = np.random.default_rng(seed)
    n = 400
    edge = np.floor((1.7e9 + offset) / bin_s) * bin_s - offset  # a bin edge in UTC seconds
    anchor = edge + rng.uniform(-2.0 * bin_s, 2.0 * bin_s, n)
    # Departures after the anchor: in its bin, in the next ones, and on and around the edges (within the margin).
    depart = anchor + rng.uniform(0.0, 2.5 * bin_s, n)
    near = rng.random(n) < 0.3
    depart[near] = edge + rng.choice([-1, 0, 1], near.sum()) * bin_s + rng.uniform(-2, 2, near.sum()) * HINT_MARGIN_S
    depart[:3] = [edge, edge - HINT_MARGIN_S, edge + HINT_MARGIN_S]
    metres = rng.uniform(0.0, 20_000.0, n)
    metres[rng.random(n) < 0.05] = 0.0
    factor = rng.uniform(0.7, 1.4, n)
    plain, hinted = _both(params, speed_mps, metres, depart, factor, anchor)
    assert np.array_equal(plain.view(np.int64), hinted.view(np.int64))  # bit for bit, not just close
    assert np.all(np.isfinite(plain)) and np.all(plain >= 0.0)


def test_hint_describes_the_departure_bin() -> None:
    profile = SpeedProfile(tuple(float(v) for v in np.linspace(3.0, 6.0, 24)))
    params, speed_mps, _t, _d = ProfileTravelTime(profile, detour=1.0, utc_offset_s=3600.0).arrays()
    depart = 1_700_000_000.0
    lo, hi, bin_end, v = _hint(params, speed_mps, depart, 1.5)
    local = depart + 3600.0
    k = np.floor(local / 3600.0)
    assert (lo, hi, bin_end) == (k * 3600.0 + HINT_MARGIN_S, (k + 1) * 3600.0 - HINT_MARGIN_S, (k + 1) * 3600.0)
    assert v == speed_mps[int(k) % 24] * 1.5
    assert lo <= local < hi


@njit(cache=False)
def _hint(params, speed_mps, depart, speed_factor):  # type: ignore[no-untyped-def]
    return bin_hint(params, speed_mps, depart, speed_factor)
