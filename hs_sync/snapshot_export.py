"""A snapshot as one self-contained zip: what a paper's readers download and cite.

The zip holds one folder named after the snapshot: the DuckDB database, the
Parquet (written from the tagged tables on an Iceberg warehouse), the media
manifest, the data dictionary, `manifest.json`, `SHA256SUMS` and a README with a
citation stub. It opens anywhere: nothing in it refers to the warehouse.
The snapshot is verified first; a damaged one is not exported.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

from hs_sync import snapshot
from hs_sync.errors import HsSyncError
from hs_sync.warehouse import DB_FILE, Warehouse

README = "README.md"
SUMS = "SHA256SUMS"
_STORED = (".parquet", ".duckdb")  # compressed already: stored as they are


class SnapshotDamaged(HsSyncError):
    """`verify` found changed or missing files; the message names them."""

    exit_code = 1

    def __init__(self, name: str, problems: list[str]):
        super().__init__(f"snapshot {name!r} is damaged: " + "; ".join(problems))
        self.problems = problems


def export(warehouse: Warehouse, name: str, out: str | os.PathLike) -> dict[str, Any]:
    """Write snapshot `name` to the zip `out` (outside the warehouse), atomically."""
    from hs_sync.export import outside_warehouse

    wh = Warehouse(warehouse.root)
    folder = snapshot.path(wh, name)
    target = outside_warehouse(wh, out)
    problems = snapshot.verify(wh, name)
    if problems:
        raise SnapshotDamaged(name, problems)
    m = snapshot.manifest(wh, name)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    sums = {rel: f["sha256"] for rel, f in m["files"].items()}
    sums[snapshot.MANIFEST] = snapshot.sha256(folder / snapshot.MANIFEST)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for rel, file in snapshot.files_of(folder):
                _add(zf, f"{name}/{rel}", file)
            zf.write(folder / snapshot.MANIFEST, f"{name}/{snapshot.MANIFEST}")
            for table in sorted(m.get("iceberg_snapshots") or {}):
                rel, data = _iceberg_parquet(wh, name, table)
                zf.writestr(f"{name}/{rel}", data, compress_type=zipfile.ZIP_STORED)
                sums[rel] = hashlib.sha256(data).hexdigest()
            lines = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(sums.items()))
            zf.writestr(f"{name}/{SUMS}", lines)
            zf.writestr(f"{name}/{README}", readme(m))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"name": name, "out": str(target), "bytes": target.stat().st_size}


def _add(zf: zipfile.ZipFile, member: str, file: Path) -> None:
    kind = zipfile.ZIP_STORED if file.name.endswith(_STORED) else zipfile.ZIP_DEFLATED
    zf.write(file, member, compress_type=kind)


def _iceberg_parquet(wh: Warehouse, name: str, table: str) -> tuple[str, bytes]:
    """A tagged Iceberg table's rows as the snapshot froze them, as one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(snapshot.iceberg_rows(wh, name, table), sink)
    return f"parquet/{table}.parquet", sink.getvalue().to_pybytes()


def readme(m: dict[str, Any]) -> str:
    """The README of an exported snapshot: what it holds, how to open it, how to cite it."""
    sync = m.get("last_sync") or {}
    created = m["created_at"][:10]
    rows = "\n".join(f"| `{t}` | {n:,} |" for t, n in m["tables"].items())
    note = f"\n{m['note']}\n" if m.get("note") else ""
    return f"""# HyperStudy data snapshot `{m["name"]}`
{note}
Frozen by hs-sync {m["hs_sync_version"]} on {m["created_at"]} from a warehouse synced
from {m.get("api_base_url") or "the HyperStudy API"}. Last sync: run
`{sync.get("run_id", "-")}` ({sync.get("status", "-")}), data through
{sync.get("window_end") or "-"} (the API server's clock).

## Contents

- `{DB_FILE}`: every table and view (DuckDB 1.1 or later: `duckdb {DB_FILE}`)
- `parquet/<table>/`: the same tables as hive-partitioned Parquet
- `media_manifest.parquet` (when media was synced): every recording's file name,
  size, SHA-256 and status (the media files themselves are not included)
- `{snapshot.DICTIONARY}`: every column, its type and meaning
- `{snapshot.MANIFEST}`: row counts, checksums, the sync it follows
- `{SUMS}`: check the files with `sha256sum -c {SUMS}`

| table | rows |
| --- | --- |
{rows}

## Citation

> <Authors> ({created[:4]}). *<Title of the data set>*: HyperStudy data snapshot
> "{m["name"]}" (created {created}; last sync {sync.get("run_id", "-")}, data through
> {sync.get("window_end") or "-"}). hs-sync {m["hs_sync_version"]}. <Repository, DOI>.
"""
