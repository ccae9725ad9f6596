"""The cold-start helper (dispatch.sim.warmup): it compiles what a simulated tick calls, for the same types."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from daylogs import tiny_log

import dispatch.candidates as candidates_mod
import dispatch.kernels.insertion as ins_mod
import dispatch.policy as policy_mod
import dispatch.sim.warmup as warmup
from dispatch.policy import DispatchParams
from dispatch.sim.quoting import promise_from_record
from dispatch.sim.run import SimConfig, run_day
from dispatch.sim.shard import travel_arrays

# Where each kernel is looked up when called: (module, name) for the policy's calls and the helper's.
_KERNELS = {
    "insertion_costs_into": [(ins_mod, "insertion_costs_into")],
    "insertion_costs_into_parallel": [(ins_mod, "insertion_costs_into_parallel")],
    "improve_routes": [(policy_mod, "improve_routes"), (warmup, "improve_routes")],
    "assignment_round": [(policy_mod, "assignment_round"), (warmup, "assignment_round")],
    "expand_groups": [(candidates_mod, "expand_groups")],
}


def _record(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple[Any, ...]]]:
    """Wrap the kernels so that every call records its Numba argument types (what picks the compiled code)."""
    seen: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for name, places in _KERNELS.items():
        kernel = getattr(places[0][0], name)

        def recording(*args: Any, _k: Any = kernel, _n: str = name) -> Any:
            seen[_n].append(tuple(_k.typeof_pyval(a) for a in args))
            return _k(*args)

        for module, attr in places:
            monkeypatch.setattr(module, attr, recording)
    return seen


_PARAMS = [{}, {"trip_mode": "single_site", "max_orders_per_rider": 5}, {"parallel": True, "local_search_passes": 0}]


@pytest.mark.parametrize("dispatch", _PARAMS)
def test_the_helper_compiles_the_types_a_tick_calls(monkeypatch: pytest.MonkeyPatch, dispatch: dict[str, Any]) -> None:
    log = tiny_log(3, varied_riders=True)
    params = DispatchParams().with_updates(**dispatch)
    seen = _record(monkeypatch)
    warmup.compile_ahead(travel_arrays(log.meta.travel, log.meta.utc_offset_s), params)
    ahead = {name: set(calls) for name, calls in seen.items()}
    seen.clear()
    promise = promise_from_record({"quote": True})
    run_day(log, SimConfig(workers=1, params=params, promise=promise))
    assert set(seen) == set(ahead)  # the helper calls the kernels the day calls (one insertion, local search if on)
    assert len(seen) == 3 + (params.local_search_passes > 0)
    for name, calls in seen.items():
        assert set(calls) <= ahead[name], f"{name}: the day calls it with types the helper did not compile"


def test_the_helper_process_runs_and_exits_cleanly() -> None:
    log = tiny_log(4)
    proc = warmup.start_compile_ahead(travel_arrays(log.meta.travel, log.meta.utc_offset_s), DispatchParams())
    if proc is None:
        pytest.skip("no fork on this platform: the helper is not used")
    proc.join(timeout=300)
    code = proc.exitcode
    warmup.stop_compile_ahead(proc)  # a no-op once it has ended; ends it if it hangs
    assert code == 0
    warmup.stop_compile_ahead(None)
