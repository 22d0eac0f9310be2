"""The warehouse's one state file, `<warehouse>/state/state.sqlite`: its path, schema and
connections, and a read-only reader.

Three writers share it, each owning its own tables and its own connection:
`ExtractState` (hs_sync/land/state.py), the transform's `Ledger`
(hs_sync/load/ledger.py) and the media `Manifest` (hs_sync/media/manifest.py).
WAL mode and a busy timeout let them write from several threads and processes at
once: a writer waits for another's short transaction, never fails on it.

`StateReader` is what reads without writing (`status`, the checks, `doctor`, the
budget and access memory of a new run): it opens the file read-only, never creates
it, and answers empty when the file or a table is not there.

A warehouse from before this file kept the same tables in three files
(`extract.sqlite`, `normalize.sqlite`, `media.sqlite`). The first writer to open
it copies them into a new state file, which appears whole or not at all, then
renames the old files aside (`<name>.migrated`).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal

from hs_sync.warehouse import Warehouse, fsync_path

STATE_FILE = "state.sqlite"
MIGRATED_SUFFIX = ".migrated"
BUSY_TIMEOUT_SECONDS = 60.0

# The tables, by the stage that writes them.
EXTRACT_SCHEMA = """
CREATE TABLE IF NOT EXISTS watermarks (
    data_type TEXT NOT NULL, experiment_id TEXT NOT NULL, watermark TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (data_type, experiment_id));
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, data_type TEXT NOT NULL,
    experiment_id TEXT NOT NULL, scope TEXT NOT NULL, scope_id TEXT NOT NULL,
    start_time TEXT, end_time TEXT, rows INTEGER NOT NULL, total INTEGER,
    requests INTEGER NOT NULL, batch TEXT, completed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS room_versions (
    data_type TEXT NOT NULL, experiment_id TEXT NOT NULL, room_id TEXT NOT NULL,
    version TEXT NOT NULL, synced_at TEXT NOT NULL,
    PRIMARY KEY (data_type, experiment_id, room_id));
CREATE TABLE IF NOT EXISTS snapshots (
    data_type TEXT NOT NULL, experiment_id TEXT NOT NULL, digest TEXT NOT NULL,
    landed_at TEXT NOT NULL, PRIMARY KEY (data_type, experiment_id));
CREATE TABLE IF NOT EXISTS room_digests (
    data_type TEXT NOT NULL, experiment_id TEXT NOT NULL, room_id TEXT NOT NULL,
    digest TEXT NOT NULL, landed_at TEXT NOT NULL,
    PRIMARY KEY (data_type, experiment_id, room_id));
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, status TEXT,
    requests INTEGER, summary TEXT);
CREATE TABLE IF NOT EXISTS buckets (
    data_type TEXT NOT NULL, experiment_id TEXT NOT NULL, bucket INTEGER NOT NULL,
    rows INTEGER NOT NULL, PRIMARY KEY (data_type, experiment_id, bucket));
CREATE TABLE IF NOT EXISTS polls (
    data_type TEXT NOT NULL, experiment_id TEXT NOT NULL, unchanged INTEGER NOT NULL,
    polled_at TEXT NOT NULL, due_at TEXT NOT NULL, verified_at TEXT,
    PRIMARY KEY (data_type, experiment_id));
CREATE TABLE IF NOT EXISTS room_offsets (
    data_type TEXT NOT NULL, experiment_id TEXT NOT NULL, room_id TEXT NOT NULL,
    rows INTEGER NOT NULL, last_row TEXT NOT NULL,
    PRIMARY KEY (data_type, experiment_id, room_id));
CREATE TABLE IF NOT EXISTS whole_probes (
    data_type TEXT NOT NULL, experiment_id TEXT NOT NULL, pages INTEGER NOT NULL,
    total INTEGER, first_row TEXT, read_at TEXT NOT NULL,
    PRIMARY KEY (data_type, experiment_id));
