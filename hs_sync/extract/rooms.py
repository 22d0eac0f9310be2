"""Rooms: a type read one room at a time, each room that is new, changed or still collecting.

A room's version (its `updatedAt` and status, from the rooms listing) says
whether it changed since it was last pulled; a room still collecting data is
pulled on every sync, continued from its landed offset. When so many rooms are
due that one experiment-scope read takes fewer requests, that read is made
instead. Rooms named to repair (`--room`) are re-read whole, for any type a
room can be read for.

State it owns: `room_versions`, `room_digests`, `room_offsets` and its ledger rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from hs_sync.api.client import Envelope
from hs_sync.api.paths import endpoint, quote_id
from hs_sync.errors import NotFoundError
from hs_sync.extract.pages import (
    MAX_REREADS,
    Pull,
    PullContext,
    PullResult,
    add_warnings,
    reconciled,
    row_hash,
    total_of,
)
from hs_sync.land.group import RoomGroup
from hs_sync.land.room_state import RoomRead
from hs_sync.registry import DataType


class RoomPulls(Pull):
    """Pulls a type room by room (`Mode.ROOM`; any room-scope type when repairing rooms),
    the rooms being those this run's rooms listing read (`ctx.rooms`); `only` names
    the rooms to re-read whole instead of those due."""

    def __init__(self, ctx: PullContext, dt: DataType, *, only: Sequence[str] = ()):
        super().__init__(ctx, dt)
        self.only = only

    def pull(self, exp: str) -> PullResult:
        """Pull the experiment's rooms that are due (those named to repair: all of them)."""
        rooms = self.ctx.rooms.get(exp) or {}
        if self.only:
            wanted = {room: rooms[room] for room in self.only if room in rooms}
            return self._pull_rooms(exp, wanted, force=True)
        return self._pull_rooms(exp, rooms)

    def _pull_rooms(self, exp: str, rooms: dict[str, str], *, force: bool = False) -> PullResult:
        """Pull each room that is new, changed or still collecting (all of them if `force`).

        When that many rooms are due that one experiment-scope read needs fewer
        requests (a first sync), the rooms are read that way instead: one probe
        request learns the row count; the overlap with unchanged rooms de-duplicates
        by key downstream.
        """
        result = PullResult(self.dt.name, exp)
        fresh_start = force or self.config.full_refresh
        known = {} if fresh_start else self.state.room_versions(self.dt.name, exp)
        due = {room: v for room, v in rooms.items() if not v or known.get(room) != v}
        whole = "experiment" in self.dt.scopes  # the type can be read for a whole experiment
        offsets = {} if fresh_start else self._room_offsets(exp, due)
        if (
            not force
            and whole
            and not offsets
            and len(due) > 1
            and self._experiment_read_pays(exp, len(due), result)
        ):
            running = frozenset(room for room, version in due.items() if not version)
            if self._pull_scope(exp, "experiment", exp, "rooms", result, running):
                self._remember_rooms(exp, due)
            return result
        # The rooms land in one batch, made durable and checkpointed a group at a time.
        group = RoomGroup(
            self.ctx.warehouse, self.dt, exp, "room-reads", self.state.checkpoint_rooms
        )
        try:
            for room_id, version in due.items():
                try:
                    offset = offsets.get(room_id)
                    if offset is not None and self._continue_room(
                        exp, room_id, offset, result, group, version
                    ):
                        continue
                    running = frozenset() if version else frozenset({room_id})
                    self._pull_scope(
                        exp, "room", room_id, "room-reads", result, running, group, version
                    )
                except NotFoundError as exc:
                    result.warnings.append(
                        f"{self.dt.name}/{exp}: room {room_id} not found ({exc})"
                    )
        finally:
            group.close()
        return result

    def _room_offsets(self, exp: str, due: dict[str, str]) -> dict[str, tuple[int, str]]:
        """The landed offsets of the due rooms that have one (none for an unpaged endpoint,
        which answers a room whole)."""
        out: dict[str, tuple[int, str]] = {}
        for room in due if self.dt.paged else ():
            offset = self.state.room_offset(self.dt.name, exp, room)
            if offset is not None and offset[0] > 0:
                out[room] = offset
        return out

    def _continue_room(
        self,
        exp: str,
        room_id: str,
        offset: tuple[int, str],
        result: PullResult,
        group: RoomGroup,
        version: str,
    ) -> bool:
        """Read a room from its landed offset, re-reading its last landed row to verify the
        order; land what follows. False (nothing landed) when that row differs or the
        read disagrees with `pagination.total`: the caller re-reads the room whole."""
        rows, last = offset
        path = self.dt.url_path("room", quote_id(room_id))
        writer = self.ctx.writer(
            self.dt, exp, "room-reads", "room", room_id, track_cursor=False, group=group
        )
        fetched, totals, requests, newest = 0, [], 0, last
        try:
            for page, fetched_at in self.ctx.pages(
                path, dict(self.dt.extra_params), endpoint=endpoint(self.dt, "room"), start=rows - 1
            ):
                requests += 1
                result.count("data")
                records = page.records
                if requests == 1:
                    if not records or row_hash(records[0]) != last:
                        writer.discard()
                        result.warnings.append(
                            f"room {room_id}: its rows moved since the last read; re-read whole"
                        )
                        return False
                    records = records[1:]
                totals.append(total_of(page))
                fetched += len(records)
                if records:
                    newest = row_hash(records[-1])
                    writer.add(
                        Envelope(page.path, page.params, records, page.metadata, page.server_time),
                        fetched_at,
                    )
            total = totals[-1] if totals else None
            if total is not None and (rows + fetched != total or any(t != total for t in totals)):
                writer.discard()
                return False
            writer.publish()
        finally:
            writer.close()
        result.rows += fetched
        result.files += len(writer.files)
        result.windows.append(
            {
                "data_type": self.dt.name, "experiment_id": exp, "scope": "room",
                "scope_id": room_id, "rows": fetched, "total": total, "from_offset": rows - 1,
                "requests": requests, "files": len(writer.files),
            }
        )  # fmt: skip
        group.checkpoint(
            RoomRead(
                self.ctx.run_id, self.dt.name, exp, room_id, fetched, total, requests,
                writer.folder.name if writer.files else None, offset=(rows + fetched, newest),
                version=version, keep_tail=True,
            )
        )  # fmt: skip
        return True

    def _remember_rooms(self, exp: str, versions: dict[str, str]) -> None:
        # a room still collecting ("" version) is not remembered: it is pulled again
        self.state.set_room_versions(self.dt.name, exp, {r: v for r, v in versions.items() if v})

    def _experiment_read_pays(self, exp: str, due: int, result: PullResult) -> bool:
        """Whether reading the whole experiment takes fewer requests than `due` room reads."""
        path = self.dt.url_path("experiment", quote_id(exp))
        probe = self.client.get(
            path,
            {**dict(self.dt.extra_params), "limit": 1, "offset": 0},
            endpoint=endpoint(self.dt, "experiment"),
        )
        result.requests += 1
        total = total_of(probe)
        return total is not None and -(-total // self.config.page_size) < due

    def _pull_scope(
        self,
        exp: str,
        scope: str,
        scope_id: str,
        label: str,
        result: PullResult,
        running: frozenset[str] = frozenset(),
        group: RoomGroup | None = None,
        version: str = "",
    ) -> bool:
        """Read one room (or, for room types, a whole experiment); True once consistent.

        A room read identical to the room's last landed read (a room still
        collecting that nothing happened in) is not landed again; an experiment
        read records that of each of its `running` rooms. A room read lands in
        `group` and is checkpointed with it, remembering `version`.
        """
        path = self.dt.url_path(scope, quote_id(scope_id))
        params = dict(self.dt.extra_params)
        room = scope == "room"
        for _pass in range(MAX_REREADS + 1):
            writer = self.ctx.writer(
                self.dt,
                exp,
                label,
                scope,
                scope_id,
                track_cursor=False,
                digest=room,
                room_digests=running,
                group=group,
            )
            fetched, totals, requests = 0, [], 0
            unchanged = False
            tally: dict[str, list] = {}  # running room -> [rows, last row]: its offset
            try:
                pages = self.ctx.pages(
                    path, params, endpoint=endpoint(self.dt, scope), paged=self.dt.paged
                )
                for page, fetched_at in pages:
                    requests += 1
                    fetched += page.count
                    totals.append(total_of(page))
                    if running:
                        _tally_rooms(page.records, running, scope_id if room else None, tally)
                    writer.add(page, fetched_at)
                if room:
                    # A room last read within an experiment-scope read has the digest
                    # that read recorded; where the two reads order its rows differently,
                    # it is landed once more and de-duplicated by key downstream.
                    unchanged = (
                        not self.config.full_refresh
                        and reconciled(fetched, totals)
                        and writer.content_digest
                        == self.state.room_digest(self.dt.name, exp, scope_id)
                    )
                    if unchanged:
                        writer.discard()
                    else:
                        writer.publish()
                else:
                    writer.flush()
            finally:
                writer.close()
            result.requests += requests
            result.rows += 0 if unchanged else fetched
            result.files += len(writer.files)
            add_warnings(result, writer)
            total = totals[-1] if totals else None
            result.windows.append(
                {
                    "data_type": self.dt.name,
                    "experiment_id": exp,
                    "scope": scope,
                    "scope_id": scope_id,
                    "rows": fetched,
                    "total": total,
                    "unchanged": unchanged,
                    "requests": requests,
                    "files": len(writer.files),
                }
            )
            if reconciled(fetched, totals) and group is not None:
                last = tally.get(scope_id)
                group.checkpoint(
                    RoomRead(
                        self.ctx.run_id, self.dt.name, exp, scope_id, fetched, total, requests,
                        writer.folder.name if writer.files else None,
                        digest=None if unchanged else writer.content_digest,
                        offset=(last[0], row_hash(last[1])) if last else None, version=version,
                    )
                )  # fmt: skip
                self.ctx.progress("room", data_type=self.dt.name, experiment=exp, rows=fetched)
                return True
            if reconciled(fetched, totals):
                self.state.complete_window(
                    self.ctx.run_id,
                    self.dt.name,
                    exp,
                    scope=scope,
                    scope_id=scope_id,
                    start=None,
                    end=None,
                    rows=fetched,
                    total=total,
                    requests=requests,
                    batch=writer.folder.name if writer.files else None,
                )
                # a room read's own digest is the whole read's (its records may not
                # name the room: room-scope-only types)
                for room_id, digest in writer.room_content_digests.items():
                    self.state.set_room_digest(self.dt.name, exp, room_id, digest)
                for room_id, (n, last) in tally.items():
                    self.state.set_room_offset(self.dt.name, exp, room_id, n, row_hash(last))
                self.ctx.progress("room", data_type=self.dt.name, experiment=exp, rows=fetched)
                return True
        what = f"room {scope_id}" if scope == "room" else "experiment-scope read"
        result.errors.append(
            f"{self.dt.name}/{exp}: {what}: row count disagrees with pagination.total"
        )
        return False


def _tally_rooms(
    records: list, running: frozenset[str], room: str | None, tally: dict[str, list]
) -> None:
    """Count the rows of each running room and note its last one (`room`: all are its)."""
    for record in records:
        if room is not None:
            rid = room
        elif isinstance(record, dict):
            rid = str(record.get("roomId"))
        else:
            continue
        if rid in running:
            entry = tally.setdefault(rid, [0, None])
            entry[0] += 1
            entry[1] = record
