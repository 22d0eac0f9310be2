"""The transform's ledger: which raw files are applied, and the drift seen so far.

Lives at `<warehouse>/state/normalize.sqlite`. A raw file is recorded only after
its rows are durable in Parquet and published in DuckDB, so a crash at any
point just re-applies it (applying is idempotent).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from hs_sync.load.typing_sql import Drift
from hs_sync.warehouse import Warehouse

LEDGER_FILE = "normalize.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    raw_file TEXT PRIMARY KEY, data_type TEXT NOT NULL, size INTEGER NOT NULL,
    rows INTEGER NOT NULL, quarantined INTEGER NOT NULL, processed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS drift (
    data_type TEXT NOT NULL, kind TEXT NOT NULL, field TEXT NOT NULL,
    declared TEXT NOT NULL DEFAULT '', seen TEXT NOT NULL DEFAULT '',
    rows INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    PRIMARY KEY (data_type, kind, field, declared, seen));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def ledger_path(warehouse: Warehouse) -> Path:
    return warehouse.state_dir / LEDGER_FILE


class Ledger:
    """Read and record the transform's progress for one warehouse."""

    def __init__(self, warehouse: Warehouse):
        path = ledger_path(warehouse)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def processed(self, data_type: str) -> dict[str, int]:
        """raw_file -> size, for every applied raw file of a type."""
        cur = self._db.execute(
            "SELECT raw_file, size FROM processed WHERE data_type = ?", (data_type,)
        )
        return dict(cur.fetchall())

    def record(self, data_type: str, files: Iterable[tuple[str, int, int, int]]) -> None:
        """Mark raw files applied: (raw_file, size, rows, quarantined)."""
        now = datetime.now(timezone.utc).isoformat()
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO processed VALUES (?, ?, ?, ?, ?, ?)",
                [(f, data_type, size, n, q, now) for f, size, n, q in files],
            )

    def forget(self, data_types: list[str]) -> None:
        """Drop what is recorded for these types (before a rebuild re-applies them)."""
        with self._db:
            self._db.execute("BEGIN")
            for name in data_types:
                self._db.execute("DELETE FROM processed WHERE data_type = ?", (name,))
                self._db.execute("DELETE FROM drift WHERE data_type = ?", (name,))

    def add_drift(self, data_type: str, drift: Drift) -> None:
        now = datetime.now(timezone.utc).isoformat()
        rows = [("new_field", f, "", "", n) for f, n in drift.new_fields.items()]
        rows += [("type_change", f, d, s, n) for (f, d, s), n in drift.type_changes.items()]
        with self._db:
            self._db.execute("BEGIN")
            for kind, fld, declared, seen, n in rows:
                self._db.execute(
                    "INSERT INTO drift VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (data_type, kind, field, declared, seen) "
                    "DO UPDATE SET rows = rows + excluded.rows, last_seen = excluded.last_seen",
                    (data_type, kind, fld, declared, seen, n, now, now),
                )

    def drift(self) -> list[dict]:
        """Every drift seen so far, per data type (for `hs-sync status`)."""
        cur = self._db.execute(
            "SELECT data_type, kind, field, declared, seen, rows, first_seen, last_seen "
            "FROM drift ORDER BY data_type, kind, field"
        )
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def get_meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))
