"""The sync split into its steps, for orchestrators that run each step as its own unit.

`hs-sync sync` runs these steps in one call; Dagster runs them as separate
assets: land raw data for the selected types (one API run), then transform
the selected types (one publish), then make sure the views are current, then
download the recordings' media. Every step that writes the DuckDB database
holds the warehouse lock, so writes from concurrent runs (or a cron
`hs-sync sync`) queue instead of overwriting one another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hs_sync import db, objstore
from hs_sync.config import Config
from hs_sync.load.transform import transform
from hs_sync.lock import warehouse_lock
from hs_sync.media import MediaSummary, download_media
from hs_sync.registry import DataType
from hs_sync.run import Progress, RunSummary, sync
from hs_sync.warehouse import Warehouse


def land(config: Config, *, progress: Progress | None = None) -> RunSummary:
    """Pull `config`'s data types into raw/ (no transform); the sync's own summary."""
    return sync(config, progress=progress, transform=False)


def transform_types(config: Config, data_types: Sequence[DataType]) -> dict[str, Any]:
    """Apply the raw files of these types landed since their last transform (Parquet +
    DuckDB), in one publish of the database."""
    warehouse = Warehouse(config.warehouse)
    with warehouse_lock(warehouse, config.lock_timeout_seconds):
        return transform(
            warehouse, list(data_types), config.memory_limit, config.parquet_grace_seconds
        )


def transform_all(config: Config) -> dict[str, Any]:
    """Apply the new raw files of every configured type (one database publish)."""
    warehouse = Warehouse(config.warehouse)
    with warehouse_lock(warehouse, config.lock_timeout_seconds):
        return transform(
            warehouse, list(config.data_types), config.memory_limit, config.parquet_grace_seconds
        )


def media(config: Config) -> tuple[MediaSummary, dict[str, int] | None]:
    """Download the media of `config`'s experiments (all by default); in a bucket warehouse
    then upload the new files, as a sync does. Returns the download summary and what was
    uploaded (None for a local warehouse)."""
    summary = download_media(config)
    warehouse = Warehouse(config.warehouse)
    if not warehouse.storage.uri:
        return summary, None
    # under the lock: no other writer is midway through a file the upload would send
    with warehouse_lock(warehouse, config.lock_timeout_seconds):
        return summary, objstore.push(warehouse.root, warehouse.storage)


def refresh_views(config: Config) -> dict[str, Any]:
    """(Re)create the SQL views when their definitions changed; list the views present."""
    warehouse = Warehouse(config.warehouse)
    with warehouse_lock(warehouse, config.lock_timeout_seconds):
        summary = transform(
            warehouse, [], config.memory_limit, config.parquet_grace_seconds
        )  # no types: publishes only when views are stale
    con = db.connect_readonly(warehouse)
    try:
        views = [
            r[0]
            for r in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
            ).fetchall()
        ]
    finally:
        con.close()
    return {"republished": summary["published"], "views": views}


def table_rows(config: Config, data_types: Sequence[DataType]) -> dict[str, int]:
    """Rows in each type's DuckDB table (0 before its first transform), read over one
    connection."""
    warehouse = Warehouse(config.warehouse)
    counts = {dt.name: 0 for dt in data_types}
    if not counts or not warehouse.db_path.exists():
        return counts
    con = db.connect_readonly(warehouse)
    try:
        present = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        }
        for name in counts.keys() & present:
            query = db.sql("SELECT count(*) FROM {t}", t=db.quote(name))
            counts[name] = con.execute(query).fetchone()[0]
    finally:
        con.close()
    return counts
