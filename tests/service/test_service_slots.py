"""The slots' balance (``dispatch.service.loop``): slots of about equal load, the change-over cycle, and the
loop's rebalancing from the orders each site takes in."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_fixtures import make_config

from dispatch.service import loop as loop_mod
from dispatch.service.loop import DispatchLoop, site_slots, slot_load, transition_slots
from dispatch.service.store import Store

N_SITES = 40


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """A store with 40 sites around Shanghai, the last 4 not owned."""
    rng = np.random.default_rng(7)
    sites = [{"id": f"s{i}", "lat": 31.10 + 0.3 * float(rng.random()), "lng": 121.30 + 0.4 * float(rng.random()),
              "service_s": 60.0, "zone_m": 3000.0} for i in range(N_SITES)]  # fmt: skip
    owned = [f"s{i}" for i in range(N_SITES - 4)]
    return Store(make_config(tmp_path_factory.mktemp("slots"), sites={"list": sites, "owned": owned}))


def _z_order(store: Store) -> list[int]:
    """The owned sites in the order slots cut them (one site a slot)."""
    return [int(np.flatnonzero(m & owned_mask(store))[0]) for m in site_slots(store, N_SITES)]


def owned_mask(store: Store) -> np.ndarray:
    return np.array([s.owned for s in store.sites])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    k=st.integers(1, 15),
    w=st.lists(
        st.one_of(st.just(0.0), st.floats(0.0, 10.0), st.floats(50.0, 500.0)), min_size=N_SITES, max_size=N_SITES
    ),
)
def test_slots_by_weight_are_runs_of_neighbours_of_about_equal_load(store, k, w):
    weight = np.array(w)
    masks = site_slots(store, k, weight)
    owned = owned_mask(store)
    assert len(masks) == k
    assert np.all(np.sum(masks, axis=0) == 1)  # every site in exactly one slot
    assert all(m[owned].any() for m in masks)  # none empty
    assert all(masks[0][~owned])  # sites not owned go with the first
    order = _z_order(store)
    pos = {site: p for p, site in enumerate(order)}
    runs = [sorted(pos[i] for i in np.flatnonzero(m & owned).tolist()) for m in masks]
    assert [p for r in runs for p in r] == list(range(len(order)))  # consecutive runs of the same order
    ow = weight[order]
    share = float(ow.sum()) / k
    assert slot_load(masks, np.where(owned, weight, 0.0)).max() <= share + ow.max(initial=0.0) + 1e-9


def test_slots_by_equal_weights_are_the_slots_by_count(store):
    for k in (1, 3, 6, 9):
        got = site_slots(store, k, np.ones(N_SITES))
        want = site_slots(store, k)
        assert [np.flatnonzero(m).tolist() for m in got] == [np.flatnonzero(m).tolist() for m in want]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(2, 8), sites=st.integers(2, 30))
def test_no_site_waits_more_than_a_cycle_while_the_slots_change(data, n, sites):
    """Cycles on the old slots, then the change-over, then the new ones: every site is dispatched in every
    cycle, and never more than one cycle (n slot turns) after its last turn."""
    old_of = data.draw(st.lists(st.integers(0, n - 1), min_size=sites, max_size=sites))
    new_of = data.draw(st.lists(st.integers(0, n - 1), min_size=sites, max_size=sites))

    def masks(of: list[int]) -> list[np.ndarray]:
        return [np.array([o == i for o in of]) for i in range(n)]

    old, new = masks(old_of), masks(new_of)
    cycles = [old, old, transition_slots(old, new), new, new]
    for site in range(sites):
        turns = [c * n + i for c, slots in enumerate(cycles) for i in range(n) if slots[i][site]]
        assert {t // n for t in turns} == set(range(len(cycles)))  # a turn in every cycle
        assert max(np.diff(turns)) <= n


def test_the_loop_rebalances_slots_to_the_orders_its_sites_take_in(store, monkeypatch):
    loop = DispatchLoop(store)
    try:
        n = len(loop.slots)
        assert n == store.cfg.tick_slots or n == N_SITES - 4
        even = np.where(owned_mask(store), 40, 0)
        store.site_orders[:] = even * loop_mod.REBALANCE_CYCLES
        assert not loop.rebalance()  # even loads: the slots by count are as good
        before = loop.slots
        heavy = even.copy()
        heavy[_z_order(store)[:4]] = 900  # four neighbours take most orders
        store.site_orders[:] += heavy * loop_mod.REBALANCE_CYCLES
        for _ in range(3):  # (the load is smoothed over looks)
            if loop.rebalance():
                break
            store.site_orders[:] += heavy * loop_mod.REBALANCE_CYCLES
        assert loop.slots is not before
        assert slot_load(loop.slots, heavy).max() < slot_load(before, heavy).max() / loop_mod.REBALANCE_GAIN
        assert loop._cycle_slots is not None and len(loop._cycle_slots) == n
        store.site_orders[:] += heavy * loop_mod.REBALANCE_CYCLES
        assert not loop.rebalance()  # the same loads: no change
    finally:
        loop.stop()
