"""The transform's ledger: which raw files are applied, and the drift seen so far.

Its tables live in the warehouse's state file (hs_sync/statestore.py). A raw file
is recorded only after its rows are durable in Parquet and published in DuckDB,
so a crash at any point just re-applies it (applying is idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from hs_sync import statestore
from hs_sync.load.typing_sql import Drift
from hs_sync.warehouse import Warehouse


class Ledger:
    """Read and record the transform's progress for one warehouse."""

    def __init__(self, warehouse: Warehouse):
        self._db = statestore.connect(warehouse)

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
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR REPLACE INTO processed VALUES (?, ?, ?, ?, ?, ?)",
                [(f, data_type, size, n, q, now) for f, size, n, q in files],
            )

    def forget(self, data_types: list[str]) -> None:
        """Drop what is recorded for these types (before a rebuild re-applies them)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for name in data_types:
                self._db.execute("DELETE FROM processed WHERE data_type = ?", (name,))
                self._db.execute("DELETE FROM drift WHERE data_type = ?", (name,))

    def add_drift(self, data_type: str, drift: Drift) -> None:
        now = datetime.now(timezone.utc).isoformat()
        rows = [("new_field", f, "", "", n) for f, n in drift.new_fields.items()]
        rows += [("type_change", f, d, s, n) for (f, d, s), n in drift.type_changes.items()]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for kind, fld, declared, seen, n in rows:
                self._db.execute(
                    "INSERT INTO drift VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (data_type, kind, field, declared, seen) "
                    "DO UPDATE SET rows = rows + excluded.rows, last_seen = excluded.last_seen",
                    (data_type, kind, fld, declared, seen, n, now, now),
                )

    def get_meta(self, name: str) -> str | None:
        row = self._db.execute(
            "SELECT value FROM transform_meta WHERE name = ?", (name,)
        ).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO transform_meta VALUES (?, ?)", (name, value))

    def clear(self) -> None:
        """Forget everything applied (the database it describes was lost)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for table in ("processed", "drift", "transform_meta"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608
