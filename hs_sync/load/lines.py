"""Raw data files into DuckDB as lines, for one typing statement per data type:
`__lines`, a stream of Arrow batches that DuckDB reads as the statement runs, one
row per line: its file id and line number, its bytes as landed, `__blank` when it
holds nothing but whitespace, and its file's lineage values. The lines carry those
values themselves (dictionary-encoded, once per chunk) rather than being joined to
a table of files: a join would make DuckDB hold the whole stream in a hash table.

A file is checked before any of its lines go in: against the SHA-256 its manifest
recorded when it was landed (`hs_sync/land/batch.py`), and by decompressing it whole,
so a file that does not read (truncated, garbled, changed on disk) adds nothing and
is reported instead. Files are decompressed here, a chunk of them at a time, not by
DuckDB's NDJSON readers: those give no line numbers (a quarantined line is named by
its number, and the later line of a file wins) and read a truncated zstd stream
without an error. Typing happens in SQL (`hs_sync/load/typing_sql.py`).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from hs_sync.land import rawfile

_BATCH_STAMP = re.compile(r"^(\d{8}T\d{12})Z")
# a line that is empty or only ASCII whitespace (what bytes.strip() removes)
_BLANK = r"^[ \t\n\r\x0b\x0c]*$"
# decompressed bytes gathered before their lines are split: a bounded amount held at once
CHUNK_BYTES = 4 * 1024 * 1024
BATCH_ROWS = 16 * 1024  # lines per Arrow batch: DuckDB's threads take batches in turn
_NAMES = pa.dictionary(pa.int32(), pa.string())  # a file's values, once per chunk
SCHEMA = pa.schema(
    [
        ("__fid", pa.int64()),
        ("__line", pa.int64()),
        ("__bytes", pa.large_binary()),
        ("__blank", pa.bool_()),
        ("__raw_file", _NAMES),
        ("__exp", _NAMES),
        ("__synced_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class RawFile:
    path: Path
    name: str  # path relative to the warehouse root (the lineage value)
    experiment: str  # the experiment_id folder value
    size: int
    meta: dict | None = field(default=None, repr=False, compare=False)  # its manifest, once read

    @property
    def manifest(self) -> dict:
        """The file's manifest ({} when it is missing or does not read), read once."""
        if self.meta is None:
            self.meta = manifest(self.path)
        return self.meta


def synced_at_of(raw_file: Path) -> datetime:
    """When a raw file was landed: its batch folder's UTC stamp (stable, so rebuilds
    reproduce it), else the file's modification time."""
    match = _BATCH_STAMP.match(raw_file.parent.name)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(raw_file.stat().st_mtime, tz=timezone.utc)


class _Chunk:
    """Files read whole, waiting to have their lines split together by Arrow, never as
    a Python object per line."""

    def __init__(self) -> None:
        self.fids: list[int] = []
        self.raws: list[RawFile] = []
        self.blocks: list[bytes] = []
        self.sizes: list[int] = []
        self.nbytes = 0

    def add(self, fid: int, raw: RawFile, blocks: list[bytes]) -> None:
        size = sum(len(b) for b in blocks)
        self.fids.append(fid)
        self.raws.append(raw)
        self.blocks.extend(blocks)
        self.sizes.append(size)
        self.nbytes += size

    def lines(self) -> pa.Table:
        """The chunk's lines (`SCHEMA`), each with its file's lineage values."""
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
        index = owner.cast(pa.int32())

        def per_file(values: list) -> pa.DictionaryArray:
            return pa.DictionaryArray.from_arrays(index, pa.array(values, pa.string()))

        synced = pa.array([synced_at_of(r.path) for r in self.raws], SCHEMA.field(6).type)
        return pa.table(
            [
                pc.take(pa.array(self.fids, pa.int64()), owner, memory_pool=pool),
                numbers,
                lines,
                pc.match_substring_regex(lines, _BLANK, memory_pool=pool),
                per_file([r.name for r in self.raws]),
                per_file([r.experiment for r in self.raws]),
                pc.take(synced, owner, memory_pool=pool),
            ],
            schema=SCHEMA,
        )


def manifest_path(raw_file: Path) -> Path:
    """The manifest landed with a raw data file (`NNNNN.meta.json`)."""
    return raw_file.with_name(rawfile.stem(raw_file.name) + ".meta.json")


def manifest(raw_file: Path) -> dict:
    """A raw data file's manifest ({} when it is missing or does not read)."""
    try:
        found = orjson.loads(manifest_path(raw_file).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return found if isinstance(found, dict) else {}


def read(raw: RawFile) -> list[bytes]:
    """A raw file's NDJSON bytes, decompressed whole, once it is checked against the
    SHA-256 its manifest recorded (files landed before manifests had one: by reading).

    Raises rawfile.RawFileError for a file that does not read or does not match.
    """
    expected = raw.manifest.get("sha256")
    if expected is not None:
        try:
            data = raw.path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise rawfile.RawFileError(f"cannot read raw file {raw.path}: {exc}") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise rawfile.RawFileError(
                f"raw file {raw.path} is not what was landed: its SHA-256 differs from "
                "the one its manifest recorded"
            )
        del data
    return list(rawfile.blocks(raw.path))


class Lines:
    """The lines of `files` (in order: file id = position) as a stream of Arrow batches
    (`reader`), read a chunk of files at a time as DuckDB asks for them. Once the stream
    is read to its end, `loaded` maps file ids to the files read and `damaged` lists
    those that do not read, with why (they add no lines)."""

    def __init__(self, files: Sequence[RawFile]):
        self.files = files
        self.loaded: dict[int, RawFile] = {}
        self.damaged: list[tuple[RawFile, str]] = []
        self.finished = False

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(SCHEMA, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        chunk = _Chunk()
        for fid, raw in enumerate(self.files):
            try:
                blocks = read(raw)
            except rawfile.RawFileError as exc:
                self.damaged.append((raw, str(exc)))
                continue
            self.loaded[fid] = raw
            chunk.add(fid, raw, blocks)
            del blocks
            if chunk.nbytes >= CHUNK_BYTES:
                yield from chunk.lines().to_batches(BATCH_ROWS)
                chunk = _Chunk()
        if chunk.fids:
            yield from chunk.lines().to_batches(BATCH_ROWS)
        self.finished = True
