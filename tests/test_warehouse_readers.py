"""Readers: the Parquet is one hive dataset for every tool, and an open database never
blocks a sync nor sees a half-applied one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import duckdb
import pyarrow as pa
import pytest

from hs_sync import registry
from hs_sync.load.transform import transform
from hs_sync.warehouse import Warehouse
from tests.warehouse_helpers import event, land

EVENTS = registry.get("events")


@pytest.fixture
def wh(tmp_path):
    wh = Warehouse(tmp_path / "wh").create()
    land(wh, "events", [event(i) for i in range(10)])
    land(wh, "events", [event(i, experimentId="exp_two") for i in range(10, 14)],
         experiment="exp_two")  # fmt: skip
    transform(wh, registry.DATA_TYPES)
    return wh


def test_pyarrow_dataset_reads_hive_partitions(wh):
    import pyarrow.dataset as ds

    dataset = ds.dataset(wh.parquet_dir("events"), format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == 14
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("onset").type == pa.float64()
    assert set(table.column("experiment_id").to_pylist()) == {"exp_test", "exp_two"}
    assert set(table.column("date").to_pylist()) == {"2024-05-01", "2024-05-02"}
    only = dataset.to_table(filter=ds.field("experiment_id") == "exp_two")
    assert sorted(only.column("id").to_pylist()) == [f"evt_{i:04d}" for i in range(10, 14)]


def test_pandas_reads_hive_partitions(wh):
    import pandas as pd

    frame = pd.read_parquet(wh.parquet_dir("events"))
    assert len(frame) == 14
    assert str(frame["timestamp"].dtype) in ("datetime64[us, UTC]", "datetime64[ns, UTC]")
    assert frame["onset"].dtype == "float64"
    assert frame["onset"].min() == -1500
    assert set(frame["experiment_id"].astype(str)) == {"exp_test", "exp_two"}


def test_polars_reads_hive_partitions(wh):
    import polars as pl

    frame = pl.read_parquet(wh.parquet_dir("events") / "**" / "*.parquet", hive_partitioning=True)
    assert frame.height == 14
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert frame.schema["onset"] == pl.Float64
    assert set(frame["experiment_id"].to_list()) == {"exp_test", "exp_two"}
    assert frame.filter(pl.col("id") == "evt_0003")["content"].to_list() == [
        '{"text":"Grüße, 世界 🎬","n":3}'
    ]


def test_duckdb_reads_hive_partitions(wh):
    con = duckdb.connect()
    glob = str(wh.parquet_dir("events") / "**" / "*.parquet")
    rows = con.execute(
        "SELECT experiment_id, count(*), count(DISTINCT _key) FROM "
        "read_parquet(?, hive_partitioning = true) GROUP BY 1 ORDER BY 1",
        [glob],
    ).fetchall()
    assert rows == [("exp_test", 10, 10), ("exp_two", 4, 4)]


READER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
    count = lambda c: c.execute("SELECT count(*) FROM events").fetchone()[0]
    print(count(con), flush=True)
    sys.stdin.readline()              # the test runs a sync meanwhile
    print(count(con), flush=True)     # same connection: the version it opened
    con.close()                       # reconnecting shows the new version
    print(count(duckdb.connect(sys.argv[1], read_only=True)), flush=True)
    """
)


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_an_open_database_neither_blocks_nor_sees_a_half_applied_sync(wh, mode):
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, str(wh.db_path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "14"
        land(wh, "events", [event(i) for i in range(20, 25)], batch="20240501T110000000000Z-w")
        summary = transform(wh, registry.DATA_TYPES)  # must not wait for the reader
        assert summary["published"] is True
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "14"
        assert proc.stdout.readline().strip() == "19"
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    con = duckdb.connect(str(wh.db_path), read_only=True)
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 19
    con.close()
