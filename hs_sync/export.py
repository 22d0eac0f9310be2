"""Exports from the local warehouse, at the HyperStudy dashboard's levels, offline.

One data type or all data for a participant, a room, a deployment or an
experiment, as CSV (UTF-8 with BOM, for Excel), JSON (nesting preserved) or
ZIP (one CSV per type plus `metadata.json`), filtered by event category and a
time range. Reads `hyperstudy.duckdb` read-only; uses no API and no budget.

Which rows belong to a level comes from the registry's columns: a type's
`<level>Id` column (chat: `senderId` for a participant), the level's own table
by `id`, and at deployment level the rooms of the deployment. Timestamps are
written as ISO 8601 UTC (`...Z`), onsets as the API's integer milliseconds.
The lineage columns `_key`, `_synced_at` and `_raw_file` are left out;
`_extra` (fields the schema does not declare) is kept.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa

from hs_sync import registry, stores
from hs_sync.db import connect_readonly, quote, sql
from hs_sync.errors import HsSyncError
from hs_sync.registry import DataType
from hs_sync.timeutil import parse_time, to_iso
from hs_sync.warehouse import Warehouse, atomic_file, safe_part

LEVELS = ("participant", "room", "deployment", "experiment")
FORMATS = ("csv", "json", "zip")
METADATA_FILE = "metadata.json"

# The table that holds each level's own records (matched by `id`).
LEVEL_TABLE = {level: registry.listing(level).name for level in LEVELS}
_LINEAGE_LEFT_OUT = ("_key", "_synced_at", "_raw_file")
_BATCH = 5000


class ExportError(HsSyncError):
    """Nothing to export: an unknown id, or filters that match no row (exit 1)."""


class ExportUsageError(HsSyncError):
    """An export argument is wrong; the message names the flag (exit 2)."""

    exit_code = 2

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option


@dataclass
class ExportSummary:
    """What an export wrote: `out` is the file or folder, `rows` the rows per type."""

    level: str
    id: str
    format: str
    out: Path
    files: list[Path] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # inside the ZIP
    rows: dict[str, int] = field(default_factory=dict)
    filters: dict[str, Any] = field(default_factory=dict)
    exported_at: str = ""
    version: str = ""

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "id": self.id,
            "format": self.format,
            "out": str(self.out),
            "files": [str(p) for p in self.files],
            "members": self.members,
            "rows": self.rows,
            "total_rows": self.total_rows,
            "filters": self.filters,
            "exported_at": self.exported_at,
            "hs_sync_version": self.version,
        }


@dataclass(frozen=True)
class _Plan:
    """One type's export query: its WHERE clause, parameters and output columns."""

    dt: DataType
    where: str
    params: tuple[Any, ...]
    time_column: str | None
    columns: tuple[registry.Column, ...]

    def select(self, fmt: str) -> str:
        exprs = ", ".join(_expr(c, fmt) for c in self.columns)
        order = [quote(self.time_column)] if self.time_column else []
        order.append("_key")
        return sql(
            "SELECT {exprs} FROM {table} WHERE {where} ORDER BY {order}",
            exprs=exprs,
            table=quote(self.dt.name),
            where=self.where,
            order=", ".join(order),
        )

    def count(self) -> str:
        return sql("SELECT count(*) FROM {t} WHERE {w}", t=quote(self.dt.name), w=self.where)


def level_condition(dt: DataType, level: str) -> str | None:
    """SQL condition (one `?`, the id) selecting a type's rows at a level; None if none."""
    names = {c.name for c in dt.columns}
    column = dt.column_for(level)
    if column is not None:
        return sql("{c} = ?", c=quote(column))
    if level == "deployment" and "roomId" in names:
        return "roomId IN (SELECT id FROM rooms WHERE deploymentId = ?)"
    return None


def types_at(level: str) -> list[str]:
    """The data types an export at `level` can hold, in registry order."""
    return [dt.name for dt in registry.DATA_TYPES if level_condition(dt, level) is not None]


def time_column(dt: DataType) -> str | None:
    """The column `--since/--until` filter on: the cursor, else `timestamp`; None if neither."""
    by_name = {c.name: c for c in dt.columns}
    for name in (dt.cursor, "timestamp"):
        if name and name in by_name and pa.types.is_timestamp(by_name[name].type):
            return name
    return None


