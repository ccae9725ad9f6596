"""dispatch.heap: the allocator setting is applied where glibc is the C library, and bad values are refused."""

import platform
import sys

import pytest

from dispatch.heap import MIB, keep_heap


def test_keep_heap_applies_on_glibc_and_is_idempotent() -> None:
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_heap() is glibc
    assert keep_heap() is glibc  # a second call changes nothing
    assert keep_heap(mmap_threshold=16 * MIB) is glibc  # another setting is applied too
    assert keep_heap() is glibc


@pytest.mark.parametrize(
    "kwargs", [{"mmap_threshold": -1}, {"trim_threshold": -5}, {"top_pad": -1}, {"mmap_threshold": 64 * MIB}]
)
def test_keep_heap_refuses_bad_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="keep_heap"):
        keep_heap(**kwargs)
