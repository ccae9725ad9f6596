"""Tests for dispatch.sim.loop.run_shard: determinism, timelines in order, shifts and sites respected, and the
riders' bookkeeping adding up."""

from __future__ import annotations

import numpy as np
import pytest

from dispatch.geo import ProfileTravelTime
from dispatch.policy import DispatchParams, make_policy
from dispatch.sim.loop import ShardDay, ShardResult, run_shard
from dispatch.state import OrderTable, RiderTable
from dispatch.synthetic import NOW

SITE_GAP_M = 1e8  # sites in separate frames: no rider can reach another site


def small_day(
    seed: int, n: int = 200, m: int = 40, n_sites: int = 2, hours: float = 2.0
) -> tuple[ShardDay, np.ndarray]:
    rng = np.random.default_rng(seed)
    start = NOW - 3600.0
    sx = np.arange(n_sites) * SITE_GAP_M
    site = rng.integers(0, n_sites, n)
    placed = np.sort(start + rng.uniform(0.0, hours * 3600.0, n))
    r = 2500.0 * np.sqrt(rng.random(n))
    a = rng.random(n) * 2 * np.pi
    orders = OrderTable.build(
        pick_x=sx[site],
        pick_y=np.zeros(n),
        drop_x=sx[site] + r * np.cos(a),
        drop_y=r * np.sin(a),
        site=site,
        ready=placed + rng.uniform(60.0, 480.0, n),
        promised=placed + 3600.0,
        size=rng.integers(1, 3, n),
        service_pick=np.full(n, 60.0),
        service_drop=np.full(n, 90.0),
        placed=placed,
    )
    home = np.arange(m) % n_sites
    shift_start = start + np.where(np.arange(m) < m // 2, 0.0, 1800.0)
    riders = RiderTable.build(
        x=sx[home],
        y=np.zeros(m),
        avail=shift_start,
        shift_start=shift_start,
        shift_end=shift_start + rng.uniform(2.5, 3.5, m) * 3600.0,
        capacity=np.full(m, 6),
        speed=rng.uniform(0.9, 1.1, m),
    )
    day = ShardDay(orders, np.arange(1000, 1000 + n, dtype=np.int64), riders, np.arange(m, dtype=np.int64),
                   ProfileTravelTime().arrays(), start)  # fmt: skip
    return day, home


def run(day: ShardDay, policy: str = "kernel") -> ShardResult:
    params = DispatchParams()
    return run_shard(day, make_policy(policy, params), params)


@pytest.mark.parametrize("policy", ["kernel", "greedy"])
def test_timelines_shifts_and_sites(policy: str) -> None:
    day, home = small_day(3)
    shift_start = day.riders.shift_start.copy()
    shift_end = day.riders.shift_end.copy()
    res = run(day, policy)
    o = day.orders
    done = ~np.isnan(res.delivered_at)
    assert done.sum() > 0.8 * o.n  # a light day: most orders are delivered
    assigned = ~np.isnan(res.assigned_at)
    assert np.all(assigned[done]) and np.all(~np.isnan(res.picked_at[done]))
    assert np.all(res.assigned_at[assigned] >= o.placed[assigned])
    assert np.all(res.picked_at[done] >= np.maximum(o.ready[done], res.assigned_at[done]) - 1e-6)
    assert np.all(res.delivered_at[done] > res.picked_at[done])
    rid = res.rider[assigned]
    assert np.all(rid >= 0)
    # A rider takes orders only within its shift, and only at its own site.
    assert np.all(res.assigned_at[assigned] >= shift_start[rid])
    assert np.all(res.assigned_at[assigned] < shift_end[rid])
    assert np.all(home[rid] == o.site[assigned])
    # Bookkeeping: deliveries per rider add up; riders ride some distance; paid time covers the shift.
    assert int(res.rider_delivered.sum()) == int(done.sum())
    worked = res.rider_delivered > 0
    assert np.all(res.rider_metres[worked] > 0)
    assert np.all(res.rider_online_s[worked] >= (shift_end - shift_start)[worked] - 1e-6)


def test_deterministic() -> None:
    a = run(small_day(5)[0])
    b = run(small_day(5)[0])
    for name in ("assigned_at", "picked_at", "delivered_at", "rider", "rider_metres", "rider_online_s"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_no_riders_no_deliveries_and_the_clock_ends() -> None:
    day, _ = small_day(7, n=20, m=1)
    day.riders.shift_start[:] = day.start + 10 * 24 * 3600.0  # the only rider starts long after the day
    day.riders.shift_end[:] = day.riders.shift_start + 3600.0
    day.riders.avail[:] = day.riders.shift_start
    res = run(day)
    assert np.all(np.isnan(res.delivered_at)) and np.all(res.rider == -1)
    assert res.end <= day.orders.placed[-1] + 4 * 3600.0 + DispatchParams().tick_s


def test_idle_riders_ride_back_to_their_site() -> None:
    """Closed-form homing: position after t seconds, kilometres counted when it stops, no overshoot."""
    from dispatch.sim.loop import Homing

    travel = ProfileTravelTime().arrays()
    riders = RiderTable.build(x=[0.0, 0.0], y=[0.0, 0.0], avail=[NOW] * 2, shift_end=[NOW + 3600] * 2, capacity=[4] * 2)
    homing = Homing(riders, travel)  # home = (0, 0)
    riders.x[:] = [1000.0, 5.0]  # both just emptied their bags here, at NOW
    homing.start(riders, np.array([0, 1]))
    params, speed = travel[0], travel[1]
    v = speed[int((NOW + params[2]) // params[0]) % speed.shape[0]] / params[1]
    homing.place(riders, NOW + 15.0)
    assert riders.x[0] == pytest.approx(1000.0 - 15.0 * v) and riders.x[1] == 0.0
    metres = np.zeros(2)
    homing.stop(riders, np.array([0, 1]), np.array([NOW + 15.0, NOW + 600.0]), metres)
    assert metres[0] == pytest.approx(15.0 * v * params[1])
    assert metres[1] == pytest.approx(5.0 * params[1])  # arrived: no overshoot
    homing.stop(riders, np.array([0]), NOW + 900.0, metres)  # stopping twice counts nothing more
    assert metres[0] == pytest.approx(15.0 * v * params[1])


def test_a_rider_found_home_stops_homing_with_its_ride_counted() -> None:
    """With the day's counter, ``place`` ends the homing of a rider it finds home (in shift), counting exactly what
    ``stop`` would count later; a rider not home yet, or home after its shift end, is left to ``stop``."""
    from dispatch.sim.loop import Homing

    travel = ProfileTravelTime().arrays()

    def three() -> RiderTable:
        return RiderTable.build(x=[0.0] * 3, y=[0.0] * 3, avail=[NOW] * 3, shift_end=[NOW + 3600, NOW + 3600, NOW + 60],
                                capacity=[4] * 3)  # fmt: skip

    counted, riders = np.zeros(3), three()
    homing = Homing(riders, travel, counted)
    riders.x[:] = [5.0, 5000.0, 5.0]  # all emptied their bags here at NOW; rider 2's shift ends at NOW + 60
    homing.start(riders, np.array([0, 1, 2]))
    homing.place(riders, NOW + 600.0)
    assert counted[0] > 0.0 and counted[1] == 0.0 and counted[2] == 0.0
    assert np.isnan(homing.t0[0]) and not np.isnan(homing.t0[1]) and not np.isnan(homing.t0[2])
    later = np.array([NOW + 900.0, NOW + 900.0, NOW + 60.0])
    homing.stop(riders, np.array([0, 1, 2]), later, counted)

    plain, riders2 = np.zeros(3), three()  # the same rides, counted by ``stop`` alone
    homing2 = Homing(riders2, travel)
    riders2.x[:] = [5.0, 5000.0, 5.0]
    homing2.start(riders2, np.array([0, 1, 2]))
    homing2.place(riders2, NOW + 600.0)
    homing2.stop(riders2, np.array([0, 1, 2]), later, plain)
    assert np.array_equal(counted, plain) and np.array_equal(riders.x, riders2.x)


def test_inert_riders_left_out_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel policy's ticks are offered neither the riders that accept no order (a full bag, here at two
    orders) nor any rider of a site whose pending orders are all held for batching: the day's outcome is the
    same, to the last bit, as when they are offered, with fewer riders offered."""
    import dataclasses

    import dispatch.sim.loop as loop

    def fresh() -> ShardDay:  # the loop moves the riders of the day it runs: each run gets its own
        day, home = small_day(5, n=300, m=30, n_sites=4)
        return dataclasses.replace(day, rider_site=home.astype(np.int64))

    params = DispatchParams(max_orders_per_rider=2, hold_s=60.0)
    offered: list[int] = []
    real_riders = loop._Offer.riders

    def counting(self: loop._Offer, *args: object) -> np.ndarray:
        rows = real_riders(self, *args)  # type: ignore[arg-type]
        offered.append(int(rows.shape[0]))
        return rows

    monkeypatch.setattr(loop._Offer, "riders", counting)
    pruned = run_shard(fresh(), make_policy("kernel", params), params)
    n_pruned = sum(offered)
    offered.clear()
    real_init = loop._Offer.__init__

    def offer_all(self: loop._Offer, *args: object) -> None:
        real_init(self, *args)  # type: ignore[arg-type]
        self.inert_out = False

    monkeypatch.setattr(loop._Offer, "__init__", offer_all)
    full = run_shard(fresh(), make_policy("kernel", params), params)
    assert n_pruned < sum(offered)
    for name in ("assigned_at", "picked_at", "delivered_at", "rider", "rider_metres", "rider_online_s"):
        np.testing.assert_array_equal(getattr(pruned, name), getattr(full, name), err_msg=name)
