"""The DuckDB database `hyperstudy.duckdb`: one table per data type, plus the views.

hs-sync never opens the live database file for writing. A run that has
changes copies it (a reflink where the disk supports one), applies its upserts
to the copy, creates the views from `sql/views/*.sql`, checkpoints, and renames
the copy over the live file: one atomic step. A researcher who has the
database open (DuckDB CLI, a notebook) is never blocked and never blocks the
sync; their connection keeps reading the version it opened, and a new
connection sees the new one. Their own tables belong in another database file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa

from hs_sync import dictionary, registry
from hs_sync.config import DEFAULT_MEMORY_LIMIT
from hs_sync.db import quote, sql
from hs_sync.load.sqlfiles import sql_dir
from hs_sync.registry import LINEAGE_COLUMNS, DataType
from hs_sync.warehouse import Warehouse, fsync_path

_FICLONE = 0x40049409  # Linux ioctl: share the file's blocks (btrfs, xfs)

# The database is written in the oldest storage format that holds what it uses, so
# that DuckDB clients from 1.1 on (CLI, R, DBeaver drivers lag releases) open it.
STORAGE_VERSION = "v1.1.0"
_STORAGE_TAG = "v1.0.0+"  # how DuckDB names that format in duckdb_databases().tags


def duck_type(arrow_type: pa.DataType, json: bool = False) -> str:
    """The DuckDB column type for a declared Arrow type."""
    if json:
        return "JSON"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ"
    if pa.types.is_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_int64(arrow_type):
        return "BIGINT"
    if pa.types.is_float64(arrow_type):
        return "DOUBLE"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_list(arrow_type):
        return duck_type(arrow_type.value_type) + "[]"
    raise TypeError(f"no DuckDB type for {arrow_type}")


def table_columns(dt: DataType, json_as_text: bool = False) -> list[tuple[str, str]]:
    """(name, DuckDB type) of a type's table: declared columns then lineage."""
    return [
        (c.name, duck_type(c.type, c.json and not json_as_text))
        for c in dt.columns + LINEAGE_COLUMNS
    ]


TEMP_DIR = "duckdb-tmp"  # under state/: where DuckDB spills


def configure(
    con: duckdb.DuckDBPyConnection, memory_limit: str | None = None, temp_dir: Path | None = None
) -> None:
    """UTC, a memory limit (default: the `memory_limit` setting's) and a spill folder: a
    transform of any size fits in memory."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET memory_limit = $limit", {"limit": memory_limit or DEFAULT_MEMORY_LIMIT})
    con.execute("SET preserve_insertion_order = false")
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        con.execute("SET temp_directory = $dir", {"dir": str(temp_dir)})


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """A table for every registered data type; columns added to the registry are added."""
    for dt in registry.DATA_TYPES:
        cols = table_columns(dt)
        spec = ", ".join(f"{quote(n)} {t}" for n, t in cols)
        con.execute(f"CREATE TABLE IF NOT EXISTS {quote(dt.name)} ({spec})")
        have = {
            r[0]: r[1]
            for r in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = ?",
                [dt.name],
            ).fetchall()
        }
        for name, type_ in cols:
            if name not in have:
                con.execute(f"ALTER TABLE {quote(dt.name)} ADD COLUMN {quote(name)} {type_}")
            elif (have[name], type_) == ("BIGINT", "DOUBLE"):  # widened by the registry
                con.execute(f"ALTER TABLE {quote(dt.name)} ALTER COLUMN {quote(name)} TYPE {type_}")


def view_files() -> list[Path]:
    """The view definitions, in name order (a view may use views named before it).

    Raises HsSyncError when the installed SQL cannot be found.
    """
    return sorted(sql_dir("views").glob("*.sql"))


PARTICIPANT_ROWS = "participant_rows"
PARTICIPANT_COUNTS = "participant_counts"


def participant_types() -> list[DataType]:
    """The data types whose rows name a room and a participant, in registry order."""
    return [
        dt
        for dt in registry.DATA_TYPES
        if dt.lists is None and dt.column_for("room") and dt.column_for("participant")
    ]


def participant_rows_sql() -> str:
    """The `participant_rows` view, built from the registry: rows held per (data type,
    room, participant) for every data type whose rows name a room and a participant,
    so a type added to the registry is counted without a view file of its own; and
    `participant_counts`, the same counts as one column per data type."""
    parts = []
    for dt in participant_types():
        parts.append(
            sql(
                "SELECT {name} AS data_type, {room} AS room_id, {participant} AS participant_id, "
                "count(*) AS row_count FROM {table} GROUP BY ALL",
                name=_literal(dt.name),
                room=quote(dt.column_for("room")),
                participant=quote(dt.column_for("participant")),
                table=quote(dt.name),
            )
        )
    columns = ", ".join(
        sql(
            "coalesce(sum(row_count) FILTER (WHERE data_type = {name}), 0)::BIGINT AS {column}",
            name=_literal(dt.name),
            column=quote(dt.name),
        )
        for dt in participant_types()
    )
    counts = sql(
        "CREATE OR REPLACE VIEW {view} AS SELECT room_id, participant_id, {columns} "
        "FROM {rows} GROUP BY ALL",
        view=PARTICIPANT_COUNTS,
        columns=columns,
        rows=PARTICIPANT_ROWS,
    )
    return (
        f"CREATE OR REPLACE VIEW {PARTICIPANT_ROWS} AS "
        + " UNION ALL ".join(parts)
        + ";\n"
        + counts
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def views_digest() -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(participant_rows_sql().encode() + b"\0")
    for path in view_files():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def create_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create the registry's view, then run every `sql/views/*.sql` file (which may use
    it); returns the file names run."""
    con.execute(participant_rows_sql())
    done = []
    for path in view_files():
        con.execute(path.read_text(encoding="utf-8"))
        done.append(path.name)
    return done


