"""Named, frozen copies of the whole warehouse that later runs never change.

A snapshot is a folder `snapshots/<name>/` beside the live warehouse holding the
published database, every type's published Parquet, the media manifest (not the
media files), the data dictionary and `manifest.json`: row counts, a SHA-256 per
file, the last sync's run id and window end, the API base URL and the hs-sync
version. It costs almost no disk: its files are hard links to the published ones
(a copy where the disk cannot link). That is safe because hs-sync never
changes a published file in place: the database and each Parquet version are
written under new names and switched in by rename, and clean-up only unlinks
names, so a snapshot's links keep their bytes whatever later syncs, rebuilds,
repairs and version clean-ups do. On an Iceberg warehouse each table's current
snapshot is tagged `snapshot-<name>` instead, which `maintain` never expires.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from hs_sync import origin, registry, stores
from hs_sync.errors import HsSyncError
from hs_sync.warehouse import DB_FILE, Warehouse, fsync_path

SNAPSHOTS_DIR = "snapshots"  # under the warehouse root
MANIFEST = "manifest.json"
DICTIONARY = "data-dictionary.md"
MEDIA_MANIFEST = "media_manifest.parquet"
TAG_PREFIX = "snapshot-"  # an Iceberg tag per table: snapshot-<name>
FORMAT = 1  # the manifest's layout
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_BUILDING = ".building"  # suffix of a snapshot folder still being made
_CHUNK = 1 << 20


class SnapshotError(HsSyncError):
    """A snapshot name that is not usable, unknown or taken; nothing was changed."""

    exit_code = 2


def check_name(name: str) -> str:
    """`name` if it is a plain folder name (letters, digits, `.`, `_`, `-`; no path)."""
    if not _NAME.fullmatch(name or "") or name.endswith(_BUILDING):
        raise SnapshotError(
            f"{name!r} is not a snapshot name: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def root(warehouse: Warehouse) -> Path:
    return warehouse.root / SNAPSHOTS_DIR


def path(warehouse: Warehouse, name: str) -> Path:
    """The folder of an existing snapshot (SnapshotError when there is none)."""
    folder = root(warehouse) / check_name(name)
    if not (folder / MANIFEST).is_file():
        known = ", ".join(m["name"] for m in listing(warehouse)) or "none yet"
        raise SnapshotError(f"no snapshot {name!r} in {warehouse.root} (snapshots: {known})")
    return folder


def manifest(warehouse: Warehouse, name: str) -> dict[str, Any]:
    return orjson.loads((path(warehouse, name) / MANIFEST).read_bytes())


def database(warehouse: Warehouse, name: str) -> Path:
    """The snapshot's DuckDB file."""
    return path(warehouse, name) / DB_FILE


