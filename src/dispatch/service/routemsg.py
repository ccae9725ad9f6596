"""The Route messages of a tick's changed riders, built from the tick's arrays.

The policy's mirror builds them beside the policy (``mirror.Mirror.tick``, in the worker), serialized, so that the
server's apply only parses them (one C call per rider) instead of building every stop with the protobuf API in its
own interpreter: that was the largest piece of the tick's work in the server (about 2 us a stop, 0.4 s for 30,000
riders with 6 stops; benchmarks/RESULTS.md, "Service, session 6").

Built with the protobuf API in the worker they cost about 2 us a stop as well (~20 ms of a busy slot's call). So
the bytes are written directly in protobuf's wire format, in numpy for all the call's stops at once, as the
protobuf runtime serializes these messages: fields in number order, scalars equal to zero (all bits) left out,
the position always present. Each stop is a run of pieces (its tag and length, kind, order id, position, ETA,
frozen), each piece a row of a small byte matrix or a slice of the call's order ids, and one gather lays every
piece out in order. The bytes are exactly ``Store.route_of(...).SerializeToString()`` for the same route (a
property test compares them, with ETAs and positions at the edges).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from dispatch.service.store import _KIND_TO_PB, ts
from dispatch.state import DROPOFF, PICKUP, Routes
from dispatch.v1 import dispatch_pb2 as pb

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
_ETA_SAFE_S = 2.0**53  # beyond this an ETA has no fraction to round; the protobuf API takes such calls


def _varint_field(tag: int, v: I64, present: npt.NDArray[np.bool_] | None = None) -> tuple[U8, I64]:
    """Each value's varint field: rows of uint8[n, 11] (the tag, then the varint, base 128 with continuation bits;
    a negative int64 as its 64-bit two's complement, 10 bytes), and each row's length in bytes: 0 where the value
    is 0 (protobuf leaves a zero scalar out) or not ``present``."""
    rest = v.astype(np.uint64)
    rows = np.zeros((v.size, 11), dtype=np.uint8)
    rows[:, 0] = tag
    count = np.ones(v.size, dtype=np.int64)
    for b in range(1, 11):
        rows[:, b] = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest = rest >> np.uint64(7)
        more = rest > 0
        if not more.any():
            break
        rows[more, b] |= 0x80
        count += more
    keep = v != 0 if present is None else (v != 0) & present
    return rows, np.where(keep, 1 + count, 0)


def _double_field(tag: int, v: npt.NDArray[np.float64]) -> tuple[U8, I64]:
    """Each double's field (the tag, then 8 bytes little-endian) as rows of uint8[n, 9], and its length: 0 when
    all its bits are zero, as protobuf leaves such a scalar out (-0.0 is written)."""
    rows = np.empty((v.size, 9), dtype=np.uint8)
    rows[:, 0] = tag
    le = np.ascontiguousarray(v, dtype="<f8")
    rows[:, 1:] = le.view(np.uint8).reshape(-1, 8)
    return rows, np.where(le.view(np.uint64) != 0, 9, 0).astype(np.int64)


def _timestamp(eta: npt.NDArray[np.float64]) -> tuple[I64, I64]:
    """Epoch seconds split as ``store.ts`` splits them: (seconds, nanos), int64 each (finite values below
    ``_ETA_SAFE_S``; others give 0, 0)."""
    e = np.where(np.isfinite(eta), eta, 0.0)
    sec = np.floor(e)
    nanos = np.minimum(999_999_999.0, np.rint((e - sec) * 1e9))  # (np.rint rounds half to even, as round does)
    return sec.astype(np.int64), nanos.astype(np.int64)


def route_messages(
    order_ids: Sequence[str],
    latlng: npt.NDArray[np.float64],
    routes: Routes,
    arrive: npt.NDArray[np.float64],
    rows: npt.NDArray[np.int64],
) -> list[bytes]:
    """Serialized Route messages of the riders ``rows`` (int64[k]) of ``routes`` (m rows, as the policy returned
    them), in the order of ``rows``.

    ``order_ids``: the tick's order ids by table index (n); ``latlng``: float64[n, 4], per order the pickup's
    (its site's) lat, lng and the drop-off's lat, lng in degrees; ``arrive``: float64[m, width], each stop's ETA
    (epoch seconds; an empty array: none known). A stop is frozen below ``max(min(routes.frozen[r], length), 1)``
    (0 for an empty route), as the dispatch loop stores it."""
    length = routes.length[rows].astype(np.int64)
    ends = np.cumsum(length)
    n = int(ends[-1]) if ends.size else 0
    rr = np.repeat(rows, length)
    kk = np.arange(n, dtype=np.int64) - np.repeat(ends - length, length)
    order_a = routes.order[rr, kk]
    pick = routes.kind[rr, kk] == PICKUP
    eta = arrive[rr, kk] if arrive.size else np.full(n, math.nan)
    has_eta = np.isfinite(eta)
    if n == 0 or not bool(np.all(np.abs(eta[has_eta]) < _ETA_SAFE_S)):
        return _with_protobuf(order_ids, latlng, routes, arrive, rows)
    # The order ids of the call's stops, each once, in one UTF-8 pool.
    uniq, inv = np.unique(order_a, return_inverse=True)
    ids = [order_ids[o] for o in uniq.tolist()]
    pool = np.frombuffer("".join(ids).encode(), dtype=np.uint8)
    id_len = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    if pool.size != int(id_len.sum()):  # (not all ASCII)
        id_len = np.fromiter((len(i.encode()) for i in ids), dtype=np.int64, count=len(ids))
    id_start = (np.cumsum(id_len) - id_len)[inv]
    id_len = id_len[inv]
    # Each stop's pieces, in field order: Stop.kind (1), order_id (2: tag and length, then the bytes), position
    # (3: tag and length, then LatLng.lat and lng), eta (4: tag and length, then Timestamp.seconds and nanos),
    # frozen (5). The stop itself is Route.stops (1): its tag and length come first.
    kind, kind_len = _varint_field(0x08, np.where(pick, _KIND_TO_PB[PICKUP], _KIND_TO_PB[DROPOFF]))
    id_head, id_head_len = _varint_field(0x12, id_len)
    c = np.where(pick, 0, 2)
    lat, lat_len = _double_field(0x09, latlng[order_a, c])
    lng, lng_len = _double_field(0x11, latlng[order_a, c + 1])
    pos, pos_len = _varint_field(0x1A, lat_len + lng_len)
    pos_len = np.where(pos_len > 0, pos_len, 2)  # (an empty position is still written: tag, length 0)
    sec, nanos = _timestamp(eta)
    sec_f, sec_len = _varint_field(0x08, sec, has_eta)
    nanos_f, nanos_len = _varint_field(0x10, nanos, has_eta)
    eta_h, eta_len = _varint_field(0x22, sec_len + nanos_len)
    eta_len = np.where(has_eta & (eta_len == 0), 2, eta_len)  # (an ETA of exactly 0 is still written)
    fz = np.maximum(np.minimum(routes.frozen[rows], length), 1)
    frozen, frozen_len = _varint_field(0x28, (kk < np.repeat(fz, length)).astype(np.int64))
    size = (kind_len + id_head_len + id_len + pos_len + lat_len + lng_len + eta_len + sec_len + nanos_len
            + frozen_len)  # fmt: skip
    stop, stop_len = _varint_field(0x0A, size)
    stop_len = np.where(stop_len > 0, stop_len, 2)
    pieces: list[tuple[U8 | None, I64]] = [
        (stop, stop_len), (kind, kind_len), (id_head, id_head_len), (None, id_len), (pos, pos_len),
        (lat, lat_len), (lng, lng_len), (eta_h, eta_len), (sec_f, sec_len), (nanos_f, nanos_len),
        (frozen, frozen_len),
    ]  # fmt: skip
    # Every piece in one source array; one gather lays them out stop by stop.
    starts = np.empty((n, len(pieces)), dtype=np.int64)
    lens = np.empty((n, len(pieces)), dtype=np.int64)
    chunks: list[U8] = []
    base = 0
    q = np.arange(n, dtype=np.int64)
    for p, (m, ln) in enumerate(pieces):
        if m is None:
            starts[:, p] = base + id_start
            chunks.append(pool)
        else:
            starts[:, p] = base + q * m.shape[1]
            chunks.append(m.ravel())
        lens[:, p] = ln
        base += chunks[-1].size
    flat = lens.ravel()
    out_start = np.cumsum(flat) - flat
    src = np.concatenate(chunks)
    buf = src[np.repeat(starts.ravel() - out_start, flat) + np.arange(int(flat.sum()), dtype=np.int64)].tobytes()
    at = np.concatenate(([0], np.cumsum(lens.sum(axis=1))))  # each stop's first byte
    first, last = at[ends - length].tolist(), at[ends].tolist()
    return [buf[a:b] for a, b in zip(first, last, strict=True)]


def _with_protobuf(
    order_ids: Sequence[str],
    latlng: npt.NDArray[np.float64],
    routes: Routes,
    arrive: npt.NDArray[np.float64],
    rows: npt.NDArray[np.int64],
) -> list[bytes]:
    """``route_messages`` through the protobuf API (for ETAs too far out for ``_timestamp``)."""
    out: list[bytes] = []
    for r in rows.tolist():
        n = int(routes.length[r])
        fz = max(min(int(routes.frozen[r]), n), 1) if n else 0
        route = pb.Route()
        for s in range(n):
            o, k = int(routes.order[r, s]), int(routes.kind[r, s])
            st = route.stops.add(kind=_KIND_TO_PB[k], order_id=order_ids[o], frozen=s < fz)
            c = 0 if k == PICKUP else 2
            st.position.lat, st.position.lng = float(latlng[o, c]), float(latlng[o, c + 1])
            eta = float(arrive[r, s]) if arrive.size else math.nan
            if math.isfinite(eta):
                ts(eta, st.eta)
        out.append(route.SerializeToString())
    return out
