"""argparse value types shared by every ``dispatch`` command: a bad value is one clear line, never a traceback."""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _finite(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0."""
    v = _finite(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    v = _finite(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    v = non_negative_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return v


def _bounded(text: str, lo: float, hi: float, unit: str) -> float:
    v = _finite(text)
    if not lo <= v <= hi:
        raise argparse.ArgumentTypeError(f"must be in [{lo:g}, {hi:g}] {unit}, got {text}")
    return v


def latitude(text: str) -> float:
    """WGS84 latitude in degrees, [-90, 90]."""
    return _bounded(text, -90.0, 90.0, "degrees")


def longitude(text: str) -> float:
    """WGS84 longitude in degrees, [-180, 180]."""
    return _bounded(text, -180.0, 180.0, "degrees")


def port(text: str) -> int:
    """A TCP port, [0, 65535] (0: any free port)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"must be in [0, 65535], got {v}")
    return v
