"""The warehouse's state stores: check each opens and reads, set a damaged one aside and rebuild it.

Four files hold state beside raw/: the extraction state (`state/extract.sqlite`),
the transform's ledger (`state/normalize.sqlite`), the media manifest
(`state/media.sqlite`) and the database (`hyperstudy.duckdb`). raw/ is the system
of record, so each can be recovered:

- the database and the ledger are rebuilt from raw/ (as `hs-sync rebuild`);
- the extraction state starts empty: the next sync reads every window again
  (as `--full-refresh`; rows are keyed, so nothing is duplicated);
- the media manifest starts empty: the next media run checks every file again.

`check(warehouse)` reports; `repair(warehouse)` moves each damaged file (and its
`-wal`/`-shm`) to `state/damaged/`, then rebuilds or reinitialises it.
`require_usable` is what commands call first: a damaged store is one line
naming the repair, never a traceback.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from hs_sync.errors import HsSyncError, WarehouseNotWritable
from hs_sync.warehouse import Warehouse

DAMAGED_DIR = "damaged"
STATE_STORES = ("extract", "normalize", "media")  # the SQLite stores, by name
_DUCKDB_HEADERS = 3 * 4096  # a DuckDB file's header blocks, before its data blocks


class StoreDamaged(HsSyncError):
    """A state store does not open or read; `hs-sync doctor --repair` recovers it."""

    exit_code = 2

    def __init__(self, store: str, path: str, problem: str):
        super().__init__(
            f"{path} is damaged ({problem}); `hs-sync doctor --repair` sets it aside and "
            f"{RECOVERY[store]}"
        )
        self.store, self.path, self.problem = store, path, problem


RECOVERY = {
    "extract": "starts the extraction state afresh (the next sync reads everything again)",
    "normalize": "rebuilds the database and Parquet from raw/",
    "media": "starts the media manifest afresh (the next media run checks every file again)",
    "database": "rebuilds the database and Parquet from raw/",
}


@dataclass
class StoreReport:
    """One store as checked (and, after a repair, what was done)."""

    store: str
    path: str  # relative to the warehouse
    exists: bool
    problem: str | None = None  # why it does not open or read, as found
    repaired: str | None = None  # what the repair did about it
    moved_to: str | None = None  # where the damaged file was set aside

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def paths(warehouse: Warehouse) -> dict[str, Path]:
    """Each store's file."""
    state = warehouse.state_dir
    return {
        "extract": state / "extract.sqlite",
        "normalize": state / "normalize.sqlite",
        "media": state / "media.sqlite",
        "database": warehouse.db_path,
    }


def problem_of(store: str, path: Path) -> str | None:
    """Why `path` cannot be used (one line), or None when it opens and reads (or is absent)."""
    if not path.exists():
        return None
    if store == "database":
        return _duckdb_problem(path)
    return _sqlite_problem(path)


def _sqlite_problem(path: Path) -> str | None:
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
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
        return _line(exc)
    except sqlite3.DatabaseError as exc:
        return _line(exc)
    return None


def _duckdb_problem(path: Path) -> str | None:
    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()
            # used blocks, not total: free blocks at the end are not kept in the file
            # by every storage format (the v1.1 format hs-sync writes truncates them)
            block_size, blocks = con.execute(
                "SELECT block_size, used_blocks FROM pragma_database_size()"
            ).fetchone()
        finally:
            con.close()
        expected = _DUCKDB_HEADERS + block_size * blocks
        size = path.stat().st_size
        if size < expected:
            return f"cut short: {size:,} bytes of {expected:,}"
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            return None  # open for writing by a sync, not damaged
        return _line(exc)
    except duckdb.Error as exc:
        return _line(exc)
    return None


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check(warehouse: Warehouse, stores: Iterable[str] | None = None) -> list[StoreReport]:
    """Each store (all by default) as it is now."""
    out = []
    for store, path in paths(warehouse).items():
        if stores is not None and store not in stores:
            continue
        rel = str(path.relative_to(warehouse.root))
        out.append(StoreReport(store, rel, path.exists(), problem_of(store, path)))
    return out


def require_usable(warehouse: Warehouse, stores: Iterable[str] | None = None) -> None:
    """Raise StoreDamaged for the first damaged store among `stores` (all by default)."""
    for report in check(warehouse, stores):
        if not report.ok:
            _require_writable(warehouse, warehouse.root / report.path)
            raise StoreDamaged(report.store, report.path, report.problem or "")


def _require_writable(warehouse: Warehouse, path: Path) -> None:
    """A store that does not open because the warehouse is read-only is not damaged."""
    for target in (path, path.parent):
        if target.exists() and not os.access(target, os.W_OK):
            raise WarehouseNotWritable(warehouse.root, f"{target} is read-only")


def damaged(exc: BaseException, store: str, warehouse: Warehouse) -> StoreDamaged:
    """The StoreDamaged for an error met while using `store` (for `raise ... from None`)."""
    path = paths(warehouse)[store]
    return StoreDamaged(store, str(path.relative_to(warehouse.root)), _line(exc))


def repair(warehouse: Warehouse) -> list[StoreReport]:
    """Set every damaged store aside and recover it; returns the reports.

    Hold the warehouse lock while calling this (the CLI does).
    """
    reports = check(warehouse)
    broken = {r.store: r for r in reports if not r.ok}
    if not broken:
        return reports
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for store, report in broken.items():
        report.moved_to = _set_aside(warehouse, paths(warehouse)[store], stamp)
    if "extract" in broken:
        from hs_sync.land.state import ExtractState

        ExtractState(warehouse).close()
        broken["extract"].repaired = "started afresh"
    if "media" in broken:
        from hs_sync.media.manifest import Manifest

        Manifest(warehouse).close()
        broken["media"].repaired = "started afresh"
    if "normalize" in broken or "database" in broken:
        from hs_sync.load.ledger import ledger_path
        from hs_sync.load.transform import rebuild

        if "database" in broken and "normalize" not in broken:
            # The ledger says which raw files the lost database held: start it over too.
            ledger = ledger_path(warehouse)
            for part in _with_journal(ledger):
                part.unlink(missing_ok=True)
        summary = rebuild(warehouse)
        rows = sum(summary.get("rows", {}).values())
        for store in ("normalize", "database"):
            if store in broken:
                broken[store].repaired = f"rebuilt from raw/ ({rows:,} rows)"
    return reports


def _with_journal(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _set_aside(warehouse: Warehouse, path: Path, stamp: str) -> str:
    """Move a store file and its journal files to state/damaged/; returns where it went."""
    folder = warehouse.state_dir / DAMAGED_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / f"{path.name}.{stamp}"
    parts = _with_journal(path) + [path.with_name(path.name + ".wal")]
    for part in parts:
        if part.exists():
            part.replace(folder / f"{part.name}.{stamp}")
    return str(target.relative_to(warehouse.root))
