"""Tests for dispatch.argtypes: accepted values come back converted, bad ones raise one clear argparse error."""

from __future__ import annotations

import argparse

import pytest

from dispatch import argtypes as at


@pytest.mark.parametrize(
    ("fn", "text", "value"),
    [
        (at.positive_int, "3", 3),
        (at.positive_float, "0.5", 0.5),
        (at.non_negative_float, "0", 0.0),
        (at.fraction, "1", 1.0),
        (at.latitude, "-90", -90.0),
        (at.longitude, "121.47", 121.47),
        (at.port, "0", 0),
    ],
)
def test_good_values(fn, text, value):  # type: ignore[no-untyped-def]
    assert fn(text) == value


@pytest.mark.parametrize(
    ("fn", "text", "message"),
    [
        (at.positive_int, "0", "must be >= 1"),
        (at.positive_int, "1.5", "expected a whole number"),
        (at.positive_float, "-1", "> 0"),
        (at.positive_float, "nan", "finite"),
        (at.positive_float, "inf", "finite"),
        (at.non_negative_float, "x", "expected a number"),
        (at.fraction, "1.01", "between 0 and 1"),
        (at.latitude, "90.5", "[-90, 90] degrees"),
        (at.longitude, "-181", "[-180, 180] degrees"),
        (at.port, "65536", "[0, 65535]"),
    ],
)
def test_bad_values_raise_a_clear_error(fn, text, message):  # type: ignore[no-untyped-def]
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fn(text)
