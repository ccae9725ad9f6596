"""report.html and its PNG plots for a simulated day (matplotlib, no display needed).

Plots: orders placed and delivered per hour; on-time rate by hour (of the orders placed that hour); the
delivery-time histogram with the promise marks; rider utilisation per hour (riders on shift and orders delivered
per rider on shift); a map of the sites coloured by their on-time rate; and, when orders were quoted, the promise
calibration: quoted against actual delivery minutes (each order a dot, the mean actual per quoted-minute bin a line,
the diagonal where quotes are exact).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure  # the object API: no pyplot, no display backend

from dispatch.sim.kpi import DayOutcome

PLOTS = ("orders_per_hour.png", "on_time_by_hour.png", "delivery_minutes.png", "riders_by_hour.png", "sites.png")
CALIBRATION_PLOT = "promise_calibration.png"


def _axes(w: float, h: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(w, h))
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(
    out_dir: Path,
    summ: dict[str, Any],
    day: DayOutcome,
    hours: dict[str, npt.NDArray[Any]],
    site_xy: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
    coordinates: str,
) -> Path:
    """Write the PNGs and report.html into ``out_dir``; ``site_xy``: each site's (x, y) as in the log (lng/lat
    degrees or metres), indexed like ``day.site_id``. Returns the report's path."""
    h = hours["hour"]
    fig, ax = _axes(7, 3.2)
    ax.bar(h - 0.2, hours["orders_placed"], width=0.4, label="placed")
    ax.bar(h + 0.2, hours["orders_delivered"], width=0.4, label="delivered")
    ax.set(xlabel="local hour", ylabel="orders", title="Orders per hour", xticks=range(0, 24, 2))
    ax.legend()
    _save(fig, out_dir / PLOTS[0])

    fig, ax = _axes(7, 3.2)
    ax.plot(h, 100 * hours["on_time_rate"], marker="o")
    ax.set(xlabel="local hour placed", ylabel="% on time", title="On-time rate by hour", xticks=range(0, 24, 2))
    ax.set_ylim(0, 100)
    _save(fig, out_dir / PLOTS[1])

    done = ~np.isnan(day.delivered_at)
    minutes = (day.delivered_at[done] - day.placed[done]) / 60.0
    promise = (day.promised[done] - day.placed[done]) / 60.0
    fig, ax = _axes(7, 3.2)
    ax.hist(minutes, bins=60, color="tab:blue")
    for p in np.unique(np.round(promise)):
        ax.axvline(p, color="tab:red", linestyle="--", linewidth=1)
    ax.set(xlabel="minutes from placed to delivered (dashed: promises)", ylabel="orders", title="Delivery time")
    _save(fig, out_dir / PLOTS[2])

    fig, ax = _axes(7, 3.2)
    ax.bar(h, hours["riders_online"], color="tab:gray", label="riders on shift")
    ax.set(xlabel="local hour", ylabel="riders", title="Rider utilisation", xticks=range(0, 24, 2))
    ax2 = ax.twinx()
    per = np.where(hours["riders_online"] > 0, hours["orders_delivered"] / np.maximum(hours["riders_online"], 1), 0)
    ax2.plot(h, per, color="tab:orange", marker="o", label="orders delivered per rider on shift")
    ax2.set_ylabel("orders / rider")
    fig.legend(loc="upper left", fontsize=8)
    _save(fig, out_dir / PLOTS[3])

    n_sites = site_xy[0].shape[0]
    total = np.bincount(day.site_id, minlength=n_sites).astype(np.float64)
    on = np.bincount(day.site_id, weights=(done & (day.delivered_at <= day.promised)).astype(float), minlength=n_sites)
    rate = np.where(total > 0, on / np.maximum(total, 1), np.nan)
    fig, ax = _axes(6, 5)
    sc = ax.scatter(
        site_xy[0], site_xy[1], c=100 * rate, cmap="RdYlGn", vmin=50, vmax=100, s=12 + 60 * total / max(1, total.max())
    )
    fig.colorbar(sc, ax=ax, label="% on time")
    lab = ("longitude", "latitude") if coordinates == "wgs84" else ("x (m)", "y (m)")
    ax.set(xlabel=lab[0], ylabel=lab[1], title="Sites by on-time rate (size: orders)")
    _save(fig, out_dir / PLOTS[4])

    plots = list(PLOTS)
    if _calibration(day, out_dir / CALIBRATION_PLOT):
        plots.append(CALIBRATION_PLOT)

    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in summ.items()
        if not isinstance(v, dict)
    )
    imgs = "".join(f'<p><img src="{p}" alt="{p}"></p>' for p in plots)
    title = html.escape(f"{summ.get('scenario') or 'simulation'}: {summ.get('policy', '')} policy")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}td{padding:2px 12px}"
        "tr:nth-child(odd){background:#f3f3f3}</style></head>"
        f"<body><h1>{title}</h1><h2>Summary</h2><table>{rows}</table><h2>Plots</h2>{imgs}</body></html>\n"
    )
    path = out_dir / "report.html"
    path.write_text(page)
    return path


def _calibration(day: DayOutcome, path: Path) -> bool:
    """The promise calibration plot (quoted against actual minutes from placing); False when nothing was quoted."""
    eta, _, _ = day.quote_arrays()
    ok = ~np.isnan(eta) & ~np.isnan(day.delivered_at)
    if not np.any(ok):
        return False
    quoted = (eta[ok] - day.placed[ok]) / 60.0
    actual = (day.delivered_at[ok] - day.placed[ok]) / 60.0
    kept = day.delivered_at[ok] <= day.promised[ok]
    fig, ax = _axes(6, 5)
    sample = np.linspace(0, quoted.size - 1, min(quoted.size, 20_000)).astype(np.int64)  # every k-th, deterministic
    ax.scatter(quoted[sample], actual[sample], s=2, alpha=0.25, c=np.where(kept[sample], "tab:blue", "tab:red"))
    top = float(max(np.percentile(quoted, 99.5), np.percentile(actual, 99.5)))
    ax.plot([0, top], [0, top], color="black", linewidth=1, label="quoted = actual")
    edges = np.arange(0.0, top + 2.0, 2.0)
    which = np.digitize(quoted, edges)
    centres, means = [], []
    for b in np.unique(which):
        sel = which == b
        if sel.sum() >= 20:
            centres.append(float(quoted[sel].mean()))
            means.append(float(actual[sel].mean()))
    ax.plot(centres, means, color="tab:orange", marker="o", markersize=3, label="mean actual per 2-min bin")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="quoted delivery minutes (estimate)", ylabel="actual delivery minutes",
           title="Promise calibration (red: promise broken)")  # fmt: skip
    ax.legend(loc="upper left", fontsize=8)
    _save(fig, path)
    return True
