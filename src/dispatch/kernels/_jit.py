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
"""

from __future__ import annotations

from typing import Any, cast

from numba import njit

_njit = cast(Any, njit)  # ``_nrt`` is a Numba target option that its type stubs do not list
kernel: Any = _njit(cache=True, error_model="numpy", nogil=True)
kernel_parallel: Any = _njit(cache=True, error_model="numpy", parallel=True, nogil=True)
device: Any = _njit(cache=True, error_model="numpy", _nrt=False)
# A ``device`` helper inlined into its callers' Numba IR (not left to LLVM): for the one step of the route loops
# that several pricing loops share (``route.stop_step``), so that sharing it costs nothing in the inner loop.
device_inline: Any = _njit(cache=True, error_model="numpy", _nrt=False, inline="always")
