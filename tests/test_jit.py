"""Tests for dispatch.kernels._jit: the kernels' machine code is cached per version of the kernel sources, so a
kernel never runs a stale copy of a helper that lives in another file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numba
import pytest

from dispatch.kernels import _jit


def test_digest_follows_every_source_file(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    (tmp_path / "notes.txt").write_text("not a source\n")
    first = _jit.sources_digest(tmp_path)
    assert first == _jit.sources_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("changed, still not a source\n")
    assert _jit.sources_digest(tmp_path) == first
    (tmp_path / "b.py").write_text("y = 3\n")  # a helper's file changes: a new digest, so a new cache
    second = _jit.sources_digest(tmp_path)
    assert second != first
    (tmp_path / "c.py").write_text("")
    assert _jit.sources_digest(tmp_path) not in (first, second)


def test_kernels_cache_in_the_digest_directory() -> None:
    from dispatch.kernels.insertion import insertion_costs_into
    from dispatch.kernels.route import evaluate_routes
    from dispatch.kernels.travel import leg_seconds

    want = _jit.cache_dir()
    assert os.path.basename(want) == f"dispatch-kernels-{_jit.sources_digest()}"
    for fn in (insertion_costs_into, evaluate_routes, leg_seconds):
        assert fn._cache._cache_path.startswith(want + os.sep)
    # The setting is Numba's global one only while a kernel is decorated: other packages' caches stay put.
    assert os.environ.get("NUMBA_CACHE_DIR", "") == numba.config.CACHE_DIR


def test_cache_dir_under_a_user_numba_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert _jit.cache_dir() == str(tmp_path / f"dispatch-kernels-{_jit.sources_digest()}")


def test_kernels_cached_says_whether_any_machine_code_is_on_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "dispatch-kernels-0123"
    monkeypatch.setattr(_jit, "_CACHE_DIR", str(cache))
    assert not _jit.kernels_cached()  # a fresh install: no directory yet
    (cache / "kernels_x").mkdir(parents=True)
    assert not _jit.kernels_cached()  # a directory, nothing in it
    (cache / "kernels_x" / "route.evaluate_routes-1.py311.nbi").write_bytes(b"")
    assert _jit.kernels_cached()


def _callers() -> tuple[Any, Any]:
    """A helper and a kernel that calls it with constants and with a variable (plain ``njit``, no cache)."""

    @numba.njit
    def helper(a: int, k: int) -> int:
        return a * 10 + k

    @numba.njit
    def caller(a: int) -> int:
        return helper(a, 0) + helper(a, 1) + helper(a, a) + helper(-1, -1)

    return helper, caller


def test_calls_from_kernels_compile_one_signature_whatever_the_constants() -> None:
    helper, caller = _callers()
    _jit._unliteral_calls(helper)
    assert caller(3) == 30 + 31 + 33 - 11
    assert [str(t) for t in helper.signatures[0]] == ["int64", "int64"]
    assert len(helper.signatures) == 1
    # Without it, Numba compiles the helper for each mix of literal and plain arguments it meets.
    plain, plain_caller = _callers()
    assert plain_caller(3) == 30 + 31 + 33 - 11
    assert len(plain.signatures) > 1


def test_every_package_kernel_compiles_for_plain_types() -> None:
    import importlib
    import pkgutil

    from numba.core.dispatcher import Dispatcher

    import dispatch.kernels

    found = []
    for info in pkgutil.iter_modules(dispatch.kernels.__path__):
        module = importlib.import_module(f"dispatch.kernels.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == module.__name__:
                found.append(name)
                assert obj.get_call_template.__qualname__.startswith("_unliteral_calls"), f"{info.name}.{name}"
    assert len(found) > 50  # every kernel and helper of the package, not a handful
