"""One writer per warehouse: syncs, rebuilds and media runs never interleave."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout

from hs_sync.errors import WarehouseLocked, WarehouseNotWritable
from hs_sync.warehouse import Warehouse, owner_only


@contextmanager
def warehouse_lock(
    warehouse: Warehouse, timeout: float = 5.0, group: str | None = None
) -> Iterator[None]:
    """Hold the warehouse's write lock; after `timeout` seconds, raise WarehouseLocked.

    Everything written while it is held is created owner-only (docs/design.md,
    invariant 8); on release, a warehouse shared with a group (`group`, or one given
    before) is made readable by that group.
    """
    lock = FileLock(str(warehouse.lock_path), mode=0o600)
    try:
        warehouse.create()
        lock.acquire(timeout=timeout)
    except PermissionError as exc:
        raise WarehouseNotWritable(warehouse.root, f"{exc.strerror} ({exc.filename})") from None
    except Timeout:
        raise WarehouseLocked(
            f"another hs-sync run is writing to {warehouse.root} "
            f"(waited {timeout:g}s for {warehouse.lock_path}); try again when it has finished"
        ) from None
    try:
        if group:
            warehouse.share(group)
        with owner_only():
            yield
    finally:
        try:
            warehouse.apply_sharing()
        finally:
            lock.release()
