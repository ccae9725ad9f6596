"""Shared test helpers: a plain-Python route simulator (the oracle the kernels are checked against), plain-Python
travel models, and small random instances.

The oracle follows the conventions written in ``dispatch.kernels.route`` and nothing else: a rider leaves its
position at ``avail``; at a pickup it waits until the order is ready, then serves it (no service time when the
previous stop is a pickup at the same site); at a drop-off it serves on arrival; lateness is the arrival at a
drop-off past ``promised``; cost = per_second * (end - avail) + per_metre * metres + per_second_late * lateness.
Hard rules: every order at most once per kind, a pickup before its drop-off, load never above capacity, no
non-frozen pickup reached after the shift end, the trip mode (single site: a non-frozen pickup only with nothing on
board or straight after a pickup at the same site), and optionally at most ``max_orders`` orders in the route.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dispatch.state import DROPOFF, PICKUP, OrderTable, RiderTable, Routes
from dispatch.synthetic import NOW

SINGLE_SITE = 0
MIXED = 1
WEIGHTS = np.array([1.0, 0.05, 20.0], dtype=np.float64)

Point = tuple[float, float, int]
Stop = tuple[int, int]


# --------------------------------------------------------------------------------------------------------------
# Plain-Python travel models: leg(a, b, depart, speed_factor) -> (metres, seconds)
# --------------------------------------------------------------------------------------------------------------


class ConstantTravel:
    """Straight line times ``detour`` at ``mps`` metres per second (divided by the rider's speed factor)."""

    def __init__(self, mps: float, detour: float = 1.3, round_up_s: float = 0.0) -> None:
        self.mps = mps
        self.detour = detour
        self.round_up_s = round_up_s  # > 0: each leg's seconds rounded up to a whole multiple of it

    def leg(self, a: Point, b: Point, depart: float, speed_factor: float) -> tuple[float, float]:
        metres = math.hypot(b[0] - a[0], b[1] - a[1]) * self.detour
        seconds = metres / (self.mps * speed_factor)
        if self.round_up_s > 0.0 and metres > 0.0:
            q = self.round_up_s
            seconds = max(1, math.ceil(seconds / q - 1e-6 / q)) * q
        return metres, seconds


class ProfileTravel:
    """A time-of-day speed profile, integrated through its cumulative-distance function.

    ``D(u)`` = metres covered from local midnight to local second ``u`` of a day; a leg of ``m`` metres leaving at
    local second ``u`` ends where ``D`` has grown by ``m`` (whole days first, then the bin by bisection on the
    cumulative table, then linearly inside the bin). Written independently of the kernel's bin walk."""

    def __init__(self, speeds: Any, bin_seconds: float, detour: float, utc_offset_s: float) -> None:
        self.v = [float(s) for s in speeds]
        self.bin = float(bin_seconds)
        self.period = self.bin * len(self.v)
        self.detour = detour
        self.offset = utc_offset_s
        self.cum = [0.0]
        for s in self.v:
            self.cum.append(self.cum[-1] + s * self.bin)
        self.day_metres = self.cum[-1]

    def _covered(self, u: float) -> float:
        b = min(int(u // self.bin), len(self.v) - 1)
        return self.cum[b] + self.v[b] * (u - b * self.bin)

    def leg(self, a: Point, b: Point, depart: float, speed_factor: float) -> tuple[float, float]:
        metres = math.hypot(b[0] - a[0], b[1] - a[1]) * self.detour
        if metres <= 0.0:
            return metres, 0.0
        local = depart + self.offset
        u = local - math.floor(local / self.period) * self.period
        target = self._covered(u) + metres / speed_factor
        days = math.floor(target / self.day_metres)
        rem = target - days * self.day_metres
        k = min(bisect.bisect_right(self.cum, rem) - 1, len(self.v) - 1)
        u_end = k * self.bin + (rem - self.cum[k]) / self.v[k]
        return metres, days * self.period + u_end - u


class MatrixTravel:
    """Explicit matrices by location index; time of day ignored."""

    def __init__(self, tmat: Any, dmat: Any) -> None:
        self.tmat = np.asarray(tmat, dtype=float)
        self.dmat = np.asarray(dmat, dtype=float)

    def leg(self, a: Point, b: Point, depart: float, speed_factor: float) -> tuple[float, float]:
        return float(self.dmat[a[2], b[2]]), float(self.tmat[a[2], b[2]]) / speed_factor


class ProviderTravel:
    """Legs from a ``dispatch.geo`` TravelTime provider's own ``seconds`` and ``metres`` methods."""

    def __init__(self, provider: Any) -> None:
        self.p = provider

    def leg(self, a: Point, b: Point, depart: float, speed_factor: float) -> tuple[float, float]:
        metres = float(self.p.metres([a[0]], [a[1]], [b[0]], [b[1]])[0])
        secs = float(self.p.seconds([a[0]], [a[1]], [b[0]], [b[1]], [depart], [speed_factor])[0])
        return metres, secs


# --------------------------------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Sim:
    """The oracle's evaluation of one rider's stop sequence."""

    arrive: list[float] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    depart: list[float] = field(default_factory=list)
    load: list[int] = field(default_factory=list)
    onboard: list[int] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    cum_metres: list[float] = field(default_factory=list)
    cum_late: list[float] = field(default_factory=list)
    end: float = 0.0
    metres: float = 0.0
    lateness: float = 0.0
    cost: float = 0.0
    violations: list[str] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return not self.violations


def stop_point(orders: OrderTable, o: int, k: int) -> Point:
    if k == PICKUP:
        return float(orders.pick_x[o]), float(orders.pick_y[o]), int(orders.pick_loc[o])
    return float(orders.drop_x[o]), float(orders.drop_y[o]), int(orders.drop_loc[o])


def simulate(
    orders: OrderTable,
    riders: RiderTable,
    r: int,
    seq: list[Stop],
    *,
    travel: Any,
    n_frozen: int = 0,
    mode: int = SINGLE_SITE,
    weights: Any = WEIGHTS,
    max_orders: int | None = None,
    delay: tuple[int, float] | None = None,
) -> Sim:
    """Ride rider r along ``seq`` ((order, kind) pairs). ``delay = (s, d)`` starts stop s d seconds later than
    it could (a drop-off is reached d later; a pickup starts d after it is reached and ready)."""
    seq = [(int(o), int(k)) for o, k in seq]
    sim = Sim()
    pos: dict[Stop, int] = {}
    for s, stop in enumerate(seq):
        if stop in pos:
            sim.violations.append(f"stop {stop} appears twice")
        pos.setdefault(stop, s)
    for (o, k), s in pos.items():
        if k == PICKUP:
            d = pos.get((o, DROPOFF))
            if d is None:
                sim.violations.append(f"order {o}: pickup without drop-off")
            elif d < s:
                sim.violations.append(f"order {o}: drop-off before pickup")
    n_orders = len({o for o, _ in seq})
    if max_orders is not None and n_orders > max_orders:
        sim.violations.append(f"{n_orders} orders > max_orders {max_orders}")

    onboard0 = [o for o, k in seq if k == DROPOFF and (o, PICKUP) not in pos]
    load = sum(int(orders.size[o]) for o in onboard0)
    cnt = len(onboard0)
    cap = int(riders.capacity[r])
    if load > cap:
        sim.violations.append("initial load over capacity")
    avail = float(riders.avail[r])
    speed = float(riders.speed[r])
    here: Point = (float(riders.x[r]), float(riders.y[r]), int(riders.loc[r]))
    t = avail
    dist = 0.0
    late_total = 0.0
    prev: Stop | None = None
    for s, (o, k) in enumerate(seq):
        after_same_site_pickup = (
            prev is not None and prev[1] == PICKUP and int(orders.site[prev[0]]) == int(orders.site[o])
        )
        if k == PICKUP and s >= n_frozen and mode == SINGLE_SITE and cnt > 0 and not after_same_site_pickup:
            sim.violations.append(f"stop {s}: pickup of order {o} breaks the single-site rule")
        point = stop_point(orders, o, k)
        metres, secs = travel.leg(here, point, t, speed)
        dist += metres
        arrive = t + secs
        extra = delay[1] if delay is not None and delay[0] == s else 0.0
        late = 0.0
        if k == PICKUP:
            start = max(arrive, float(orders.ready[o])) + extra
            depart = start if after_same_site_pickup else start + float(orders.service_pick[o])
            load += int(orders.size[o])
            cnt += 1
            if s >= n_frozen and arrive > float(riders.shift_end[r]):
                sim.violations.append(f"stop {s}: pickup reached after the shift end")
        else:
            arrive += extra
            start = arrive
            depart = arrive + float(orders.service_drop[o])
            load -= int(orders.size[o])
            cnt -= 1
            late = max(0.0, arrive - float(orders.promised[o]))
            late_total += late
        if load > cap:
            sim.violations.append(f"stop {s}: load {load} over capacity {cap}")
        sim.arrive.append(arrive)
        sim.start.append(start)
        sim.depart.append(depart)
        sim.load.append(load)
        sim.onboard.append(cnt)
        sim.late.append(late)
        sim.cum_metres.append(dist)
        sim.cum_late.append(late_total)
        here = point
        t = depart
        prev = (o, k)
    sim.end = t
    sim.metres = dist
    sim.lateness = late_total
    sim.cost = float(weights[0] * (t - avail) + weights[1] * dist + weights[2] * late_total)
    return sim


def close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-6) -> bool:
    """Equal within a relative or an absolute tolerance (both +inf counts as equal)."""
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


# --------------------------------------------------------------------------------------------------------------
# Random instances
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Instance:
    """A small random world: orders, riders, a plain-Python travel model and the kernels' travel tuple."""

    orders: OrderTable
    riders: RiderTable
    travel: Any  # plain-Python model for the oracle
    arrays: tuple[Any, ...]  # the kernels' travel tuple


def random_instance(
    rng: np.random.Generator,
    n_orders: int,
    n_riders: int,
    *,
    n_sites: int = 3,
    kind: str = "constant",
    t0: float = NOW,
    capacity: tuple[int, int] = (2, 9),
    shift: tuple[float, float] = (900.0, 7200.0),
) -> Instance:
    """Orders at ``n_sites`` sites within a few km, riders around them; ``kind`` of travel: constant, profile
    (the default e-bike day, time-dependent), short_bins (5-minute bins of random speeds) or matrix."""
    from dispatch.geo import MatrixTravelTime, ProfileTravelTime, SpeedProfile

    sx = rng.uniform(-2000.0, 2000.0, n_sites)
    sy = rng.uniform(-2000.0, 2000.0, n_sites)
    site = rng.integers(0, n_sites, n_orders)
    drop_x = sx[site] + rng.uniform(-2500.0, 2500.0, n_orders)
    drop_y = sy[site] + rng.uniform(-2500.0, 2500.0, n_orders)
    rx = rng.uniform(-3000.0, 3000.0, n_riders)
    ry = rng.uniform(-3000.0, 3000.0, n_riders)
    # Matrix locations: sites, then drop-offs, then riders.
    pick_loc = site.astype(np.int64)
    drop_loc = n_sites + np.arange(n_orders, dtype=np.int64)
    rider_loc = n_sites + n_orders + np.arange(n_riders, dtype=np.int64)
    orders = OrderTable.build(
        pick_x=sx[site],
        pick_y=sy[site],
        drop_x=drop_x,
        drop_y=drop_y,
        site=site,
        ready=t0 + rng.uniform(-600.0, 1500.0, n_orders),
        promised=t0 + rng.uniform(300.0, 3600.0, n_orders),
        size=rng.integers(1, 4, n_orders),
        service_pick=rng.uniform(0.0, 180.0, n_orders),
        service_drop=rng.uniform(0.0, 120.0, n_orders),
        pick_loc=pick_loc,
        drop_loc=drop_loc,
    )
    riders = RiderTable.build(
        x=rx,
        y=ry,
        avail=t0 + rng.uniform(0.0, 300.0, n_riders),
        shift_end=t0 + rng.uniform(shift[0], shift[1], n_riders),
        capacity=rng.integers(capacity[0], capacity[1], n_riders),
        speed=rng.uniform(0.8, 1.2, n_riders),
        loc=rider_loc,
    )
    if kind == "constant":
        mps = float(rng.uniform(3.0, 6.0))
        provider = ProfileTravelTime(profile=SpeedProfile.constant(mps), detour=1.3)
        return Instance(orders, riders, ConstantTravel(mps, 1.3), provider.arrays())
    if kind == "minutes":  # a constant speed, every leg rounded up to whole minutes
        mps = float(rng.uniform(3.0, 6.0))
        provider = ProfileTravelTime(profile=SpeedProfile.constant(mps), detour=1.3, round_up_s=60.0)
        return Instance(orders, riders, ConstantTravel(mps, 1.3, 60.0), provider.arrays())
    if kind == "profile":
        provider = ProfileTravelTime()
        model = ProfileTravel(provider.profile.speed_mps, provider.profile.bin_seconds, 1.3, 8 * 3600.0)
        return Instance(orders, riders, model, provider.arrays())
    if kind == "short_bins":  # 5-minute bins of varied speeds: legs often cross a bin, and delays move them
        speeds = tuple(float(v) for v in rng.uniform(3.0, 6.0, 288))
        provider = ProfileTravelTime(profile=SpeedProfile(speeds, bin_seconds=300.0))
        model = ProfileTravel(speeds, 300.0, 1.3, 8 * 3600.0)
        return Instance(orders, riders, model, provider.arrays())
    if kind == "matrix":
        px = np.concatenate([sx, drop_x, rx])
        py = np.concatenate([sy, drop_y, ry])
        d = np.hypot(px[:, None] - px[None, :], py[:, None] - py[None, :])
        dmat = d * rng.uniform(1.0, 1.5, d.shape)
        tmat = dmat / rng.uniform(3.0, 6.0, d.shape)
        provider = MatrixTravelTime(tmat, dmat)
        return Instance(orders, riders, MatrixTravel(tmat, dmat), provider.arrays())
    raise ValueError(kind)


def random_sequence(rng: np.random.Generator, full: list[int], onboard: list[int], style: str, site: Any) -> list[Stop]:
    """A stop sequence over orders ``full`` (pickup and drop-off) and ``onboard`` (drop-off only), pickups always
    before their drop-offs. ``bags``: on-board drop-offs first, then per site all pickups then all drop-offs
    (single-site friendly); ``random``: any interleaving."""
    if style == "bags":
        seq: list[Stop] = [(o, DROPOFF) for o in rng.permutation(onboard).tolist()]
        groups: dict[int, list[int]] = {}
        for o in full:
            groups.setdefault(int(site[o]), []).append(o)
        for s in rng.permutation(sorted(groups)).tolist():
            members = groups[s]
            seq += [(o, PICKUP) for o in rng.permutation(members).tolist()]
            seq += [(o, DROPOFF) for o in rng.permutation(members).tolist()]
        return seq
    seq = [(o, DROPOFF) for o in onboard]
    rng.shuffle(seq)
    for o in full:
        i = int(rng.integers(0, len(seq) + 1))
        j = int(rng.integers(i, len(seq) + 1))
        seq.insert(j, (o, DROPOFF))
        seq.insert(i, (o, PICKUP))
    return seq


def random_routes(
    rng: np.random.Generator,
    inst: Instance,
    order_ids: list[int],
    *,
    mode: int,
    feasible_only: bool,
    max_len: int = 8,
    style: str | None = None,
) -> tuple[list[list[Stop]], list[int]]:
    """Deal ``order_ids`` out to the riders as random routes with random frozen prefixes. With
    ``feasible_only`` every route is feasible for the oracle (routes that are not are shortened, then emptied)."""
    m = inst.riders.m
    pool = list(order_ids)
    rng.shuffle(pool)
    seqs: list[list[Stop]] = []
    frozen: list[int] = []
    for r in range(m):
        n_take = int(rng.integers(0, max_len // 2 + 1))
        take, pool = pool[:n_take], pool[n_take:]
        chosen: tuple[list[Stop], int] = ([], 0)
        for attempt in range(12):
            use = take[: max(0, len(take) - attempt // 3)]
            onboard = [o for o in use if rng.random() < 0.3]
            full = [o for o in use if o not in onboard]
            st = style or ("bags" if rng.random() < 0.7 else "random")
            seq = random_sequence(rng, full, onboard, st, inst.orders.site)
            f = int(rng.integers(0, len(seq) + 1)) if rng.random() < 0.6 else 0
            sim = simulate(inst.orders, inst.riders, r, seq, travel=inst.travel, n_frozen=f, mode=mode)
            if sim.feasible or not feasible_only:
                chosen = (seq, f)
                break
        seqs.append(chosen[0])
        frozen.append(chosen[1])
    return seqs, frozen


def routes_of(seqs: list[list[Stop]], frozen: list[int], width: int) -> Routes:
    return Routes.from_lists(seqs, width, frozen)


def rider_tuple(riders: RiderTable, r: int) -> tuple[Any, ...]:
    """The 7-tuple ``sequence_cost`` takes for one rider."""
    return riders.cost_tuple(r)


def seq_arrays(seq: list[Stop], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    n = len(seq) if width is None else width
    so = np.full(max(n, 1), -1, dtype=np.int64)
    sk = np.zeros(max(n, 1), dtype=np.int64)
    for s, (o, k) in enumerate(seq):
        so[s] = o
        sk[s] = k
    return so, sk
