"""Helpers for the warehouse tests: land hand-written raw files, read tables back."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import duckdb
import orjson

from hs_sync.land import rawfile
from hs_sync.registry import DataType
from hs_sync.warehouse import Warehouse

EXP = "exp_test"


def land(
    wh: Warehouse,
    type_name: str,
    records: list[Any],
    batch: str = "20240501T100000000000Z-w",
    experiment: str = EXP,
    seq: int = 0,
    compression: str = "none",
) -> Path:
    """Write one raw data file as the extraction lays it out (bytes lines pass as is);
    `compression` is "none", "zstd" (as a sync writes them) or "gzip" (read too)."""
    folder = wh.raw_dir(type_name, experiment) / batch
    folder.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    data = b"".join(line + b"\n" for line in lines)
    if compression == "gzip":
        path, data = folder / f"{seq:05d}.ndjson.gz", gzip.compress(data)
    else:
        path = folder / f"{seq:05d}{rawfile.SUFFIXES[compression]}"
        data = rawfile.encode(data, compression)
    path.write_bytes(data)
    (folder / f"{seq:05d}.meta.json").write_bytes(b'{"rows": %d}' % len(records))
    return path


def db_rows(wh: Warehouse, table: str, order: str = "_key") -> list[dict[str, Any]]:
    con = duckdb.connect(str(wh.db_path), read_only=True)
    try:
        cur = con.execute(f'SELECT * FROM "{table}" ORDER BY {order}')
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


LINEAGE = ("_synced_at", "_raw_file")  # when and from which raw file a row was landed


def content_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """A table's or view's columns in order, without the lineage columns."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in rows if r[0] not in LINEAGE]


def content_rows(root: Path, table: str) -> list[tuple]:
    """A table's rows in key order, lineage columns left out, each value as text."""
    con = duckdb.connect(str(Warehouse(root).db_path), read_only=True)
    try:
        cols = content_columns(con, table)
        select = ", ".join(f'"{c}"::VARCHAR' for c in cols)
        return con.execute(f'SELECT {select} FROM "{table}" ORDER BY _key').fetchall()
    finally:
        con.close()


def query(wh: Warehouse, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(wh.db_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def parquet_table(wh: Warehouse, dt: DataType):
    """The type's Parquet dataset as one Arrow table, sorted by key (hive columns dropped)."""
    import pyarrow.dataset as ds

    from hs_sync.load.parquet import dataset_files

    if not dataset_files(wh, dt.name):
        return dt.arrow_schema.empty_table()
    dataset = ds.dataset(wh.parquet_dir(dt.name), format="parquet", partitioning="hive")
    table = dataset.to_table()
    drop = [n for n in ("experiment_id", "date") if n in table.column_names]
    return table.drop_columns(drop).sort_by("_key")


def event(i: int, **changes: Any) -> dict[str, Any]:
    """An events record shaped as the API sends it."""
    record = {
        "id": f"evt_{i:04d}",
        "experimentId": EXP,
        "roomId": "room_a",
        "participantId": "pt_1",
        "onset": -1500 + 100 * i,
        "timestamp": f"2024-05-0{1 + i % 2}T10:00:{i % 60:02d}.{i % 1000:03d}Z",
        "category": "component",
        "eventType": "component.complete",
        "componentType": None,
        "content": {"text": "Grüße, 世界 🎬", "n": i},
        "stateId": "s1",
        "stateName": "Intro",
        "participantRole": "host",
        "response": None,
    }
    record.update(changes)
    return record
