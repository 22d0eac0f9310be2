"""Raw NDJSON to Parquet and DuckDB: the step a sync runs after landing.

`transform` applies only the raw files not applied before (the ledger in
`state/state.sqlite`), so its work grows with the new data. Per data type
it loads the new files' lines into DuckDB, types them with the type's SQL
(`hs_sync/load/typing_sql.py`), reduces them to one row per key (the later file
and line win; identical re-reads change nothing), upserts the DuckDB copy,
applies the Parquet partitions, and finally publishes the database and
records the files. Applying is idempotent, so a crash anywhere only means the
next run applies the same files again. `rebuild` does the same from every raw
file into fresh Parquet and a fresh database, without the API.

A raw file that does not read is moved to `raw/.damaged/` and its window or
room is forgotten by the extraction state, so the next sync pulls it again.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hs_sync import db, dictionary, registry
from hs_sync.land import quarantine, rawfile
from hs_sync.land.state import ExtractState
from hs_sync.load import context, duck, iceberg, lines, typing_sql, versions
from hs_sync.load import parquet as parquet_store
from hs_sync.load.ledger import Ledger
from hs_sync.load.lines import RawFile
from hs_sync.load.typing_sql import KEY_SCHEME, Drift
from hs_sync.registry import DataType
from hs_sync.warehouse import Warehouse, fsync_path

DAMAGED_DIR = ".damaged"  # under raw/: files that did not read, kept for inspection


@dataclass
class TypeResult:
    files: int = 0
    rows_read: int = 0
    rows_unique: int = 0
    db_rows_written: int = 0
    parquet_rows_written: int = 0
    partitions_touched: int = 0
    partitions_rewritten: int = 0
    quarantined: int = 0
    damaged: list[str] = field(default_factory=list)  # raw files moved aside
    drift: Drift = field(default_factory=Drift)
    applied: list[tuple[str, int, int, int]] = field(default_factory=list)  # for the ledger

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("drift", "applied")}
        out["drift"] = self.drift.as_dict()
        return out


def raw_files(warehouse: Warehouse, dt: DataType) -> list[RawFile]:
    """Every landed data file of a type, in path order (= landing order per experiment)."""
    root = warehouse.root / "raw" / dt.name
    found: list[RawFile] = []
    if not root.is_dir():
        return found
    for exp_dir in sorted(root.iterdir()):
        if not exp_dir.name.startswith("experiment_id=") or not exp_dir.is_dir():
            continue
        experiment = exp_dir.name.split("=", 1)[1]
        for batch in sorted(exp_dir.iterdir()):
            if batch.name.startswith(".") or not batch.is_dir():
                continue
            for file in sorted(batch.iterdir()):
                if not rawfile.is_data_file(file.name):
                    continue
                name = file.relative_to(warehouse.root).as_posix()
                found.append(RawFile(file, name, experiment, file.stat().st_size))
    return found


def transform(
    warehouse: Warehouse,
    data_types: Sequence[DataType],
    memory_limit: str | None = None,
    grace_seconds: float | None = None,
) -> dict[str, Any]:
    """Apply the raw files landed since the last run, type by type in the order given;
    returns a JSON-able summary. `memory_limit` is DuckDB's (default: config.DEFAULT_MEMORY_LIMIT);
    Parquet versions replaced more than `grace_seconds` ago are removed
    (default: versions.GRACE_SECONDS)."""
    return _run(
        Warehouse(warehouse.root).create(),
        context.after_participants(data_types),
        False,
        memory_limit,
        grace_seconds,
    )


def rebuild(
    warehouse: Warehouse,
    data_types: Sequence[DataType] | None = None,
    memory_limit: str | None = None,
    grace_seconds: float | None = None,
) -> dict[str, Any]:
    """Rebuild Parquet and DuckDB for these types (default: every registered one) from
    raw alone (no API)."""
    return _run(
        Warehouse(warehouse.root).create(),
        context.after_participants(registry.DATA_TYPES if data_types is None else data_types),
        True,
        memory_limit,
        grace_seconds,
    )


def _run(
    warehouse: Warehouse,
    data_types: list[DataType],
    rebuild: bool,
    memory_limit: str | None,
    grace_seconds: float | None,
) -> dict[str, Any]:
    started = time.monotonic()
    _sweep(warehouse, grace_seconds)
    ledger = Ledger(warehouse)
    try:
        # the views and the data dictionary's comments are made again only when they changed
        digest = duck.views_digest() + dictionary.digest()
        stale_views = ledger.get_meta("views") != digest or not warehouse.db_path.exists()
        results = {dt.name: TypeResult() for dt in data_types}
        # Rows keyed by an older key scheme are rebuilt: old and new keys must never mix.
        rebuilt = {
            dt.name
            for dt in data_types
            if rebuild
            or (
                ledger.get_meta(f"key_scheme:{dt.name}") != KEY_SCHEME and ledger.processed(dt.name)
            )
        }
        published = _apply(
            warehouse, data_types, results, ledger, rebuilt, stale_views, memory_limit
        )
        if published:
            ledger.set_meta("views", digest)
            for dt in data_types:
                ledger.set_meta(f"key_scheme:{dt.name}", KEY_SCHEME)
        return _summary(results, published, rebuild, time.monotonic() - started)
    finally:
        ledger.close()


def _apply(
    warehouse: Warehouse,
    data_types: list[DataType],
    results: dict[str, TypeResult],
    ledger: Ledger,
    rebuilt: set[str],
    stale_views: bool,
    memory_limit: str | None,
) -> bool:
    """Apply each type's new files in turn; returns whether a database was published.

    The database copy is made when the first type has something to apply, so a
    run with nothing new copies and publishes nothing (unless the views changed).
    """
    everything = {dt.name for dt in registry.DATA_TYPES} <= rebuilt
    hive = warehouse.storage.table_format != "iceberg"
    build: duck.Build | None = None
    new_versions: dict[str, Path] = {}  # each changed type's unpublished Parquet version

    def started() -> duck.Build:
        nonlocal build
        if build is None:
            build = duck.Build(warehouse, fresh=everything, memory_limit=memory_limit)
        return build

    try:
        for dt in data_types:
            again = dt.name in rebuilt
            done = {} if again else ledger.processed(dt.name)
            files = [f for f in raw_files(warehouse, dt) if done.get(f.name) != f.size]
            if again:
                started().con.execute(db.sql("DELETE FROM {t}", t=db.quote(dt.name)))
                shutil.rmtree(warehouse.quarantine_dir(dt.name), ignore_errors=True)
            if hive and (again or files):
                new_versions[dt.name] = versions.begin(warehouse, dt.name, empty=again)
            if not files:
                continue
            _load_type(
                started(), warehouse, dt, files, results[dt.name], again, new_versions.get(dt.name)
            )
        if build is None and not stale_views:
            return False
        # one atomic switch per type, for all its partitions together
        for name in list(new_versions):
            versions.publish(warehouse, name, new_versions.pop(name))
        started().publish(schema=stale_views)
    except BaseException:
        if build is not None:
            build.discard()
        for version in new_versions.values():  # those not published; the next sweep too
            shutil.rmtree(version, ignore_errors=True)
        raise
    if rebuilt:
        ledger.forget(sorted(rebuilt))
    for dt in data_types:
        r = results[dt.name]
        ledger.record(dt.name, r.applied)
        ledger.add_drift(dt.name, r.drift)
    return True


def _sweep(warehouse: Warehouse, grace_seconds: float | None = None) -> None:
    """Remove what killed runs left: database copies, spill and staging files, unpublished
    Parquet versions and quarantine files half written, and Parquet versions replaced
    more than `grace_seconds` ago (the caller holds the warehouse lock)."""
    duck.sweep_leftovers(warehouse)
    shutil.rmtree(warehouse.state_dir / "parquet-staging", ignore_errors=True)  # older layout
    published = warehouse.root / "parquet" / versions.VERSIONS_DIR
    if published.is_dir():
        for folder in published.iterdir():
            versions.clean(warehouse, folder.name, grace_seconds)
    quarantined = warehouse.root / "quarantine"
    if quarantined.is_dir():
        for tmp in quarantined.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _load_type(
    build: duck.Build,
    warehouse: Warehouse,
    dt: DataType,
    files: list[RawFile],
    result: TypeResult,
    rebuilt: bool,
    version: Path | None,
) -> None:
    """Type one type's new raw files and apply them to DuckDB and Parquet (`version`:
    the type's unpublished hive version folder, None for Iceberg tables)."""
    con = build.con
    try:
        loaded, damaged = typing_sql.type_files(con, dt, files)
        for raw, reason in damaged:
            result.damaged.append(raw.name)
            set_aside(warehouse, dt, raw, reason)
        per_file = typing_sql.per_file(con)
        result.drift.update(typing_sql.drift(con))
        _quarantine(warehouse, dt, loaded, per_file, result)
        context.fill_pulled(con, dt, loaded)
        kind = context.fill_rooms(con, dt, _reduce(con, dt))
        result.rows_unique = con.execute("SELECT count(*) FROM __batch").fetchone()[0]
        # before the upsert, which replaces the stored rows that say where keys were
        stored, moved = parquet_store.stored_keys(con, dt, "__batch")
        result.db_rows_written = duck.apply_delta(con, dt, "__batch", stored)
        if warehouse.storage.table_format == "iceberg":
            pq = iceberg.upsert(con, warehouse, dt, "__batch", moved, replace=rebuilt)
        else:
            pq = parquet_store.apply(con, version, dt, "__batch", moved)
        result.parquet_rows_written = pq.rows_written
        result.partitions_touched = len(pq.partitions)
        result.partitions_rewritten = len(pq.rewritten)
        con.execute(f"DROP {kind} __batch")
    finally:
        con.execute("DROP VIEW IF EXISTS __stage")
        con.execute("DROP TABLE IF EXISTS __typed")


