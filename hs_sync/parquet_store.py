"""Hive-partitioned Parquet: apply a batch of typed rows, never a duplicate key.

`parquet/<type>/experiment_id=<id>/date=<YYYY-MM-DD>/part-*.parquet` for
time-series types, `parquet/<type>/experiment_id=<id>/` for the rest. Every
file has exactly the registry's Arrow schema. A batch only touches the
partitions its rows fall in:
- rows with new keys are appended as one new file (temporary name, renamed);
- rows whose key is already stored with the same content are skipped;
- rows that change a stored key (and small-file compaction) rewrite the files
  that hold those keys: the partition is rebuilt beside the live one (untouched
  files hard-linked) and the two folders are exchanged in one atomic rename
  (`renameat2(RENAME_EXCHANGE)` on Linux; elsewhere two renames, during which
  the partition is briefly absent, never doubled).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from hs_sync.duck import quote, sql
from hs_sync.registry import DataType
from hs_sync.warehouse import Warehouse, fsync_path

SMALL_FILE_BYTES = 32 * 1024 * 1024  # files below this are merged by compaction
MAX_SMALL_FILES = 8  # compact a partition once it would hold more small files
ROW_GROUP_ROWS = 128 * 1024
BATCH_ROWS = 32 * 1024


@dataclass
class ParquetResult:
    rows_written: int = 0
    files_written: int = 0
    partitions: set[str] = field(default_factory=set)
    rewritten: set[str] = field(default_factory=set)


def visible_files(folder: Path) -> list[Path]:
    """The Parquet files readers see in a folder (dot and underscore names are private)."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix == ".parquet" and not p.name.startswith((".", "_")) and p.is_file()
    )


def dataset_files(warehouse: Warehouse, type_name: str) -> list[Path]:
    """Every visible Parquet file of one data type."""
    root = warehouse.parquet_dir(type_name)
    if not root.exists():
        return []
    return sorted(
        p
        for p in root.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )


def partition_expr(dt: DataType) -> str:
    """SQL for a row's partition folder, from `__exp` and (time series) the cursor's UTC date."""
    if dt.date_partitioned and dt.cursor:
        return (
            "'experiment_id=' || __exp || '/date=' || "
            f"strftime(timezone('UTC', {quote(dt.cursor)}), '%Y-%m-%d')"
        )
    return "'experiment_id=' || __exp"


def apply(
    con: duckdb.DuckDBPyConnection, warehouse: Warehouse, dt: DataType, batch: str
) -> ParquetResult:
    """Apply relation `batch` (registry columns, `__part`, `__multi`, one row per key)."""
    root = warehouse.parquet_dir(dt.name)
    staging = warehouse.state_dir / "parquet-staging"
    result = ParquetResult()
    parts = [r[0] for r in con.execute(sql("SELECT DISTINCT __part FROM {b}", b=batch)).fetchall()]
    existing = {part: visible_files(root / part) for part in parts}
    all_files = [str(f) for files in existing.values() for f in files]
    changed_files: set[str] = set()
    if all_files:
        differs = " OR ".join(
            f"b.{quote(c)} IS DISTINCT FROM o.{quote(c)}"
            for c in [c.name for c in dt.columns] + ["_extra"]
        )
        differs += " OR (b.__multi AND b._raw_file IS DISTINCT FROM o._raw_file)"
        con.execute(
            sql(
                "CREATE OR REPLACE TEMP TABLE __pq_overlap AS "
                "SELECT b._key, o.filename AS file, ({differs}) AS changed "
                "FROM {batch} b JOIN read_parquet($files, filename = true, "
                "hive_partitioning = false) o ON o._key = b._key",
                differs=differs,
                batch=batch,
            ),
            {"files": all_files},
        )
        con.execute(
            sql(
                "CREATE OR REPLACE TEMP TABLE __pq_delta AS SELECT * FROM {b} "
                "WHERE _key NOT IN (SELECT _key FROM __pq_overlap WHERE NOT changed)",
                b=batch,
            )
        )
        changed_files = {
            r[0]
            for r in con.execute("SELECT DISTINCT file FROM __pq_overlap WHERE changed").fetchall()
        }
    else:
        con.execute(sql("CREATE OR REPLACE TEMP TABLE __pq_delta AS SELECT * FROM {b}", b=batch))
    new_rows = dict(
        con.execute("SELECT __part, count(*) FROM __pq_delta GROUP BY __part").fetchall()
    )
    for part in parts:
        replace = [f for f in existing[part] if str(f) in changed_files]
        rows = new_rows.get(part, 0)
        if not replace and not rows:
            continue
        small = [
            f for f in existing[part] if f not in replace and f.stat().st_size < SMALL_FILE_BYTES
        ]
        result.partitions.add(part)
        result.rows_written += rows
        if not replace and len(small) < MAX_SMALL_FILES:
            _append(con, dt, root / part, part)
        else:
            _rewrite(con, dt, root / part, staging, part, replace + small)
            result.rewritten.add(part)
        result.files_written += 1
    con.execute("DROP TABLE IF EXISTS __pq_overlap")
    con.execute("DROP TABLE IF EXISTS __pq_delta")
    return result


def _select(dt: DataType) -> str:
    return ", ".join(quote(f.name) for f in dt.arrow_schema)


def _write(con: duckdb.DuckDBPyConnection, dt: DataType, path: Path, query: str, params) -> int:
    """Stream a query's rows into one Parquet file with the declared schema."""
    schema = dt.arrow_schema
    reader = con.sql(query, params=params).to_arrow_reader(BATCH_ROWS)
    rows = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in reader:
            table = pa.Table.from_batches([batch]).cast(schema)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            rows += table.num_rows
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return rows


def _new_name() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"


def _append(con: duckdb.DuckDBPyConnection, dt: DataType, folder: Path, part: str) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = _new_name()
    tmp = folder / f".{name}.tmp"
    _write(con, dt, tmp, sql("SELECT {c} FROM __pq_delta WHERE __part = ?", c=_select(dt)), [part])
    os.replace(tmp, folder / name)
    fsync_path(folder)


def _rewrite(
    con: duckdb.DuckDBPyConnection,
    dt: DataType,
    folder: Path,
    staging: Path,
    part: str,
    replace: list[Path],
) -> None:
    """Rebuild a partition beside it (keeping untouched files) and exchange the folders."""
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = staging / uuid.uuid4().hex
    fresh.mkdir(mode=0o700)
    for f in visible_files(folder):
        if f not in replace:
            os.link(f, fresh / f.name)
    cols = _select(dt)
    query = sql("SELECT {c} FROM __pq_delta WHERE __part = $part", c=cols)
    params: dict = {"part": part}
    if replace:
        query = sql(
            "SELECT {c} FROM read_parquet($files, hive_partitioning = false) "
            "WHERE _key NOT IN (SELECT _key FROM __pq_delta) UNION ALL {rest}",
            c=cols,
            rest=query,
        )
        params["files"] = [str(f) for f in replace]
    name = _new_name()
    if _write(con, dt, fresh / name, query, params) == 0:
        (fresh / name).unlink()
    fsync_path(fresh)
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not folder.exists():
        folder.mkdir(mode=0o700)
    exchange(fresh, folder)
    fsync_path(folder.parent)
    shutil.rmtree(fresh)  # the old partition, now under the staging name


_libc = None


def exchange(a: Path, b: Path) -> None:
    """Swap two folders atomically where the system can; else with two renames."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
    aside = a.with_name(a.name + ".old")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)
