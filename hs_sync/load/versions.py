"""Published versions of each type's hive Parquet: readers see a whole sync or none of it.

A type's files live in immutable version folders `parquet/.v/<type>/<n>/`, and
`parquet/<type>` is a relative symlink to the published one. A sync builds the
next version (files it leaves alone hard-linked from the published one, so a
version costs only what changed) and then replaces the link with one rename(2).
A replaced version is kept GRACE_SECONDS after it was replaced, so a reader
still scanning it never misses a file; a later run removes it. Versions a killed
run left unpublished are removed by the next run.

A file in a version folder is never changed in place, only linked or unlinked:
snapshots (hs_sync/snapshot.py) hold hard links to published files, so removing
a version never changes or removes what a snapshot holds.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from hs_sync.warehouse import Warehouse, fsync_path

VERSIONS_DIR = ".v"  # under parquet/: a dot name, so readers' globs and listings skip it
GRACE_SECONDS = 3600.0  # how long a replaced version stays for readers still scanning it


def versions_dir(warehouse: Warehouse, type_name: str) -> Path:
    return warehouse.root / "parquet" / VERSIONS_DIR / type_name


def _current(warehouse: Warehouse, type_name: str) -> str | None:
    """The name of the published version folder, or None (no link yet)."""
    link = warehouse.parquet_dir(type_name)
    return Path(os.readlink(link)).name if link.is_symlink() else None


def _number(name: str) -> int | None:
    return int(name) if name.isdigit() else None


def begin(warehouse: Warehouse, type_name: str, empty: bool = False) -> Path:
    """A new, unpublished version folder: the published files hard-linked (none if `empty`)."""
    folder = versions_dir(warehouse, type_name)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    numbers = [n for n in map(_number, os.listdir(folder)) if n is not None]
    new = folder / str(max(numbers, default=0) + 1)
    live = warehouse.parquet_dir(type_name)
    if empty or not live.is_dir():
        new.mkdir(mode=0o700)
    else:  # private names (temporary files of a killed run) are not carried over
        shutil.copytree(
            live.resolve(), new, copy_function=os.link, ignore=shutil.ignore_patterns(".*", "_*")
        )
    return new


def publish(warehouse: Warehouse, type_name: str, version: Path) -> None:
    """Make `version` the one readers see, in one atomic rename of a new link over the old."""
    for folder, _, _ in os.walk(version):
        fsync_path(Path(folder))
    os.utime(version)  # when it was published: the grace of the version it replaces
    live = warehouse.parquet_dir(type_name)
    tmp = live.with_name(f".{type_name}.{uuid.uuid4().hex}.link")
    os.symlink(os.path.relpath(version, live.parent), tmp)
    if live.is_dir() and not live.is_symlink():
        # a folder written before versions (or copied without links): set aside once,
        # kept like a replaced version
        legacy = versions_dir(warehouse, type_name) / f"legacy-{uuid.uuid4().hex}"
        os.rename(live, legacy)
        os.utime(legacy)
    os.replace(tmp, live)
    fsync_path(live.parent)


def clean(warehouse: Warehouse, type_name: str, grace: float | None = None) -> list[Path]:
    """Remove versions never published (a killed run's) and those replaced more than
    `grace` seconds ago (default GRACE_SECONDS); returns what was removed.
    Runs under the warehouse lock, before a new version is begun."""
    grace = GRACE_SECONDS if grace is None else grace
    folder = versions_dir(warehouse, type_name)
    if not folder.is_dir():
        return []
    current = _current(warehouse, type_name)
    current_n = _number(current) if current else None
    # when each version was published (its folder's time), by number
    published = {
        n: (folder / name).stat().st_mtime
        for name in os.listdir(folder)
        if (n := _number(name)) is not None and current_n is not None and n <= current_n
    }
    removed = []
    for path in sorted(folder.iterdir()):
        n = _number(path.name)
        if path.name == current:
            continue
        if n is None:  # a folder from before versions: replaced when the first one was published
            replaced = min(published.values(), default=0.0)
        elif n in published:  # replaced when the next version was published
            replaced = min(t for m, t in published.items() if m > n)
        else:
            replaced = 0.0  # built but never published
        if time.time() - replaced >= grace:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
