"""Raw data files into DuckDB as lines: `__files` (one row per file) and `__lines`
(one row per non-blank line, its bytes as landed).

A file is decompressed whole before any of its lines go in, so a file that does
not read (a truncated or garbled compressed stream) adds nothing and is reported
instead. DuckDB's own readers cannot be used for this step: they read a truncated
zstd stream without an error, and give no line numbers. Typing happens in SQL
(`hs_sync/load/typing_sql.py`) over these two tables.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from hs_sync.land import rawfile

_BATCH_STAMP = re.compile(r"^(\d{8}T\d{12})Z")
_FILES_SCHEMA = pa.schema(
    [
        ("__fid", pa.int64()),
        ("__raw_file", pa.string()),
        ("__exp", pa.string()),
        ("__synced_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class RawFile:
    path: Path
    name: str  # path relative to the warehouse root (the lineage value)
    experiment: str  # the experiment_id folder value
    size: int


def synced_at_of(raw_file: Path) -> datetime:
    """When a raw file was landed: its batch folder's UTC stamp (stable, so rebuilds
    reproduce it), else the file's modification time."""
    match = _BATCH_STAMP.match(raw_file.parent.name)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(raw_file.stat().st_mtime, tz=timezone.utc)


def read_lines(path: Path) -> tuple[list[int], list[bytes]]:
    """(1-based line numbers, bytes) of a data file's non-blank lines.

    Raises rawfile.RawFileError when the file does not read to its end.
    """
    data = b"".join(rawfile.blocks(path))
    numbers, lines = [], []
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.strip():
            numbers.append(number)
            lines.append(line)
    return numbers, lines


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __files "
        "(__fid BIGINT, __raw_file VARCHAR, __exp VARCHAR, __synced_at TIMESTAMPTZ)"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE __lines (__fid BIGINT, __line BIGINT, __bytes BLOB)")


def drop_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE IF EXISTS __lines")
    con.execute("DROP TABLE IF EXISTS __files")


def load(
    con: duckdb.DuckDBPyConnection, files: Sequence[RawFile]
) -> tuple[dict[int, RawFile], list[tuple[RawFile, str]]]:
    """Fill `__files` and `__lines` with `files` (in order: file id = position).

    Returns (file id -> file, for the files loaded; [(file, reason)] for those that
    do not read, which add no lines).
    """
    create_tables(con)
    # Lines go to DuckDB a file at a time; Arrow's system pool hands each file's
    # buffers back at once instead of keeping them for reuse.
    pool = pa.system_memory_pool()
    loaded: dict[int, RawFile] = {}
    damaged: list[tuple[RawFile, str]] = []
    for fid, raw in enumerate(files):
        try:
            numbers, lines = read_lines(raw.path)
        except rawfile.RawFileError as exc:
            damaged.append((raw, str(exc)))
            continue
        loaded[fid] = raw
        meta = pa.Table.from_pylist(
            [
                {
                    "__fid": fid,
                    "__raw_file": raw.name,
                    "__exp": raw.experiment,
                    "__synced_at": synced_at_of(raw.path),
                }
            ],
            schema=_FILES_SCHEMA,
        )
        con.from_arrow(meta).insert_into("__files")
        if lines:
            table = pa.table(
                {
                    "__fid": pa.repeat(pa.scalar(fid, pa.int64()), len(lines)),
                    "__line": pa.array(numbers, pa.int64()),
                    "__bytes": pa.array(lines, pa.binary(), memory_pool=pool),
                }
            )
            con.from_arrow(table).insert_into("__lines")
        del lines, numbers
    return loaded, damaged