def export(
    warehouse: Warehouse | str | os.PathLike,
    *,
    level: str,
    id: str,
    types: Sequence[str] = (),
    category: str | Sequence[str] | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    fmt: str,
    out: str | os.PathLike,
) -> ExportSummary:
    """Export one level's data from the warehouse to `out`; see the module docstring.

    Raises ExportUsageError (bad arguments, exit 2) and ExportError (unknown id
    or nothing matches the filters, exit 1); writes nothing in either case.
    """
    wh = warehouse if isinstance(warehouse, Warehouse) else Warehouse(Path(warehouse))
    if level not in LEVELS:
        raise ExportUsageError("--level", f"must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ExportUsageError("--format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not id or not str(id).strip():
        raise ExportUsageError("--id", "must not be empty")
    categories = _categories(category)
    start, end = _time("--since", since), _time("--until", until)
    if start and end and start >= end:
        raise ExportUsageError("--until", f"must be later than --since ({to_iso(start)})")
    chosen = _choose_types(level, types, categories)
    if not wh.db_path.exists():
        raise ExportUsageError(
            "--warehouse", f"no database at {wh.db_path}; run `hs-sync sync` first"
        )
    stores.require_usable(wh, ("database",))
    out_path = outside_warehouse(wh, out)
    exported_at = to_iso(datetime.now(timezone.utc))
    filters = {
        "category": list(categories) or None,
        "since": to_iso(start) if start else None,
        "until": to_iso(end) if end else None,
    }
    con = connect_readonly(wh)
    try:
        present = _table_columns(con)
        _check_id(con, level, id, present)
        plans = [
            _plan(dt, level, id, categories, start, end, present[dt.name])
            for dt in chosen
            if dt.name in present
        ]
        counts = {p.dt.name: con.execute(p.count(), list(p.params)).fetchone()[0] for p in plans}
        counts.update({dt.name: 0 for dt in chosen if dt.name not in counts})
        if not any(counts.values()):
            raise ExportError(_nothing_message(con, level, id, categories, filters, present))
        summary = ExportSummary(
            level=level,
            id=id,
            format=fmt,
            out=out_path,
            filters=filters,
            exported_at=exported_at,
            version=package_version(),
        )
        metadata = _metadata(summary, plans, counts, chosen)
        with_rows = [p for p in plans if counts[p.dt.name]]
        if _is_folder(out):
            out_path.mkdir(parents=True, exist_ok=True)
        if fmt == "zip":
            _write_zip(con, with_rows, summary, metadata)
        else:
            _write_files(con, with_rows, summary, metadata, single=len(chosen) == 1)
        summary.rows = {dt.name: summary.rows.get(dt.name, 0) for dt in chosen}
        return summary
    finally:
        con.close()


# -- arguments --------------------------------------------------------------


def _is_folder(out: str | os.PathLike) -> bool:
    """A trailing slash names a folder (which the export creates)."""
    return str(out).endswith(("/", os.sep))


def outside_warehouse(wh: Warehouse, out: str | os.PathLike) -> Path:
    """`--out` as a path, refused when it is inside the warehouse (an export must never
    replace the database or add files its readers would pick up) or when a trailing
    slash names a folder where a file is."""
    path = Path(out).expanduser()
    resolved, root = path.resolve(), wh.root.expanduser().resolve()
    if resolved == root or resolved.is_relative_to(root):
        raise ExportUsageError(
            "--out", f"{str(out)!r} is inside the warehouse {str(root)!r}; export outside it"
        )
    if _is_folder(out) and path.exists() and not path.is_dir():
        raise ExportUsageError("--out", f"{str(out)!r} ends with / but is a file")
    return path


def _categories(category: str | Sequence[str] | None) -> tuple[str, ...]:
    if category is None:
        return ()
    values = (category,) if isinstance(category, str) else tuple(category)
    if any(not isinstance(v, str) or not v.strip() for v in values):
        raise ExportUsageError("--category", "must not be empty")
    return tuple(dict.fromkeys(values))


def _time(option: str, value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    moment = parse_time(value) if isinstance(value, str) else None
    if moment is None:
        raise ExportUsageError(
            option, f"cannot read {value!r} as an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)"
        )
    return moment


def _choose_types(level: str, types: Sequence[str], categories: tuple[str, ...]) -> list[DataType]:
    available = types_at(level)
    with_category = [n for n in available if "category" in registry.get(n).declared_names]
    if not types:
        names = with_category if categories else available
    else:
        names = list(dict.fromkeys(types))
        for name in names:
            if name not in registry.BY_NAME:
                raise ExportUsageError(
                    "--type", f"unknown data type {name!r}; known: {', '.join(registry.BY_NAME)}"
                )
            if name not in available:
                raise ExportUsageError(
                    "--type",
                    f"{name} cannot be exported at {level} level; "
                    f"types at that level: {', '.join(available)}",
                )
            if categories and name not in with_category:
                raise ExportUsageError(
                    "--category",
                    f"filters only {', '.join(with_category)}; {name} has no category",
                )
    return [registry.get(n) for n in names]


# -- queries ----------------------------------------------------------------


def _table_columns(con) -> dict[str, set[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return {name: cols for name, cols in out.items() if name in registry.BY_NAME}


def _exists(con, dt: DataType, level: str, id_: str) -> bool:
    condition = level_condition(dt, level)
    query = sql("SELECT 1 FROM {t} WHERE {c} LIMIT 1", t=quote(dt.name), c=condition)
    return con.execute(query, [id_]).fetchone() is not None


def _check_id(con, level: str, id_: str, present: dict[str, set[str]]) -> None:
    """An id is known when its level's table, or any data at that level, has it."""
    for name in [LEVEL_TABLE[level], *types_at(level)]:
        if name in present and _exists(con, registry.get(name), level, id_):
            return
    raise ExportError(f"nothing to export: no {level} {id_!r} in the warehouse")


def _plan(
    dt: DataType,
    level: str,
    id_: str,
    categories: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
    present: set[str],
) -> _Plan:
    where = [level_condition(dt, level)]
    params: list[Any] = [id_]
    if categories:
        where.append(sql("category IN ({q})", q=", ".join("?" * len(categories))))
        params.extend(categories)
    tcol = time_column(dt)
    if tcol and start:
        where.append(sql("{c} >= ?", c=quote(tcol)))
        params.append(start)
    if tcol and end:
        where.append(sql("{c} < ?", c=quote(tcol)))
        params.append(end)
    columns = tuple(
        c
        for c in dt.columns + registry.LINEAGE_COLUMNS
        if c.name in present and c.name not in _LINEAGE_LEFT_OUT
    )
    where_sql = " AND ".join(f"({w})" for w in where)
    return _Plan(dt, where_sql, tuple(params), tcol, columns)


def _expr(c: registry.Column, fmt: str) -> str:
    """The SELECT expression writing column `c` in an export."""
    name = quote(c.name)
    if pa.types.is_timestamp(c.type):
        # milliseconds, as the API gives them, unless the value carries finer precision
        return sql(
            "CASE WHEN epoch_us({n}) % 1000 = 0 THEN strftime({n}, '%Y-%m-%dT%H:%M:%S.%gZ') "
            "ELSE strftime({n}, '%Y-%m-%dT%H:%M:%S.%fZ') END AS {n}",
            n=name,
        )
    if c.json:
        return sql("{n}::VARCHAR AS {n}", n=name)
    if pa.types.is_list(c.type) and fmt != "json":
        return sql("to_json({n})::VARCHAR AS {n}", n=name)
    return name


def _nothing_message(con, level, id_, categories, filters, present) -> str:
    applied = "; ".join(
        f"{k} {', '.join(v) if isinstance(v, list) else v}" for k, v in filters.items() if v
    )
    message = f"nothing to export: no rows for {level} {id_!r} match {applied or 'the filters'}"
    if categories and "events" in present:
        condition = level_condition(registry.get("events"), level)
        query = sql(
            "SELECT DISTINCT category FROM events WHERE {c} AND category IS NOT NULL ORDER BY 1",
            c=condition,
        )
        seen = [r[0] for r in con.execute(query, [id_]).fetchall()]
        if seen:
            message += f"; its event categories: {', '.join(seen)}"
    return message


def _batches(con, plan: _Plan, fmt: str) -> Iterator[list[tuple]]:
    cursor = con.execute(plan.select(fmt), list(plan.params))
    while True:
        rows = cursor.fetchmany(_BATCH)
        if not rows:
            return
        yield rows


# -- writers ----------------------------------------------------------------


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _write_csv(con, plan: _Plan, stream: IO[str]) -> int:
    """Rows of one type as CSV to a text stream opened with encoding utf-8-sig."""
    writer = csv.writer(stream)
    writer.writerow([c.name for c in plan.columns])
    written = 0
    for rows in _batches(con, plan, "csv"):
        writer.writerows([_csv_cell(v) for v in row] for row in rows)
        written += len(rows)
    return written


def _write_json(con, plan: _Plan, stream: IO[bytes]) -> int:
    """Rows of one type as a JSON array of objects, nested JSON decoded."""
    names = [c.name for c in plan.columns]
    nested = [i for i, c in enumerate(plan.columns) if c.json]
    written = 0
    stream.write(b"[")
    for rows in _batches(con, plan, "json"):
        for row in rows:
            values = list(row)
            for i in nested:
                if values[i] is not None:
                    values[i] = orjson.loads(values[i])
            stream.write(b"\n" if written == 0 else b",\n")
            stream.write(orjson.dumps(dict(zip(names, values, strict=True))))
            written += 1
    stream.write(b"\n]\n")
    return written


def _write_one(con, plan: _Plan, fmt: str, path: Path) -> int:
    with atomic_file(path) as fh:
        if fmt == "json":
            return _write_json(con, plan, fh)
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        try:
            return _write_csv(con, plan, text)
        finally:
            text.flush()
            text.detach()


def _write_files(con, plans: list[_Plan], summary: ExportSummary, metadata, single: bool) -> None:
    """One type: a file at `out` (or inside it, if a folder); several: a folder of files."""
    out = summary.out
    if single:
        plan = plans[0]
        path = out / f"{plan.dt.name}.{summary.format}" if out.is_dir() else out
        summary.rows[plan.dt.name] = _write_one(con, plan, summary.format, path)
        summary.files.append(path)
        return
    if out.exists() and not out.is_dir():
        raise ExportUsageError(
            "--out", f"{out} is a file; an export of several types goes into a folder"
        )
    for plan in plans:
        path = out / f"{plan.dt.name}.{summary.format}"
        summary.rows[plan.dt.name] = _write_one(con, plan, summary.format, path)
        summary.files.append(path)
    path = out / METADATA_FILE
    with atomic_file(path) as fh:
        fh.write(_metadata_bytes(metadata, summary.rows))
    summary.files.append(path)


def _write_zip(con, plans: list[_Plan], summary: ExportSummary, metadata) -> None:
    out = summary.out
    if out.is_dir():
        out = out / f"{summary.level}-{safe_part(summary.id)}.zip"
        summary.out = out
    with atomic_file(out) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        for plan in plans:
            name = f"{plan.dt.name}.csv"
            with zf.open(name, "w", force_zip64=True) as member:
                text = io.TextIOWrapper(member, encoding="utf-8-sig", newline="")
                summary.rows[plan.dt.name] = _write_csv(con, plan, text)
                text.flush()
                text.detach()
            summary.members.append(name)
        zf.writestr(METADATA_FILE, _metadata_bytes(metadata, summary.rows))
        summary.members.append(METADATA_FILE)
    summary.files.append(out)


def _metadata(
    summary: ExportSummary, plans: Iterable[_Plan], counts: dict[str, int], chosen
) -> dict:
    by_name = {p.dt.name: p for p in plans}
    member_ext = "csv" if summary.format == "zip" else summary.format
    types = {}
    for dt in chosen:
        plan = by_name.get(dt.name)
        types[dt.name] = {
            "rows": counts[dt.name],
            "file": f"{dt.name}.{member_ext}" if counts[dt.name] else None,
            "time_column": plan.time_column if plan else time_column(dt),
            "columns": [c.name for c in plan.columns] if plan else [],
        }
    return {
        "exported_by": "hs-sync",
        "hs_sync_version": summary.version,
        "exported_at": summary.exported_at,
        "source": "local warehouse (offline; no API requests)",
        "level": summary.level,
        "id": summary.id,
        "format": summary.format,
        "filters": summary.filters,
        "conventions": {
            "timestamps": "ISO 8601, UTC",
            "onsets": "integer milliseconds, as the API gives them",
            "csv": "UTF-8 with BOM; nested JSON and lists as JSON text",
            "time_range": "since inclusive, until exclusive, on each type's time_column",
        },
        "types": types,
    }


def _metadata_bytes(metadata: dict, written: dict[str, int]) -> bytes:
    for name, entry in metadata["types"].items():
        if name in written:
            entry["rows"] = written[name]
    return orjson.dumps(metadata, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hs-sync")
    except PackageNotFoundError:
        return "unknown"
