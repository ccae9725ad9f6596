"""Travel time and distance between two points, as Numba device functions.

Every kernel gets the travel model as one tuple ``travel = (params, speed_mps, tmat, dmat)``:

- ``params``: float64[5] = ``[bin_seconds, detour, utc_offset_s, use_matrix, round_up_s]``;
- ``speed_mps``: float64[B], the rider's base speed in metres per second in each time-of-day bin
  (bin ``b`` covers local seconds ``[b * bin_seconds, (b + 1) * bin_seconds)`` of the day, wrapping);
- ``tmat``, ``dmat``: float64[N, N] travel seconds and metres between matrix locations (1 x 1 when unused).

In profile mode (``use_matrix == 0``) a leg's length is the straight line in projected metres times ``detour``,
and its duration integrates the speed profile over the bins the leg crosses, so a later departure never arrives
earlier (the FIFO property). In matrix mode the leg is looked up by location index and time of day is ignored.
A rider's ``speed_factor`` divides the duration in both modes.

Legs rounded up: with ``round_up_s`` > 0 (profile mode at a constant speed, as ``geo.ProfileTravelTime`` checks)
every leg's duration is rounded up to a whole multiple of it (60: whole minutes, as some published benchmark
protocols count travel), a zero-length leg staying 0. The mode is marked by a *negative* ``bin_seconds``: then
``floor(local / bin_seconds)`` puts the end of a departure's "bin" at or before the departure, so every shortcut
that takes a leg's time as linear in its length within a bin finds no room and steps aside on its own (the first
bin's reach in ``profile_seconds`` and ``first_bin`` is negative, ``bin_hint``'s range is empty,
``shifted_arrival`` gives NaN), and every leg reaches ``_profile_seconds_on``, out of line, which rounds. The usual
mode's legs pay nothing for it: no test on their path (a test there cost 5-7% of a simulation, session 21).
"""

from __future__ import annotations

import math

import numpy as np

from dispatch.kernels._jit import device, device_inline, kernel

P_BIN = 0
P_DETOUR = 1
P_UTC_OFFSET = 2
P_USE_MATRIX = 3
P_ROUND_UP = 4
N_PARAMS = 5  # the length of ``params``
# A leg within this many seconds above a whole multiple of ``round_up_s`` counts as that multiple: the float
# rounding of a square root and a division must not turn an exact 120 s into 180.
ROUND_TOLERANCE_S = 1e-6


@device
def leg_metres(travel, xa, ya, la, xb, yb, lb):
    """Length in metres of the leg from point a to point b (x, y in metres; l a matrix index or -1)."""
    params = travel[0]
    if params[P_USE_MATRIX] != 0.0:
        return travel[3][la, lb]
    return math.sqrt((xb - xa) * (xb - xa) + (yb - ya) * (yb - ya)) * params[P_DETOUR]


@device_inline
def profile_seconds(params, speed_mps, metres, depart, speed_factor):
    """Seconds to cover ``metres`` leaving at epoch second ``depart`` under the time-of-day speed profile.

    Inlined into its callers for the usual leg, one that ends in the speed bin it starts in; a leg that crosses
    into the next bin goes on in ``_profile_seconds_on``, out of line. (Out of line as a whole, every leg paid a
    call that passed both arrays on the stack, field by field: see benchmarks/RESULTS.md, session 17.)"""
    if metres <= 0.0:
        return 0.0
    local = depart + params[P_UTC_OFFSET]
    v, bin_end = _bin_at(params[P_BIN], speed_mps, local, speed_factor)
    span = bin_end - local
    reach = v * span
    if reach >= metres:
        return 0.0 + metres / v
    return _profile_seconds_on(params, speed_mps, metres, local, speed_factor)


@device_inline
def _bin_at(bin_s, speed_mps, local, speed_factor):
    """The speed bin that local second ``local`` lies in: the rider's speed there (m/s) and the bin's end."""
    k = math.floor(local / bin_s)
    return speed_mps[int(k) % speed_mps.shape[0]] * speed_factor, (k + 1.0) * bin_s


@device
def _profile_seconds_on(params, speed_mps, metres, local, speed_factor):
    """``profile_seconds`` of a leg of ``metres`` > 0 leaving at local second ``local``, for the legs it does not
    finish inline: those that leave their speed bin (the same steps, so the same result to the last bit), and
    every leg when legs are rounded up (a negative bin length, see the module's docstring)."""
    bin_s = params[P_BIN]
    if bin_s < 0.0:
        return _rounded_up(params, metres / (speed_mps[0] * speed_factor))
    nb = speed_mps.shape[0]
    remaining = metres
    elapsed = 0.0
    for _ in range(4 * nb + 1):
        v, bin_end = _bin_at(bin_s, speed_mps, local, speed_factor)
        span = bin_end - local
        reach = v * span
        if reach >= remaining:
            return elapsed + remaining / v
        remaining -= reach
        elapsed += span
        local = bin_end
    # A leg longer than several days of riding: finish at the last speed (never reached in practice).
    return elapsed + remaining / (speed_mps[math.floor(local / bin_s) % nb] * speed_factor)


@device
def _rounded_up(params, seconds):
    """``seconds`` > 0 rounded up to a whole multiple of ``params[P_ROUND_UP]`` (at least one); a leg within
    ``ROUND_TOLERANCE_S`` above a multiple counts as that multiple."""
    q = params[P_ROUND_UP]
    return max(1.0, math.ceil(seconds / q - ROUND_TOLERANCE_S / q)) * q


