"""Raw NDJSON to Parquet and DuckDB: the step a sync runs after landing.

`transform` applies only the raw files not applied before (the ledger in
`state/normalize.sqlite`), so its work grows with the new data. Per data type
it types the new files one by one into a staging Parquet file, reduces them
to one row per key (the later file and line win; identical re-reads change nothing),
upserts the DuckDB copy, applies the Parquet partitions (while the next type
is typed on a second thread), and finally publishes the database and records
the files. Applying is idempotent, so a
crash anywhere only means the next run applies the same files again.
`rebuild` does the same from every raw file into fresh Parquet and a fresh
database, without the API.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hs_sync.land import quarantine, rawfile
from hs_sync.load import context, duck, memory
from hs_sync.load import parquet as parquet_store
from hs_sync.load.ledger import Ledger
from hs_sync.load.normalize import Drift, iter_normalized, read_slices, synced_at_of
from hs_sync.registry import DATA_TYPES, DataType
from hs_sync.warehouse import Warehouse

STAGE_ROW_GROUP = 64 * 1024  # rows per row group of the staging file (at most)
STAGE_BYTES = 16 * 1024 * 1024  # typed bytes held before a row group is written


@dataclass
class RawFile:
    path: Path
    name: str  # path relative to the warehouse root (the lineage value)
    experiment: str  # the experiment_id folder value
    size: int


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


def transform(warehouse: Warehouse, data_types: Sequence[DataType]) -> dict[str, Any]:
    """Apply the raw files landed since the last run, type by type in the order given;
    returns a JSON-able summary."""
    types = context.after_participants(data_types)
    return _run(Warehouse(warehouse.root).create(), types, rebuild=False)


def rebuild(warehouse: Warehouse, data_types: Sequence[DataType] = DATA_TYPES) -> dict[str, Any]:
    """Rebuild Parquet and DuckDB for these types from raw alone (no API)."""
    types = context.after_participants(data_types)
    return _run(Warehouse(warehouse.root).create(), types, rebuild=True)


def _run(warehouse: Warehouse, data_types: list[DataType], rebuild: bool) -> dict[str, Any]:
    started = time.monotonic()
    ledger = Ledger(warehouse)
    try:
        digest = duck.views_digest()
        stale_views = ledger.get_meta("views") != digest or not warehouse.db_path.exists()
        results = {dt.name: TypeResult() for dt in data_types}
        with _system_pool():
            published = _apply(warehouse, data_types, results, ledger, rebuild, stale_views)
        if published:
            ledger.set_meta("views", digest)
        return _summary(results, published, rebuild, time.monotonic() - started)
    finally:
        ledger.close()


def _apply(
    warehouse: Warehouse,
    data_types: list[DataType],
    results: dict[str, TypeResult],
    ledger: Ledger,
    rebuild: bool,
    stale_views: bool,
) -> bool:
    """Apply each type's new files in turn; returns whether a database was published.

    The database copy is made when the first type has something to apply, so a
    run with nothing new copies and publishes nothing (unless the views changed).
    """
    everything = {dt.name for dt in data_types} >= {dt.name for dt in DATA_TYPES}
    staging = warehouse.state_dir / "parquet-staging"
    build: duck.Build | None = None
    rebuilt: dict[str, Path] = {}

    def started() -> duck.Build:
        nonlocal build
        if build is None:
            build = duck.Build(warehouse, fresh=rebuild and everything)
            shutil.rmtree(staging, ignore_errors=True)  # leftovers of a crashed run
        return build

    # Typing one type's files (Python, holding the GIL) overlaps with loading the
    # previous type (DuckDB and Parquet encoding, which release it).
    stager = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hs-stage")
    try:
        previous: tuple[DataType, Future[Path], Warehouse | None] | None = None
        for dt in data_types:
            done = {} if rebuild else ledger.processed(dt.name)
            files = [f for f in raw_files(warehouse, dt) if done.get(f.name) != f.size]
            if rebuild:
                started().con.execute(duck.sql("DELETE FROM {t}", t=duck.quote(dt.name)))
                rebuilt[dt.name] = staging / f"rebuild-{uuid.uuid4().hex}"
                shutil.rmtree(warehouse.quarantine_dir(dt.name), ignore_errors=True)
            if not files:
                continue
            started()  # before staging: it clears the staging folder of a crashed run
            staged = stager.submit(_stage, warehouse, dt, files, results[dt.name])
            target = Warehouse(rebuilt[dt.name]) if rebuild else None
            if previous is not None:
                _load_type(started(), warehouse, *previous, results)
            previous = (dt, staged, target)
        if previous is not None:
            _load_type(started(), warehouse, *previous, results)
        if build is None and not stale_views:
            return False
        if rebuild:
            for dt in data_types:
                _swap_in(rebuilt[dt.name] / "parquet" / dt.name, warehouse.parquet_dir(dt.name))
        started().publish()
    except BaseException:
        stager.shutdown(wait=True, cancel_futures=True)
        if build is not None:
            build.discard()
        raise
    finally:
        stager.shutdown(wait=True)
    if rebuild:
        ledger.forget([dt.name for dt in data_types])
    for dt in data_types:
        r = results[dt.name]
        ledger.record(dt.name, r.applied)
        ledger.add_drift(dt.name, r.drift)
    shutil.rmtree(staging, ignore_errors=True)
    return True


def _swap_in(fresh: Path, live: Path) -> None:
    fresh.mkdir(parents=True, exist_ok=True, mode=0o700)
    live.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if live.exists():
        parquet_store.exchange(fresh, live)
        shutil.rmtree(fresh)
    else:
        fresh.rename(live)


@contextmanager
def _system_pool():
    # Arrow's default allocator keeps freed memory for reuse; the transform frees a
    # type's buffers before the next type, so the system allocator's prompt return
    # keeps peak memory lower (measured: about 50 MB at 100k events, same speed).
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def _load_type(
    build: duck.Build,
    warehouse: Warehouse,
    dt: DataType,
    staging: Future[Path],
    rebuild_target: Warehouse | None,
    results: dict[str, TypeResult],
) -> None:
    """Load one type's staged rows, once typed, into DuckDB and Parquet."""
    _apply_type(build, warehouse, dt, staging.result(), results[dt.name], rebuild_target)
    memory.give_back()


