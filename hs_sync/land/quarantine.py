"""Quarantine: raw lines that cannot become a row, kept with the reason.

One quarantine file mirrors one raw file
(`quarantine/<type>/experiment_id=<id>/<batch>/NNNNN.ndjson`), each line
`{"line", "reason", "raw_file", "text"}`; it is written atomically and
overwritten when the raw file is processed again. A line already quarantined
from another raw file of the same experiment (the same window pulled again, as
`--full-refresh` does) is not kept twice: one copy per source line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from hs_sync.land import rawfile
from hs_sync.warehouse import Warehouse, atomic_write


def quarantine_path(warehouse: Warehouse, type_name: str, raw_path: Path) -> Path:
    relative = raw_path.relative_to(warehouse.root / "raw" / type_name)
    name = rawfile.stem(relative.name) + ".ndjson"
    return warehouse.quarantine_dir(type_name) / relative.parent / name


def _digest(experiment_dir: str, text: str) -> bytes:
    return hashlib.blake2b(f"{experiment_dir}\0{text}".encode(), digest_size=16).digest()


class Known:
    """The lines one type's quarantine already holds, per experiment folder, except
    those of the quarantine files of `exclude` (raw files about to be rewritten)."""

    def __init__(self, warehouse: Warehouse, type_name: str, exclude: Iterable[Path] = ()):
        self.seen: set[bytes] = set()
        folder = warehouse.quarantine_dir(type_name)
        skip = {quarantine_path(warehouse, type_name, p) for p in exclude}
        if not folder.exists():
            return
        for file in folder.rglob("*.ndjson"):
            if file.name.startswith(".") or file in skip:
                continue
            experiment_dir = file.relative_to(folder).parts[0]
            for line in file.read_bytes().split(b"\n"):
                if line.strip():
                    self.seen.add(_digest(experiment_dir, orjson.loads(line)["text"]))

    def new(self, experiment_dir: str, rows: list[Any]) -> list[Any]:
        """The rows whose text no other raw file of the experiment quarantined (then
        remembered); equal lines within one raw file are each a source line."""
        digests = [_digest(experiment_dir, q.text) for q in rows]
        fresh = [q for q, d in zip(rows, digests, strict=True) if d not in self.seen]
        self.seen.update(digests)
        return fresh


def write(
    warehouse: Warehouse,
    type_name: str,
    raw_path: Path,
    raw_file: str,
    rows: list[Any],
    known: Known | None = None,
) -> int:
    """Record the quarantined lines of one raw file (`rows`: objects with `line`,
    `reason` and `text`), skipping those `known` already holds; removes a stale
    record if none is left. Returns how many lines were recorded."""
    path = quarantine_path(warehouse, type_name, raw_path)
    if known is not None:
        experiment_dir = raw_path.relative_to(warehouse.root / "raw" / type_name).parts[0]
        rows = known.new(experiment_dir, rows)
    if not rows:
        path.unlink(missing_ok=True)
        return 0
    lines = [
        orjson.dumps(
            {"line": q.line, "reason": q.reason, "raw_file": raw_file, "text": q.text},
            option=orjson.OPT_APPEND_NEWLINE,
        )
        for q in rows
    ]
    atomic_write(path, b"".join(lines))
    return len(rows)


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
