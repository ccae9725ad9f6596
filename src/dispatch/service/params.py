"""The ops parameters: dispatch.v1.Params <-> (DispatchParams, PromiseParams), field masks, and errors named by
their path in the request (``params.dispatch.tick``)."""

from __future__ import annotations

import math
from typing import Any

from dispatch.policy import DispatchParams, ParamsError
from dispatch.promise_params import PromiseParams
from dispatch.service.validate import invalid
from dispatch.v1 import dispatch_pb2 as pb

# DispatchParams field -> its path in Params.
DISPATCH_PATHS = {
    "tick_s": "dispatch.tick",
    "hold_s": "dispatch.batching_hold",
    "max_orders_per_rider": "dispatch.max_orders_per_rider",
    "weight_time": "dispatch.cost_weights.per_rider_second",
    "weight_distance": "dispatch.cost_weights.per_metre",
    "weight_late": "dispatch.cost_weights.per_late_second",
    "candidate_k": "dispatch.candidate_k",
    "ortools_every_ticks": "dispatch.routing.trigger",
    "ortools_time_limit_s": "dispatch.routing.time_limit",
    "ortools_min_stops": "dispatch.routing.min_stops",
    "trip_mode": "dispatch.trip_mode",
}
PROMISE_PATHS = {
    "mode": "promise.mode",
    "tiers_min": "promise.tiers",
    "slot_length_min": "promise.slot_length",
    "slot_horizon_min": "promise.slot_horizon",
    "min_on_time_probability": "promise.min_on_time_probability",
}
_TRIP = {"single_site": pb.TRIP_MODE_SINGLE_SITE, "mixed": pb.TRIP_MODE_MIXED}
_TRIP_BACK: dict[int, str] = {int(v): k for k, v in _TRIP.items()}
_MODE = {"tiers": pb.PROMISE_MODE_TIERS, "slots": pb.PROMISE_MODE_SLOTS}
_MODE_BACK: dict[int, str] = {int(v): k for k, v in _MODE.items()}


def _set_dur(d: Any, seconds: float) -> None:
    d.FromNanoseconds(round(seconds * 1e9))


def _dur(d: Any, path: str) -> float:
    if not -999_999_999 <= d.nanos <= 999_999_999 or (d.seconds > 0 > d.nanos) or (d.seconds < 0 < d.nanos):
        raise invalid(path, f"not a valid duration (seconds {d.seconds}, nanos {d.nanos})")
    return float(d.seconds + d.nanos * 1e-9)


def to_proto(dp: DispatchParams, pp: PromiseParams) -> pb.Params:
    out = pb.Params()
    d = out.dispatch
    _set_dur(d.tick, dp.tick_s)
    _set_dur(d.batching_hold, dp.hold_s)
    d.max_orders_per_rider = dp.max_orders_per_rider
    d.cost_weights.per_rider_second = dp.weight_time
    d.cost_weights.per_metre = dp.weight_distance
    d.cost_weights.per_late_second = dp.weight_late
    d.candidate_k = dp.candidate_k
    d.routing.trigger = pb.ROUTING_TRIGGER_EVERY_TICK if dp.ortools_every_ticks else pb.ROUTING_TRIGGER_NEVER
    _set_dur(d.routing.time_limit, dp.ortools_time_limit_s)
    d.routing.min_stops = dp.ortools_min_stops
    d.trip_mode = _TRIP[dp.trip_mode]
    p = out.promise
    p.mode = _MODE[pp.mode]
    for t in pp.tiers_min:
        _set_dur(p.tiers.add(), t * 60.0)
    _set_dur(p.slot_length, pp.slot_length_min * 60.0)
    _set_dur(p.slot_horizon, pp.slot_horizon_min * 60.0)
    p.min_on_time_probability = pp.min_on_time_probability
    return out


