"""Min-cost assignment on a sparse candidate set (orders x riders), exact.

The round's problem: every order either takes one of its candidate riders (cost ``c[o, r]``) or stays
unassigned (cost ``unassigned[o]``); every rider takes at most one order. In ``sparse_assignment`` the rows are
given (orders, or riders: see ``assignment_round``); the columns are the other side plus one private "unassigned"
column per row, so a full row matching always exists and the optimum is the same as
``scipy.optimize.linear_sum_assignment`` on the dense matrix ``[C | diag(unassigned)]`` (C = +inf off the
candidate set).

The solver is the shortest-augmenting-path method (as in Jonker-Volgenant and scipy's LSAP) with Dijkstra on the
sparse graph (after Jonker-Volgenant's augmenting row reduction when the graph is dense): one augmentation per
row (the rows with fewest candidates first), a binary heap over the columns reached, and reduced costs kept
non-negative by column potentials. Work per augmentation is bounded by the part of the graph it reaches, so the
usual case (a free column among the candidates) costs O(k log k).
"""

from __future__ import annotations

import numpy as np

from dispatch.kernels._jit import device, kernel

# ``assignment_round`` runs the augmenting row reduction first only when rows average at least this many
# candidates. On the dense 300 x 400 benchmark it halves the solve (0.59 against 1.09 ms); on the dispatch ticks'
# sparse rounds (20 to 27 candidates a row) the shortest paths alone are 5-25% faster, with the same optimum
# (benchmarks/RESULTS.md, "Dispatch tick, session 7").
DENSE_DEGREE = 64


@device
def _heap_push(hk, hv, n, key, val):
    i = n
    hk[i] = key
    hv[i] = val
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= hk[i]:
            break
        hk[p], hk[i] = hk[i], hk[p]
        hv[p], hv[i] = hv[i], hv[p]
        i = p
    return n + 1


@device
def _heap_pop(hk, hv, n):
    key = hk[0]
    val = hv[0]
    n -= 1
    hk[0] = hk[n]
    hv[0] = hv[n]
    i = 0
    while True:
        a = 2 * i + 1
        if a >= n:
            break
        b = a + 1
        c = b if (b < n and hk[b] < hk[a]) else a
        if hk[i] <= hk[c]:
            break
        hk[c], hk[i] = hk[i], hk[c]
        hv[c], hv[i] = hv[i], hv[c]
        i = c
    return key, val, n


@kernel
def _row_reduction(n_rows, n_cols, row_ptr, col_idx, cost, unassigned, v, col_row, row_col):
    """Jonker-Volgenant's augmenting row reduction, to match most rows before the shortest paths.

    A free row takes the column of its least reduced cost ``c - v``; when that beats its second least, the column's
    price ``v`` drops by the difference (so the column stays this row's minimum, and becomes dearer for everyone
    else) and a row it displaces is reconsidered at once; on a tie the row takes the second column instead. Prices
    only drop, so every matched row keeps its column at its minimum: the matching stays optimal for its rows. Two
    passes over the free rows, with a bounded number of steps (the shortest paths finish the rest exactly)."""
    free = np.empty(n_rows, dtype=np.int64)
    n_free = 0
    for i in range(n_rows):
        free[n_free] = i
        n_free += 1
    nxt = np.empty(n_rows, dtype=np.int64)
    budget = 8 * n_rows + 16
    for _pass in range(2):
        n_next = 0
        q = 0
        carry = -1
        while q < n_free or carry >= 0:
            if carry >= 0:
                i = carry
                carry = -1
            else:
                i = free[q]
                q += 1
            # Least and second least reduced cost of row i (its dummy column included).
            j1 = n_cols + i
            u1 = unassigned[i] - v[j1]
            j2 = -1
            u2 = np.inf
            for e in range(row_ptr[i], row_ptr[i + 1]):
                j = col_idx[e]
                h = cost[e] - v[j]
                if h < u1:
                    j2, u2 = j1, u1
                    j1, u1 = j, h
                elif h < u2:
                    j2, u2 = j, h
            i0 = col_row[j1]
            if u1 < u2:
                v[j1] -= u2 - u1
            elif i0 >= 0 and j2 >= 0:
                j1 = j2
                i0 = col_row[j1]
            col_row[j1] = i
            row_col[i] = j1
            if i0 >= 0:
                row_col[i0] = -1
                budget -= 1
                if budget <= 0:
                    nxt[n_next] = i0
                    n_next += 1
                elif u1 < u2:
                    carry = i0
                else:
                    nxt[n_next] = i0
                    n_next += 1
        for a in range(n_next):
            free[a] = nxt[a]
        n_free = n_next
        if n_free == 0 or budget <= 0:
            break


