"""Quarantine: raw lines that could not be typed, kept with the reason.

One quarantine file mirrors one raw file
(`quarantine/<type>/experiment_id=<id>/<batch>/NNNNN.ndjson`), each line
`{"line", "reason", "raw_file", "text"}`; it is written atomically and
overwritten when the raw file is processed again, so re-runs never double it.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from hs_sync.land import rawfile
from hs_sync.load.normalize import Quarantined
from hs_sync.warehouse import Warehouse, atomic_write


def quarantine_path(warehouse: Warehouse, type_name: str, raw_path: Path) -> Path:
    relative = raw_path.relative_to(warehouse.root / "raw" / type_name)
    name = rawfile.stem(relative.name) + ".ndjson"
    return warehouse.quarantine_dir(type_name) / relative.parent / name


def write(
    warehouse: Warehouse, type_name: str, raw_path: Path, raw_file: str, rows: list[Quarantined]
) -> Path | None:
    """Record the quarantined rows of one raw file (removes a stale record if none)."""
    path = quarantine_path(warehouse, type_name, raw_path)
    if not rows:
        path.unlink(missing_ok=True)
        return None
    lines = [
        orjson.dumps(
            {"line": q.line, "reason": q.reason, "raw_file": raw_file, "text": q.text},
            option=orjson.OPT_APPEND_NEWLINE,
        )
        for q in rows
    ]
    atomic_write(path, b"".join(lines))
    return path


def count(warehouse: Warehouse) -> dict[str, int]:
    """Quarantined rows per data type, over the whole warehouse."""
    counts: dict[str, int] = {}
    root = warehouse.root / "quarantine"
    if not root.exists():
        return counts
    for type_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        total = 0
        for file in type_dir.rglob("*.ndjson"):
            if not file.name.startswith("."):
                total += sum(1 for line in file.read_bytes().split(b"\n") if line.strip())
        if total:
            counts[type_dir.name] = total
    return counts


def rows(warehouse: Warehouse, type_name: str) -> list[dict]:
    """Every quarantined row of one data type, with its reason."""
    out: list[dict] = []
    folder = warehouse.quarantine_dir(type_name)
    if folder.exists():
        for file in sorted(folder.rglob("*.ndjson")):
            if not file.name.startswith("."):
                out.extend(orjson.loads(x) for x in file.read_bytes().split(b"\n") if x.strip())
    return out
