"""Per-group selection: the cheapest few items of each group, in one pass (``dispatch.sim.offer`` picks the idle
riders a site's pending orders could want with it). Arrays in, arrays out."""

from __future__ import annotations

import numpy as np

from dispatch.kernels._jit import kernel


@kernel
def cheapest_per_group(group, key, quota, n_groups):
    """int64[k], ascending: the items (indices into ``group``, int64[n] with values in [0, n_groups), and ``key``,
    float64[n]) that are among the ``quota[g]`` (int64[n_groups]) smallest keys of their group ``g``, ties to
    the lower index. A group within its quota keeps every item without sorting."""
    n = group.shape[0]
    start = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(n):
        start[group[i] + 1] += 1
    for g in range(n_groups):
        start[g + 1] += start[g]
    fill = start[:n_groups].copy()
    members = np.empty(n, dtype=np.int64)
    for i in range(n):
        members[fill[group[i]]] = i
        fill[group[i]] += 1
    keep = np.zeros(n, dtype=np.bool_)
    for g in range(n_groups):
        a, b = start[g], start[g + 1]
        q = quota[g]
        if q <= 0 or b == a:
            continue
        if b - a <= q:
            for j in range(a, b):
                keep[members[j]] = True
            continue
        seg = members[a:b].copy()
        order = np.argsort(key[seg], kind="mergesort")
        for j in range(q):
            keep[seg[order[j]]] = True
    return np.flatnonzero(keep).astype(np.int64)
