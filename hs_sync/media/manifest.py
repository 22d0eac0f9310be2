"""The media manifest: one row per recording with its file, size, sha256 and status.

Source of truth: the `media_files` table of the warehouse's state file
(`state/state.sqlite`, hs_sync/statestore.py), written one transaction per file as
downloads finish, so a crash loses nothing and the next run resumes. DuckDB
gets a copy, the `media_files` table, loaded the way every DuckDB change is
made (`duck.Build`: a private copy, then an atomic rename), at the end of a
media run that changed it. Transform runs copy the live database, so the
table survives them; a full `rebuild` starts a fresh database, and the next
media run (or `load_into` from the rebuild) brings the table back.
No URL is ever stored here: paths are relative to the warehouse root.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from hs_sync import db, statestore
from hs_sync.load import duck
from hs_sync.warehouse import Warehouse

TABLE = "media_files"
STATUSES = ("downloaded", "pending", "failed", "skipped")


@dataclass
class Entry:
    """One recording's row in the manifest."""

    recording_id: str
    experiment_id: str | None = None
    room_id: str | None = None
    participant_id: str | None = None
    path: str | None = None  # relative to the warehouse root
    bytes: int | None = None  # size of the verified file
    expected_bytes: int | None = None  # the metadata's fileSize
    sha256: str | None = None
    status: str = "pending"
    reason: str | None = None
    attempts: int = 0  # download attempts over all runs
    last_attempt: str | None = None  # ISO 8601 UTC
    downloaded_at: str | None = None


FIELDS = [f.name for f in dataclasses.fields(Entry)]
_DUCK_TYPES = {
    "bytes": "BIGINT",
    "expected_bytes": "BIGINT",
    "attempts": "INTEGER",
    "last_attempt": "TIMESTAMPTZ",
    "downloaded_at": "TIMESTAMPTZ",
}
# Statements built once from the field names above (identifiers only; values are parameters).
_COLS = ", ".join(FIELDS)
_SELECT = db.sql("SELECT {cols} FROM media_files", cols=_COLS)
_SELECT_ONE = db.sql("SELECT {cols} FROM media_files WHERE recording_id = ?", cols=_COLS)
_UPSERT = db.sql(
    "INSERT OR REPLACE INTO media_files VALUES ({marks})", marks=", ".join("?" * len(FIELDS))
)
_ARROW_TYPES = {
    "bytes": pa.int64(),
    "expected_bytes": pa.int64(),
    "attempts": pa.int32(),
    "last_attempt": pa.timestamp("us", tz="UTC"),
    "downloaded_at": pa.timestamp("us", tz="UTC"),
}


class Manifest:
    """Thread-safe access to the manifest's tables in the state file."""

    def __init__(self, warehouse: Warehouse):
        self._lock = threading.Lock()
        self._db = statestore.connect(warehouse)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def entries(self) -> dict[str, Entry]:
        with self._lock:
            rows = self._db.execute(_SELECT).fetchall()
        return {r[0]: Entry(*r) for r in rows}

    def put(self, entry: Entry) -> bool:
        """Write a row (one transaction); returns whether it changed anything."""
        values = [getattr(entry, n) for n in FIELDS]
        with self._lock:
            old = self._db.execute(_SELECT_ONE, [entry.recording_id]).fetchone()
            if old is not None and list(old) == values:
                return False
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(_UPSERT, values)
                self._db.execute("INSERT OR REPLACE INTO media_meta VALUES ('dirty', '1')")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    @property
    def dirty(self) -> bool:
        """Whether rows changed since the last publish to DuckDB."""
        with self._lock:
            row = self._db.execute("SELECT value FROM media_meta WHERE name = 'dirty'").fetchone()
        return bool(row and row[0] == "1")

    def mark_published(self) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO media_meta VALUES ('dirty', '0')")


def arrow_table(entries: list[Entry]) -> pa.Table:
    columns = {}
    for name in FIELDS:
        values = [getattr(e, name) for e in entries]
        if name in ("last_attempt", "downloaded_at"):
            values = [datetime.fromisoformat(v) if v else None for v in values]
        columns[name] = pa.array(values, _ARROW_TYPES.get(name, pa.string()))
    return pa.table(columns)


def load_into(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> int:
    """(Re)create `media_files` in a database being built; returns its row count."""
    entries = sorted(manifest.entries().values(), key=lambda e: e.recording_id)
    spec = ", ".join(f"{db.quote(n)} {_DUCK_TYPES.get(n, 'VARCHAR')}" for n in FIELDS)
    con.execute(f"CREATE OR REPLACE TABLE {TABLE} ({spec})")
    con.register("__media_files", arrow_table(entries))
    try:
        con.execute(db.sql("INSERT INTO {t} SELECT * FROM __media_files", t=TABLE))
    finally:
        con.unregister("__media_files")
    return len(entries)


def published(warehouse: Warehouse) -> bool:
    """Whether the live database has a `media_files` table."""
    if not warehouse.db_path.exists():
        return False
    try:
        con = db.connect_readonly(warehouse)
    except duckdb.Error:
        return False
    try:
        return bool(
            con.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = 'main' AND table_name = ?",
                [TABLE],
            ).fetchone()[0]
        )
    finally:
        con.close()


def publish(warehouse: Warehouse, manifest: Manifest) -> None:
    """Copy the manifest into the live database (private copy, then atomic rename)."""
    build = duck.Build(warehouse)
    try:
        load_into(build.con, manifest)
        build.publish()
    except BaseException:
        build.discard()
        raise
    manifest.mark_published()