def _apply_type(
    build: duck.Build,
    warehouse: Warehouse,
    dt: DataType,
    staged: Path,
    result: TypeResult,
    rebuild_target: Warehouse | None,
) -> None:
    con = build.con
    try:
        con.read_parquet(str(staged)).create_view("__stage", replace=True)
        kind = context.fill_rooms(con, dt, _reduce(con, dt))
        result.rows_unique = con.execute("SELECT count(*) FROM __batch").fetchone()[0]
        # before the upsert, which replaces the stored rows that say where keys were
        stored, moved = parquet_store.stored_keys(con, dt, "__batch")
        result.db_rows_written = duck.apply_delta(con, dt, "__batch", stored)
        pq = parquet_store.apply(con, rebuild_target or warehouse, dt, "__batch", moved)
        result.parquet_rows_written = pq.rows_written
        result.partitions_touched = len(pq.partitions)
        result.partitions_rewritten = len(pq.rewritten)
        con.execute(f"DROP {kind} __batch")
        con.execute("DROP VIEW __stage")
    finally:
        staged.unlink(missing_ok=True)


def _stage(warehouse: Warehouse, dt: DataType, files: list[RawFile], result: TypeResult) -> Path:
    """Type the raw files into one staging Parquet file (typed columns, `__exp`, `__seq`).

    Streaming typed rows to a file keeps memory flat whatever the batch size, and
    DuckDB reads the file back columnar, without a temporary table to fill.
    """
    staging = warehouse.state_dir / "parquet-staging"
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = staging / f"stage-{dt.name}-{uuid.uuid4().hex}.parquet"
    schema = dt.arrow_schema.append(pa.field("__exp", pa.string()))
    schema = schema.append(pa.field("__seq", pa.int64()))
    seq = 0
    pending: list[pa.Table] = []  # typed slices not yet written: at most a row group
    held_rows = held_bytes = 0
    # Uncompressed, no statistics: the file lives for one step and is read whole once.
    # Dictionaries stay: DuckDB reads repeated strings from them much faster (1M events:
    # the whole transform takes 20 s with them, 23.6 s without).
    with pq.ParquetWriter(path, schema, compression="none", write_statistics=False) as writer:
        for raw in files:
            rows, quarantined, exp = 0, [], pa.scalar(raw.experiment, pa.string())
            pulled = context.pulled_for(raw.path) if context.needs_pull(dt) else None
            slices = read_slices(raw.path)
            for out in iter_normalized(dt, slices, raw.name, synced_at_of(raw.path)):
                n = out.table.num_rows
                typed = context.fill_pulled(dt, out.table, *pulled) if pulled else out.table
                table = typed.append_column("__exp", pa.repeat(exp, n))
                pending.append(
                    table.append_column("__seq", pa.array(range(seq, seq + n), pa.int64()))
                )
                seq += n
                rows += n
                quarantined += out.quarantined
                result.drift.update(out.drift)
                held_rows, held_bytes = held_rows + n, held_bytes + table.nbytes
                if held_rows >= STAGE_ROW_GROUP or held_bytes >= STAGE_BYTES:
                    writer.write_table(pa.concat_tables(pending), row_group_size=STAGE_ROW_GROUP)
                    pending, held_rows, held_bytes = [], 0, 0
            quarantine.write(warehouse, dt.name, raw.path, raw.name, quarantined)
            result.files += 1
            result.rows_read += rows
            result.quarantined += len(quarantined)
            result.applied.append((raw.name, raw.size, rows, len(quarantined)))
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=STAGE_ROW_GROUP)
    return path


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
            duck.sql(
                "CREATE OR REPLACE TEMP VIEW __batch AS "
                "SELECT *, false AS __multi, {part} AS __part FROM __stage",
                part=part,
            )
        )
        return "VIEW"
    content = ", ".join(duck.quote(c.name) for c in dt.columns) + ", _extra"
    con.execute(
        duck.sql(
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
    total = Drift()
    for r in results.values():
        total.update(r.drift)
    return {
        "rebuild": rebuild,
        "published": published,
        "seconds": round(seconds, 3),
        "rows": {name: r.rows_unique for name, r in results.items()},
        "quarantined": sum(r.quarantined for r in results.values()),
        "drift": {name: r.drift.as_dict() for name, r in results.items() if _has(r.drift)},
        "types": {name: r.as_dict() for name, r in results.items()},
    }


def _has(drift: Drift) -> bool:
    return bool(drift.new_fields or drift.type_changes)