@kernel
def sparse_assignment(n_rows, n_cols, row_ptr, col_idx, cost, unassigned, row_reduction):
    """Solve the round's assignment.

    ``row_ptr`` int64[n_rows + 1], ``col_idx`` int64[E] (rider indices < n_cols), ``cost`` float64[E] (finite
    entries only), ``unassigned`` float64[n_rows]; ``row_reduction``: run the augmenting row reduction first (for
    dense graphs: see ``DENSE_DEGREE``; the optimum is the same either way). Returns ``row_to_col``
    int64[n_rows] (a rider, or -1 when the order stays unassigned) and the objective value (float64)."""
    N = n_cols + n_rows  # real columns then one dummy column per row
    v = np.zeros(N)  # column potentials
    col_row = np.full(N, -1, dtype=np.int64)
    row_col = np.full(n_rows, -1, dtype=np.int64)
    dist = np.full(N, np.inf)
    pred = np.full(N, -1, dtype=np.int64)
    done = np.zeros(N, dtype=np.bool_)
    touched = np.empty(N, dtype=np.int64)
    settled = np.empty(N, dtype=np.int64)
    cap = 2 * (cost.shape[0] + n_rows) + 4
    hk = np.empty(cap)
    hv = np.empty(cap, dtype=np.int64)
    if row_reduction:
        _row_reduction(n_rows, n_cols, row_ptr, col_idx, cost, unassigned, v, col_row, row_col)
    # Row potentials: each row's cheapest reduced entry (its dummy included), so every reduced cost c - u - v is
    # non-negative, as Dijkstra needs; the reduction leaves each matched edge at its row's minimum (tight).
    u = np.empty(n_rows)
    for i in range(n_rows):
        lo = unassigned[i] - v[n_cols + i]
        for e in range(row_ptr[i], row_ptr[i + 1]):
            lo = min(lo, cost[e] - v[col_idx[e]])
        u[i] = lo

    # Free rows take their paths fewest candidates first: a row with few columns has few ways out, and settling it
    # before the rows that could give way saves the later searches work (on the generated 2,000 x 2,000 city's first
    # round, 34% fewer columns settled than in row order; benchmarks/RESULTS.md).
    deg_ptr = np.zeros(n_cols + 2, dtype=np.int64)
    for i in range(n_rows):
        deg_ptr[min(row_ptr[i + 1] - row_ptr[i], n_cols) + 1] += 1
    for g in range(n_cols + 1):
        deg_ptr[g + 1] += deg_ptr[g]
    by_degree = np.empty(n_rows, dtype=np.int64)
    for i in range(n_rows):
        g = min(row_ptr[i + 1] - row_ptr[i], n_cols)
        by_degree[deg_ptr[g]] = i
        deg_ptr[g] += 1
    for rr in range(n_rows):
        r0 = by_degree[rr]
        if row_col[r0] >= 0:
            continue
        n_touched = 0
        n_settled = 0
        hn = 0
        i = r0
        base = 0.0  # distance of the row being scanned
        sink = -1
        lim = np.inf  # least distance of a free column reached so far
        while True:
            # Relax the edges out of row i (real candidates and its dummy).
            for e in range(row_ptr[i], row_ptr[i + 1] + 1):
                if e < row_ptr[i + 1]:
                    j = col_idx[e]
                    c = cost[e]
                else:
                    j = n_cols + i
                    c = unassigned[i]
                if done[j]:
                    continue
                dj = base + c - u[i] - v[j]
                if dj >= lim:
                    continue  # never settled before the free column already reached at ``lim``
                if col_row[j] < 0:
                    lim = dj
                if dj < dist[j]:
                    if dist[j] == np.inf:
                        touched[n_touched] = j
                        n_touched += 1
                    dist[j] = dj
                    pred[j] = i
                    hn = _heap_push(hk, hv, hn, dj, j)
            # Settle the nearest column not yet settled.
            j = -1
            while hn > 0:
                key, cand, hn = _heap_pop(hk, hv, hn)
                if not done[cand] and key == dist[cand]:
                    j = cand
                    break
            if j < 0:
                break  # cannot happen: the dummy column of r0 is always reachable
            done[j] = True
            settled[n_settled] = j
            n_settled += 1
            if col_row[j] < 0:
                sink = j
                break
            i = col_row[j]
            base = dist[j]
        dmin = dist[sink]
        # Dual update (before augmenting, while col_row still names the rows reached through each column):
        # reduced costs stay non-negative and the edges of the new matching are tight.
        u[r0] += dmin
        for q in range(n_settled):
            j = settled[q]
            if j != sink:
                delta = dmin - dist[j]
                u[col_row[j]] += delta
                v[j] -= delta
        # Augment along the path.
        j = sink
        while True:
            i = pred[j]
            col_row[j] = i
            prev = row_col[i]
            row_col[i] = j
            if i == r0:
                break
            j = prev
        for q in range(n_touched):
            jj = touched[q]
            dist[jj] = np.inf
            done[jj] = False
            pred[jj] = -1

    total = 0.0
    out = np.full(n_rows, -1, dtype=np.int64)
    for i in range(n_rows):
        j = row_col[i]
        if j < n_cols:
            out[i] = j
            for e in range(row_ptr[i], row_ptr[i + 1]):
                if col_idx[e] == j:
                    total += cost[e]
                    break
        else:
            total += unassigned[i]
    return out, total


