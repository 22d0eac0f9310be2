"""Raw NDJSON landing: the system of record, append-only and crash-safe.

A batch is one folder under `raw/<type>/experiment_id=<id>/`, named
`<UTC YYYYMMDDTHHMMSSffffffZ>-<label>` so that sorting names sorts by landing
time. Pages are buffered and written as data files `NNNNN.ndjson.zst` (or plain
`NNNNN.ndjson`: `hs_sync/land/rawfile.py`) of up to `pages_per_file` pages, each with
a manifest `NNNNN.meta.json` renamed into place just before it. Files are
made durable by group commit: each is written under a temporary name, and once
`group_files` of them wait, or the oldest has waited `group_seconds`, or the
caller flushes, each waiting file is fsynced and renamed into place and the
folder fsynced once. A data file appears only once it is complete and durable;
`take_landed` reports files only once committed, so the caller's checkpoint
also happens once per group. The room reads of one unit share one batch and
commit as a group across reads (hs_sync/land/group.py); each file's manifest
names its room. One line is one record as the API sent it (parsed
and re-serialized with orjson, the stdlib for what orjson refuses; nothing added).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import orjson

from hs_sync import jsontext
from hs_sync.api.client import Envelope
from hs_sync.errors import ApiError
from hs_sync.land import rawfile
from hs_sync.registry import DataType
from hs_sync.timeutil import parse_time, to_iso
from hs_sync.warehouse import Warehouse, fsync_path


class ReadGroup(Protocol):
    """Several reads landing in one folder and committed together (a `RoomGroup`,
    hs_sync/land/group.py): a writer takes its folder and file numbers and hands its
    files over on publish."""

    folder: Path

    def next_seq(self) -> int: ...

    def stage(self, pending: list[tuple[Path, Path, LandedFile]]) -> None: ...


# One data file per 20 pages (20k rows at the full page size): 3.6x faster to land
# than one file per page, since the fsync and rename per file dominate
# (benchmarks/bench_landing.py), while memory stays flat.
PAGES_PER_FILE = 20
BYTES_PER_FILE = 32 * 1024 * 1024
# A kill loses at most this much fetched work (re-fetched by the next run); each
# commit costs an fsync of the folder and a state transaction at the caller.
GROUP_FILES = 5
GROUP_SECONDS = 1.0

_stamp_lock = threading.Lock()
_last_stamp: datetime | None = None


def batch_stamp() -> str:
    """A UTC landing-time stamp, strictly increasing within this process."""
    global _last_stamp
    with _stamp_lock:
        now = datetime.now(timezone.utc)
        if _last_stamp is not None and now <= _last_stamp:
            now = _last_stamp + timedelta(microseconds=1)
        _last_stamp = now
    return now.strftime("%Y%m%dT%H%M%S%fZ")


def sweep_temporaries(warehouse: Warehouse) -> int:
    """Remove what killed runs left half-written under raw/; returns how many.

    Only call it holding the warehouse lock: then no writer is mid-way. Hidden
    names are temporaries (`.NNNNN.ndjson.<pid>.tmp`) or staged batches never
    published (`.<batch>`); nothing downstream reads them.
    """
    removed = 0
    for exp_dir in (warehouse.root / "raw").glob("*/experiment_id=*"):
        for entry in exp_dir.iterdir():
            if entry.name.startswith("."):
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
            elif entry.is_dir():
                for tmp in entry.glob(".*"):
                    tmp.unlink()
                    removed += 1
    return removed


@dataclass
class LandedFile:
    """A data file that is durable on disk, with what the caller checkpoints on."""

    path: Path
    rows: int
    pages: int
    max_cursor: datetime | None


def encode_records(records: list[dict[str, Any]]) -> bytes:
    """NDJSON for records; orjson, falling back to the stdlib for what orjson refuses.

    Raises ApiError (the unit fails, reported) for a record no encoder can write.
    """
    try:
        return b"".join([orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records])
    except TypeError:  # integers beyond 64 bits, nesting deeper than 254
        pass
    try:
        return b"".join(jsontext.dumps(r) + b"\n" for r in records)
    except jsontext.Unencodable as exc:
        raise ApiError(f"a record the API sent {exc}") from None


@dataclass
class BatchWriter:
    """Writes the pages of one batch (a window, a room, a snapshot) as data files."""

    warehouse: Warehouse
    data_type: DataType
    experiment_id: str
    label: str
    scope: str
    scope_id: str
    window: dict[str, Any] | None = None
    pages_per_file: int = PAGES_PER_FILE
    bytes_per_file: int = BYTES_PER_FILE
    track_cursor: bool = True
    # Time windows: keys already landed by the previous window's overlap are not
    # landed again; keys of rows at or after `tail_from` are collected for the next.
    skip_keys: frozenset[str] | set[str] = frozenset()
    tail_from: datetime | None = None
    tail_limit: int = 50_000
    digest: bool = False  # hash what is added (whole-table reads skip unchanged snapshots)
    # Write under a hidden folder that `publish` renames into place, or `drop` removes:
    # a whole-table read is landed only once it is known to differ from the last one.
    staged: bool = False
    # Rooms whose rows are hashed apart, as `content_digest` of a read of that room
    # alone would hash them: an experiment-scope read then vouches for its running
    # rooms, whose next read by themselves is not landed again when nothing changed.
    room_digests: frozenset[str] = frozenset()
    compression: str = "zstd"  # of the data files: a key of rawfile.SUFFIXES
    group_files: int = GROUP_FILES
    group_seconds: float = GROUP_SECONDS
    # The room reads of one unit share one folder and commit together
    # (hs_sync/land/group.py).
    group: ReadGroup | None = None
    folder: Path = field(init=False)
    files: list[LandedFile] = field(default_factory=list, init=False)
    rows: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        parent = self.warehouse.raw_dir(self.data_type.name, self.experiment_id)
        # Labels are built by the caller from safe parts (`room-<safe_part(id)>`).
        if "/" in self.label or "\\" in self.label or self.label.startswith("."):
            raise ValueError(f"unsafe batch label {self.label!r}")
        self.folder = parent / f"{batch_stamp()}-{self.label}"
        if self.group is not None:
            if self.staged:
                raise ValueError("a RoomGroup's reads are not staged: the group stages them")
            self.folder = self.group.folder
        self._write_folder = (
            self.folder.with_name("." + self.folder.name) if self.staged else self.folder
        )
        self._chunks: list[bytes] = []
        self._pages: list[dict[str, Any]] = []
        self._warnings: list[str] = []
        self.all_warnings: list[str] = []  # every distinct `_warnings` entry of the batch
        self._buffered_rows = 0
        self._buffered_pages = 0
        self._buffered_bytes = 0
        self._max_cursor: datetime | None = None
        self._digest = hashlib.blake2b(digest_size=16) if self.digest else None
        self._rooms: dict[str, Any] | None = {
            room: hashlib.blake2b(digest_size=16) for room in self.room_digests
        }
        self._ordered = True
        self._last_cursor: datetime | None = None
        self.skipped = 0  # rows not landed again (already landed by the last window)
        self.tail: dict[str, str] | None = {} if self.tail_from is not None else None
        self._seq = 0  # the next data file's number
        self._landed: list[LandedFile] = []  # durable, not yet reported by take_landed
        # Written under temporary names, not yet committed: (manifest, data file, file).
        self._pending: list[tuple[Path, Path, LandedFile]] = []
        self._pending_since = 0.0  # monotonic time the oldest pending file was written
        self._done_lock = threading.Lock()

    def add(self, page: Envelope, fetched_at: str) -> None:
        """Buffer one page; start writing a data file when the buffer is full."""
        chunk, rows = self._from_records(page)
        if rows:
            if self._digest is not None:
                self._digest.update(chunk)
            if self._rooms:
                self._hash_rooms(page, chunk)
            self._chunks.append(chunk)
            self._buffered_bytes += len(chunk)
            self._buffered_rows += rows
            self.rows += rows
        self._buffered_pages += 1
        self._pages.append(
            {
                "path": page.path,
                "params": page.params,
                "fetchedAt": fetched_at,
                "serverTime": page.server_time,
                "returned": rows,
                "pagination": page.pagination,
            }
        )
        for warning in page.warnings:
            if warning not in self._warnings:
                self._warnings.append(warning)
            if warning not in self.all_warnings:
                self.all_warnings.append(warning)
        full = (
            self._buffered_pages >= self.pages_per_file
            or self._buffered_bytes >= self.bytes_per_file
        )
        if full:
            self.flush(commit=False)
        if self._pending and (
            len(self._pending) >= self.group_files
            or time.monotonic() - self._pending_since >= self.group_seconds
        ):
            self.commit()

    def flush(self, *, commit: bool = True) -> None:
        """Write buffered rows (if any) as one data file plus its manifest, then (unless
        `commit=False`) commit every waiting file; `take_landed` then reports them:
        checkpoint on that."""
        if not self._buffered_rows:
            if commit:
                self.commit()
            return
        seq, self._seq = self._seq, self._seq + 1
        if self.group is not None:
            seq = self.group.next_seq()
        data_path = self._write_folder / f"{seq:05d}{rawfile.SUFFIXES[self.compression]}"
        data = rawfile.encode(b"".join(self._chunks), self.compression)
        manifest = {
            "dataType": self.data_type.name,
            "apiPath": self.data_type.path,
            "mode": self.data_type.mode.value,
            "experimentId": self.experiment_id,
            "scope": self.scope,
            "scopeId": self.scope_id,
            "batch": self.folder.name,
            "file": data_path.name,
            "rows": self._buffered_rows,
            "window": self.window,
            "pages": self._pages,
            "_warnings": self._warnings,
            "sha256": hashlib.sha256(data).hexdigest(),  # of the data file: the load verifies it
        }
        try:  # `pagination` is as the API sent it: any shape
            meta = jsontext.dumps(manifest)
        except jsontext.Unencodable as exc:
            raise ApiError(f"the page metadata the API sent {exc}") from None
        landed = LandedFile(data_path, self._buffered_rows, len(self._pages), self._max_cursor)
        self._chunks, self._pages, self._warnings = [], [], []
        self._buffered_rows = self._buffered_pages = self._buffered_bytes = 0
        self._write(meta, data, landed)
        if commit:
            self.commit()

    def _write(self, meta: bytes, data: bytes, landed: LandedFile) -> None:
        """Write a file and its manifest under temporary names, to wait for the commit."""
        meta_tmp = _write_temporary(landed.path.with_name(_meta_name(landed.path)), meta)
        data_tmp = _write_temporary(landed.path, data)
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append((meta_tmp, data_tmp, landed))

    def commit(self) -> None:
        """Make every waiting file durable and visible (`commit_files`); a writer of a
        `RoomGroup` leaves that to the group, once its read is published."""
        if self.group is not None:
            return
        pending, self._pending = self._pending, []
        if not pending:
            return
        commit_files(pending, self._write_folder)
        with self._done_lock:
            self.files.extend(landed for _, _, landed in pending)
            self._landed.extend(landed for _, _, landed in pending)

    @property
    def files_started(self) -> int:
        """Data files written so far."""
        return self._seq

    def take_landed(self) -> list[LandedFile]:
        """Files that became durable since the last call."""
        with self._done_lock:
            out, self._landed = self._landed, []
        return out

    def close(self) -> None:
        """Commit the files still waiting (what is buffered is not written: flush first);
        in a `RoomGroup`, drop those of a read never published."""
        if self.group is not None:
            self.discard()
        else:
            self.commit()

    @property
    def content_digest(self) -> str:
        """A hash of every record added so far, in order (to skip unchanged snapshots)."""
        if self._digest is None:
            raise ValueError("BatchWriter(digest=True) is needed for content_digest")
        return self._digest.hexdigest()

    @property
    def room_content_digests(self) -> dict[str, str]:
        """The `content_digest` a read of each of `room_digests` alone would have
        ({} when a page's rows could not be told apart by room)."""
        return {room: h.hexdigest() for room, h in (self._rooms or {}).items()}

    def _hash_rooms(self, page: Envelope, chunk: bytes) -> None:
        lines = chunk.split(b"\n")[:-1]
        picked = [(r.get("roomId") if isinstance(r, dict) else None,) for r in page.records]
        if len(picked) != len(lines):
            self._rooms = None  # rows were dropped or split: no room can be vouched for
            return
        rooms = self._rooms
        for line, (room,) in zip(lines, picked, strict=True):
            digest = rooms.get(str(room))
            if digest is not None:
                digest.update(line + b"\n")

    @property
    def ordered(self) -> bool:
        """Whether every record so far came in non-decreasing cursor order."""
        return self._ordered

    def discard(self) -> None:
        """Drop what is buffered and not yet written (and, when staged, what was)."""
        self._chunks, self._pages, self._warnings = [], [], []
        self._buffered_rows = self._buffered_pages = self._buffered_bytes = 0
        for meta_tmp, data_tmp, _ in self._pending:
            meta_tmp.unlink(missing_ok=True)
            data_tmp.unlink(missing_ok=True)
        self._pending = []
        if self.staged:
            shutil.rmtree(self._write_folder, ignore_errors=True)
            self.files, self._landed = [], []

    def publish(self) -> None:
        """Flush, then move a staged batch into place in one rename (no-op otherwise);
        in a `RoomGroup`, hand the read's files to the group, to commit with its own."""
        if self.group is not None:
            self.flush(commit=False)
            self.files = [landed for _, _, landed in self._pending]
            self.group.stage(self._pending)
            self._pending = []
            return
        self.flush()
        if not self.staged or not self._write_folder.exists():
            return
        os.replace(self._write_folder, self.folder)
        fsync_path(self.folder.parent)
        moved = {f.path: replace(f, path=self.folder / f.path.name) for f in self.files}
        self.files = list(moved.values())
        self._landed = [moved.get(f.path, f) for f in self._landed]

    def _from_records(self, page: Envelope) -> tuple[bytes, int]:
        records = self.data_type.redact(page.records)
        if records and self.track_cursor and self.data_type.cursor:
            name, key_of = self.data_type.cursor, self.data_type.key_of
            values = [r.get(name) if isinstance(r, dict) else None for r in records]
            keep = self._note_cursor(values, lambda i: key_of(records[i]))
            if keep is not None:
                records = [records[i] for i in keep]
        return (encode_records(records) if records else b""), len(records)

    def _note_cursor(self, values: list[Any], key_at: Callable[[int], str]) -> list[int] | None:
        """Track order and the newest cursor over a page's cursor values; note the tail.

        `key_at(i)` is record i's key (asked only where needed). Returns the indexes
        of the records to land (those not landed by the last window), None for all.
        """
        if all(type(v) is str and len(v) == 24 and v[-1] == "Z" for v in values):
            return self._note_canonical(values, key_at)
        best, last, ordered = self._max_cursor, self._last_cursor, self._ordered
        skip, tail, tail_from = self.skip_keys, self.tail, self.tail_from
        keep = []
        for i, raw in enumerate(values):
            value = parse_time(raw)
            key = None
            if skip:
                key = key_at(i)
                if key in skip:
                    self.skipped += 1
                else:
                    keep.append(i)
            if value is None:
                continue
            if last is not None and value < last:
                ordered = False
            last = value
            if best is None or value > best:
                best = value
            if tail is not None and value >= tail_from:
                tail[key or key_at(i)] = raw
        self._max_cursor, self._last_cursor, self._ordered = best, last, ordered
        self._cap_tail()
        return keep if skip else None

    def _note_canonical(self, values: list[str], key_at: Callable[[int], str]) -> list[int] | None:
        """The fast path: every cursor is `YYYY-MM-DDTHH:MM:SS.mmmZ`, so text order is time
        order and only the page's first and newest values need parsing."""
        first = parse_time(values[0])
        ordered = self._ordered and (self._last_cursor is None or first >= self._last_cursor)
        if ordered:
            ordered = all(a <= b for a, b in zip(values, values[1:], strict=False))
        newest = parse_time(max(values))
        self._ordered = ordered
        self._last_cursor = parse_time(values[-1])
        if newest is not None and (self._max_cursor is None or newest > self._max_cursor):
            self._max_cursor = newest
        keep = None
        keys: list[str] | None = None
        if self.skip_keys:
            keys = [key_at(i) for i in range(len(values))]
            keep = [i for i, k in enumerate(keys) if k not in self.skip_keys]
            self.skipped += len(values) - len(keep)
        if self.tail is not None:
            cut = to_iso(self.tail_from)
            for i, value in enumerate(values):
                if value >= cut:
                    self.tail[keys[i] if keys else key_at(i)] = value
            self._cap_tail()
        return keep

    def _cap_tail(self) -> None:
        if self.tail is not None and len(self.tail) > self.tail_limit:
            self.tail = None  # too big to remember: the next window lands its overlap again


def commit_files(pending: list[tuple[Path, Path, LandedFile]], folder: Path) -> None:
    """Make files written under temporary names durable and visible: fsync each, rename
    each into place (manifest first: whenever a data file is visible, its manifest is
    too), then fsync the folder once."""
    for meta_tmp, data_tmp, _ in pending:
        fsync_path(meta_tmp)
        fsync_path(data_tmp)
    for meta_tmp, data_tmp, landed in pending:
        os.replace(meta_tmp, landed.path.with_name(_meta_name(landed.path)))
        os.replace(data_tmp, landed.path)
    fsync_path(folder)


def _meta_name(data_path: Path) -> str:
    return rawfile.stem(data_path.name) + ".meta.json"


def _write_temporary(path: Path, data: bytes) -> Path:
    """Write `data` to a hidden name beside `path` (what `sweep_temporaries` removes
    after a kill), not fsynced: the group commit does that."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb", opener=_private) as f:
            f.write(data)
    except BaseException:  # a full disk, a signal: leave no half-written temporary
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
