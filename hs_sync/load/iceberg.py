"""The normalized tables as Apache Iceberg tables (pyiceberg, SQL catalog).

Used instead of hive Parquet folders when the warehouse's table format is
"iceberg" (always for a bucket root; hs_sync/objstore.py). Each table is
`hyperstudy.<type>`, with the type's columns plus `experiment_id` (the
experiment a row was pulled for, as the hive folders name it), partitioned by
experiment and, for time series, the cursor's UTC day. A sync's rows of one
table go in as one transaction (delete the batch's keys, append its rows): a
reader sees all of a sync's changes to a table or none, and a run repeated after
a crash replaces the same keys again instead of adding them twice. The catalog
is a SQLite file in `state/` unless `catalog_uri` names one (PostgreSQL when
several machines share the tables). `maintain` compacts and expires snapshots (never a tagged one).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pyarrow as pa

from hs_sync.db import quote, sql
from hs_sync.load.parquet import ParquetResult
from hs_sync.registry import DataType
from hs_sync.warehouse import Warehouse

NAMESPACE = "hyperstudy"
PARTITION_COLUMN = "experiment_id"
CATALOG_FILE = "catalog.sqlite"  # under state/
MAX_FILES = 8  # `maintain` rewrites an experiment's rows once they span more data files
KEEP_SNAPSHOTS_FOR = timedelta(days=1)  # `maintain` expires older snapshots
COMMIT_ATTEMPTS = 5  # a commit another writer beat is redone on the new snapshot
DELETE_CHUNK = 50_000  # keys per delete expression (bounds the predicate's size)


def location(warehouse: Warehouse) -> str:
    """Where the table files live: `<uri>/iceberg` in a bucket, else `<root>/iceberg`."""
    storage = warehouse.storage
    if storage.uri:
        return f"{storage.uri}/iceberg"
    return (warehouse.root.resolve() / "iceberg").as_uri()


def catalog_uri(warehouse: Warehouse) -> str:
    return warehouse.storage.catalog_uri or f"sqlite:///{warehouse.state_dir / CATALOG_FILE}"


_catalogs: dict[tuple, Any] = {}
_catalogs_lock = threading.Lock()


def catalog(warehouse: Warehouse):
    """The warehouse's SQL catalog (created on first use; one per process and settings,
    so readers and writers in one process share its connection pool)."""
    from hs_sync import objstore

    props = objstore.iceberg_properties(warehouse.storage)
    key = (catalog_uri(warehouse), location(warehouse), tuple(sorted(props.items())))
    with _catalogs_lock:
        if key not in _catalogs:
            if not warehouse.storage.uri:
                (warehouse.root / "iceberg").mkdir(parents=True, exist_ok=True, mode=0o700)
            _catalogs[key] = _open_catalog(key[0], key[1], props)
        return _catalogs[key]


def _open_catalog(uri: str, where: str, props: dict[str, str]):
    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy.exc import DatabaseError

    for attempt in range(3):
        try:
            cat = SqlCatalog("hs_sync", uri=uri, warehouse=where, **props)
            cat.create_namespace_if_not_exists(NAMESPACE)
            return cat
        except DatabaseError:  # another machine created the catalog tables just now
            if attempt == 2:
                raise
            time.sleep(0.2)


def table_schema(dt: DataType) -> pa.Schema:
    return dt.arrow_schema.append(pa.field(PARTITION_COLUMN, pa.string()))


def table(cat, dt: DataType):
    """The type's table, created with its partition spec when missing."""
    from pyiceberg.transforms import DayTransform, IdentityTransform

    t = cat.create_table_if_not_exists(f"{NAMESPACE}.{dt.name}", schema=table_schema(dt))
    if t.spec().is_unpartitioned():  # created just now (or a crash came before the spec)
        from pyiceberg.exceptions import CommitFailedException

        try:
            with t.update_spec() as spec:
                spec.add_field(PARTITION_COLUMN, IdentityTransform(), PARTITION_COLUMN)
                if dt.date_partitioned and dt.cursor:
                    spec.add_field(dt.cursor, DayTransform(), "date")
        except CommitFailedException:  # another writer set the spec first
            pass
        t = cat.load_table(f"{NAMESPACE}.{dt.name}")
    return t