@kernel
def assignment_round(pair_o, pair_r, cost, use, n_riders, reject):
    """One round on the usable candidate pairs: which pairs win.

    ``pair_o``, ``pair_r``: int64[P] sorted by order; ``cost``: float64[P]; ``use``: bool[P] (alive and finite).
    Every order with a usable pair takes one of them or stays unassigned at ``reject[order]`` (float64[n_orders]).
    Returns the winning pair indices (int64[w], ascending; at most one per order and per rider) and the round's
    objective (float64: the winners' costs plus the reject cost of every other order with a usable pair).

    A pair dearer than its order's reject cost never needs to win (the reject option is as cheap and leaves the
    rider free), so only the others enter the solver. The solver's rows are the smaller side: the orders, or the
    riders with ``cost - reject`` as the price of taking an order and 0 for taking none (the same optimum, up to
    the constant sum of the reject costs). Each augmenting path ends at a free column, and with the rows the
    scarce side most rows find one close by: on the generated 2,000 x 2,000 city's first round (riders the scarce
    side) the rider rows settle 25,500 columns, the order rows 64,500 (benchmarks/RESULTS.md)."""
    P = pair_o.shape[0]
    keep = np.zeros(P, dtype=np.bool_)
    base = 0.0  # every order with a usable pair, unassigned
    rider_row = np.full(n_riders, -1, dtype=np.int64)
    rider_deg = np.zeros(n_riders, dtype=np.int64)
    n_orders = 0
    n_e = 0
    last = -1
    last_kept = -1
    for p in range(P):
        if not use[p]:
            continue
        o = pair_o[p]
        if o != last:
            base += reject[o]
            last = o
        if cost[p] < reject[o]:
            keep[p] = True
            n_e += 1
            if o != last_kept:
                n_orders += 1
                last_kept = o
            rider_deg[pair_r[p]] += 1
    n_rid = 0
    for r in range(n_riders):
        if rider_deg[r] > 0:
            rider_row[r] = n_rid
            n_rid += 1
    by_rider = n_rid < n_orders
    n_rows = n_rid if by_rider else n_orders
    n_cols = n_orders if by_rider else n_riders
    row_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    col = np.empty(n_e, dtype=np.int64)
    cst = np.empty(n_e)
    src = np.empty(n_e, dtype=np.int64)
    unassigned = np.zeros(n_rows)
    if by_rider:
        for r in range(n_riders):
            if rider_row[r] >= 0:
                row_ptr[rider_row[r] + 1] = rider_deg[r]
        for i in range(n_rows):
            row_ptr[i + 1] += row_ptr[i]
        fill = row_ptr[:n_rows].copy()
        q = -1
        last = -1
        for p in range(P):
            if not keep[p]:
                continue
            o = pair_o[p]
            if o != last:
                q += 1
                last = o
            i = rider_row[pair_r[p]]
            e = fill[i]
            fill[i] += 1
            col[e] = q
            cst[e] = cost[p] - reject[o]
            src[e] = p
    else:
        row = -1
        last = -1
        e = 0
        for p in range(P):
            if not keep[p]:
                continue
            o = pair_o[p]
            if o != last:
                row += 1
                row_ptr[row] = e
                unassigned[row] = reject[o]
                last = o
            col[e] = pair_r[p]
            cst[e] = cost[p]
            src[e] = p
            e += 1
        row_ptr[n_rows] = e
    match, _obj = sparse_assignment(n_rows, n_cols, row_ptr, col, cst, unassigned, n_e >= DENSE_DEGREE * n_rows)
    wins = np.empty(n_rows, dtype=np.int64)
    w = 0
    for i in range(n_rows):
        j = match[i]
        if j < 0:
            continue
        for e in range(row_ptr[i], row_ptr[i + 1]):
            if col[e] == j:
                wins[w] = src[e]
                w += 1
                break
    wins = np.sort(wins[:w])
    obj = base
    for a in range(w):
        p = wins[a]
        obj += cost[p] - reject[pair_o[p]]
    return wins, obj
