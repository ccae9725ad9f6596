"""The Solomon and Li & Lim readers: values read from hand-made files, the published Solomon set when it is
present, a write-then-read round trip, and one clear error per kind of malformed file."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.vrp.readers import InstanceFormatError, read_instance, read_lilim, read_solomon

DATA = Path(__file__).parent / "data" / "vrp"
SOLOMON_SET = Path(__file__).resolve().parents[2] / "shared" / "benchdata" / "solomon" / "instances"


def test_solomon_tiny_values() -> None:
    inst = read_solomon(DATA / "solomon" / "TINY08.txt")
    assert inst.name == "TINY08"
    assert (inst.n, inst.n_vehicles, inst.capacity, inst.horizon) == (8, 4, 50.0, 300.0)
    assert not inst.is_pdptw
    # Row 3 of the file: 3 70 64 10 3 63 10.
    assert (inst.x[3], inst.y[3], inst.demand[3], inst.ready[3], inst.due[3], inst.service[3]) == (
        70.0, 64.0, 10.0, 3.0, 63.0, 10.0,
    )  # fmt: skip
    assert (inst.x[0], inst.y[0], inst.demand[0], inst.service[0]) == (50.0, 50.0, 0.0, 0.0)
    assert inst.demand.sum() == 95.0
    for a in (inst.x, inst.y, inst.demand, inst.ready, inst.due, inst.service):
        assert a.dtype == np.float64 and a.shape == (9,)
    assert inst.pickup.dtype == np.int64 and (inst.pickup == -1).all() and (inst.delivery == -1).all()
    assert inst.dist[3, 6] == pytest.approx(math.hypot(70 - 79, 64 - 53), abs=1e-12)


def test_lilim_tiny_pairs() -> None:
    inst = read_lilim(DATA / "lilim" / "tiny5.txt")
    assert inst.name == "tiny5"
    assert (inst.n, inst.n_vehicles, inst.capacity, inst.horizon) == (10, 3, 20.0, 400.0)
    assert inst.is_pdptw
    pairs = {(p, int(inst.delivery[p])) for p in range(1, 11) if inst.delivery[p] >= 0}
    assert pairs == {(1, 2), (4, 3), (5, 6), (8, 7), (9, 10)}
    for p, d in pairs:
        assert inst.pickup[d] == p and inst.pickup[p] == -1 and inst.delivery[d] == -1
        assert inst.demand[p] > 0 and inst.demand[d] == -inst.demand[p]
    assert inst.pickup[0] == -1 and inst.delivery[0] == -1


def test_read_instance_dispatches_on_format() -> None:
    assert read_instance(DATA / "solomon" / "TINY10.txt", "solomon").n == 10
    assert read_instance(DATA / "lilim" / "tiny5.txt", "lilim").is_pdptw
    with pytest.raises(ValueError, match="unknown instance format 'tsplib'"):
        read_instance(DATA / "lilim" / "tiny5.txt", "tsplib")


def test_wrong_format_is_a_clear_error() -> None:
    with pytest.raises(InstanceFormatError, match=r"tiny5.txt: no 'VEHICLE' section"):
        read_solomon(DATA / "lilim" / "tiny5.txt")
    with pytest.raises(InstanceFormatError, match=r"TINY08.txt, line 1: expected 3 fields"):
        read_lilim(DATA / "solomon" / "TINY08.txt")


@pytest.mark.skipif(not SOLOMON_SET.is_dir(), reason="the shared Solomon set is not on this machine")
def test_published_solomon_set() -> None:
    files = sorted(SOLOMON_SET.glob("*.txt"))
    assert len(files) == 56
    for f in files:
        inst = read_solomon(f)
        assert inst.name == f.stem and inst.n == 100 and inst.n_vehicles == 25
        assert inst.capacity == (
            200.0 if f.stem.startswith(("C1", "R1", "RC1")) else (700.0 if f.stem.startswith("C2") else 1000.0)
        )
    c101 = read_solomon(SOLOMON_SET / "C101.txt")
    assert c101.horizon == 1236.0 and (c101.x[1], c101.y[1], c101.ready[1], c101.due[1]) == (45.0, 68.0, 912.0, 967.0)


MALFORMED = [
    ("solomon_not_a_number.txt", 13, "field 'y' is not a number: '6x'"),
    ("solomon_missing_field.txt", 15, "expected 7 fields"),
    ("solomon_ids_out_of_order.txt", 14, "expected 4, found 9"),
    ("solomon_no_vehicle_section.txt", None, "no 'VEHICLE' section"),
    ("solomon_ready_after_due.txt", 16, "node 6: ready time 90 is after its due time 70"),
    ("solomon_bad_fleet_line.txt", 5, "expected 2 fields (vehicles capacity)"),
    ("lilim_bad_header.txt", 1, "expected 3 fields (vehicles capacity speed)"),
    ("lilim_pair_mismatch.txt", 3, "pickup 1 names delivery 2, but node 2 does not name 1"),
    ("lilim_demand_mismatch.txt", 11, "pickup 9 has demand 15 but its delivery 10 has -10"),
    ("lilim_zero_demand.txt", 9, "node 7 has demand 0"),
    ("lilim_speed.txt", 1, "speed 2 is not supported"),
]


@pytest.mark.parametrize(("name", "line", "text"), MALFORMED)
def test_malformed_files(name: str, line: int | None, text: str) -> None:
    path = DATA / "malformed" / name
    fmt = "lilim" if name.startswith("lilim") else "solomon"
    with pytest.raises(InstanceFormatError) as e:
        read_instance(path, fmt)
    assert e.value.line == line
    assert text in str(e.value)
    assert name in str(e.value)  # the message names the file
    if line is not None:
        assert f"line {line}:" in str(e.value)


def test_every_malformed_file_is_covered() -> None:
    assert {p.name for p in (DATA / "malformed").iterdir()} == {m[0] for m in MALFORMED}


def test_missing_empty_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(InstanceFormatError, match="no such file"):
        read_solomon(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(InstanceFormatError, match="the file is empty"):
        read_lilim(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"3 20 1\n0 1 2 \xff\n")
    with pytest.raises(InstanceFormatError, match=r"bin.txt, line 2: not a text file"):
        read_lilim(tmp_path / "bin.txt")
    with pytest.raises(InstanceFormatError, match="is a directory"):
        read_solomon(tmp_path)


def _solomon_text(name: str, k: int, q: int, rows: list[tuple[int, ...]]) -> str:
    lines = [name, "", "VEHICLE", "NUMBER     CAPACITY", f"  {k}   {q}", "", "CUSTOMER", "CUST NO.  XCOORD. ...", ""]
    lines += ["  ".join(str(v) for v in (i, *r)) for i, r in enumerate(rows)]
    return "\r\n".join(lines) + "\r\n"


@st.composite
def solomon_rows(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, ...]]]:
    n = draw(st.integers(1, 12))
    q = draw(st.integers(10, 500))
    horizon = draw(st.integers(100, 2000))
    rows: list[tuple[int, ...]] = [(draw(st.integers(0, 100)), draw(st.integers(0, 100)), 0, 0, horizon, 0)]
    for _ in range(n):
        ready = draw(st.integers(0, horizon))
        rows.append(
            (
                draw(st.integers(-50, 150)),
                draw(st.integers(-50, 150)),
                draw(st.integers(0, q)),
                ready,
                draw(st.integers(ready, horizon)),
                draw(st.integers(0, 90)),
            )
        )
    return draw(st.integers(1, 30)), q, rows


@settings(max_examples=40, deadline=None)
@given(solomon_rows())
def test_solomon_round_trip(case: tuple[int, int, list[tuple[int, ...]]]) -> None:
    k, q, rows = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "X1.txt"
        path.write_text(_solomon_text("X1", k, q, rows))
        inst = read_solomon(path)
    a = np.asarray(rows, dtype=np.float64)
    assert (inst.name, inst.n, inst.n_vehicles, inst.capacity) == ("X1", len(rows) - 1, k, float(q))
    for col, arr in enumerate((inst.x, inst.y, inst.demand, inst.ready, inst.due, inst.service)):
        assert np.array_equal(arr, a[:, col])
    expected = np.hypot(a[:, 0][:, None] - a[:, 0][None, :], a[:, 1][:, None] - a[:, 1][None, :])
    assert np.allclose(inst.dist, expected, rtol=0, atol=1e-12)
