"""Structure-of-arrays tables that the kernels read: orders, riders and their routes.

Everything here is in metres (projected x, y) and epoch seconds. A table is a frozen set of numpy arrays with
explicit dtypes; kernels get them as tuples (``as_tuple``) in the fixed field order below, never as objects.

Routes are padded 2-D arrays, one row per rider: ``order[r, s]`` is the order index of stop ``s`` of rider ``r`` and
``kind[r, s]`` is ``PICKUP`` or ``DROPOFF``; ``length[r]`` stops are used; the first ``frozen[r]`` stops are fixed
(a stop in progress, or anything the rider is committed to). An order already picked up has only its drop-off in the
route: its size is on board from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

PICKUP = 0
DROPOFF = 1

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _f64(a: Any, n: int, name: str) -> F64:
    arr = np.array(a, dtype=np.float64, order="C", copy=True)  # a copy: tables never alias the caller's arrays
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}")
    return arr


def _i64(a: Any, n: int, name: str) -> I64:
    raw = np.asarray(a)
    if raw.dtype.kind == "f" and not (np.all(np.isfinite(raw)) and np.all(raw == np.round(raw))):
        raise ValueError(f"{name}: values must be whole numbers")
    if raw.dtype.kind not in "iufb":
        raise ValueError(f"{name}: values must be numbers, got {raw.dtype}")
    arr = np.array(raw, dtype=np.int64, order="C", copy=True)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}")
    return arr


@dataclass(frozen=True)
class OrderTable:
    """n orders. Positions in metres, times in epoch seconds, ``loc`` a travel-matrix index or -1.

    Field order is the kernels' tuple order: pick_x, pick_y, pick_loc, drop_x, drop_y, drop_loc, site, ready,
    promised, size, service_pick, service_drop.
    """

    pick_x: F64
    pick_y: F64
    pick_loc: I64
    drop_x: F64
    drop_y: F64
    drop_loc: I64
    site: I64
    ready: F64
    promised: F64
    size: I64
    service_pick: F64
    service_drop: F64
    placed: F64
    pinned: I64

    @property
    def n(self) -> int:
        return int(self.pick_x.shape[0])

    def as_tuple(self) -> tuple[Any, ...]:
        """The kernels' view: the first twelve fields (placed and pinned are read by the policy only)."""
        return (
            self.pick_x,
            self.pick_y,
            self.pick_loc,
            self.drop_x,
            self.drop_y,
            self.drop_loc,
            self.site,
            self.ready,
            self.promised,
            self.size,
            self.service_pick,
            self.service_drop,
        )

    @staticmethod
    def build(
        *,
        pick_x: Any,
        pick_y: Any,
        drop_x: Any,
        drop_y: Any,
        site: Any,
        ready: Any,
        promised: Any,
        size: Any = None,
        service_pick: Any = None,
        service_drop: Any = None,
        placed: Any = None,
        pinned: Any = None,
        pick_loc: Any = None,
        drop_loc: Any = None,
    ) -> OrderTable:
        """Validate and convert array-likes of one length n into an OrderTable (defaults: size 1, no service
        time, placed = ready, not pinned, no matrix locations)."""
        n = int(np.asarray(pick_x).shape[0])
        ones = np.ones(n, dtype=np.int64)
        zeros = np.zeros(n, dtype=np.float64)
        minus = np.full(n, -1, dtype=np.int64)
        t = OrderTable(
            pick_x=_f64(pick_x, n, "pick_x"),
            pick_y=_f64(pick_y, n, "pick_y"),
            pick_loc=_i64(minus if pick_loc is None else pick_loc, n, "pick_loc"),
            drop_x=_f64(drop_x, n, "drop_x"),
            drop_y=_f64(drop_y, n, "drop_y"),
            drop_loc=_i64(minus if drop_loc is None else drop_loc, n, "drop_loc"),
            site=_i64(site, n, "site"),
            ready=_f64(ready, n, "ready"),
            promised=_f64(promised, n, "promised"),
            size=_i64(ones if size is None else size, n, "size"),
            service_pick=_f64(zeros if service_pick is None else service_pick, n, "service_pick"),
            service_drop=_f64(zeros if service_drop is None else service_drop, n, "service_drop"),
            placed=_f64(ready if placed is None else placed, n, "placed"),
            pinned=_i64(minus if pinned is None else pinned, n, "pinned"),
        )
        t.validate()
        return t

    def take(self, idx: I64) -> OrderTable:
        """The orders ``idx`` (int64[k]) as a new table (copies; no re-validation: rows of a valid table)."""
        return OrderTable(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def validate(self) -> None:
        for f in fields(self):
            arr = getattr(self, f.name)
            if arr.dtype == np.float64 and not np.all(np.isfinite(arr)):
                raise ValueError(f"orders.{f.name}: values must be finite")
        if np.any(self.size <= 0):
            raise ValueError("orders.size: must be > 0")
        if np.any(self.service_pick < 0) or np.any(self.service_drop < 0):
            raise ValueError("orders.service_pick/service_drop: must be >= 0")


@dataclass(frozen=True)
class RiderTable:
    """m riders: where each is (x, y, loc) and from when it can move on from there (``avail``, epoch s),
    its shift, capacity in size units, speed factor (1.0 = the profile's speed) and whether it is online.

    Field order is the kernels' tuple order: x, y, loc, avail, shift_start, shift_end, capacity, speed.
    """

    x: F64
    y: F64
    loc: I64
    avail: F64
    shift_start: F64
    shift_end: F64
    capacity: I64
    speed: F64
    online: npt.NDArray[np.bool_]

    @property
    def m(self) -> int:
        return int(self.x.shape[0])

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.x,
            self.y,
            self.loc,
            self.avail,
            self.shift_start,
            self.shift_end,
            self.capacity,
            self.speed,
        )

    def cost_tuple(self, r: int) -> tuple[float, float, int, float, float, int, float]:
        """Rider r as ``sequence_cost`` takes it: (x, y, loc, avail, shift_end, capacity, speed)."""
        return (
            float(self.x[r]),
            float(self.y[r]),
            int(self.loc[r]),
            float(self.avail[r]),
            float(self.shift_end[r]),
            int(self.capacity[r]),
            float(self.speed[r]),
        )

    def take(self, idx: I64) -> RiderTable:
        """The riders ``idx`` (int64[k]) as a new table (copies; no re-validation: rows of a valid table)."""
        return RiderTable(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @staticmethod
    def build(
        *,
        x: Any,
        y: Any,
        avail: Any,
        shift_end: Any,
        capacity: Any,
        shift_start: Any = None,
        speed: Any = None,
        online: Any = None,
        loc: Any = None,
    ) -> RiderTable:
        """Validate and convert array-likes of one length m into a RiderTable (defaults: shift started at
        ``avail``, speed factor 1, online, no matrix location)."""
        m = int(np.asarray(x).shape[0])
        t = RiderTable(
            x=_f64(x, m, "x"),
            y=_f64(y, m, "y"),
            loc=_i64(np.full(m, -1) if loc is None else loc, m, "loc"),
            avail=_f64(avail, m, "avail"),
            shift_start=_f64(avail if shift_start is None else shift_start, m, "shift_start"),
            shift_end=_f64(shift_end, m, "shift_end"),
            capacity=_i64(capacity, m, "capacity"),
            speed=_f64(np.ones(m) if speed is None else speed, m, "speed"),
            online=np.array(np.ones(m, dtype=bool) if online is None else online, dtype=np.bool_, copy=True),
        )
        if t.online.shape != (m,):
            raise ValueError(f"riders.online: expected shape ({m},)")
        for name in ("x", "y", "avail", "shift_start", "shift_end", "speed"):
            if not np.all(np.isfinite(getattr(t, name))):
                raise ValueError(f"riders.{name}: values must be finite")
        if np.any(t.speed <= 0):
            raise ValueError("riders.speed: must be > 0")
        if np.any(t.capacity <= 0):
            raise ValueError("riders.capacity: must be > 0")
        return t


@dataclass
class Routes:
    """Padded routes, one row per rider (mutable: a tick inserts into them).

    ``length``: int64[m]; ``frozen``: int64[m] (0 <= frozen <= length); ``order``, ``kind``: int64[m, S].
    """

    length: I64
    frozen: I64
    order: I64
    kind: I64

    @property
    def width(self) -> int:
        return int(self.order.shape[1])

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.length, self.frozen, self.order, self.kind)

    @staticmethod
    def empty(m: int, width: int) -> Routes:
        return Routes(
            length=np.zeros(m, dtype=np.int64),
            frozen=np.zeros(m, dtype=np.int64),
            order=np.full((m, width), -1, dtype=np.int64),
            kind=np.zeros((m, width), dtype=np.int64),
        )

    @staticmethod
    def from_lists(stops: list[list[tuple[int, int]]], width: int, frozen: list[int] | None = None) -> Routes:
        """Routes from per-rider lists of ``(order_index, kind)``; ``frozen`` prefix counts (default 0)."""
        longest = max((len(s) for s in stops), default=0)
        r = Routes.empty(len(stops), max(width, longest))
        for i, seq in enumerate(stops):
            r.length[i] = len(seq)
            for s, (o, k) in enumerate(seq):
                r.order[i, s] = o
                r.kind[i, s] = k
        if frozen is not None:
            r.frozen[:] = np.asarray(frozen, dtype=np.int64)
        if np.any(r.frozen > r.length) or np.any(r.frozen < 0):
            raise ValueError("routes.frozen: must be between 0 and the route length")
        return r

    def copy(self) -> Routes:
        return Routes(self.length.copy(), self.frozen.copy(), self.order.copy(), self.kind.copy())

    def widened(self, width: int) -> Routes:
        """A copy at least ``width`` stops wide."""
        if width <= self.width:
            return self.copy()
        r = Routes.empty(self.length.shape[0], width)
        r.length[:] = self.length
        r.frozen[:] = self.frozen
        r.order[:, : self.width] = self.order
        r.kind[:, : self.width] = self.kind
        return r

    def stops(self, r: int) -> list[tuple[int, int]]:
        """Rider ``r``'s route as ``(order_index, kind)`` pairs."""
        n = int(self.length[r])
        return [(int(self.order[r, s]), int(self.kind[r, s])) for s in range(n)]
