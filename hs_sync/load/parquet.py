"""Hive-partitioned Parquet: apply a batch of typed rows, never a duplicate key.

`parquet/<type>/experiment_id=<id>/date=<YYYY-MM-DD>/part-*.parquet` for
time-series types, `parquet/<type>/experiment_id=<id>/` for the rest. Every
file has exactly the registry's Arrow schema. A batch only touches the
partitions its rows fall in, and those that hold a stored key whose row moves
to another partition (its timestamp now on another date):
- rows with new keys are appended as one new file (temporary name, renamed);
- rows whose key is already stored with the same content are skipped;
- rows that change a stored key (and small-file compaction) rewrite the files
  that hold those keys: their kept rows go into the new file and the old files
  are unlinked. A partition left with no rows is removed.
`apply` writes into an unpublished version folder (hs_sync/load/versions.py),
whose files are hard links shared with the published version: files are only
ever added or unlinked, never changed in place, so readers of the published
version see none of this until the version is published.
The batch is read once: its rows are routed to every touched partition's new
file in the same pass, so the work grows with the rows, not rows x partitions.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hs_sync.db import quote, sql
from hs_sync.registry import DataType
from hs_sync.warehouse import Warehouse, fsync_path

SMALL_FILE_BYTES = 32 * 1024 * 1024  # files below this are merged by compaction
MAX_SMALL_FILES = 8  # compact a partition once it would hold more small files
ROW_GROUP_ROWS = 128 * 1024
BATCH_ROWS = 32 * 1024
MAX_BUFFERED_ROWS = 32 * 1024  # delta rows held across all partitions before writing
MAX_OPEN_FILES = 32  # partition files written at once


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
    """Every visible Parquet file of one data type's published version, named under
    `parquet/<type>` (the link is resolved once, so the list is of one version)."""
    root = warehouse.parquet_dir(type_name)
    if not root.exists():
        return []
    real = root.resolve()
    return sorted(
        root / rel
        for rel in (p.relative_to(real) for p in real.rglob("*.parquet"))
        if not any(part.startswith((".", "_")) for part in rel.parts)
    )


def partition_expr(dt: DataType) -> str:
    """SQL for a row's partition folder, from `__exp` and (time series) the cursor's UTC date."""
    if _dated(dt):
        return (
            "'experiment_id=' || __exp || '/date=' || "
            f"strftime(timezone('UTC', {quote(dt.cursor)}), '%Y-%m-%d')"
        )
    return "'experiment_id=' || __exp"


def _dated(dt: DataType) -> bool:
    return bool(dt.date_partitioned and dt.cursor)


def stored_keys(con: duckdb.DuckDBPyConnection, dt: DataType, batch: str) -> tuple[int, list[str]]:
    """How many keys of relation `batch` the type's DuckDB table holds, and the
    partitions of those whose row now falls in another one (where `apply` must
    remove the old copy).

    Reads the table, so it runs before the batch is upserted there. One join on
    the key; only the matching rows' cursor and `_raw_file` are read
    (`raw/<type>/experiment_id=<x>/...`: the experiment folder the row came from).
    """
    cursor = f", o.{quote(dt.cursor)}" if _dated(dt) else ""
    query = sql(
        "SELECT count(*), list(DISTINCT __old) FILTER (WHERE __old <> __part) "
        "FROM (SELECT __part, {part} AS __old FROM ("
        "SELECT b.__part, substr(split_part(o._raw_file, '/', 3), 15) AS __exp{cursor} "
        "FROM {batch} b JOIN {table} o ON o._key = b._key))",
        part=partition_expr(dt),
        cursor=cursor,
        batch=batch,
        table=quote(dt.name),
    )
    stored, moved = con.execute(query).fetchone()
    return stored, moved or []


def apply(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    dt: DataType,
    batch: str,
    moved: Sequence[str] = (),
) -> ParquetResult:
    """Apply relation `batch` (registry columns, `__part`, `__multi`, one row per key)
    to the unpublished version folder `root` of the type.

    `moved` (from `stored_keys`) are partitions that may still hold an older copy of
    a batch key whose row now falls elsewhere: files holding one are rewritten without it.
    """
    result = ParquetResult()
    parts = [r[0] for r in con.execute(sql("SELECT DISTINCT __part FROM {b}", b=batch)).fetchall()]
    parts += [p for p in dict.fromkeys(moved) if p not in parts]
    existing = {part: visible_files(root / part) for part in parts}
    all_files = [str(f) for files in existing.values() for f in files]
    changed_files: set[str] = set()
    holding = _holding_keys(con, all_files, batch) if all_files else []
    if holding:
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
            {"files": holding},
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
    else:  # no stored file holds a batch key: every row is new; read the batch, no copy
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __pq_overlap (_key VARCHAR, file VARCHAR, changed BOOLEAN)"
        )
        con.execute(sql("CREATE OR REPLACE TEMP VIEW __pq_delta AS SELECT * FROM {b}", b=batch))
    new_rows = dict(
        con.execute("SELECT __part, count(*) FROM __pq_delta GROUP BY __part").fetchall()
    )
    plan: list[tuple[str, list[Path] | None]] = []  # (partition, files to replace or None)
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
            plan.append((part, None))
        else:
            plan.append((part, replace + small))
            result.rewritten.add(part)
    # Each open writer holds about a megabyte: at most MAX_OPEN_FILES at once, one
    # pass over the delta per group of partitions.
    for start in range(0, len(plan), MAX_OPEN_FILES):
        group = plan[start : start + MAX_OPEN_FILES]
        outputs: dict[str, _Output] = {}
        try:
            for part, rewrite in group:
                if rewrite is None:
                    outputs[part] = _Output.append(dt, root / part)
                else:
                    outputs[part] = _Output.rewrite(con, dt, root / part, rewrite)
            _route_delta(con, dt, outputs, whole=len(group) == len(plan))
            for output in outputs.values():
                output.finish()
                result.files_written += int(output.rows > 0)
                _prune(output.folder, root)
        except BaseException:
            for output in outputs.values():
                output.abandon()
            raise
    con.execute("DROP TABLE __pq_overlap")
    con.execute("DROP TABLE __pq_delta" if holding else "DROP VIEW __pq_delta")
    return result


def _holding_keys(con: duckdb.DuckDBPyConnection, files: list[str], batch: str) -> list[str]:
    """Which of `files` hold a key of relation `batch`: only their key column is read,
    so rows that are only new leave the stored files unread."""
    query = sql(
        "SELECT DISTINCT filename FROM read_parquet($files, filename = true, "
        "hive_partitioning = false) WHERE _key IN (SELECT _key FROM {b})",
        b=batch,
    )
    return [r[0] for r in con.execute(query, {"files": files}).fetchall()]


def _prune(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents below `root` while they are empty (all rows moved away)."""
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _select(dt: DataType) -> str:
    return ", ".join(quote(f.name) for f in dt.arrow_schema)


