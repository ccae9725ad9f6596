"""KPIs of a simulated day: the summary, the hourly table and every order's timeline.

Definitions (the README repeats them):

- ``on_time_rate``: orders delivered by their promise, over **all** orders (an order never delivered is late);
- ``delivery_min_p50`` / ``_p90``: minutes from placed to delivered, over delivered orders;
- ``km_per_order``: kilometres ridden by all riders over delivered orders;
- ``rider_hours``: paid rider time, from each shift's start to the rider going offline (its shift end, or its
  last delivery when later); ``orders_per_rider_hour`` = delivered / rider_hours;
- ``dispatch_tick_ms_p99``: the 99th percentile of the policy's time per tick (ticks with pending orders);
- ``sim_orders_per_second``: orders over wall seconds.

Promise accuracy (the simulator quotes every order when placed, see ``dispatch.sim.quoting``):

- ``orders_declined``: orders the quote declined (never placed; they count as not on time in ``on_time_rate``);
- ``orders_deferred``: orders whose first option was later than their site would give with an empty queue;
- ``promise_kept_rate``: orders delivered by their promise over the orders placed (not declined);
- ``eta_mae_min``: mean absolute minutes between the quoted estimate and the delivery, over delivered orders that
  were quoted (NaN when nothing was quoted);
- ``orders_deferred_rate`` / ``orders_declined_rate``: over all orders.

Without quoting, nothing is declined or deferred and ``promise_kept_rate`` is the on-time rate of the log's
promises.
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
    quoted_eta: F64 | None = None
    declined: I64 | None = None
    deferred: npt.NDArray[np.bool_] | None = None

    def quote_arrays(self) -> tuple[F64, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """``(quoted_eta float64[n], declined bool[n], deferred bool[n])``, NaN / False when not quoting."""
        n = self.order_id.shape[0]
        eta = self.quoted_eta if self.quoted_eta is not None else np.full(n, np.nan)
        declined = self.declined > 0 if self.declined is not None else np.zeros(n, dtype=bool)
        deferred = self.deferred.astype(bool) if self.deferred is not None else np.zeros(n, dtype=bool)
        return eta, declined, deferred


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
    out.update(promise_kpis(day))
    if extra:
        out.update(extra)
    return out


def promise_kpis(day: DayOutcome) -> dict[str, Any]:
    """promise_kept_rate, eta_mae_min, orders_deferred, orders_declined and their rates (module docstring)."""
    n = int(day.order_id.shape[0])
    eta, declined, deferred = day.quote_arrays()
    placed = ~declined
    done = ~np.isnan(day.delivered_at)
    kept = placed & done & (day.delivered_at <= day.promised)
    n_placed = int(placed.sum())
    err = np.abs(day.delivered_at - eta)[done & ~np.isnan(eta)] / 60.0
    return {
        "promise_kept_rate": round(float(kept.sum()) / n_placed, 6) if n_placed else float("nan"),
        "eta_mae_min": round(float(err.mean()), 3) if err.size else float("nan"),
        "orders_deferred": int(deferred.sum()),
        "orders_declined": int(declined.sum()),
        "orders_deferred_rate": round(float(deferred.sum()) / n, 6) if n else float("nan"),
        "orders_declined_rate": round(float(declined.sum()) / n, 6) if n else float("nan"),
    }


WALL_CLOCK_FIELDS = ("wall_seconds", "sim_orders_per_second", "dispatch_tick_ms_p50", "dispatch_tick_ms_p99")


def hourly(day: DayOutcome, day_start: float, utc_offset_s: float) -> dict[str, npt.NDArray[Any]]:
    """Per local hour of the day (0..23; ``day_start`` is local midnight in epoch seconds, ``utc_offset_s`` the
    local offset): orders placed, delivered, on-time rate of the orders placed in that hour, median delivery
    minutes, rider shifts online at some time in the hour, and the promise figures of the orders placed in the
    hour (promise_kept_rate, orders_deferred, orders_declined)."""
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
    _, declined, deferred = day.quote_arrays()
    kept = ~declined & on_time
    n_placed = np.bincount(local_placed, weights=(~declined).astype(np.float64), minlength=24)[:24]
    kept_h = np.bincount(local_placed, weights=kept.astype(np.float64), minlength=24)[:24]
    return {
        "hour": hours,
        "orders_placed": placed,
        "orders_delivered": delivered,
        "on_time_rate": rate,
        "delivery_min_median": med,
        "riders_online": online,
        "promise_kept_rate": np.where(n_placed > 0, kept_h / np.maximum(n_placed, 1), np.nan),
        "orders_deferred": np.bincount(local_placed, weights=deferred.astype(np.float64), minlength=24)[:24].astype(
            np.int64
        ),
        "orders_declined": np.bincount(local_placed, weights=declined.astype(np.float64), minlength=24)[:24].astype(
            np.int64
        ),
    }
