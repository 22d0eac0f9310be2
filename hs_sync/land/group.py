"""Group commit of room reads: the rooms of one unit land in one batch, made durable
and checkpointed a group at a time rather than one room at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hs_sync.land.batch import GROUP_FILES, GROUP_SECONDS, LandedFile, batch_stamp, commit_files
from hs_sync.registry import DataType
from hs_sync.warehouse import Warehouse

Waiting = list[tuple[Path, Path, LandedFile]]  # (manifest, data file, file) as temporaries


class RoomGroup:
    """One batch folder that the room reads of one (type, experiment) land into.

    A read's files wait under temporary names until it is published (`stage`) or
    dropped (`BatchWriter.discard`). Once `group_files` files wait, or the oldest
    has waited `group_seconds` (checked as each read is checkpointed), the
    waiting files are committed (`commit_files`, one folder fsync) and only then
    the reads' checkpoints written, all in one call of `checkpoint`: a room's
    state never claims files a crash could lose, and its files appear whole or
    not at all. A commit runs on a thread of its own while the next rooms are
    read, one at a time (reads that arrive meanwhile wait for the next); `close`
    commits the rest and re-raises what a commit raised.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        data_type: DataType,
        experiment_id: str,
        label: str,
        checkpoint: Callable[[list[Any]], None],
        *,
        group_files: int = GROUP_FILES,
        group_seconds: float = GROUP_SECONDS,
    ):
        parent = warehouse.raw_dir(data_type.name, experiment_id)
        self.folder = parent / f"{batch_stamp()}-{label}"
        self._checkpoint = checkpoint
        self.group_files, self.group_seconds = group_files, group_seconds
        self._seq = 0
        self._pending: Waiting = []
        self._entries: list[Any] = []
        self._since: float | None = None  # monotonic time the oldest wait began
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hs-commit")
        self._running: Future | None = None  # the commit under way

    def next_seq(self) -> int:
        """The next data file's number in the folder."""
        seq, self._seq = self._seq, self._seq + 1
        return seq

    def stage(self, pending: Waiting) -> None:
        """Take a published read's files, to commit with the group."""
        if pending and self._since is None:
            self._since = time.monotonic()
        self._pending += pending

    def checkpoint(self, entry: Any) -> None:
        """Queue a read's checkpoint, written once its files (and those before) are
        durable; start a commit when one is due and none is under way."""
        self._entries.append(entry)
        if self._since is None:
            self._since = time.monotonic()
        if self._running is not None:
            if not self._running.done():
                return
            self._running.result()  # a failed commit fails the unit
            self._running = None
        if (
            len(self._pending) >= self.group_files
            or time.monotonic() - self._since >= self.group_seconds
        ):
            self._running = self._committer.submit(self._commit, *self._take())

    def close(self) -> None:
        """Wait for the commit under way, then commit what still waits."""
        try:
            if self._running is not None:
                self._running.result()
            self._commit(*self._take())
        finally:
            self._running = None
            self._committer.shutdown(wait=True)

    def _take(self) -> tuple[Waiting, list[Any]]:
        pending, self._pending = self._pending, []
        entries, self._entries = self._entries, []
        self._since = None
        return pending, entries

    def _commit(self, pending: Waiting, entries: list[Any]) -> None:
        if pending:
            commit_files(pending, self.folder)
        if entries:
            self._checkpoint(entries)