def connect(warehouse: Warehouse, name: str):
    """A read-only DuckDB connection to the snapshot's database."""
    import duckdb

    con = duckdb.connect(str(database(warehouse, name)), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con


def listing(warehouse: Warehouse) -> list[dict[str, Any]]:
    """Every snapshot's summary, oldest first."""
    out = []
    folder = root(warehouse)
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        file = entry / MANIFEST
        if entry.name.startswith(".") or not file.is_file():
            continue
        m = orjson.loads(file.read_bytes())
        out.append(
            {
                "name": m["name"],
                "created_at": m["created_at"],
                "note": m.get("note"),
                "last_sync": m.get("last_sync"),
                "rows": sum(m.get("tables", {}).values()),
                "files": len(m.get("files", {})),
                "bytes": sum(f["bytes"] for f in m.get("files", {}).values()),
                "path": str(entry),
            }
        )
    return sorted(out, key=lambda s: (s["created_at"], s["name"]))


def create(
    warehouse: Warehouse,
    name: str,
    note: str | None = None,
    base_url: str | None = None,
    lock_timeout: float = 5.0,
) -> dict[str, Any]:
    """Freeze the warehouse as the last complete run left it, under the warehouse lock
    (so no sync is half published); returns the manifest."""
    from hs_sync.lock import warehouse_lock

    check_name(name)
    wh = Warehouse(warehouse.root)
    with warehouse_lock(wh, timeout=lock_timeout):
        target = root(wh) / name
        if target.exists():
            raise SnapshotError(f"a snapshot named {name!r} exists already ({target})")
        if not wh.db_path.exists():
            raise SnapshotError(f"no database at {wh.db_path}; run `hs-sync sync` first")
        stores.require_usable(wh, ["database"])  # a damaged one: one line naming the repair
        _sweep(wh)
        building = root(wh) / f".{name}.{os.getpid()}{_BUILDING}"
        building.mkdir(parents=True, mode=0o700)
        tagged: dict[str, int] = {}  # Iceberg table -> the snapshot id tagged
        try:
            m = _build(wh, name, building, note, base_url, tagged)
            os.rename(building, target)
        except BaseException:
            _untag(wh, name, tagged)
            shutil.rmtree(building, ignore_errors=True)
            raise
        fsync_path(root(wh))
    return m


def _sweep(warehouse: Warehouse) -> None:
    """Remove snapshot folders a killed `create` or `delete` left (under the lock)."""
    for leftover in root(warehouse).glob(f".*{_BUILDING}"):
        shutil.rmtree(leftover, ignore_errors=True)


def _build(
    wh: Warehouse,
    name: str,
    folder: Path,
    note: str | None,
    base_url: str | None,
    tagged: dict[str, int],
) -> dict[str, Any]:
    from hs_sync.export import package_version

    _link(wh.db_path, folder / DB_FILE)
    if wh.storage.table_format == "iceberg":
        _tag(wh, name, tagged)
    else:
        for dt in registry.DATA_TYPES:
            live = wh.parquet_dir(dt.name)
            if live.is_dir():
                shutil.copytree(
                    live.resolve(),
                    folder / "parquet" / dt.name,
                    copy_function=_link,
                    ignore=shutil.ignore_patterns(".*", "_*"),
                )
    media_files = _write_media_manifest(wh, folder / DB_FILE, folder / MEDIA_MANIFEST)
    tables, views, dictionary = _describe(folder / DB_FILE)
    (folder / DICTIONARY).write_text(_dictionary_markdown(name, dictionary), encoding="utf-8")
    files = {rel: {"bytes": size, "sha256": digest} for rel, size, digest in _checksums(folder)}
    filled_from = origin.recorded(wh)
    m = {
        "format": FORMAT,
        "name": name,
        "note": note,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hs_sync_version": package_version(),
        # The API the warehouse remembers being filled from; the configured one if none.
        "api_base_url": _plain_url((filled_from or {}).get("base_url") or base_url),
        "api_organization": (filled_from or {}).get("org_id"),
        "table_format": wh.storage.table_format,
        "last_sync": _last_sync(wh),
        "tables": tables,
        "views": views,
        "parquet_rows": _parquet_rows(folder / "parquet"),
        "iceberg_snapshots": tagged,
        "media_files": media_files,  # recordings in media_manifest.parquet (None: no media yet)
        "files": files,
        "data_dictionary": dictionary,
    }
    data = orjson.dumps(m, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    (folder / MANIFEST).write_bytes(data)
    for sub, _, _ in os.walk(folder):
        fsync_path(Path(sub))
    return m


def _link(src: str | Path, dst: str | Path) -> None:
    """Hard-link `src` at `dst`; a copy where the disk cannot link."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _plain_url(url: str | None) -> str | None:
    """The URL without credentials or query (the base URL never needs either)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _last_sync(wh: Warehouse) -> dict[str, Any] | None:
    """The last finished sync run: id, status, when it finished and its window end."""
    from hs_sync.statestore import StateReader

    with StateReader(wh) as state:
        runs = state.finished_runs()
    if not runs:
        return None
    last = runs[-1]
    summary = orjson.loads(last["summary"]) if last.get("summary") else {}
    return {
        "run_id": last["run_id"],
        "status": last["status"],
        "started_at": last["started_at"],
        "finished_at": last["finished_at"],
        "window_end": summary.get("window_end"),
    }


def _write_media_manifest(wh: Warehouse, db: Path, file: Path) -> int | None:
    """The media manifest (paths, sizes, SHA-256, status) as Parquet: the database's
    `media_files` as published, else the state file's rows when a media run recorded
    some without publishing them. Returns its rows (None: no media manifest yet)."""
    import duckdb
    import pyarrow.parquet as pq

    from hs_sync import statestore

    con = duckdb.connect(str(db), read_only=True)
    try:
        published = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
            ["media_files"],
        ).fetchall()[0][0]
        table = (
            con.table("media_files").order("recording_id").to_arrow_table() if published else None
        )
    finally:
        con.close()
    if table is None:
        state = statestore.connect(wh)
        try:
            recorded = state.execute("SELECT count(*) FROM media_files").fetchone()[0]
        finally:
            state.close()
        if not recorded:
            return None
        from hs_sync.media import manifest as media  # the media package imports the client

        store = media.Manifest(wh)
        try:
            entries = sorted(store.entries().values(), key=lambda e: e.recording_id)
        finally:
            store.close()
        table = media.arrow_table(entries)
    pq.write_table(table, file)
    return table.num_rows


def _describe(db: Path) -> tuple[dict[str, int], list[str], dict[str, Any]]:
    """Row count per table, the views, and every relation's columns with their comments."""
    import duckdb

    from hs_sync.db import quote, sql

    con = duckdb.connect(str(db), read_only=True)
    try:
        relations = con.execute(
            "SELECT table_name, 'table', comment FROM duckdb_tables() WHERE schema_name = 'main' "
            "UNION ALL SELECT view_name, 'view', comment FROM duckdb_views() "
            "WHERE NOT internal AND schema_name = 'main' ORDER BY 2, 1"
        ).fetchall()
        tables = {
            n: con.execute(sql("SELECT count(*) FROM {t}", t=quote(n))).fetchone()[0]
            for n, kind, _ in relations
            if kind == "table"
        }
        columns = con.execute(
            "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
            "WHERE schema_name = 'main' AND NOT internal ORDER BY table_name, column_index"
        ).fetchall()
    finally:
        con.close()
    dictionary: dict[str, Any] = {
        n: {"kind": kind, "description": comment, "columns": []} for n, kind, comment in relations
    }
    for table, column, type_, comment in columns:
        if table in dictionary:
            dictionary[table]["columns"].append(
                {"name": column, "type": type_, "description": comment}
            )
    views = [n for n, kind, _ in relations if kind == "view"]
    return tables, views, dictionary


def _dictionary_markdown(name: str, dictionary: dict[str, Any]) -> str:
    lines = [f"# Data dictionary of snapshot `{name}`", ""]
    for relation, spec in dictionary.items():
        lines += [f"## `{relation}` ({spec['kind']})", "", spec["description"] or "", ""]
        lines += ["| column | type | description |", "| --- | --- | --- |"]
        for c in spec["columns"]:
            text = (c["description"] or "").replace("|", "/")
            lines.append(f"| `{c['name']}` | {c['type']} | {text} |")
        lines.append("")
    return "\n".join(lines)


def _parquet_rows(folder: Path) -> dict[str, int]:
    """Rows per type in the snapshot's Parquet, read from the files' footers."""
    import pyarrow.parquet as pq

    if not folder.is_dir():
        return {}
    return {
        t.name: sum(pq.read_metadata(f).num_rows for f in sorted(t.rglob("*.parquet")))
        for t in sorted(folder.iterdir())
    }


def files_of(folder: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix name, path) of every file in a snapshot but its manifest."""
    for sub, dirs, names in os.walk(folder):
        dirs.sort()
        for n in sorted(names):
            p = Path(sub) / n
            rel = p.relative_to(folder).as_posix()
            if rel != MANIFEST:
                yield rel, p


def sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _checksums(folder: Path) -> Iterator[tuple[str, int, str]]:
    for rel, p in files_of(folder):
        yield rel, p.stat().st_size, sha256(p)


def verify(warehouse: Warehouse, name: str) -> list[str]:
    """Recompute every file's checksum; returns the problems (empty: intact), one per
    file: changed, missing or not in the manifest; and a table's tag gone or moved."""
    folder = path(warehouse, name)
    m = manifest(warehouse, name)
    expected = m["files"]
    found = dict(files_of(folder))
    problems = []
    for rel, want in sorted(expected.items()):
        p = found.get(rel)
        if p is None:
            problems.append(f"{rel}: missing")
        elif p.stat().st_size != want["bytes"] or sha256(p) != want["sha256"]:
            problems.append(f"{rel}: changed (checksum differs from the manifest)")
    problems += [f"{rel}: not in the manifest" for rel in sorted(set(found) - set(expected))]
    if m.get("iceberg_snapshots"):
        held = _tags(warehouse, name)
        for table, snapshot_id in sorted(m["iceberg_snapshots"].items()):
            if held.get(table) != snapshot_id:
                problems.append(f"iceberg table {table}: tag {TAG_PREFIX}{name} missing or moved")
    return problems


def delete(warehouse: Warehouse, name: str, lock_timeout: float = 5.0) -> Path:
    """Remove a snapshot (its folder, and its Iceberg tags); returns the folder removed."""
    from hs_sync.lock import warehouse_lock

    wh = Warehouse(warehouse.root)
    with warehouse_lock(wh, timeout=lock_timeout):
        folder = path(wh, name)
        _untag(wh, name, manifest(wh, name).get("iceberg_snapshots") or {})
        gone = root(wh) / f".{name}.{os.getpid()}.deleting{_BUILDING}"
        os.rename(folder, gone)  # one step: the name is free, the rest is clean-up
        shutil.rmtree(gone, ignore_errors=True)
    return folder


# -- Iceberg tags ------------------------------------------------------------


def _iceberg_tables(wh: Warehouse) -> Iterator[tuple[str, Any]]:
    from pyiceberg.exceptions import NoSuchTableError

    from hs_sync.load import iceberg

    cat = iceberg.catalog(wh)
    for dt in registry.DATA_TYPES:
        try:
            yield dt.name, cat.load_table(f"{iceberg.NAMESPACE}.{dt.name}")
        except NoSuchTableError:
            continue


def _tag(wh: Warehouse, name: str, tagged: dict[str, int]) -> None:
    """Tag every Iceberg table's current snapshot, adding each to `tagged` as it is.

    A table that has the tag already is refused, never re-pointed: tables may be shared
    by several warehouse folders (a PostgreSQL catalog), each with its own snapshots.
    """
    tag = TAG_PREFIX + name
    tables = list(_iceberg_tables(wh))
    taken = sorted(table for table, t in tables if tag in t.metadata.refs)
    if taken:
        raise SnapshotError(
            f"the Iceberg tables {', '.join(taken)} have a tag {tag} already (a snapshot "
            "of another folder sharing them, or one a stopped `create` left); choose another name"
        )
    for table, t in tables:
        current = t.current_snapshot()
        if current is None:
            continue
        t.manage_snapshots().create_tag(current.snapshot_id, tag).commit()
        tagged[table] = current.snapshot_id


def _tags(wh: Warehouse, name: str) -> dict[str, int]:
    """table -> snapshot id the tag `snapshot-<name>` holds."""
    tag = TAG_PREFIX + name
    return {
        table: t.metadata.refs[tag].snapshot_id
        for table, t in _iceberg_tables(wh)
        if tag in t.metadata.refs
    }


def _untag(wh: Warehouse, name: str, tables: dict[str, int]) -> None:
    """Remove the tag from these tables where it still holds the snapshot id given."""
    if not tables:
        return
    tag = TAG_PREFIX + name
    for table, t in _iceberg_tables(wh):
        ref = t.metadata.refs.get(tag)
        if table in tables and ref is not None and ref.snapshot_id == tables[table]:
            t.manage_snapshots().remove_tag(tag).commit()


def iceberg_rows(warehouse: Warehouse, name: str, table: str):
    """A tagged Iceberg table's rows as the snapshot froze them (an Arrow table)."""
    from hs_sync.load import iceberg

    snapshot_id = manifest(warehouse, name)["iceberg_snapshots"][table]
    t = iceberg.catalog(warehouse).load_table(f"{iceberg.NAMESPACE}.{table}")
    return t.scan(snapshot_id=snapshot_id).to_arrow()
