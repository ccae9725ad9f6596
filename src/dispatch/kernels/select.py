"""Grouping small integer keys: a stable counting sort (``buckets``; the candidate search, the promise summary),
and the cheapest few items of each group (``dispatch.sim.offer`` picks the idle riders a site's pending orders
could want with it). Arrays in, arrays out."""

from __future__ import annotations

import numpy as np

from dispatch.kernels._jit import kernel


@kernel
def buckets(bucket, n_buckets):
    """A stable counting sort of items by ``bucket`` (int64[n], each in 0..n_buckets-1): the items of bucket b are
    ``order[ptr[b]:ptr[b + 1]]`` (int64[n_buckets + 1], int64[n]), in their original order."""
    ptr = np.zeros(n_buckets + 1, dtype=np.int64)
    for v in range(bucket.shape[0]):
        ptr[bucket[v] + 1] += 1
    for b in range(n_buckets):
        ptr[b + 1] += ptr[b]
    fill = ptr[:n_buckets].copy()
    order = np.empty(bucket.shape[0], dtype=np.int64)
    for v in range(bucket.shape[0]):
        order[fill[bucket[v]]] = v
        fill[bucket[v]] += 1
    return ptr, order


@kernel
def cheapest_per_group(group, key, quota, n_groups):
    """int64[k], ascending: the items (indices into ``group``, int64[n] with values in [0, n_groups), and ``key``,
    float64[n]) that are among the ``quota[g]`` (int64[n_groups]) smallest keys of their group ``g``, ties to
    the lower index. A group within its quota keeps every item; a larger one is cut at its q-th smallest key
    found by partition, in time linear in its size."""
    n = group.shape[0]
    start, members = buckets(group, n_groups)
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
        # The q-th smallest key by partition (linear), then every item below it and, in index order (the bucket
        # keeps it), as many at it as the quota still takes: no sort of the group.
        vals = np.empty(b - a)
        for j in range(a, b):
            vals[j - a] = key[members[j]]
        kth = np.partition(vals, q - 1)[q - 1]
        taken = 0
        for j in range(a, b):
            if key[members[j]] < kth:
                keep[members[j]] = True
                taken += 1
        for j in range(a, b):
            if taken >= q:
                break
            if key[members[j]] == kth:
                keep[members[j]] = True
                taken += 1
    return np.flatnonzero(keep).astype(np.int64)
