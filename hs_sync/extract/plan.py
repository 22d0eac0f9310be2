"""The plan of a run's pulls: which (data type, experiment) units are due, in two phases.

Phase one pulls everything but the room units: time windows, whole tables,
listings; the rooms listing among them is read whenever a room unit is due (it
drives those). Phase two pulls the room units of the experiments whose rooms
listing was read, changed or due. Rooms named to repair (`--room`) are re-read
whole for every type a room can be read for, and nothing else is pulled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from hs_sync import registry
from hs_sync.api.client import Envelope
from hs_sync.extract.listings import RoomListing
from hs_sync.extract.modes import Replication, replication
from hs_sync.extract.pages import PullContext, PullResult
from hs_sync.extract.polling import Schedule
from hs_sync.extract.rooms import RoomPulls
from hs_sync.registry import DataType, Mode


@dataclass(frozen=True)
class Unit:
    """One pull of one (data type, experiment)."""

    dt: DataType
    exp: str
    pull: Callable[[], PullResult]


class Planner:
    """Plans the units of one run; `first()`, run them, then `second()`."""

    def __init__(
        self,
        ctx: PullContext,
        schedule: Schedule,
        types: Sequence[DataType],
        experiments: list[str],
        listing: Envelope | None,
    ):
        self.ctx = ctx
        self.config = ctx.config
        self.schedule = schedule
        self.types = list(types)
        self.experiments = experiments
        self.listing = listing
        self.repairing = bool(self.config.rooms)
        self.rooms_dt = registry.listing("room")
        landed = self.rooms_dt.name in {dt.name for dt in self.types}
        self.rooms = RoomListing(ctx, self.rooms_dt, landed=landed)
        self.room_types = [dt for dt in self.types if dt.mode is Mode.ROOM]
        self.read: set[str] = set()  # experiments whose rooms listing this run reads
        self.not_due = 0
        self.skipped_types: dict[str, str] = {}  # what the plan found it cannot pull
        self.errors: dict[str, str] = {}

    def first(self) -> list[Unit]:
        """Everything except the room units."""
        # A change in an experiment's listing row (rooms, participants) makes all its units due.
        if self.listing is not None and not self.config.full_refresh:
            rows = {str(r.get("id")): r for r in self.listing.records if isinstance(r, dict)}
            for exp in self.experiments:
                self.schedule.note_listing(exp, rows.get(exp))
        units = []
        for dt in self.types:
            if dt.mode is Mode.ROOM or (self.repairing and dt is not self.rooms_dt):
                continue
            pulls = self.rooms if dt is self.rooms_dt else replication(self.ctx, dt)
            for exp in self.experiments:
                if self._due(dt, exp):
                    units.append(self._polled(pulls, exp))
                    if dt is self.rooms_dt:
                        self.read.add(exp)
                else:
                    self.not_due += 1
        if (self.repairing or self.room_types) and not self.rooms.landed:
            # Room units need the rooms listing even when the rooms table is not synced.
            reading = [exp for exp in self.experiments if self._due(self.rooms_dt, exp)]
            self.read.update(reading)
            self.rooms.changed.update(reading)  # not landed: no change to compare
            units += [Unit(self.rooms_dt, exp, partial(self.rooms.pull, exp)) for exp in reading]
        return units

    def second(self) -> list[Unit]:
        """The room units, from the rooms listings phase one read."""
        if self.repairing:
            return self._repairs()
        units = []
        for dt in self.room_types:
            pulls = replication(self.ctx, dt)
            for exp in self.experiments:
                wanted = exp in self.rooms.changed or self.schedule.due(dt.name, exp)
                if exp not in self.read or not wanted:
                    self.not_due += 1  # not due, and its rooms list did not change
                    continue
                if self.ctx.rooms.get(exp) is None:
                    self.skipped_types.setdefault(
                        dt.name, "the rooms list could not be read (see rooms)"
                    )
                    continue
                units.append(self._polled(pulls, exp))
        return units

    def _repairs(self) -> list[Unit]:
        """The rooms named to repair, re-read whole for every type a room can be read for."""
        named = self.config.rooms
        types = [dt for dt in self.types if dt.data_endpoint and "room" in dt.scopes]
        pulls = {dt.name: RoomPulls(self.ctx, dt, only=named) for dt in types}
        found: set[str] = set()
        units = []
        for exp in self.experiments:
            rooms = self.ctx.rooms.get(exp) or {}
            wanted = {room for room in named if room in rooms}
            found |= wanted
            if wanted:
                units += [Unit(dt, exp, partial(pulls[dt.name].pull, exp)) for dt in types]
        for room in named:
            if room not in found:
                self.errors[f"room/{room}"] = (
                    f"room {room} is not among the rooms of the experiments synced"
                )
        return units

    def _due(self, dt: DataType, exp: str) -> bool:
        """Whether to poll a unit now; the rooms listing is read whenever a room unit is
        due (it drives the room units)."""
        if self.repairing or self.schedule.due(dt.name, exp):
            return True
        return dt is self.rooms_dt and any(
            self.schedule.due(rt.name, exp) for rt in self.room_types
        )

    def _polled(self, pulls: Replication, exp: str) -> Unit:
        """A unit whose poll is noted in the schedule once it succeeds."""
        dt = pulls.dt

        def pull_and_note() -> PullResult:
            result = pulls.pull(exp)
            if not result.errors:
                self.schedule.record(
                    dt.name, exp, changed=result.rows > 0, verified=result.verified
                )
            return result

        return Unit(dt, exp, pull_and_note)