def _new_name() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"


class _Output:
    """The one new file of a touched partition, written to while the delta streams by.

    It is written under a dot name in the partition's folder and renamed when
    done; rewriting first copies the kept rows of the files it replaces, which
    are unlinked when the new file is in place.
    """

    def __init__(self, dt: DataType, folder: Path, replace: list[Path]):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.schema = dt.arrow_schema
        self.folder = folder
        self.path = folder / f".{_new_name()}.tmp"  # where the file is written
        self.replace = replace
        self.rows = 0
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")

    @classmethod
    def append(cls, dt: DataType, folder: Path) -> _Output:
        return cls(dt, folder, [])

    @classmethod
    def rewrite(
        cls, con: duckdb.DuckDBPyConnection, dt: DataType, folder: Path, replace: list[Path]
    ) -> _Output:
        out = cls(dt, folder, replace)
        if replace:
            # a stored row goes when the batch changes its key, whether the new row is
            # written now or (after a crash) already stored, maybe in another partition
            kept = sql(
                "SELECT {c} FROM read_parquet($files, filename = true, hive_partitioning = false) o "
                "WHERE NOT EXISTS (SELECT 1 FROM __pq_overlap x "
                "WHERE x.changed AND x.file = o.filename AND x._key = o._key)",
                c=_select(dt),
            )
            reader = con.sql(kept, params={"files": [str(f) for f in replace]})
            for batch in reader.to_arrow_reader(BATCH_ROWS):
                out.add(pa.Table.from_batches([batch]))
        return out

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            table = pa.concat_tables(self.pending).cast(self.schema)
            self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            self.rows += table.num_rows
        self.pending, self.pending_rows = [], 0

    def finish(self) -> None:
        self.flush()
        self.writer.close()
        self.writer = None
        if self.rows or not self.replace:
            fsync_path(self.path)
            os.replace(self.path, self.folder / self.path.name[1:-4])
        else:
            self.path.unlink()
        for f in self.replace:
            f.unlink()

    def abandon(self) -> None:
        """After a failure: close and remove the file not moved into place."""
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:
                pass
            self.writer = None
            self.path.unlink(missing_ok=True)


def _route_delta(
    con: duckdb.DuckDBPyConnection, dt: DataType, outputs: dict[str, _Output], whole: bool
) -> None:
    """One pass over `__pq_delta` (`whole`) or its rows in `outputs`' partitions:
    each batch's rows go to their partition's file.

    Rows are buffered per partition up to a row group; when all buffers together
    exceed MAX_BUFFERED_ROWS the largest is written out, which bounds memory
    whatever the number of partitions.
    """
    if not outputs:
        return
    query = sql("SELECT {c}, __part FROM __pq_delta", c=_select(dt))
    params = None
    if not whole:
        query += " WHERE list_contains($parts, __part)"
        params = {"parts": list(outputs)}
    buffered = 0
    for batch in con.sql(query, params=params).to_arrow_reader(BATCH_ROWS):
        table = pa.Table.from_batches([batch])
        part_col = table.column("__part")
        table = table.drop_columns(["__part"])
        order = pc.sort_indices(part_col)
        offset = 0
        for entry in pc.value_counts(part_col.take(order)):
            part, count = entry["values"].as_py(), entry["counts"].as_py()
            out = outputs[part]
            before = out.pending_rows
            # a compact copy per partition: a slice would keep the whole batch alive
            out.add(table.take(order.slice(offset, count)))
            buffered += out.pending_rows - before
            offset += count
        if buffered > MAX_BUFFERED_ROWS:
            for out in sorted(outputs.values(), key=lambda o: -o.pending_rows):
                if buffered <= MAX_BUFFERED_ROWS // 2:
                    break
                buffered -= out.pending_rows
                out.flush()
