"""The warehouse's state stores: check each opens and reads, set a damaged one aside and rebuild it.

Two files hold state beside raw/: the state file (`state/state.sqlite`: the
extraction state, the transform's ledger and the media manifest, see
hs_sync/statestore.py) and the database (`hyperstudy.duckdb`). raw/ is the
system of record, so each can be recovered:

- the database is rebuilt from raw/ (as `hs-sync rebuild`);
- the state file starts empty: the next sync reads every window again (as
  `--full-refresh`; rows are keyed, so nothing is duplicated), the database is
  rebuilt from raw/ and the next media run checks every file again.

In a bucket warehouse (hs_sync/objstore.py) raw/ is also in the bucket, and a
local folder that lacks raw files the bucket holds (a new machine, a lost disk)
is a third store to recover: `raw` is fetched back from the bucket, then the
database and the tables are rebuilt from it.

`check(warehouse)` reports; `repair(warehouse, config)` moves each damaged file (and its
`-wal`/`-shm`) to `state/damaged/`, then rebuilds or reinitialises it.
`require_usable` is what commands call first: a damaged store is one line
naming the repair, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from hs_sync import objstore, statestore
from hs_sync.config import Config
from hs_sync.errors import ConfigError, HsSyncError, WarehouseNotWritable
from hs_sync.statestore import StateReader, first_line
from hs_sync.warehouse import Warehouse

DAMAGED_DIR = "damaged"
STATE_STORES = ("state",)  # the SQLite stores, by name
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


class RawNotHere(HsSyncError):
    """The bucket holds raw files this folder lacks; `hs-sync doctor --repair` fetches them."""

    exit_code = 2

    def __init__(self, uri: str | None, problem: str):
        super().__init__(
            f"{problem}; run `hs-sync doctor --repair` first: it fetches them from {uri} and "
            "rebuilds the database and the tables from raw/"
        )


RECOVERY = {
    "state": "starts the sync state afresh and rebuilds the database and Parquet from raw/ "
    "(the next sync reads everything again)",
    "database": "rebuilds the database and Parquet from raw/",
    "raw": "fetches the missing raw files from the bucket and rebuilds the database and "
    "the tables from raw/",
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
    return {"state": statestore.path(warehouse), "database": warehouse.db_path}


def _state_report(warehouse: Warehouse) -> StoreReport:
    """The state file as checked (or, before its first writer, the older layout's files)."""
    with StateReader(warehouse) as reader:
        files = reader.files()
        found = reader.problem()
    path = found[0] if found else statestore.path(warehouse)
    rel = str(path.relative_to(warehouse.root))
    return StoreReport("state", rel, bool(files), found[1] if found else None)


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
        return first_line(exc)
    except duckdb.Error as exc:
        return first_line(exc)
    return None


def check(warehouse: Warehouse, stores: Iterable[str] | None = None) -> list[StoreReport]:
    """Each store (all by default; `raw` only in a bucket warehouse) as it is now."""
    out = []
    for store, path in paths(warehouse).items():
        if stores is not None and store not in stores:
            continue
        if store == "state":
            out.append(_state_report(warehouse))
            continue
        rel = str(path.relative_to(warehouse.root))
        problem = _duckdb_problem(path) if path.exists() else None
        out.append(StoreReport(store, rel, path.exists(), problem))
    if warehouse.storage.uri and (stores is None or "raw" in stores):
        out.append(raw_report(warehouse))
    return out


def require_usable(warehouse: Warehouse, stores: Iterable[str] | None = None) -> None:
    """Raise StoreDamaged for the first damaged store among `stores` (default: the local
    stores, and in a bucket warehouse without local state yet, raw/ too)."""
    reports = check(warehouse, tuple(paths(warehouse)) if stores is None else stores)
    if stores is None and warehouse.storage.uri and not any(r.exists for r in reports):
        # A folder that has never synced: the bucket's raw files must be here before the
        # first transform, else the database (and a catalog in state/) would hold only
        # the rows of runs from now on. A folder in use is not listed on every run.
        reports.append(raw_report(warehouse))
    for report in reports:
        if report.store == "raw" and not report.ok:
            raise RawNotHere(warehouse.storage.uri, report.problem or "")
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
    return StoreDamaged(store, str(path.relative_to(warehouse.root)), first_line(exc))


def repair(warehouse: Warehouse, config: Config) -> list[StoreReport]:
    """Set every damaged store aside and recover it; returns the reports. The database
    is rebuilt as `hs-sync rebuild` would: `config`'s types, memory limit and grace.

    Hold the warehouse lock while calling this (the CLI does).
    """
    reports = check(warehouse)
    broken = {r.store: r for r in reports if not r.ok}
    if not broken:
        return reports
    from hs_sync.load.ledger import Ledger
    from hs_sync.load.transform import rebuild

    fetched = restore_raw(warehouse, broken.pop("raw", None))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for report in broken.values():
        report.moved_to = _set_aside(warehouse, warehouse.root / report.path, stamp)
    # A fresh state file (taking over whatever the older layout's files still hold);
    # its ledger must not claim raw files the database to be rebuilt lacks.
    ledger = Ledger(warehouse)
    try:
        ledger.clear()
    finally:
        ledger.close()
    summary = rebuild(
        warehouse, config.data_types, config.memory_limit, config.parquet_grace_seconds
    )
    rows = sum(summary.get("rows", {}).values())
    if "state" in broken:
        broken["state"].repaired = f"started afresh; database rebuilt from raw/ ({rows:,} rows)"
    if "database" in broken:
        broken["database"].repaired = f"rebuilt from raw/ ({rows:,} rows)"
    if fetched is not None:
        fetched.repaired += f"; database and tables rebuilt from raw/ ({rows:,} rows)"
    return reports


def raw_report(warehouse: Warehouse) -> StoreReport:
    """raw/ of a bucket warehouse: damaged when the bucket holds raw files this folder
    lacks (or holds at another size)."""
    missing = _missing_raw(warehouse)
    local = warehouse.root / "raw"
    exists = bool(missing) or (local.is_dir() and any(local.iterdir()))
    problem = None
    if missing:
        uri = warehouse.storage.uri
        problem = f"{len(missing):,} raw files of {uri} are not in this folder"
    return StoreReport("raw", "raw", exists, problem)


def restore_raw(warehouse: Warehouse, report: StoreReport | None) -> StoreReport | None:
    """Fetch the raw files the bucket holds and this folder lacks (`report`: raw/ as
    checked; None: nothing to fetch). The caller rebuilds the tables from them."""
    if report is None:
        return None
    missing = _missing_raw(warehouse)
    got = objstore.pull(warehouse.root, warehouse.storage, sorted(missing))
    report.repaired = f"{got['objects']:,} files ({got['bytes']:,} bytes) fetched from the bucket"
    return report


def _set_aside(warehouse: Warehouse, path: Path, stamp: str) -> str:
    """Move a store file and its journal files to state/damaged/; returns where it went."""
    folder = warehouse.state_dir / DAMAGED_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / f"{path.name}.{stamp}"
    parts = statestore.with_journal(path) + [path.with_name(path.name + ".wal")]
    for part in parts:
        if part.exists():
            part.replace(folder / f"{part.name}.{stamp}")
    return str(target.relative_to(warehouse.root))


def _missing_raw(warehouse: Warehouse) -> dict[str, int]:
    """The bucket's raw files this folder lacks; an unreachable bucket is one line."""
    try:
        return objstore.missing_here(warehouse.root, warehouse.storage)
    except OSError as exc:
        uri = warehouse.storage.uri
        raise ConfigError("warehouse", f"cannot list {uri}/raw: {first_line(exc)}") from None