def apply_delta(
    con: duckdb.DuckDBPyConnection, dt: DataType, batch: str, stored: int | None = None
) -> int:
    """Upsert the rows of relation `batch` into the type's table, by `_key`.

    A row is written when its key is new, when its content differs from the
    stored row, or when the batch saw the key change (`__multi`) and the stored
    row is not the batch's pick; identical re-reads leave the stored row (and
    its lineage) alone. Idempotent.
    `stored`, when the caller has counted them, is how many batch keys the table holds.
    Returns the number of rows written.
    """
    table = quote(dt.name)
    names = ", ".join(quote(n) for n, _ in table_columns(dt))
    # Only the key column is scanned to find stored keys: when none of the batch's
    # keys is stored (a first sync, rows that are only new) every row is written
    # without joining the stored rows' content.
    if stored is None:
        stored = con.execute(
            sql("SELECT count(*) FROM {t} WHERE _key IN (SELECT _key FROM {b})", t=table, b=batch)
        ).fetchone()[0]
    source = "__delta" if stored else batch
    differs = " OR ".join(
        f"b.{quote(c.name)}{'::JSON' if c.json else ''} IS DISTINCT FROM o.{quote(c.name)}"
        for c in dt.columns
    )
    differs += " OR b._extra::JSON IS DISTINCT FROM o._extra"
    # a key that changed within the batch is rewritten unless already stored from that file
    differs += " OR (b.__multi AND b._raw_file IS DISTINCT FROM o._raw_file)"
    if source == batch:
        written = con.execute(sql("SELECT count(*) FROM {b}", b=batch)).fetchone()[0]
        if written:
            con.execute(sql("INSERT INTO {t} ({c}) SELECT {c} FROM {b}", t=table, c=names, b=batch))
        return written
    con.execute(
        sql(
            "CREATE OR REPLACE TEMP TABLE __delta AS SELECT b.* FROM {batch} b "
            "LEFT JOIN {table} o ON o._key = b._key "
            "WHERE o._key IS NULL OR {differs}",
            batch=batch,
            table=table,
            differs=differs,
        )
    )
    written = con.execute("SELECT count(*) FROM __delta").fetchone()[0]
    if written:
        con.execute(sql("DELETE FROM {t} WHERE _key IN (SELECT _key FROM __delta)", t=table))
        con.execute(sql("INSERT INTO {t} ({c}) SELECT {c} FROM __delta", t=table, c=names))
    con.execute("DROP TABLE __delta")
    return written


def sweep_leftovers(warehouse: Warehouse) -> None:
    """Remove the database copies and spill files killed runs left behind. Call it
    holding the warehouse lock: then none is in use."""
    for stale in warehouse.state_dir.glob(f".{warehouse.db_path.name}.*.building*"):
        _remove(stale)
    shutil.rmtree(warehouse.state_dir / TEMP_DIR, ignore_errors=True)


class Build:
    """A private copy of the database that a run writes, then publishes atomically."""

    def __init__(self, warehouse: Warehouse, fresh: bool = False, memory_limit: str | None = None):
        self.live = warehouse.db_path
        self.path = warehouse.state_dir / f".{self.live.name}.{os.getpid()}.building"
        self.temp_dir = warehouse.state_dir / TEMP_DIR
        sweep_leftovers(warehouse)
        self.copied = self.live.exists() and not fresh  # then it has the views and comments
        if self.copied:
            _copy(self.live, self.path)
        if self.path.exists() and _storage_tag(self.path) != _STORAGE_TAG:
            # written by a newer format: copy its content into a file of the compatible one
            newer = warehouse.state_dir / f".{self.live.name}.{os.getpid()}.newer.building"
            os.replace(self.path, newer)
            self.copied = False
            self.con = _connect_compatible(self.path)
            db = self.con.execute("SELECT current_database()").fetchone()[0]
            self.con.execute("ATTACH ? AS newer (READ_ONLY)", [str(newer)])
            self.con.execute(sql("COPY FROM DATABASE newer TO {db}", db=quote(db)))
            self.con.execute("DETACH newer")
            _remove(newer)
        else:
            self.con = _connect_compatible(self.path)
        configure(self.con, memory_limit, self.temp_dir)
        ensure_tables(self.con)

    def publish(self, schema: bool = True) -> None:
        """Make the copy the live database. `schema=False`: the views and the data
        dictionary are unchanged since the copied database was made, so they are not
        made again (replacing a view drops its comments)."""
        if schema or not self.copied:
            create_views(self.con)
            dictionary.write_comments(self.con)  # the data dictionary as COMMENT ON
        self.con.execute("CHECKPOINT")
        self.con.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        fsync_path(self.path)
        os.chmod(self.path, 0o600)
        os.replace(self.path, self.live)
        fsync_path(self.live.parent)

    def discard(self) -> None:
        try:
            self.con.close()
        finally:
            _remove(self.path)
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _connect_compatible(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_VERSION})


def _storage_tag(path: Path) -> str | None:
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() "
            "WHERE database_name = current_database()"
        ).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def _copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return
        except OSError:
            pass  # no reflinks on this disk: copy the bytes (sendfile)
    shutil.copyfile(src, dst)


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal"), path.with_name(path.name + ".tmp")):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
