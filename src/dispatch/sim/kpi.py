"""KPIs of a simulated day: the summary, the hourly table and every order's timeline.

Definitions (the README repeats them):

- ``on_time_rate``: orders delivered by their promise, over **all** orders (an order never delivered is late);
- ``delivery_min_p50`` / ``_p90``: minutes from placed to delivered, over delivered orders;
- ``km_per_order``: kilometres ridden by all riders over delivered orders;
- ``rider_hours``: paid rider time, from each shift's start to the rider going offline (its shift end, or its
  last delivery when later); ``orders_per_rider_hour`` = delivered / rider_hours;
- ``dispatch_tick_ms_p99``: the 99th percentile of the policy's time per tick (ticks with pending orders);
- ``sim_orders_per_second``: orders over wall seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass
class DayOutcome:
    """Every order and rider of a simulated day, concatenated over shards (float64 times, NaN = never)."""

    order_id: I64
    site_id: I64
    placed: F64
    ready: F64
    promised: F64
    assigned_at: F64
    picked_at: F64
    delivered_at: F64
    rider_id: I64
    rider_shift_start: F64
    rider_online_s: F64
    rider_metres: F64
    rider_delivered: I64
    tick_ms: F64


def _pct(a: F64, q: float) -> float:
    return float(np.percentile(a, q)) if a.size else float("nan")


def summary(day: DayOutcome, *, wall_seconds: float, seed: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary.json record (see the module docstring for each figure)."""
    n = int(day.order_id.shape[0])
    done = ~np.isnan(day.delivered_at)
    n_done = int(done.sum())
    on_time = done & (day.delivered_at <= day.promised)
    minutes = (day.delivered_at[done] - day.placed[done]) / 60.0
    rider_hours = float(day.rider_online_s.sum()) / 3600.0
    km = float(day.rider_metres.sum()) / 1000.0
    out: dict[str, Any] = {
        "orders_total": n,
        "orders_delivered": n_done,
        "orders_never_assigned": int(np.isnan(day.assigned_at).sum()),
        "on_time_rate": round(float(on_time.sum()) / n, 6) if n else float("nan"),
        "delivery_min_p50": round(_pct(minutes, 50), 3),
        "delivery_min_p90": round(_pct(minutes, 90), 3),
        "km_total": round(km, 3),
        "km_per_order": round(km / n_done, 4) if n_done else float("nan"),
        "riders": int(day.rider_online_s.shape[0]),
        "rider_hours": round(rider_hours, 3),
        "orders_per_rider_hour": round(n_done / rider_hours, 4) if rider_hours > 0 else float("nan"),
        "rider_hours_per_order": round(rider_hours / n_done, 6) if n_done else float("nan"),
        "dispatch_ticks": int(day.tick_ms.shape[0]),
        "dispatch_tick_ms_p50": round(_pct(day.tick_ms, 50), 3),
        "dispatch_tick_ms_p99": round(_pct(day.tick_ms, 99), 3),
        "wall_seconds": round(wall_seconds, 3),
        "sim_orders_per_second": round(n / wall_seconds, 1) if wall_seconds > 0 else float("nan"),
        "seed": seed,
    }
    if extra:
        out.update(extra)
    return out


WALL_CLOCK_FIELDS = ("wall_seconds", "sim_orders_per_second", "dispatch_tick_ms_p50", "dispatch_tick_ms_p99")


def hourly(day: DayOutcome, day_start: float, utc_offset_s: float) -> dict[str, npt.NDArray[Any]]:
    """Per local hour of the day (0..23; ``day_start`` is local midnight in epoch seconds, ``utc_offset_s`` the
    local offset): orders placed, delivered, on-time rate of the orders placed in that hour, median delivery
    minutes, and rider shifts online at some time in the hour."""
    hours = np.arange(24)
    local_placed = ((day.placed + utc_offset_s) // 3600).astype(np.int64) % 24
    done = ~np.isnan(day.delivered_at)
    local_deliv = ((day.delivered_at[done] + utc_offset_s) // 3600).astype(np.int64) % 24
    placed = np.bincount(local_placed, minlength=24)[:24]
    delivered = np.bincount(local_deliv, minlength=24)[:24]
    on_time = done & (day.delivered_at <= day.promised)
    on_by_hour = np.bincount(local_placed, weights=on_time.astype(np.float64), minlength=24)[:24]
    rate = np.where(placed > 0, on_by_hour / np.maximum(placed, 1), np.nan)
    med = np.full(24, np.nan)
    minutes = (day.delivered_at - day.placed) / 60.0
    for h in range(24):
        sel = done & (local_placed == h)
        if np.any(sel):
            med[h] = float(np.median(minutes[sel]))
    # Shifts in hours since the day's local midnight (``day_start``, epoch seconds).
    s_h = (day.rider_shift_start - day_start) / 3600.0
    e_h = s_h + day.rider_online_s / 3600.0
    worked = day.rider_online_s > 0
    online = np.array([int(np.sum(worked & (s_h < h + 1) & (e_h > h))) for h in hours], dtype=np.int64)
    return {
        "hour": hours,
        "orders_placed": placed,
        "orders_delivered": delivered,
        "on_time_rate": rate,
        "delivery_min_median": med,
        "riders_online": online,
    }
