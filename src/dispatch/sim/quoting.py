"""Promise quotes in the simulator: a shard's promise engine, in the shard's planar frames.

The loop (``dispatch.sim.loop``) quotes every order when it is placed, restricted to the order's own site; the
customer takes the first option: its deadline replaces the log's ``promised_by``.
An order the quote declines is not placed (it never reaches dispatch) and is counted; an order whose first option
is later than the one its site would give with an empty queue is *deferred*.

The sites lie where ``dispatch.sim.shard`` puts them for the run's shard mode (``Frames.sites``: in ``site``
mode site row ``s`` of the log at ``(s * SITE_FRAME_GAP_M, 0)``, each in its own frame; in the wider modes a
group's sites in its shared frame), so the engine holds every site of the log at those positions and the zone
discs (the log's ``zone_m``) of the shard's sites only. A disc zone is drawn as an inscribed polygon, so its radius is
widened by :data:`ZONE_MARGIN` to cover every drop-off the generator drew on the disc.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dispatch.geo import Projection
from dispatch.promise import PromiseEngine, PromiseParams, PromiseSites
from dispatch.sim.log import OrderLog
from dispatch.zones import SiteZones, ZoneSpec

if TYPE_CHECKING:
    from dispatch.sim.loop import ShardResult

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ZONE_MARGIN = 1e-3
"""Relative widening of a disc zone (the 128-gon inscribed in a circle falls short of it by < 0.03%)."""


@dataclass(frozen=True)
class ShardPromise:
    """What a shard needs to quote: the params, and per log site row (float64[s]) the frame position, the pickup
    service seconds and the zone radius (NaN for sites outside the shard: no zone)."""

    params: PromiseParams
    site_x: F64
    site_y: F64
    service_s: F64
    zone_m: F64

    def engine(self, travel: tuple[object, ...]) -> PromiseEngine:
        """A fresh engine for the shard (``travel``: the kernels' travel tuple)."""
        n = self.site_x.shape[0]
        sites = PromiseSites.build(list(range(n)), self.site_x, self.site_y, self.service_s)
        specs: list[ZoneSpec | None] = [
            None if np.isnan(r) else ZoneSpec(radius_m=float(r) * (1.0 + ZONE_MARGIN)) for r in self.zone_m
        ]
        zones = SiteZones(Projection(0.0, 0.0), sites.x, sites.y, specs)
        return PromiseEngine(sites, zones, travel, self.params)


def shard_promise(log: OrderLog, site_idx: npt.ArrayLike, params: PromiseParams, mode: str = "site") -> ShardPromise:
    """The ShardPromise of the shard holding log site rows ``site_idx`` (int64[k]) under shard mode ``mode``
    (the sites where ``dispatch.sim.shard.build_shard`` puts them)."""
    from dispatch.sim.shard import Frames  # here: shard imports the loop, which imports this module

    n = len(log.sites)
    zone = np.full(n, np.nan)
    idx = np.asarray(site_idx, dtype=np.int64)
    zone[idx] = log.sites.zone_m[idx]
    site_x, site_y = Frames.of(log, mode).sites(log)
    return ShardPromise(
        params=params,
        site_x=site_x,
        site_y=site_y,
        service_s=np.asarray(log.sites.service_s, dtype=np.float64).copy(),
        zone_m=zone,
    )


@dataclass
class QuoteLog:
    """Per order of a shard: ``quoted_eta`` (float64[n], NaN when not quoted or declined), ``declined`` (int64[n],
    the DeclineReason or 0), ``deferred`` (bool[n])."""

    quoted_eta: F64
    declined: I64
    deferred: npt.NDArray[np.bool_]

    @staticmethod
    def empty(n: int) -> QuoteLog:
        return QuoteLog(np.full(n, np.nan), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool))


def quote_new_orders(
    engine: PromiseEngine,
    drop_x: F64,
    drop_y: F64,
    size: I64,
    site: I64,
    placed: F64,
    new: I64,
    promised: F64,
    log: QuoteLog,
) -> I64:
    """Quote orders ``new`` (int64[k], in placing order) at their site and placing time; the first option's deadline
    goes into ``promised`` (float64[n], in place) and the outcome into ``log``. Returns the orders placed (int64,
    the declined ones left out). One batch quote (``PromiseEngine.quote_sites_xy``): the same answers as quoting
    the orders one at a time, each accepted one admitted before the next."""
    if new.shape[0] == 0:
        return new
    q = engine.quote_sites_xy(drop_x[new], drop_y[new], size[new], placed[new], site[new])
    ok = q.declined == 0
    out = new[~ok]
    log.declined[out] = q.declined[~ok]
    kept = new[ok]
    promised[kept] = q.promised_by[ok]
    log.quoted_eta[kept] = q.eta[ok]
    log.deferred[kept] = q.deferred[ok]
    return kept


def promise_from_record(rec: object) -> PromiseParams | None:
    """The promise parameters recorded in a log's ``meta.scenario["promise"]`` (``{"quote": bool, **fields}``, as
    ``PromiseSpec`` writes it), or None when quoting is off or nothing is recorded. Raises ParamsError naming a
    bad field."""
    if not isinstance(rec, dict) or not rec.get("quote"):
        return None
    fields = {k: v for k, v in rec.items() if k != "quote"}
    return PromiseParams().with_updates(**fields)


def quote_outcome(results: Sequence[ShardResult]) -> dict[str, npt.NDArray[Any]]:
    """The DayOutcome fields of the quotes, concatenated over shard results in order: ``promised`` (the deadlines in
    force), ``quoted_eta``, ``declined``, ``deferred``."""

    def cat(parts: list[npt.NDArray[Any]], dtype: Any) -> npt.NDArray[Any]:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return {
        "promised": cat([r.promised for r in results], np.float64),
        "quoted_eta": cat([r.quotes.quoted_eta for r in results], np.float64),
        "declined": cat([r.quotes.declined for r in results], np.int64),
        "deferred": cat([r.quotes.deferred for r in results], np.bool_),
    }
