"""Parameters of promise quotes and admission (:class:`PromiseParams`), and the quote's result types.

The result types map one to one onto the proto's ``QuoteOption`` / ``QuoteResponse`` (times in epoch seconds, the
tier in seconds, the decline reason numbered like ``QuoteDeclineReason``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields, replace
from enum import IntEnum
from typing import Any

from dispatch.policy import ParamsError

PROMISE_MODES = ("tiers", "slots")


@dataclass(frozen=True)
class PromiseParams:
    """Everything ops can tune about promises (proto ``PromiseParams`` holds the first five).

    Attributes:
        mode: "tiers" (deadlines ``tiers_min`` after the quote) or "slots" (delivery slots of ``slot_length_min``
            on the clock grid, up to ``slot_horizon_min`` ahead).
        tiers_min: the promise tiers in minutes, increasing, each > 0.
        slot_length_min: slot mode: minutes per slot, > 0; slots end on multiples of it (UTC epoch grid, the same
            as the local clock grid for whole-hour UTC offsets and slot lengths dividing an hour).
        slot_horizon_min: slot mode: how far ahead slots are offered; >= slot_length_min.
        min_on_time_probability: an option is offered only when its estimated on-time probability is at least
            this; in [0.5, 1) (below 0.5 a promise would be earlier than the estimate).
        prep_min: planning minutes from placing to ready at the site (picking), >= 0.
        dropoff_service_min: planning minutes at the door, >= 0.
        batch_orders: orders a rider takes from a site's queue per trip (>= 1): the queue of waiting orders is
            served ``batch_orders`` at a time by the riders in order of when they are free.
        batch_extra_min: planning minutes by which an order in a bag is delivered later than on a direct ride
            (other drop-offs first), >= 0.
        trip_min: minutes a rider's round trip takes, to plan the riders' later trips when the queue is longer
            than one trip of every rider; > 0.
        reach_m: riders whose free point (the end of their route) is farther than this from a site do not count
            for it; > 0.
        shift_lookahead_min: riders whose shift starts within this many minutes count (offline before), >= 0.
        max_wait_per_rider: admission: a site whose waiting orders per rider in reach exceed this takes no more
            orders (saturated); > 0.
        sigma_min: the delivery time's standard deviation around the estimate, base minutes; > 0.
        sigma_frac: plus this fraction of the minutes from the quote to the estimate; >= 0.
    """

    mode: str = "tiers"
    tiers_min: tuple[float, ...] = (30.0, 45.0, 60.0)
    slot_length_min: float = 60.0
    slot_horizon_min: float = 240.0
    min_on_time_probability: float = 0.97
    prep_min: float = 7.0
    dropoff_service_min: float = 1.75
    batch_orders: int = 2
    batch_extra_min: float = 0.0
    trip_min: float = 30.0
    reach_m: float = 8000.0
    shift_lookahead_min: float = 15.0
    max_wait_per_rider: float = 3.0
    sigma_min: float = 2.0
    sigma_frac: float = 0.06

    def __post_init__(self) -> None:
        if self.mode not in PROMISE_MODES:
            raise ParamsError("mode", f"must be one of {', '.join(PROMISE_MODES)}, got {self.mode!r}")
        tiers = self.tiers_min
        if isinstance(tiers, int | float) and not isinstance(tiers, bool):
            tiers = (tiers,)
        if not isinstance(tiers, tuple | list) or not tiers:
            raise ParamsError("tiers_min", f"must be a non-empty list of minutes, got {tiers!r}")
        for i, t in enumerate(tiers):
            if isinstance(t, bool) or not (isinstance(t, int | float) and math.isfinite(t) and t > 0):
                raise ParamsError(f"tiers_min[{i}]", f"must be a finite number > 0, got {t!r}")
        if any(b <= a for a, b in itertools.pairwise(tiers)):
            raise ParamsError("tiers_min", f"must be strictly increasing, got {list(tiers)}")
        object.__setattr__(self, "tiers_min", tuple(float(t) for t in tiers))
        positive = ("slot_length_min", "slot_horizon_min", "trip_min", "reach_m", "max_wait_per_rider", "sigma_min")
        non_negative = ("prep_min", "dropoff_service_min", "batch_extra_min", "shift_lookahead_min", "sigma_frac")
        for name in positive + non_negative:
            v = getattr(self, name)
            ok = not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
            if not ok or (v <= 0 if name in positive else v < 0):
                raise ParamsError(name, f"must be a finite number {'> 0' if name in positive else '>= 0'}, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.slot_horizon_min < self.slot_length_min:
            raise ParamsError(
                "slot_horizon_min",
                f"must be >= slot_length_min ({self.slot_length_min:g}), got {self.slot_horizon_min:g}",
            )
        p = self.min_on_time_probability
        if isinstance(p, bool) or not (isinstance(p, int | float) and 0.5 <= p < 1.0):
            raise ParamsError("min_on_time_probability", f"must be a number in [0.5, 1), got {p!r}")
        object.__setattr__(self, "min_on_time_probability", float(p))
        b = self.batch_orders
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ParamsError("batch_orders", f"must be an integer >= 1, got {b!r}")

    def with_updates(self, **changes: Any) -> PromiseParams:
        """A validated copy with some fields changed; unknown names raise ParamsError."""
        known = {f.name for f in fields(self)}
        for name in changes:
            if name not in known:
                raise ParamsError(name, "unknown promise parameter")
        if "tiers_min" in changes and isinstance(changes["tiers_min"], list):
            changes["tiers_min"] = tuple(changes["tiers_min"])
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tiers_min"] = list(self.tiers_min)
        return out


class DeclineReason(IntEnum):
    """Why a quote offers nothing (numbers match dispatch.v1.QuoteDeclineReason)."""

    OUTSIDE_EVERY_ZONE = 1
    OUTSIDE_SITE_ZONE = 2
    SATURATED = 3
    TOO_LARGE = 4


class UnknownSiteError(KeyError):
    """A quote named a site the engine does not know (gRPC: NOT_FOUND)."""


@dataclass(frozen=True)
class QuoteOption:
    """One promise the engine is willing to make (proto ``QuoteOption``).

    ``site_id``: the site's key (as given to the engine), ``site``: its index; ``promised_by`` and ``eta``: epoch
    seconds (``eta <= promised_by``); ``on_time_prob`` in [0, 1]; ``tier``: seconds (tier mode:
    ``promised_by - quoted_at``; slot mode: the slot length, the slot being ``[promised_by - tier,
    promised_by]``); ``deferred``: the site is too busy for the option it would give unsaturated, so this one is
    later on purpose."""

    site_id: Any
    site: int
    promised_by: float
    eta: float
    on_time_prob: float
    tier: float
    deferred: bool


@dataclass(frozen=True)
class Quote:
    """A quote's answer (proto ``QuoteResponse``): ``options`` earliest ``promised_by`` first, or none and a
    ``declined_reason`` (None whenever there are options) with a human-readable ``detail``."""

    quoted_at: float
    options: tuple[QuoteOption, ...]
    declined_reason: DeclineReason | None = None
    detail: str = ""
