"""Which class replicates a data type: one mapping from the registry's mode (and the
entity a table lists, or its parent type) to the class, behind one small protocol."""

from __future__ import annotations

from typing import Protocol

from hs_sync.extract.listings import ExperimentListing, RoomListing
from hs_sync.extract.pages import Pull, PullContext, PullResult
from hs_sync.extract.rooms import RoomPulls
from hs_sync.extract.time_windows import TimeWindows
from hs_sync.extract.whole import Children, WholeTable
from hs_sync.registry import DataType, Mode


class Replication(Protocol):
    """One data type's replication in one run.

    `pull(experiment)` pulls one (type, experiment) unit: it lands what changed,
    checkpoints the state it owns once the files behind it are durable, and
    reports what it synced (rows, windows, requests by purpose, whether the
    unit's whole history was verified).
    """

    dt: DataType

    def pull(self, exp: str) -> PullResult: ...


BY_MODE: dict[Mode, type[Pull]] = {
    Mode.TIME: TimeWindows,
    Mode.ROOM: RoomPulls,
    Mode.MERGE: WholeTable,
    Mode.SNAPSHOT: WholeTable,
}
# A table that lists what other units pull, by the entity it lists.
BY_LISTING: dict[str, type[Pull]] = {"room": RoomListing, "experiment": ExperimentListing}


def replication(ctx: PullContext, dt: DataType) -> Replication:
    """The replication of `dt` for the run of `ctx`."""
    cls = Children if dt.parent is not None else BY_LISTING.get(dt.lists or "", BY_MODE[dt.mode])
    return cls(ctx, dt)