CREATE TABLE IF NOT EXISTS room_lists (experiment_id TEXT PRIMARY KEY, read_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS listed_rooms (
    experiment_id TEXT NOT NULL, room_id TEXT NOT NULL, version TEXT NOT NULL,
    PRIMARY KEY (experiment_id, room_id));
CREATE TABLE IF NOT EXISTS signals (
    name TEXT PRIMARY KEY, value TEXT NOT NULL, seen_at TEXT NOT NULL);
-- what the API at each base URL honours (hs_sync/api/capabilities.py)
CREATE TABLE IF NOT EXISTS api_capabilities (
    base_url TEXT NOT NULL, behavior TEXT NOT NULL, status TEXT NOT NULL,
    evidence TEXT NOT NULL, checked_at TEXT NOT NULL, PRIMARY KEY (base_url, behavior));
-- time windows whose API count and landed rows would not agree after re-reads: not re-read
-- again while the two counts stay as they are (hs_sync/extract/time_windows.py)
CREATE TABLE IF NOT EXISTS unconverged_windows (
    data_type TEXT NOT NULL, experiment_id TEXT NOT NULL, window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL, api_rows INTEGER NOT NULL, landed_rows INTEGER NOT NULL,
    attempts INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    PRIMARY KEY (data_type, experiment_id, window_start, window_end));
CREATE TABLE IF NOT EXISTS tail_keys (
    data_type TEXT NOT NULL, experiment_id TEXT NOT NULL, key TEXT NOT NULL,
    cursor TEXT, PRIMARY KEY (data_type, experiment_id, key));
"""
TRANSFORM_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    raw_file TEXT PRIMARY KEY, data_type TEXT NOT NULL, size INTEGER NOT NULL,
    rows INTEGER NOT NULL, quarantined INTEGER NOT NULL, processed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS drift (
    data_type TEXT NOT NULL, kind TEXT NOT NULL, field TEXT NOT NULL,
    declared TEXT NOT NULL DEFAULT '', seen TEXT NOT NULL DEFAULT '',
    rows INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    PRIMARY KEY (data_type, kind, field, declared, seen));
CREATE TABLE IF NOT EXISTS transform_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Columns in the order of hs_sync.media.manifest.Entry's fields.
MEDIA_SCHEMA = """
CREATE TABLE IF NOT EXISTS media_files (
    recording_id TEXT PRIMARY KEY, experiment_id TEXT, room_id TEXT, participant_id TEXT,
    path TEXT, bytes INTEGER, expected_bytes INTEGER, sha256 TEXT, status TEXT, reason TEXT,
    attempts INTEGER, last_attempt TEXT, downloaded_at TEXT);
CREATE TABLE IF NOT EXISTS media_meta (name TEXT PRIMARY KEY, value TEXT);
"""
SCHEMA = EXTRACT_SCHEMA + TRANSFORM_SCHEMA + MEDIA_SCHEMA

# The files of the older layout, by stage, and the tables renamed in the one file.
LEGACY_FILES = {
    "extract": "extract.sqlite",
    "transform": "normalize.sqlite",
    "media": "media.sqlite",
}
_RENAMED = {("transform", "meta"): "transform_meta", ("media", "meta"): "media_meta"}


def path(warehouse: Warehouse) -> Path:
    return warehouse.state_dir / STATE_FILE


def legacy_paths(warehouse: Warehouse) -> dict[str, Path]:
    """The older layout's files that are still in place, by stage."""
    found = {stage: warehouse.state_dir / name for stage, name in LEGACY_FILES.items()}
    return {stage: p for stage, p in found.items() if p.exists()}


def exists(warehouse: Warehouse) -> bool:
    """Whether the warehouse has any state (the one file, or the older layout's)."""
    return path(warehouse).exists() or bool(legacy_paths(warehouse))


def with_journal(file: Path) -> list[Path]:
    """A SQLite file and its journal files."""
    return [file, *(file.with_name(file.name + end) for end in ("-wal", "-shm", "-journal"))]


def connect(warehouse: Warehouse) -> sqlite3.Connection:
    """A writer's connection (autocommit; any thread), creating the file and its tables
    and taking over an older layout's files first if need be."""
    file = path(warehouse)
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if legacy_paths(warehouse):
        _migrate(warehouse)
    return open_wal(file, SCHEMA, synchronous="FULL", timeout=BUSY_TIMEOUT_SECONDS)


def open_wal(
    file: Path, schema: str, *, synchronous: Literal["NORMAL", "FULL"], timeout: float
) -> sqlite3.Connection:
    """Open (creating if need be) a SQLite file in WAL mode with its tables, owner-only,
    as an autocommit connection any thread may use.

    Switching a new file to WAL takes a lock SQLite's busy handler does not wait for,
    so two openers creating the same file at once retry here instead of failing.
    """
    deadline = time.monotonic() + timeout
    while True:
        db = sqlite3.connect(file, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.executescript(schema)
            os.chmod(file, 0o600)
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except BaseException:
            db.close()
            raise


def _migrate(warehouse: Warehouse) -> None:
    """Copy the older layout's tables into a new state file, then rename them aside.

    The copy is built under a temporary name and linked into place only when
    complete (a link fails if another writer got there first), so a crash at any
    point leaves either the old files alone or the whole new file; the next open
    finishes the job.
    """
    file = path(warehouse)
    if not file.exists():
        fd, name = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".migrating", dir=file.parent)
        os.close(fd)
        temp = Path(name)
        try:
            _copy_legacy(warehouse, temp)
            temp.chmod(0o600)
            fsync_path(temp)
            with suppress(FileExistsError):
                os.link(temp, file)  # never replaces a state file another writer made
        except (sqlite3.Error, OSError):
            if not file.exists():
                raise
        finally:
            for part in with_journal(temp):
                part.unlink(missing_ok=True)
        fsync_path(file.parent)
    for left in file.parent.glob(f".{STATE_FILE}.*.migrating*"):
        left.unlink(missing_ok=True)  # a copy cut short (another writer's fails to link)
    for old in legacy_paths(warehouse).values():
        # journal files first: the database file is what says the move is unfinished
        for part in reversed(with_journal(old)):
            # another writer finishing the same upgrade may have moved it a moment ago
            with suppress(FileNotFoundError):
                part.replace(
                    part.with_name(old.name + MIGRATED_SUFFIX + part.name[len(old.name) :])
                )
    fsync_path(file.parent)


def _copy_legacy(warehouse: Warehouse, target: Path) -> None:
    db = sqlite3.connect(
        target.resolve().as_uri(), uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS
    )
    try:
        db.executescript(SCHEMA)
        stages = legacy_paths(warehouse)
        for stage, old in stages.items():
            # read-only: a file another writer has just moved aside is not made anew
            db.execute(f"ATTACH DATABASE ? AS {stage}", (f"{old.resolve().as_uri()}?mode=ro",))
        db.execute("BEGIN IMMEDIATE")
        try:
            for stage in stages:
                _copy_stage(db, stage)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for stage in stages:
            db.execute(f"DETACH DATABASE {stage}")
    finally:
        db.close()


def _copy_stage(db: sqlite3.Connection, stage: str) -> None:
    tables = db.execute(
        f"SELECT name FROM {stage}.sqlite_master WHERE type = 'table'"  # noqa: S608
    ).fetchall()
    for (table,) in tables:
        new = _RENAMED.get((stage, table), table)
        wanted = {r[1] for r in db.execute(f"PRAGMA main.table_info({_quote(new)})")}
        have = [r[1] for r in db.execute(f"PRAGMA {stage}.table_info({_quote(table)})")]
        cols = ", ".join(_quote(c) for c in have if c in wanted)
        if not cols:
            continue  # a table this version no longer keeps
        db.execute(
            f"INSERT OR REPLACE INTO main.{_quote(new)} ({cols}) "  # noqa: S608
            f"SELECT {cols} FROM {stage}.{_quote(table)}"
        )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def integrity_problem(file: Path) -> str | None:
    """Why a SQLite file cannot be used (one line), or None when it opens and reads."""
    try:
        db = _open_read_only(file)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()
            if verdict is None or verdict[0] != "ok":
                return f"integrity check: {verdict[0] if verdict else 'no answer'}"
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return None  # busy with a sync, not damaged
        return first_line(exc)
    except sqlite3.DatabaseError as exc:
        return first_line(exc)
    return None


def first_line(exc: BaseException) -> str:
    """An error's first line (its name when it has no text)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _open_read_only(file: Path) -> sqlite3.Connection:
    """A read-only connection; in a folder nobody may write to (a read-only warehouse),
    where SQLite cannot make the WAL index it reads through, the file as it is."""
    uri = file.resolve().as_uri()
    db = sqlite3.connect(
        f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False
    )
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
        if os.access(file.parent, os.W_OK):
            raise
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)


class StateReader:
    """The state file, read-only: named questions, empty answers when there is no state.

    Never creates or changes anything, so it works on a read-only warehouse and
    beside a running sync. A warehouse still in the older layout is read from its
    three files.
    """

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self._dbs: dict[Path, sqlite3.Connection | None] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for db in self._dbs.values():
                if db is not None:
                    db.close()
            self._dbs.clear()

    def __enter__(self) -> StateReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def files(self) -> list[Path]:
        """The files the state is read from (none when there is no state yet)."""
        one = path(self.warehouse)
        return [one] if one.exists() else list(legacy_paths(self.warehouse).values())

    def problem(self) -> tuple[Path, str] | None:
        """(file, why) of the first state file that does not open or read, or None."""
        for file in self.files():
            why = integrity_problem(file)
            if why is not None:
                return file, why
        return None

    def _file(self, stage: str) -> Path:
        one = path(self.warehouse)
        return one if one.exists() else self.warehouse.state_dir / LEGACY_FILES[stage]

    def _execute(self, stage: str, query: str, params: Iterable[Any]) -> sqlite3.Cursor | None:
        file = self._file(stage)
        if file not in self._dbs:
            try:
                self._dbs[file] = _open_read_only(file) if file.exists() else None
            except sqlite3.Error:
                self._dbs[file] = None
        db = self._dbs[file]
        if db is None:
            return None
        try:
            return db.execute(query, tuple(params))
        except sqlite3.Error:
            return None  # a table not made yet, or a file that does not read

    def _rows(self, stage: str, query: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            cur = self._execute(stage, query, params)
            return cur.fetchall() if cur is not None else []

    def _dicts(self, stage: str, query: str) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._execute(stage, query, ())
            if cur is None:
                return []
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # -- extraction --------------------------------------------------------

    def runs(self) -> list[dict[str, Any]]:
        """Every sync run, oldest first (summary as stored: JSON text)."""
        return self._dicts(
            "extract",
            "SELECT run_id, started_at, finished_at, status, requests, summary "
            "FROM runs ORDER BY started_at",
        )

    def finished_runs(self) -> list[dict[str, Any]]:
        """Runs that finished, in the order they finished."""
        done = [r for r in self.runs() if r["finished_at"] is not None]
        return sorted(done, key=lambda r: r["finished_at"])

    def running(self) -> bool:
        """Whether a run is recorded as started and not finished."""
        return any(r["status"] == "running" for r in self.runs())

    def watermarks(self) -> list[dict[str, Any]]:
        return self._dicts(
            "extract",
            "SELECT data_type, experiment_id, watermark, updated_at FROM watermarks "
            "ORDER BY data_type, experiment_id",
        )

    def watermark(self, data_type: str, experiment_id: str) -> str | None:
        rows = self._rows(
            "extract",
            "SELECT watermark FROM watermarks WHERE data_type = ? AND experiment_id = ?",
            (data_type, experiment_id),
        )
        return rows[0][0] if rows else None

    def last_completion(self, data_type: str, experiment_id: str) -> str | None:
        """When a whole-experiment pull of this (type, experiment) last completed."""
        rows = self._rows(
            "extract",
            "SELECT max(completed_at) FROM ledger "
            "WHERE data_type = ? AND experiment_id = ? AND scope = 'experiment'",
            (data_type, experiment_id),
        )
        return rows[0][0] if rows else None

    def units_synced_at(self) -> str | None:
        """The oldest of every (type, experiment)'s latest whole-experiment completion."""
        rows = self._rows(
            "extract",
            "SELECT min(last) FROM (SELECT max(completed_at) AS last FROM ledger "
            "WHERE scope = 'experiment' GROUP BY data_type, experiment_id)",
        )
        return rows[0][0] if rows else None

    def signals(self, prefix: str) -> list[tuple[str, str, str]]:
        """(name, value, seen_at) of the remembered signals whose name starts with `prefix`."""
        return self._rows(
            "extract",
            "SELECT name, value, seen_at FROM signals WHERE substr(name, 1, length(?)) = ?",
            (prefix, prefix),
        )

    def unconverged_windows(self) -> list[dict[str, Any]]:
        """Time windows marked as not converging (re-read twice, the API's count and the
        rows landed still differ): bounds in epoch seconds, both counts, first/last seen."""
        return self._dicts(
            "extract",
            "SELECT data_type, experiment_id, window_start, window_end, api_rows, landed_rows, "
            "attempts, first_seen, last_seen FROM unconverged_windows WHERE attempts >= 2 "
            "ORDER BY data_type, experiment_id, window_start",
        )

    # -- the transform -----------------------------------------------------

    def drift(self) -> list[dict[str, Any]]:
        """Every schema drift the transform has seen, per data type."""
        return self._dicts(
            "transform",
            "SELECT data_type, kind, field, declared, seen, rows, first_seen, last_seen "
            "FROM drift ORDER BY data_type, kind, field",
        )
