"""Travel-time kernels: the bin-hinted leg time equals the plain one to the last bit; legs rounded up to whole
minutes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from dispatch.geo import ProfileTravelTime, SpeedProfile
from dispatch.kernels.travel import HINT_MARGIN_S, bin_hint, first_bin, profile_seconds, profile_seconds_hinted


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


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), mps=st.floats(2.0, 8.0), detour=st.floats(1.0, 1.6))
def test_legs_rounded_up_to_whole_minutes(seed: int, mps: float, detour: float) -> None:
    """Under ``round_up_s = 60`` every leg takes the plain constant-speed time rounded up to a whole minute (a leg
    of no length 0, any other at least a minute), through every path: the provider, the plain and the hinted
    kernel time; ``first_bin`` then declares no leg linear in its length."""
    rng = np.random.default_rng(seed)
    plain = ProfileTravelTime(SpeedProfile.constant(mps), detour=detour)
    rounded = ProfileTravelTime(SpeedProfile.constant(mps), detour=detour, round_up_s=60.0)
    n = 300
    xa, ya = rng.uniform(-5000.0, 5000.0, n), rng.uniform(-5000.0, 5000.0, n)
    xb, yb = xa + rng.uniform(-3000.0, 3000.0, n), ya + rng.uniform(-3000.0, 3000.0, n)
    xb[:20], yb[:20] = xa[:20], ya[:20]  # legs of no length
    depart = 1.7e9 + rng.uniform(0.0, 86_400.0, n)
    factor = rng.uniform(0.7, 1.4, n)
    raw = plain.seconds(xa, ya, xb, yb, depart, factor)
    got = rounded.seconds(xa, ya, xb, yb, depart, factor)
    assert np.all(got[:20] == 0.0)
    assert np.all(np.mod(got, 60.0) == 0.0)
    assert np.all(got[20:] >= np.maximum(raw[20:], 60.0 - 1e-9)) and np.all(got[20:] < raw[20:] + 60.0)
    assert np.array_equal(got[20:], np.maximum(np.ceil(raw[20:] / 60.0 - 1e-6 / 60.0), 1.0) * 60.0)
    params, speed_mps, _t, _d = rounded.arrays()
    metres = np.hypot(xb - xa, yb - ya) * detour
    k_plain, k_hinted = _both(params, speed_mps, metres, depart, factor, depart - rng.uniform(0.0, 600.0, n))
    assert np.array_equal(k_plain, got) and np.array_equal(k_hinted, got)
    _v, reach = first_bin(params, speed_mps, float(depart[0]), 1.0)
    assert reach < 0.0


def test_exact_minutes_stay_and_rounding_needs_a_constant_speed() -> None:
    rounded = ProfileTravelTime(SpeedProfile.constant(5.0), detour=1.0, round_up_s=60.0)
    # 600 m at 5 m/s: exactly 2 minutes, not 3; 601 m: 3 minutes; 1 m: a minute.
    got = rounded.seconds(np.zeros(3), np.zeros(3), np.array([600.0, 601.0, 1.0]), np.zeros(3), np.full(3, 1.7e9))
    assert got.tolist() == [120.0, 180.0, 60.0]
    with pytest.raises(ValueError, match="round_up_s: legs are rounded up only under a constant speed"):
        ProfileTravelTime(round_up_s=60.0)  # the default e-bike profile varies by hour
    with pytest.raises(ValueError, match="round_up_s: must be finite and >= 0"):
        ProfileTravelTime(SpeedProfile.constant(5.0), round_up_s=-1.0)