def _quarantine(
    warehouse: Warehouse,
    dt: DataType,
    loaded: dict[int, RawFile],
    per_file: dict[int, typing_sql.TypedFile],
    result: TypeResult,
) -> None:
    """Record each file's rows and quarantined lines (one copy per source line)."""
    rewritten = [raw.path for raw in loaded.values()]
    known = quarantine.Known(warehouse, dt.name, exclude=rewritten)
    for fid, raw in loaded.items():
        typed = per_file.get(fid, typing_sql.TypedFile())
        kept = quarantine.write(warehouse, dt.name, raw.path, raw.name, typed.quarantined, known)
        result.files += 1
        result.rows_read += typed.rows
        result.quarantined += kept
        result.applied.append((raw.name, raw.size, typed.rows, len(typed.quarantined)))


def set_aside(warehouse: Warehouse, dt: DataType, raw: RawFile, reason: str) -> Path:
    """Move a raw file that does not read (and its manifest) to `raw/.damaged/`, and
    make the next sync pull its window or room again."""
    relative = raw.path.relative_to(warehouse.root / "raw")
    target = warehouse.root / "raw" / DAMAGED_DIR / relative
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    meta = lines.manifest_path(raw.path)
    if meta.exists():
        meta.replace(target.with_name(meta.name))
    raw.path.replace(target)
    fsync_path(raw.path.parent)
    with ExtractState(warehouse) as state:
        state.forget_batch(
            dt.name, raw.path.parent.parent.name.split("=", 1)[1], raw.path.parent.name
        )
    return target