def from_proto(
    params: pb.Params, base: DispatchParams, pbase: PromiseParams | None = None
) -> tuple[DispatchParams, PromiseParams]:
    """Validate a whole Params message; INVALID_ARGUMENT (a RefusalError) naming ``params.<path>`` otherwise."""
    d = params.dispatch
    trip = _TRIP_BACK.get(int(d.trip_mode))
    if trip is None:
        raise invalid("params.dispatch.trip_mode", f"must be SINGLE_SITE or MIXED, got {int(d.trip_mode)}")
    trig = int(d.routing.trigger)
    if trig == pb.ROUTING_TRIGGER_NEVER:
        every = 0
    elif trig == pb.ROUTING_TRIGGER_EVERY_TICK:
        every = base.ortools_every_ticks or 1
    elif trig in (pb.ROUTING_TRIGGER_ON_ROUTE_CHANGE, pb.ROUTING_TRIGGER_ON_LATE_RISK):
        raise invalid("params.dispatch.routing.trigger", "not supported by this engine yet; use NEVER or EVERY_TICK")
    else:
        raise invalid("params.dispatch.routing.trigger", f"must be NEVER or EVERY_TICK, got {trig}")
    limit = _dur(d.routing.time_limit, "params.dispatch.routing.time_limit")
    if every == 0 and limit <= 0:
        limit = base.ortools_time_limit_s
    changes: dict[str, Any] = {
        "tick_s": _dur(d.tick, "params.dispatch.tick"),
        "hold_s": _dur(d.batching_hold, "params.dispatch.batching_hold"),
        "max_orders_per_rider": int(d.max_orders_per_rider),
        "weight_time": float(d.cost_weights.per_rider_second),
        "weight_distance": float(d.cost_weights.per_metre),
        "weight_late": float(d.cost_weights.per_late_second),
        "candidate_k": int(d.candidate_k),
        "ortools_every_ticks": every,
        "ortools_time_limit_s": limit,
        "ortools_min_stops": int(d.routing.min_stops),
        "trip_mode": trip,
    }
    if changes["tick_s"] > 3600:
        raise invalid("params.dispatch.tick", f"must be at most 3600 s, got {changes['tick_s']:g}")
    try:
        dp = base.with_updates(**changes)
    except ParamsError as exc:
        path = DISPATCH_PATHS.get(exc.field, "dispatch")
        raise invalid(f"params.{path}", str(exc).split(": ", 1)[1]) from None
    p = params.promise
    mode = _MODE_BACK.get(int(p.mode))
    if mode is None:
        raise invalid("params.promise.mode", f"must be TIERS or SLOTS, got {int(p.mode)}")
    tiers = tuple(_dur(t, f"params.promise.tiers[{i}]") / 60.0 for i, t in enumerate(p.tiers))
    prob = float(p.min_on_time_probability)
    if not math.isfinite(prob):
        raise invalid("params.promise.min_on_time_probability", f"must be a number in [0.5, 1), got {prob}")
    pchanges: dict[str, Any] = {
        "mode": mode,
        "tiers_min": tiers,
        "slot_length_min": _dur(p.slot_length, "params.promise.slot_length") / 60.0,
        "slot_horizon_min": _dur(p.slot_horizon, "params.promise.slot_horizon") / 60.0,
        "min_on_time_probability": prob,
    }
    try:
        pp = (pbase or PromiseParams()).with_updates(**pchanges)
    except ParamsError as exc:
        name = exc.field.split("[", 1)[0]
        path = PROMISE_PATHS.get(name, "promise") + exc.field[len(name) :]
        raise invalid(f"params.{path}", str(exc).split(": ", 1)[1]) from None
    return dp, pp


def merged(current: pb.Params, update: pb.Params, paths: list[str]) -> pb.Params:
    """``current`` with the fields named by ``paths`` taken from ``update`` (all of it when ``paths`` is empty)."""
    if not paths:
        out = pb.Params()
        out.CopyFrom(update)
        return out
    out = pb.Params()
    out.CopyFrom(current)
    for i, path in enumerate(paths):
        parts = path.split(".")
        src: Any = update
        dst: Any = out
        for j, name in enumerate(parts):
            fd = dst.DESCRIPTOR.fields_by_name.get(name)
            if fd is None:
                raise invalid(f"update_mask.paths[{i}]", f"unknown field {path!r} of Params")
            last = j == len(parts) - 1
            if last:
                if fd.is_repeated:
                    del getattr(dst, name)[:]
                    getattr(dst, name).extend(getattr(src, name))
                elif fd.message_type is not None:
                    getattr(dst, name).CopyFrom(getattr(src, name))
                else:
                    setattr(dst, name, getattr(src, name))
            else:
                if fd.message_type is None or fd.is_repeated:
                    raise invalid(f"update_mask.paths[{i}]", f"{'.'.join(parts[: j + 1])} has no sub-fields")
                src = getattr(src, name)
                dst = getattr(dst, name)
    return out
