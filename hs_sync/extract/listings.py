"""Listings: the tables that list what the other units pull (rooms, experiments).

The rooms listing is a whole table like any snapshot, and more: each room's
version (its `updatedAt` and status) is remembered for the room units of the
same run and the next one. When the rooms table is not synced but room units
are, the listing is read without being landed. The experiments listing is the
run's one `GET /experiments`, landed one experiment's row per unit.

State it owns: `room_lists` and `listed_rooms` (each experiment's rooms as last
listed), besides a whole table's.
"""

from __future__ import annotations

from typing import Any

from hs_sync.api.client import Envelope
from hs_sync.api.paths import quote_id
from hs_sync.extract.pages import PullContext, PullResult, now_iso
from hs_sync.extract.whole import Pages, WholeTable
from hs_sync.registry import DataType

# Room statuses after which a room's data no longer grows (compared case-insensitively).
FINAL_ROOM_STATUSES = frozenset(
    {
        "completed",
        "complete",
        "finished",
        "ended",
        "closed",
        "abandoned",
        "failed",
        "timeout",
        "timed_out",
        "cancelled",
        "canceled",
        "expired",
    }
)


def room_version(room: dict[str, Any]) -> str:
    """What makes a room 'changed' since the last pull: its updatedAt and status.

    A room still collecting data has no stable version (""): its rows can grow
    while neither field changes, so it is pulled on every sync until it is final.
    """
    status = str(room.get("status") or "")
    if status.lower() not in FINAL_ROOM_STATUSES:
        return ""
    return f"{room.get('updatedAt')}|{status}"


class RoomListing(WholeTable):
    """The rooms of each experiment: landed as a snapshot (`landed`), or only read for the
    room units. What it read is in `ctx.rooms`; `changed` names the experiments whose
    rooms changed this run (all of those read when not landed: nothing to compare)."""

    def __init__(self, ctx: PullContext, dt: DataType, *, landed: bool = True):
        super().__init__(ctx, dt)
        self.landed = landed
        self.changed: set[str] = set()

    def pull(self, exp: str) -> PullResult:
        if not self.landed:
            self.changed.add(exp)
            return self._read(exp)
        result = super().pull(exp)
        if result.rooms is None:  # a probe saw no change: the rooms of the last read
            result.rooms = self.state.listed_rooms(exp)
        else:
            self.state.set_listed_rooms(exp, result.rooms, now_iso())
        self.ctx.rooms[exp] = result.rooms
        if result.rows:
            self.changed.add(exp)
        return result

    def land(self, exp: str, pages: Pages) -> PullResult:
        rooms: dict[str, str] = {}

        def noted() -> Pages:
            for page, fetched_at in pages:
                _note(page.records, rooms)
                yield page, fetched_at

        result = super().land(exp, noted())
        result.rooms = rooms
        return result

    def _read(self, exp: str) -> PullResult:
        """Read the rooms without landing them (the rooms table is not synced)."""
        rooms: dict[str, str] = {}
        path = self.dt.url_path("experiment", quote_id(exp))
        for page, _ in self.ctx.pages(path, {}, endpoint=f"data/{self.dt.path}/experiment"):
            _note(page.records, rooms)
        self.ctx.rooms[exp] = rooms
        # nothing landed, no rows to report; its requests count as the run's overhead
        return PullResult(self.dt.name, exp)


def _note(records: list[Any], rooms: dict[str, str]) -> None:
    for room in records:
        if isinstance(room, dict) and room.get("id") is not None:
            rooms[str(room["id"])] = room_version(room)


class ExperimentListing(WholeTable):
    """Lands one experiment's row of the run's experiments listing in its own folder."""

    def pull(self, exp: str) -> PullResult:
        listing = self.ctx.experiments_listing()
        rows = [r for r in listing.records if isinstance(r, dict) and str(r.get("id")) == exp]
        page = Envelope(listing.path, listing.params, rows, listing.metadata, listing.server_time)
        result = self.land(exp, [(page, now_iso())])
        result.requests = 0  # the run's one listing request is counted once, as overhead
        return result
