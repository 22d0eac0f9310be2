"""The room mode's extraction state: each room's version, content digest and offset,
the rooms an experiment lists, and the checkpoint of a group of room reads.

`ExtractState` (hs_sync/land/state.py) carries these methods over its one
connection; the tables are in hs_sync/statestore.py's schema.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

INSERT_LEDGER = (
    "INSERT INTO ledger (run_id, data_type, experiment_id, scope, scope_id, "
    "start_time, end_time, rows, total, requests, batch, completed_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SET_ROOM_VERSION = (
    "INSERT INTO room_versions VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (data_type, experiment_id, room_id) "
    "DO UPDATE SET version = excluded.version, synced_at = excluded.synced_at"
)
_SET_ROOM_DIGEST = (
    "INSERT INTO room_digests VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (data_type, experiment_id, room_id) "
    "DO UPDATE SET digest = excluded.digest, landed_at = excluded.landed_at"
)
_SET_ROOM_OFFSET = (
    "INSERT INTO room_offsets VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (data_type, experiment_id, room_id) "
    "DO UPDATE SET rows = excluded.rows, last_row = excluded.last_row"
)


@dataclass
class RoomRead:
    """The checkpoint of one completed room read (`ExtractState.checkpoint_rooms`)."""

    run_id: str
    data_type: str
    experiment_id: str
    room_id: str
    rows: int
    total: int | None
    requests: int
    batch: str | None  # the batch its files landed in (None: none landed)
    digest: str | None = None  # the content hash of a read landed whole
    offset: tuple[int, str] | None = None  # (rows landed, last row's hash) while collecting
    version: str | None = None  # the version to remember ("" or None: pull it again)
    keep_tail: bool = False  # see `complete_window`


def utc_stamp() -> str:
    return datetime.now(timezone.utc).isoformat()


class RoomState:
    """The room mode's reads and checkpoints, over `ExtractState`'s connection."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    def _transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _one(self, sql: str, params: Iterable[Any]) -> Any:
        raise NotImplementedError

    def room_versions(self, data_type: str, experiment_id: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT room_id, version FROM room_versions "
                "WHERE data_type = ? AND experiment_id = ?",
                (data_type, experiment_id),
            ).fetchall()
        return dict(rows)

    def set_room_versions(self, data_type: str, experiment_id: str, versions: dict[str, str]):
        """Remember the versions of rooms just pulled, in one transaction."""
        now = utc_stamp()
        rows = [(data_type, experiment_id, room, v, now) for room, v in versions.items()]
        with self._transaction():
            self._db.executemany(_SET_ROOM_VERSION, rows)

    def checkpoint_rooms(self, reads: list[RoomRead]) -> None:
        """Record completed room reads, all in one transaction: each one's ledger row,
        digest, offset and version (what `complete_window`, `set_room_digest`,
        `set_room_offset` and `set_room_versions` write one at a time)."""
        now = utc_stamp()
        ledger = [
            (r.run_id, r.data_type, r.experiment_id, "room", r.room_id, None, None, r.rows,
             r.total, r.requests, r.batch, now)
            for r in reads
        ]  # fmt: skip
        untailed = {(r.data_type, r.experiment_id) for r in reads if not r.keep_tail}
        digests = [
            (r.data_type, r.experiment_id, r.room_id, r.digest, now) for r in reads if r.digest
        ]
        offsets = [(r.data_type, r.experiment_id, r.room_id, *r.offset) for r in reads if r.offset]
        versions = [
            (r.data_type, r.experiment_id, r.room_id, r.version, now) for r in reads if r.version
        ]
        with self._transaction():
            self._db.executemany(INSERT_LEDGER, ledger)
            self._db.executemany(
                "DELETE FROM tail_keys WHERE data_type = ? AND experiment_id = ?", sorted(untailed)
            )
            self._db.executemany(_SET_ROOM_DIGEST, digests)
            self._db.executemany(_SET_ROOM_OFFSET, offsets)
            self._db.executemany(_SET_ROOM_VERSION, versions)

    def room_digest(self, data_type: str, experiment_id: str, room_id: str) -> str | None:
        """The content hash of a room's last landed read (rooms re-read while collecting)."""
        return self._one(
            "SELECT digest FROM room_digests "
            "WHERE data_type = ? AND experiment_id = ? AND room_id = ?",
            (data_type, experiment_id, room_id),
        )

    def set_room_digest(
        self, data_type: str, experiment_id: str, room_id: str, digest: str
    ) -> None:
        with self._lock:
            self._db.execute(
                _SET_ROOM_DIGEST, (data_type, experiment_id, room_id, digest, utc_stamp())
            )

    def room_offset(
        self, data_type: str, experiment_id: str, room_id: str
    ) -> tuple[int, str] | None:
        """(rows landed, hash of the last of them) of a room still collecting data."""
        with self._lock:
            row = self._db.execute(
                "SELECT rows, last_row FROM room_offsets "
                "WHERE data_type = ? AND experiment_id = ? AND room_id = ?",
                (data_type, experiment_id, room_id),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def set_room_offset(
        self, data_type: str, experiment_id: str, room_id: str, rows: int, last_row: str
    ) -> None:
        with self._lock:
            self._db.execute(_SET_ROOM_OFFSET, (data_type, experiment_id, room_id, rows, last_row))

    def listed_rooms(self, experiment_id: str) -> dict[str, str] | None:
        """Room id -> version of an experiment's rooms as last listed (None: never listed)."""
        with self._lock:
            listed = self._db.execute(
                "SELECT 1 FROM room_lists WHERE experiment_id = ?", (experiment_id,)
            ).fetchone()
            rows = self._db.execute(
                "SELECT room_id, version FROM listed_rooms WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchall()
        return dict(rows) if listed else None

    def set_listed_rooms(self, experiment_id: str, rooms: dict[str, str], read_at: str) -> None:
        """Replace an experiment's listed rooms, in one transaction."""
        with self._transaction():
            self._replace_rooms(experiment_id, rooms, read_at)

    def _replace_rooms(self, experiment_id: str, rooms: dict[str, str], read_at: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO room_lists VALUES (?, ?)", (experiment_id, read_at)
        )
        self._db.execute("DELETE FROM listed_rooms WHERE experiment_id = ?", (experiment_id,))
        self._db.executemany(
            "INSERT INTO listed_rooms VALUES (?, ?, ?)",
            [(experiment_id, room, version) for room, version in rooms.items()],
        )

    def rooms_final(self, experiment_id: str) -> bool:
        """Whether the experiment's last listed rooms are some, all final (none collecting)."""
        with self._lock:
            listed, running = self._db.execute(
                "SELECT count(*), coalesce(sum(version = ''), 0) FROM listed_rooms "
                "WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchone()
        return listed > 0 and running == 0
