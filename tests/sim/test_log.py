"""Order logs: the schema on disk, round trips, and malformed logs named by file and column."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dispatch.policy import ParamsError
from dispatch.sim.log import (
    LogError,
    LogMeta,
    LogWriter,
    OrderColumns,
    RiderColumns,
    SiteColumns,
    TravelModel,
    iter_orders,
    read_log,
    read_meta,
    site_index,
    write_log,
)

DAY = 1_750_003_200.0


def _tables(rng: np.random.Generator, n: int = 500, coordinates: str = "wgs84") -> tuple[Any, Any, Any]:
    sid = np.array([10, 20, 30], dtype=np.int64)
    if coordinates == "wgs84":
        sx, sy = np.array([121.47, 121.45, 121.44]), np.array([31.23, 31.22, 31.19])
        jitter = 0.02
    else:
        sx, sy = np.array([0.0, 4000.0, -3000.0]), np.array([0.0, 1000.0, 2500.0])
        jitter = 2000.0
    sites = SiteColumns(sid, sx, sy, np.array([60.0, 90.0, 120.0]), np.full(3, 3000.0),
                        np.array(["Shanghai", "Shanghai", ""]))  # fmt: skip
    site = rng.integers(0, 3, n)
    placed = DAY + rng.uniform(0, 86_400, n)
    orders = OrderColumns(
        order_id=rng.permutation(n).astype(np.int64) + 1000,
        site_id=sid[site],
        drop_x=sx[site] + rng.uniform(-jitter, jitter, n),
        drop_y=sy[site] + rng.uniform(-jitter, jitter, n),
        placed_at=placed,
        ready_at=placed + rng.uniform(120, 900, n),
        promised_by=placed + 1800.0,
        size=rng.integers(1, 4, n).astype(np.int32),
        service_drop_s=rng.uniform(60, 150, n),
    )
    m = 40
    start = DAY + rng.uniform(0, 60_000, m)
    riders = RiderColumns(
        rider_id=np.arange(m, dtype=np.int64),
        site_id=sid[rng.integers(0, 3, m)],
        start_x=sx[0] + rng.uniform(-jitter, jitter, m),
        start_y=sy[0] + rng.uniform(-jitter, jitter, m),
        shift_start=start,
        shift_end=start + 8 * 3600.0,
        capacity=np.full(m, 8, dtype=np.int32),
        speed_factor=rng.uniform(0.8, 1.2, m),
    )
    return sites, orders, riders


def _meta(coordinates: str = "wgs84", travel: TravelModel | None = None) -> LogMeta:
    return LogMeta(coordinates=coordinates, travel=travel or TravelModel(), day_start=DAY, utc_offset_s=28_800.0,
                   name="t", seed=3, scenario={"policy": "kernel"})  # fmt: skip


def _same(a: Any, b: Any) -> None:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype or x.dtype.kind == y.dtype.kind == "U", f.name
        np.testing.assert_array_equal(x, y, err_msg=f.name)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    sites, orders, riders = _tables(np.random.default_rng(1))
    return write_log(tmp_path / "log", _meta(), sites, orders, riders, row_group_rows=128)


@pytest.mark.parametrize("coordinates", ["wgs84", "planar_m"])
def test_round_trip(tmp_path: Path, coordinates: str) -> None:
    sites, orders, riders = _tables(np.random.default_rng(0), coordinates=coordinates)
    travel = TravelModel("constant", (5.0,), 1.0, True) if coordinates == "planar_m" else TravelModel()
    meta = _meta(coordinates, travel)
    write_log(tmp_path, meta, sites, orders, riders, row_group_rows=100)
    log = read_log(tmp_path)
    assert log.meta == meta
    _same(log.sites, sites)
    _same(log.orders, orders.take(np.argsort(orders.placed_at, kind="stable")))  # written sorted by placed_at
    _same(log.riders, riders)
    assert pq.ParquetFile(tmp_path / "orders.parquet").metadata.num_row_groups == 5
    batches = list(iter_orders(tmp_path, batch_rows=64))
    assert [len(b) for b in batches][:2] == [64, 64]
    _same(OrderColumns.concat(batches), log.orders)


def test_schema_on_disk(log_dir: Path) -> None:
    s = pq.read_schema(log_dir / "sites.parquet")
    assert s.names == ["site_id", "lat", "lng", "service_s", "zone_m", "city"]
    assert [str(t) for t in s.types] == ["int64", "double", "double", "double", "double", "string"]
    o = pq.read_schema(log_dir / "orders.parquet")
    assert o.names == ["order_id", "site_id", "drop_lat", "drop_lng", "placed_at", "ready_at", "promised_by", "size",
                       "service_drop_s"]  # fmt: skip
    assert [str(t) for t in o.types] == ["int64", "int64", "double", "double", "double", "double", "double", "int32",
                                         "double"]  # fmt: skip
    r = pq.read_schema(log_dir / "riders.parquet")
    assert r.names == ["rider_id", "site_id", "start_lat", "start_lng", "shift_start", "shift_end", "capacity",
                       "speed_factor"]  # fmt: skip
    meta = json.loads((log_dir / "meta.json").read_text())
    assert meta["format"] == "dispatch-order-log" and meta["version"] == 1 and meta["coordinates"] == "wgs84"
    assert meta["travel"]["kind"] == "profile" and len(meta["travel"]["speed_mps"]) == 24
    assert meta["counts"] == {"sites": 3, "orders": 500, "riders": 40}
    assert meta["day_start"] == DAY and meta["utc_offset_s"] == 28_800.0 and meta["seed"] == 3


def _rewrite(log_dir: Path, file: str, change: Any) -> None:
    """Replace ``file`` by ``change(table)``."""
    path = log_dir / file
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def _set_column(name: str, values: Any, type_: Any = None) -> Any:
    def change(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index(name)
        return t.set_column(i, name, pa.array(values, type=type_))

    return change


def _modified(name: str, fn: Any, type_: Any = None) -> Any:
    def change(t: pa.Table) -> pa.Table:
        col = t.column(name).to_numpy().copy()
        i = t.schema.get_field_index(name)
        return t.set_column(i, name, pa.array(fn(col, t), type=type_))

    return change


def _nan_at_3(c: Any, t: Any) -> Any:
    c[3] = np.nan
    return c


def _early_promise(c: Any, t: Any) -> Any:
    c[7] = t.column("placed_at").to_numpy()[7] - 1.0
    return c


def _unknown_site(c: Any, t: Any) -> Any:
    c[11] = 99
    return c


def _dup_id(c: Any, t: Any) -> Any:
    c[1] = c[0]
    return c


def _bad_lat(c: Any, t: Any) -> Any:
    c[2] = 91.0
    return c


def _shift_backwards(c: Any, t: Any) -> Any:
    c[1] = t.column("shift_start").to_numpy()[1] - 60.0
    return c


def _nulls(t: pa.Table) -> pa.Table:
    vals = t.column("placed_at").to_pylist()
    vals[6] = None
    return t.set_column(t.schema.get_field_index("placed_at"), "placed_at", pa.array(vals, pa.float64()))


MALFORMED = [
    ("orders.parquet", lambda t: t.drop_columns(["promised_by"]), "orders.parquet", "promised_by", "missing"),
    ("orders.parquet", _modified("ready_at", _nan_at_3), "orders.parquet", "ready_at", "1 NaN or infinite values"),
    ("orders.parquet", _modified("promised_by", _early_promise), "orders.parquet", "promised_by",
     "earlier than placed_at in 1 rows, first at row 7"),
    ("orders.parquet", _modified("site_id", _unknown_site), "orders.parquet", "site_id",
     "1 rows name a site that is not in sites.parquet, first site 99 at row 11"),
    ("orders.parquet", _modified("size", lambda c, t: c.astype(str)), "orders.parquet", "size",
     "expected an integer type, got string"),
    ("orders.parquet", _nulls, "orders.parquet", "placed_at", "1 null values, first at row 6"),
    ("orders.parquet", _modified("order_id", _dup_id), "orders.parquet", "order_id", "ids must be unique"),
    ("orders.parquet", _modified("drop_lat", _bad_lat), "orders.parquet", "drop_lat", "must be in [-90, 90]"),
    ("orders.parquet", _modified("size", lambda c, t: c * 0), "orders.parquet", "size", "must be >= 1"),
    ("orders.parquet", lambda t: t.rename_columns(["x" if n == "drop_lng" else n for n in t.column_names]),
     "orders.parquet", "drop_lng", "missing"),
    ("sites.parquet", _modified("site_id", _dup_id), "sites.parquet", "site_id", "ids must be unique"),
    ("sites.parquet", _modified("zone_m", lambda c, t: -c), "sites.parquet", "zone_m", "must be > 0"),
    ("riders.parquet", _modified("shift_end", _shift_backwards), "riders.parquet", "shift_end",
     "must be after shift_start"),
    ("riders.parquet", _modified("capacity", lambda c, t: c.astype(np.float64), pa.float64()), "riders.parquet",
     "capacity", "expected an integer type, got double"),
    ("riders.parquet", _modified("site_id", _unknown_site), "riders.parquet", "site_id", "not in sites.parquet"),
]  # fmt: skip


@pytest.mark.parametrize(("file", "change", "err_file", "column", "message"), MALFORMED,
                         ids=[f"{m[3]}-{m[4][:20]}" for m in MALFORMED])  # fmt: skip
def test_malformed_log_names_file_and_column(
    log_dir: Path, file: str, change: Any, err_file: str, column: str, message: str
) -> None:
    _rewrite(log_dir, file, change)
    with pytest.raises(LogError) as info:
        read_log(log_dir)
    assert (info.value.file, info.value.column) == (err_file, column)
    assert str(info.value).startswith(f"{err_file}: column {column}: ")
    assert message in str(info.value)


def test_wrong_coordinate_columns_get_a_hint(tmp_path: Path) -> None:
    sites, orders, riders = _tables(np.random.default_rng(0), coordinates="planar_m")
    write_log(tmp_path, _meta("planar_m"), sites, orders, riders)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["coordinates"] = "wgs84"
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(LogError, match=r"sites.parquet: column lat: missing .*but the file has planar_m columns"):
        read_log(tmp_path)


@pytest.mark.parametrize(
    ("key", "value", "column", "message"),
    [
        ("coordinates", "utm", "coordinates", "must be one of ['wgs84', 'planar_m']"),
        ("version", 2, "version", "this reader knows version 1"),
        ("day_start", "monday", "day_start", "expected int or float"),
        ("travel", {"kind": "teleport"}, "travel.kind", "must be one of"),
        ("travel", {"kind": "constant", "speed_mps": [4.0, 5.0]}, "travel.speed_mps", "takes one speed"),
        ("travel", {"kind": "profile", "warp": 9}, "travel.warp", "unknown key"),
        ("counts", {"sites": 3, "orders": 499, "riders": 40}, None, "has 500 rows but meta.json counts.orders"),
    ],
)
def test_bad_meta_is_named(log_dir: Path, key: str, value: Any, column: str | None, message: str) -> None:
    meta = json.loads((log_dir / "meta.json").read_text())
    meta[key] = value
    (log_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(LogError) as info:
        read_log(log_dir)
    assert info.value.column == column and message in str(info.value)
    assert info.value.file == ("orders.parquet" if key == "counts" else "meta.json")


def test_missing_files(log_dir: Path) -> None:
    (log_dir / "riders.parquet").unlink()
    with pytest.raises(LogError, match=r"^riders.parquet: missing"):
        read_log(log_dir)
    (log_dir / "meta.json").unlink()
    with pytest.raises(LogError, match=r"^meta.json: missing .*incomplete"):
        read_meta(log_dir)
    (log_dir / "meta.json").write_text("{not json")
    with pytest.raises(LogError, match=r"^meta.json: not valid JSON"):
        read_meta(log_dir)
    with pytest.raises(LogError, match=r"not a directory"):
        read_log(log_dir / "orders.parquet")


def test_unsorted_orders_are_sorted_on_read_but_not_streamed(log_dir: Path) -> None:
    before = read_log(log_dir).orders
    _rewrite(log_dir, "orders.parquet", lambda t: t.take(pa.array(np.arange(t.num_rows)[::-1])))
    _same(read_log(log_dir).orders, before)
    with pytest.raises(LogError, match=r"^orders.parquet: column placed_at: orders must be sorted by placed_at"):
        list(iter_orders(log_dir, batch_rows=50))


def test_lenient_types_timestamps_and_extra_columns(log_dir: Path) -> None:
    before = read_log(log_dir)

    def change(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("placed_at")
        us = np.round(t.column("placed_at").to_numpy() * 1e6).astype("datetime64[us]")
        t = t.set_column(i, "placed_at", pa.array(us, pa.timestamp("us", tz="UTC")))
        t = t.set_column(t.schema.get_field_index("site_id"), "site_id", t.column("site_id").cast(pa.int16()))
        return t.append_column("customer", pa.array(["x"] * t.num_rows))

    _rewrite(log_dir, "orders.parquet", change)
    after = read_log(log_dir)
    np.testing.assert_allclose(after.orders.placed_at, before.orders.placed_at, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(after.orders.site_id, before.orders.site_id)
    assert after.orders.site_id.dtype == np.int64
    _rewrite(log_dir, "sites.parquet", lambda t: t.drop_columns(["city"]))  # city is optional
    assert list(read_log(log_dir).sites.city) == ["", "", ""]


def test_writer_checks_what_it_writes(tmp_path: Path) -> None:
    sites, orders, riders = _tables(np.random.default_rng(2))
    srt = orders.take(np.argsort(orders.placed_at))
    with LogWriter(tmp_path, _meta(), sites) as w:
        w.write_orders(srt.take(slice(100, 200)))
        with pytest.raises(LogError, match=r"^orders.parquet: column placed_at: orders must be sorted"):
            w.write_orders(srt.take(slice(0, 100)))
        bad = replace(riders, capacity=riders.capacity * 0)
        with pytest.raises(LogError, match=r"^riders.parquet: column capacity: must be >= 1"):
            w.write_riders(bad)
        with pytest.raises(LogError, match=r"^orders.parquet: column size: expected dtype int32, got int64"):
            w.write_orders(replace(srt, size=srt.size.astype(np.int64)))
    assert (tmp_path / "meta.json").exists()  # the context closed cleanly (the errors were caught)
    with pytest.raises(RuntimeError), LogWriter(tmp_path / "b", _meta(), sites) as w:
        w.write_orders(srt)
        raise RuntimeError("crash")
    assert not (tmp_path / "b" / "meta.json").exists()  # an interrupted log has no header
    with pytest.raises(LogError, match=r"^meta.json: missing"):
        read_log(tmp_path / "b")


def test_site_index() -> None:
    sites, _, _ = _tables(np.random.default_rng(0))
    np.testing.assert_array_equal(site_index(sites, [30, 10, 10, 20]), [2, 0, 0, 1])
    with pytest.raises(LogError, match=r"first site 5 at row 1"):
        site_index(sites, [10, 5])


@pytest.mark.parametrize("site_ids", [[3, 0, 2, 1], [10, 20, 30], [7, 10**12, 5], [0]])
def test_site_index_matches_a_dict(site_ids: list[int]) -> None:
    """Both ways of looking ids up (a table for small ids, a binary search for large ones) give every id its row,
    and name the first id that is not a site, whether below, between or above the sites' ids."""
    sites, _, _ = _tables(np.random.default_rng(0))
    n = len(site_ids)
    sites = replace(sites, **{f.name: getattr(sites, f.name)[np.arange(n) % len(sites.site_id)]
                              for f in fields(sites)})  # fmt: skip
    sites = replace(sites, site_id=np.asarray(site_ids, dtype=np.int64))
    row = {sid: i for i, sid in enumerate(site_ids)}
    query = [site_ids[i % n] for i in range(7, 0, -1)]
    np.testing.assert_array_equal(site_index(sites, query), [row[q] for q in query])
    for unknown in (-1, 1, min(site_ids) + 1, max(site_ids) + 1, 2 * max(site_ids) + 5000, -(10**15)):
        if unknown in row:
            continue
        with pytest.raises(LogError, match=rf"1 rows name a site .* first site {unknown} at row 2"):
            site_index(sites, [*query[:2], unknown, query[0]], offset=0)


def test_travel_model_validation() -> None:
    assert TravelModel("constant", 4.0).speed_mps == (4.0,)  # type: ignore[arg-type]
    assert TravelModel.from_json(TravelModel("constant", (4.0,), 1.0, True).to_json()) == TravelModel(
        "constant", (4.0,), 1.0, True
    )
    assert TravelModel.from_json({"kind": "profile"}) == TravelModel()
    with pytest.raises(ParamsError, match=r"^round_up_minutes: only a constant"):
        TravelModel(round_up_minutes=True)
    with pytest.raises(ParamsError, match=r"^speed_mps: must be finite numbers > 0, got -1 at index 2"):
        TravelModel(speed_mps=(1.0, 2.0, -1, 3.0))
    with pytest.raises(ParamsError, match=r"^speed_mps: a profile needs"):
        TravelModel(speed_mps=(1.0,) * 7)