# ``bin_hint`` keeps a departure this far (s) from its bin's edges, so that the comparisons that stand for
# ``floor(local / bin_s) == k`` can never disagree with the division's rounding.
HINT_MARGIN_S = 1e-3


@device_inline
def bin_hint(params, speed_mps, depart, speed_factor):
    """``(lo, hi, bin_end, v)``: the speed bin that a leg leaving at ``depart`` starts in, for
    ``profile_seconds_hinted`` (local seconds: a departure in ``[lo, hi)`` lies in it, ``HINT_MARGIN_S`` inside
    its edges; ``bin_end``, where it ends; ``v``, the rider's speed there). With legs rounded up the range is
    empty (see the module's docstring)."""
    bin_s = params[P_BIN]
    local = depart + params[P_UTC_OFFSET]
    k = math.floor(local / bin_s)
    bin_end = (k + 1.0) * bin_s
    v = speed_mps[int(k) % speed_mps.shape[0]] * speed_factor
    return k * bin_s + HINT_MARGIN_S, bin_end - HINT_MARGIN_S, bin_end, v


@device_inline
def profile_seconds_hinted(params, speed_mps, metres, depart, speed_factor, hint):
    """``profile_seconds``, the same to the last bit, for a leg that usually leaves in the bin of ``hint``
    (``bin_hint``, of an earlier departure of the same rider). Then the duration is ``metres / v`` whatever the
    departure within the bin, so it does not wait for the departure time to be known, only the two comparisons
    that confirm it do; in a chain of legs (each leaving when the last arrived) that takes the division, the floor
    and the modulo that find the bin off the chain."""
    lo, hi, bin_end, v = hint
    local = depart + params[P_UTC_OFFSET]
    if metres > 0.0 and lo <= local and local < hi:
        reach = v * (bin_end - local)
        if reach >= metres:
            return 0.0 + metres / v
    return profile_seconds(params, speed_mps, metres, depart, speed_factor)


@device_inline
def leg_seconds_hinted(travel, xa, ya, la, xb, yb, lb, depart, speed_factor, hint):
    """``leg_seconds`` through ``profile_seconds_hinted``."""
    params = travel[0]
    if params[P_USE_MATRIX] != 0.0:
        return travel[2][la, lb] / speed_factor
    metres = math.sqrt((xb - xa) * (xb - xa) + (yb - ya) * (yb - ya)) * params[P_DETOUR]
    return profile_seconds_hinted(params, travel[1], metres, depart, speed_factor, hint)


@device
def first_bin(params, speed_mps, depart, speed_factor):
    """``(v, reach)``: the speed (m/s) of the bin that a leg leaving at ``depart`` starts in, and the metres it
    covers before that bin ends. A leg of at most ``reach`` metres takes ``metres / v`` seconds, exactly as
    ``profile_seconds`` computes it. With legs rounded up ``reach`` is <= 0: no leg is linear in its length."""
    bin_s = params[P_BIN]
    local = depart + params[P_UTC_OFFSET]
    k = math.floor(local / bin_s)
    v = speed_mps[int(k) % speed_mps.shape[0]] * speed_factor
    return v, v * ((k + 1.0) * bin_s - local)


@device
def leg_seconds(travel, xa, ya, la, xb, yb, lb, depart, speed_factor):
    """Seconds from point a to point b leaving at ``depart`` for a rider with ``speed_factor``."""
    params = travel[0]
    if params[P_USE_MATRIX] != 0.0:
        return travel[2][la, lb] / speed_factor
    metres = math.sqrt((xb - xa) * (xb - xa) + (yb - ya) * (yb - ya)) * params[P_DETOUR]
    return profile_seconds(params, travel[1], metres, depart, speed_factor)


@device
def shifted_arrival(travel, depart_old, arrive_old, depart):
    """Arrival at the end of an evaluated leg (left at ``depart_old``, reached at ``arrive_old``) when it is left
    at ``depart`` instead, without recomputing the leg: its duration stays the same in matrix mode, and in profile
    mode when the old and the new leg both lie within one speed bin (with a millisecond to spare). Otherwise NaN:
    the caller then rides the leg with ``leg_seconds``. The result equals the recomputed arrival to a few units in
    the last place (the duration is taken from the two evaluated times)."""
    dur = arrive_old - depart_old
    params = travel[0]
    if params[P_USE_MATRIX] != 0.0:
        return depart + dur
    bin_s = params[P_BIN]
    offset = params[P_UTC_OFFSET]
    k = math.floor((depart_old + offset) / bin_s)
    start = k * bin_s - offset
    end = start + bin_s - 1e-3
    arrive = depart + dur
    if depart >= start and arrive_old <= end and arrive <= end:
        return arrive
    return math.nan


@kernel
def pairwise_seconds(travel, xa, ya, la, xb, yb, lb, depart, speed_factor):
    """Element-wise leg seconds for arrays of equal length n (float64[n] x/y/depart/speed, int64[n] loc)."""
    n = xa.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = leg_seconds(travel, xa[i], ya[i], la[i], xb[i], yb[i], lb[i], depart[i], speed_factor[i])
    return out


@kernel
def pairwise_metres(travel, xa, ya, la, xb, yb, lb):
    """Element-wise leg metres for arrays of equal length n."""
    n = xa.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = leg_metres(travel, xa[i], ya[i], la[i], xb[i], yb[i], lb[i])
    return out
