"""Expansion of k-d tree neighbours into candidate pairs (see ``dispatch.candidates`` for the rule)."""

from __future__ import annotations

import numpy as np

from dispatch.kernels._jit import kernel


@kernel
def expand_groups(
    nbr,
    nbr_dist,
    n_ok,
    ok_idx,
    free_at,
    now,
    ref_speed,
    group_ptr,
    members,
    k,
    group_site,
    vis_site,
    vis_rider,
    vis_at,
    accepting,
):
    """Candidate pairs for pickup groups.

    ``nbr``, ``nbr_dist``: int64/float64[G, K] k-d tree neighbours of each group's pickup (index ``n_ok`` = none);
    ``ok_idx``: int64[n_ok] rider ids behind the tree's points; ``free_at``: float64[m]; ``group_ptr``:
    int64[G + 1] into ``members`` (order ids, most urgent first within a group); ``group_site``: int64[G];
    ``vis_site``, ``vis_rider``, ``vis_at``: int64/int64/float64[V] sorted by site, riders that will be at a site
    for a pickup anyway and when (they rank by that time alone); ``accepting``: bool[m]. Returns ``pair_o``, ``pair_r``
    (int64[P], grouped by order) and ``reached`` (bool[len(members)], the member had a rider in reach)."""
    G = nbr.shape[0]
    k_near = k // 2
    k_win = max(0, k - k_near)
    total = 0
    for g in range(G):
        total += (group_ptr[g + 1] - group_ptr[g]) * (k_near + k_win)
    pair_o = np.empty(total, dtype=np.int64)
    pair_r = np.empty(total, dtype=np.int64)
    reached = np.zeros(members.shape[0], dtype=np.bool_)
    w = 0
    for g in range(G):
        size = group_ptr[g + 1] - group_ptr[g]
        want = min(n_ok, 2 * (k + size))
        v0 = np.searchsorted(vis_site, group_site[g], side="left")
        v1 = np.searchsorted(vis_site, group_site[g], side="right")
        cap_n = min(want, nbr.shape[1]) + (v1 - v0)
        rid = np.empty(cap_n, dtype=np.int64)
        score = np.empty(cap_n)
        c = 0
        for q in range(min(want, nbr.shape[1])):
            t = nbr[g, q]
            if t < n_ok:
                rid[c] = ok_idx[t]
                score[c] = max(0.0, free_at[rid[c]] - now) + nbr_dist[g, q] / ref_speed
                c += 1
        for q in range(v0, v1):
            rr = vis_rider[q]
            if not accepting[rr]:
                continue
            sc = max(0.0, vis_at[q] - now)
            dup = False
            for a in range(c):
                if rid[a] == rr:
                    score[a] = min(score[a], sc)
                    dup = True
                    break
            if not dup:
                rid[c] = rr
                score[c] = sc
                c += 1
        if c == 0:
            continue
        rid = rid[:c]
        score = score[:c]
        ranked = rid[np.argsort(score, kind="mergesort")][: k + size]
        nr = ranked.shape[0]
        kn = min(k_near, nr)
        for q in range(size):
            o = members[group_ptr[g] + q]
            reached[group_ptr[g] + q] = True
            for a in range(kn):
                pair_o[w] = o
                pair_r[w] = ranked[a]
                w += 1
            # The window wraps around the ranking (skipping the shared near ranks), so every member gets riders.
            span = nr - kn
            for a in range(min(k_win, span)):
                pair_o[w] = o
                pair_r[w] = ranked[kn + (k_near + q - kn + a) % span]
                w += 1
    return pair_o[:w], pair_r[:w], reached
