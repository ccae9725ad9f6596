"""The Route messages of a tick's changed riders, built from the tick's arrays.

The policy's mirror builds them beside the policy (``mirror.Mirror.tick``, in the worker), serialized, so that the
server's apply only parses them (one C call per rider) instead of building every stop with the protobuf API in its
own interpreter: that was the largest piece of the tick's work in the server (about 2 us a stop, 0.4 s for 30,000
riders with 6 stops; benchmarks/RESULTS.md, "Service, session 6"). The messages are exactly what
``Store.route_of`` builds for the same route (a test compares them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from dispatch.service.store import _KIND_TO_PB, ts
from dispatch.state import PICKUP, Routes
from dispatch.v1 import dispatch_pb2 as pb


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
    length = routes.length[rows]
    ends = np.cumsum(length)
    rr = np.repeat(rows, length)
    kk = np.arange(rr.size) - np.repeat(ends - length, length)
    order_a = routes.order[rr, kk]
    kind_a = routes.kind[rr, kk]
    orders = order_a.tolist()
    kinds = kind_a.tolist()
    etas = arrive[rr, kk].tolist() if arrive.size else [math.nan] * rr.size
    frozen = routes.frozen[rows].tolist()
    # Each stop's position (only the stops' orders are converted: the table may hold many more).
    pick = kind_a == PICKUP
    lat = np.where(pick, latlng[order_a, 0], latlng[order_a, 2]).tolist()
    lng = np.where(pick, latlng[order_a, 1], latlng[order_a, 3]).tolist()
    out: list[bytes] = []
    start = 0
    for j, end in enumerate(ends.tolist()):
        n = end - start
        fz = max(min(frozen[j], n), 1) if n else 0
        route = pb.Route()
        add = route.stops.add
        for s in range(n):
            q = start + s
            o, k, eta = orders[q], kinds[q], etas[q]
            st = add(kind=_KIND_TO_PB[k], order_id=order_ids[o], frozen=s < fz)
            p = st.position
            p.lat, p.lng = lat[q], lng[q]
            if math.isfinite(eta):
                ts(eta, st.eta)
        out.append(route.SerializeToString())
        start = end
    return out
