"""Raw data files into DuckDB as lines, a chunk of files at a time: `__files` (a
table, one row per file) and `__lines` (the chunk's lines, an Arrow table DuckDB
reads in place: one row per line, its bytes as landed, `__blank` when it holds
nothing but whitespace).

A file is decompressed whole before any of its lines go in, so a file that does
not read (a truncated or garbled compressed stream) adds nothing and is reported
instead. DuckDB's own readers cannot be used for this step: they read a truncated
zstd stream without an error, and give no line numbers. Typing happens in SQL
(`hs_sync/load/typing_sql.py`) over these two, chunk by chunk.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from hs_sync.land import rawfile

_BATCH_STAMP = re.compile(r"^(\d{8}T\d{12})Z")
# a line that is empty or only ASCII whitespace (what bytes.strip() removes)
_BLANK = r"^[ \t\n\r\x0b\x0c]*$"
# decompressed bytes gathered before they go to DuckDB: a few inserts per type,
# and a bounded amount held at once
CHUNK_BYTES = 4 * 1024 * 1024
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


class _Chunk:
    """Files read whole, waiting to go to DuckDB together: one insert per chunk, and
    their lines split by Arrow, never as a Python object per line."""

    def __init__(self) -> None:
        self.fids: list[int] = []
        self.blocks: list[bytes] = []
        self.sizes: list[int] = []
        self.files: list[dict] = []
        self.nbytes = 0

    def add(self, fid: int, raw: RawFile, blocks: list[bytes]) -> None:
        size = sum(len(b) for b in blocks)
        self.fids.append(fid)
        self.blocks.extend(blocks)
        self.sizes.append(size)
        self.nbytes += size
        self.files.append(
            {
                "__fid": fid,
                "__raw_file": raw.name,
                "__exp": raw.experiment,
                "__synced_at": synced_at_of(raw.path),
            }
        )

    def lines(self) -> pa.Table:
        """(__fid, __line, __bytes, __blank) of the chunk's lines."""
        # Arrow's system pool hands each chunk's buffers back at once instead of
        # keeping them for reuse
        pool = pa.system_memory_pool()
        offsets = pa.array([0, *itertools.accumulate(self.sizes)], pa.int64(), memory_pool=pool)
        data = pa.py_buffer(b"".join(self.blocks))
        self.blocks = []
        contents = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), len(self.sizes), [None, offsets.buffers()[1], data]
        )
        split = pc.split_pattern(contents, b"\n", memory_pool=pool)
        del contents, data
        lines = pc.list_flatten(split, memory_pool=pool)
        owner = pc.list_parent_indices(split, memory_pool=pool)
        first = pc.take(
            split.offsets.slice(0, len(split)).cast(pa.int64()), owner, memory_pool=pool
        )
        ones = pa.repeat(pa.scalar(1, pa.int64()), len(lines), memory_pool=pool)
        numbers = pc.subtract(pc.cumulative_sum(ones, memory_pool=pool), first, memory_pool=pool)
        return pa.table(
            {
                "__fid": pc.take(pa.array(self.fids, pa.int64()), owner, memory_pool=pool),
                "__line": numbers,
                "__bytes": lines,
                "__blank": pc.match_substring_regex(lines, _BLANK, memory_pool=pool),
            }
        )


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __files "
        "(__fid BIGINT, __raw_file VARCHAR, __exp VARCHAR, __synced_at TIMESTAMPTZ)"
    )


def drop_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE IF EXISTS __files")


def load(
    con: duckdb.DuckDBPyConnection, files: Sequence[RawFile], apply: Callable[[], object]
) -> tuple[dict[int, RawFile], list[tuple[RawFile, str]]]:
    """Read `files` (in order: file id = position) a chunk at a time: each chunk's
    files go into `__files`, its lines are `__lines` while `apply()` runs, once
    per chunk and once first with no lines. The lines are never stored in DuckDB.

    Returns (file id -> file, for the files loaded; [(file, reason)] for those that
    do not read, which add no lines).
    """
    create_tables(con)
    _apply(con, _Chunk(), apply)
    loaded: dict[int, RawFile] = {}
    damaged: list[tuple[RawFile, str]] = []
    chunk = _Chunk()
    for fid, raw in enumerate(files):
        try:
            blocks = list(rawfile.blocks(raw.path))
        except rawfile.RawFileError as exc:
            damaged.append((raw, str(exc)))
            continue
        loaded[fid] = raw
        chunk.add(fid, raw, blocks)
        del blocks
        if chunk.nbytes >= CHUNK_BYTES:
            _apply(con, chunk, apply)
            chunk = _Chunk()
    if chunk.files:
        _apply(con, chunk, apply)
    return loaded, damaged


def _apply(con: duckdb.DuckDBPyConnection, chunk: _Chunk, apply: Callable[[], object]) -> None:
    if chunk.files:
        files = pa.Table.from_pylist(chunk.files, schema=_FILES_SCHEMA)
        con.from_arrow(files).insert_into("__files")
    con.register("__lines", chunk.lines())
    try:
        apply()
    finally:
        con.unregister("__lines")
