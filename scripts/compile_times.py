"""Run a ``dispatch`` command in this process and report what Numba compiled while it ran: how many compilations,
and the time each function took to compile, less the time spent compiling the functions it calls (a kernel's
typing compiles its helpers). Used for the cold-start figures in benchmarks/RESULTS.md (session 22).

The kernels are compiled only when no machine code is cached, so point ``NUMBA_CACHE_DIR`` at an empty directory
for a cold run, and keep the run in one process (``--workers 1``): forked workers report nothing here. Every
compilation counts, Numba's own library functions (``np.empty``'s, the sorts) among them; a helper's cache file
is written after its compilation ends, so that time falls to the caller that triggered it.

    NUMBA_CACHE_DIR=$(mktemp -d) python scripts/compile_times.py [--top N] -- \
        simulate simulations/demo.toml --out /tmp/demo --workers 1 --quiet
"""

import argparse
import collections
import sys
import time
from typing import Any

from numba.core import event


class _Compiles(event.Listener):
    """Per compilation: (function, argument types, seconds less nested compilations, seconds in all)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float, float]] = []
        self._open: list[list[Any]] = []  # [start, seconds of nested compilations, event data]

    def on_start(self, ev: Any) -> None:
        self._open.append([time.perf_counter(), 0.0, ev.data])

    def on_end(self, ev: Any) -> None:
        start, nested, data = self._open.pop()
        took = time.perf_counter() - start
        if self._open:
            self._open[-1][1] += took
        fn = data["dispatcher"].py_func
        self.rows.append((f"{fn.__module__}.{fn.__qualname__}", str(data["args"]), took - nested, took))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top", type=int, default=25, help="list the N functions that took longest (default 25)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="a dispatch command and its arguments, after --")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give a dispatch command after --, e.g. -- simulate simulations/demo.toml --out /tmp/d --workers 1")
    listener = _Compiles()
    event.register("numba:compile", listener)
    from dispatch.cli import main as dispatch_main

    start = time.perf_counter()
    code = dispatch_main(command)
    wall = time.perf_counter() - start
    per_fn: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for name, _args, own, _took in listener.rows:
        per_fn[name][0] += 1
        per_fn[name][1] += own
    own_total = sum(r[2] for r in listener.rows)
    print(f"command {wall:.1f} s; {len(listener.rows)} compilations of {len(per_fn)} functions, {own_total:.1f} s")
    print(f"{'seconds':>8} {'times':>5}  function")
    for name, (n, own) in sorted(per_fn.items(), key=lambda kv: -kv[1][1])[: args.top]:
        print(f"{own:8.2f} {int(n):5d}  {name}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