def _reduce(con, dt: DataType) -> str:
    """`__stage` to `__batch`: one row per key, with its partition and `__multi`.

    For a key seen more than once, the row kept is the first of the last run
    of identical content (so identical re-reads keep their first lineage), and
    `__multi` says the key changed content within the batch. When no key
    repeats (a first sync, new rows only) `__batch` is a view over the staged
    file: nothing is copied. Returns what `__batch` is: "VIEW" or "TABLE".
    """
    part = parquet_store.partition_expr(dt)
    repeated = con.execute(
        "SELECT count(*) FROM (SELECT _key FROM __stage GROUP BY _key HAVING count(*) > 1)"
    ).fetchone()[0]
    if not repeated:
        con.execute(
            db.sql(
                "CREATE OR REPLACE TEMP VIEW __batch AS "
                "SELECT *, false AS __multi, {part} AS __part FROM __stage",
                part=part,
            )
        )
        return "VIEW"
    content = ", ".join(db.quote(c.name) for c in dt.columns) + ", _extra"
    con.execute(
        db.sql(
            """
        CREATE OR REPLACE TEMP TABLE __batch AS
        WITH dup AS (SELECT _key FROM __stage GROUP BY _key HAVING count(*) > 1),
        single AS (
            SELECT *, false AS __multi FROM __stage WHERE _key NOT IN (SELECT _key FROM dup)
        ),
        runs AS (
            SELECT *, hash({content}) IS DISTINCT FROM
                   lag(hash({content})) OVER (PARTITION BY _key ORDER BY __seq) AS __start
            FROM __stage WHERE _key IN (SELECT _key FROM dup)
        ),
        starts AS (
            SELECT * EXCLUDE (__start),
                   count(*) OVER (PARTITION BY _key) > 1 AS __multi,
                   row_number() OVER (PARTITION BY _key ORDER BY __seq DESC) AS __rn
            FROM runs WHERE __start
        )
        SELECT *, {part} AS __part FROM (
            SELECT * FROM single
            UNION ALL BY NAME
            SELECT * EXCLUDE (__rn) FROM starts WHERE __rn = 1
        )
        """,
            content=content,
            part=part,
        )
    )
    return "TABLE"


def _summary(
    results: dict[str, TypeResult], published: bool, rebuild: bool, seconds: float
) -> dict[str, Any]:
    return {
        "rebuild": rebuild,
        "published": published,
        "seconds": round(seconds, 3),
        "rows": {name: r.rows_unique for name, r in results.items()},
        "quarantined": sum(r.quarantined for r in results.values()),
        "damaged": [f for r in results.values() for f in r.damaged],
        "drift": {name: r.drift.as_dict() for name, r in results.items() if r.drift},
        "types": {name: r.as_dict() for name, r in results.items()},
    }
