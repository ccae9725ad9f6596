"""The two ways kernels are compiled.

- ``kernel``: an entry point called from Python or from another kernel; may allocate arrays (NRT on).
- ``device`` (and ``device_inline``): a helper called per stop or per pair inside a kernel's loops; allocates
  nothing, so it is compiled without the Numba runtime (``_nrt=False``). That removes the atomic reference-count
  updates that Numba otherwise emits for every array (and every array in a tuple) a function receives: measured
  on the insertion kernel's inner step, 420 ns per pair with them against 42 ns without (see
  benchmarks/RESULTS.md).

Both cache their machine code on disk (``cache=True``) and use NumPy's error model (no Python exception checks on
float division: a zero speed is rejected at the edge, never in a loop). Entry points release the GIL
(``nogil=True``), so that a server thread running a dispatch tick does not stall the threads answering requests.

The cache lives in a directory named after a digest of every kernel source file (``cache_dir``). Numba checks a
cached function against its own file only: a kernel whose helper in *another* file changed would otherwise load
its old machine code and run the old helper (it happened while this package was being developed: a deliberately
broken helper passed the tests until the cache was deleted). A changed kernel file now means a fresh directory,
so a fresh compile.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from numba import njit, types
from numba.core import config as _config

_HERE = Path(__file__).resolve().parent


def sources_digest(folder: Path = _HERE) -> str:
    """A short digest of the ``*.py`` files in ``folder`` (names and contents)."""
    h = hashlib.sha1()
    for f in sorted(folder.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> str:
    """Where the kernels' machine code is cached: ``$NUMBA_CACHE_DIR`` if set, else this package's
    ``__pycache__``, in a subdirectory per digest of the kernel sources."""
    base = os.environ.get("NUMBA_CACHE_DIR") or str(_HERE / "__pycache__")
    return os.path.join(base, f"dispatch-kernels-{sources_digest()}")


_CACHE_DIR = cache_dir()


def kernels_cached() -> bool:
    """Whether machine code of these kernel sources is cached on disk (any of it): False on a fresh install or
    after a kernel file changed, when the first calls compile."""
    d = Path(_CACHE_DIR)
    return d.is_dir() and next(d.rglob("*.nbi"), None) is not None


_njit = cast(Any, njit)  # ``_nrt`` is a Numba target option that its type stubs do not list


def _cached(**options: Any) -> Callable[[Any], Any]:
    """``njit(cache=True, **options)`` with its cache in ``_CACHE_DIR``. Numba picks a function's cache location
    when it is decorated, from ``numba.config.CACHE_DIR``; the setting is restored at once, so that other
    packages' caches stay where they were."""
    jit = _njit(cache=True, **options)

    def decorate(fn: Any) -> Any:
        config = cast(Any, _config)  # its settings are set at import time, untyped
        previous = config.CACHE_DIR
        config.CACHE_DIR = _CACHE_DIR
        try:
            return _unliteral_calls(jit(fn))
        finally:
            config.CACHE_DIR = previous

    return decorate


def _unliteral_calls(dispatcher: Any) -> Any:
    """Have calls from other kernels compile ``dispatcher`` for the plain types of their arguments.

    Numba types a constant argument (``PICKUP``, ``-1``, ``0``) as a literal, and a call from another kernel
    compiles the callee once for each combination of literal and plain arguments it meets: on a cold cache the
    simulation compiled ``route.departure`` seven times and ``route.pickup_allowed`` five (benchmarks/RESULTS.md,
    session 22). No kernel here dispatches on a literal value, so one compilation for the plain types serves every
    call (the constant is converted at the call, and LLVM still folds it where it inlines the callee). A kernel
    that did would now fail to compile, loudly, never compute differently: ``literally``, a constant argument
    used to index a tuple of mixed types, a recursive call with a constant. Calls from Python, and
    ``device_inline`` helpers (inlined before typing), are not affected."""
    resolve = dispatcher.get_call_template

    def get_call_template(args: Any, kws: Any) -> Any:
        return resolve(tuple(types.unliteral(a) for a in args), {k: types.unliteral(v) for k, v in kws.items()})

    dispatcher.get_call_template = get_call_template
    return dispatcher


kernel: Any = _cached(error_model="numpy", nogil=True)
kernel_parallel: Any = _cached(error_model="numpy", parallel=True, nogil=True)
device: Any = _cached(error_model="numpy", _nrt=False)
# A ``device`` helper inlined into its callers' Numba IR (not left to LLVM), for the steps of the pricing loops
# (``route.stop_step``, ``insertion.insert_one``, ``travel.profile_seconds``, ...). A helper LLVM leaves out of
# line is called with every array of the order, rider, route and evaluation tuples pushed on the stack, field by
# field (150-300 pushes a call). Inline them only into ``device`` functions: inlined into an entry point (NRT on),
# each call takes and drops a reference to every array of those tuples, which was slower still. So an entry point
# makes one out-of-line call to a ``device`` loop with its helpers inlined (``insertion._price``,
# ``localsearch._improve``, ``route._evaluate_riders``; benchmarks/RESULTS.md, session 17).
device_inline: Any = _cached(error_model="numpy", _nrt=False, inline="always")