def upsert(
    con: duckdb.DuckDBPyConnection,
    warehouse: Warehouse,
    dt: DataType,
    batch: str,
    moved: Sequence[str] = (),
    replace: bool = False,
) -> ParquetResult:
    """Write the rows the DuckDB upsert just wrote for relation `batch` as one commit.

    Runs after `duck.apply_delta`: the rows it wrote are the table's rows that carry
    the batch's lineage (`_raw_file`); identical re-reads kept their older lineage
    and are not written again. The delete reads only the data files of the batch's
    experiments and of those `moved` (from `parquet.stored_keys`: partitions where
    an older copy of a batch key may be). `replace` (a rebuild) empties the table
    in the same commit.
    """
    from pyiceberg.exceptions import CommitFailedException

    cols = ", ".join(f"t.{quote(f.name)}" for f in dt.arrow_schema)
    rows = con.sql(
        sql(
            "SELECT {cols}, b.__exp AS {part} FROM {table} t JOIN {batch} b "
            "ON t._key = b._key AND t._raw_file IS NOT DISTINCT FROM b._raw_file",
            cols=cols,
            part=quote(PARTITION_COLUMN),
            table=quote(dt.name),
            batch=batch,
        )
    ).to_arrow_table()
    result = ParquetResult(rows_written=rows.num_rows)
    if not rows.num_rows and not replace:
        return result
    rows = rows.cast(table_schema(dt))
    keys = rows.column("_key").to_pylist()
    experiments = set(rows.column(PARTITION_COLUMN).unique().to_pylist())
    experiments |= {m.split("/", 1)[0].split("=", 1)[1] for m in moved}
    props = {"hs-sync.rows": str(rows.num_rows)}
    for attempt in range(COMMIT_ATTEMPTS):
        t = table(catalog(warehouse), dt)
        try:
            _commit(t, rows, keys, sorted(experiments), props, replace)
            break
        except CommitFailedException:  # another writer committed first: redo on its snapshot
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    result.partitions = set(rows.column(PARTITION_COLUMN).unique().to_pylist())
    result.files_written = len(result.partitions)
    return result


def _commit(
    t, rows: pa.Table, keys: list, experiments: list, props: dict[str, str], replace: bool
) -> None:
    """Delete the batch's keys (or everything) and append its rows: one commit."""
    from pyiceberg.expressions import AlwaysTrue, And, In

    with t.transaction() as tx, warnings.catch_warnings():
        # pyiceberg warns when a delete matches nothing: new keys, the common case
        warnings.filterwarnings("ignore", "Delete operation did not match", UserWarning)
        if replace:
            tx.delete(AlwaysTrue(), snapshot_properties=props)
        else:
            for start in range(0, len(keys), DELETE_CHUNK):
                chunk = In("_key", keys[start : start + DELETE_CHUNK])
                where = And(In(PARTITION_COLUMN, experiments), chunk)
                tx.delete(where, snapshot_properties=props)
        if rows.num_rows:
            tx.append(rows, snapshot_properties=props)


def read(warehouse: Warehouse, dt: DataType) -> pa.Table:
    """The table's current snapshot (empty when the table was never written)."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        t = catalog(warehouse).load_table(f"{NAMESPACE}.{dt.name}")
    except NoSuchTableError:
        return table_schema(dt).empty_table()
    return t.scan().to_arrow()


def maintain(
    warehouse: Warehouse, data_types: list[DataType], now: datetime | None = None
) -> dict[str, Any]:
    """Compact each experiment whose rows span more than MAX_FILES data files (one
    overwrite commit each) and expire snapshots older than KEEP_SNAPSHOTS_FOR, except
    those a tag holds (`hs-sync snapshot create` tags every table: a named snapshot
    stays readable however old). Compaction only adds commits, so a tagged snapshot's
    data files stay referenced."""
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.expressions import EqualTo

    cat = catalog(warehouse)
    now = now or datetime.now(timezone.utc)
    out: dict[str, Any] = {}
    for dt in data_types:
        try:
            t = cat.load_table(f"{NAMESPACE}.{dt.name}")
        except NoSuchTableError:
            continue
        compacted = []
        if t.current_snapshot() is not None:
            files = t.inspect.data_files().column("partition").to_pylist()
            counts: dict[str, int] = {}
            for part in files:
                counts[part[PARTITION_COLUMN]] = counts.get(part[PARTITION_COLUMN], 0) + 1
            for experiment, n in sorted(counts.items()):
                if n <= MAX_FILES:
                    continue
                where = EqualTo(PARTITION_COLUMN, experiment)
                rows = t.scan(row_filter=where).to_arrow()
                t.overwrite(rows, overwrite_filter=where)
                compacted.append(experiment)
        before = len(t.metadata.snapshots)
        t.maintenance.expire_snapshots().older_than(now - KEEP_SNAPSHOTS_FOR).commit()
        t = cat.load_table(f"{NAMESPACE}.{dt.name}")
        tagged = {r.snapshot_id for r in t.metadata.refs.values() if r.snapshot_ref_type == "tag"}
        out[dt.name] = {
            "compacted": compacted,
            "snapshots_expired": before - len(t.metadata.snapshots),
            "snapshots_tagged": len(tagged),
        }
    return out
