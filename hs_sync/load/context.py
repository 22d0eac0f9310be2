"""The experiment and room a record lacks, from where it was pulled.

Recordings in the SDK's shape carry neither `experimentId` nor `roomId`. The
registry says per type where they come from (`experiment_from_pull`,
`room_from`): the experiment and the room-scope read its raw file was landed
for (the batch manifest), else the room of its participant in the
participants table. Values the record has are never replaced.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from hs_sync.db import quote, sql
from hs_sync.load.lines import RawFile
from hs_sync.registry import DataType

PARTICIPANTS = "participants"  # the table `room_from = ("participants",)` reads


def needs_pull(dt: DataType) -> bool:
    """Whether the type's rows are filled from their raw file's manifest."""
    return dt.experiment_from_pull or "scope" in dt.room_from


def pulled_for(raw: RawFile) -> tuple[str | None, str | None]:
    """(experiment, room) the raw file's batch was pulled for; room only for room-scope reads."""
    manifest = raw.manifest
    exp = manifest.get("experimentId")
    room = manifest.get("scopeId") if manifest.get("scope") == "room" else None
    return (None if exp is None else str(exp)), (None if room is None else str(room))


def fill_pulled(con: duckdb.DuckDBPyConnection, dt: DataType, loaded: dict) -> None:
    """Set null `experimentId`/`roomId` of the typed rows (`__typed`) from where each
    row's raw file was pulled; `loaded` maps file ids to the raw files read."""
    if not needs_pull(dt):
        return
    pulled = [(raw.name, *pulled_for(raw)) for raw in loaded.values()]
    names = {c.name for c in dt.columns}
    fills = [
        (column, source)
        for column, source, wanted in (
            ("experimentId", "exp", dt.experiment_from_pull),
            ("roomId", "room", "scope" in dt.room_from),
        )
        if wanted and column in names
    ]
    if not pulled or not fills:
        return
    table = pa.table(
        {
            "raw": pa.array([p[0] for p in pulled], pa.string()),
            "exp": pa.array([p[1] for p in pulled], pa.string()),
            "room": pa.array([p[2] for p in pulled], pa.string()),
        }
    )
    con.register("__pulled", table)
    try:
        sets = ", ".join(
            sql("{c} = coalesce(__typed.{c}, __pulled.{s})", c=quote(c), s=quote(s))
            for c, s in fills
        )
        con.execute(
            sql(
                "UPDATE __typed SET {sets} FROM __pulled WHERE __typed._raw_file = __pulled.raw",
                sets=sets,
            )
        )
    finally:
        con.unregister("__pulled")


def after_participants(data_types: Sequence[DataType]) -> list[DataType]:
    """`data_types` with the types that read the participants table after it."""
    return sorted(data_types, key=lambda dt: PARTICIPANTS in dt.room_from)


def fill_rooms(con: duckdb.DuckDBPyConnection, dt: DataType, kind: str) -> str:
    """Give `__batch` rows without a room the room of their participant; returns what
    `__batch` is now ("VIEW" or "TABLE").

    A participant in several rooms of the experiment gives the room joined last at or
    before the row's time (`cursor`); when none was joined by then, the first one joined.
    """
    if PARTICIPANTS not in dt.room_from or not _has_table(con, PARTICIPANTS):
        return kind
    when = f"b.{quote(dt.cursor)}" if dt.cursor else "NULL"
    con.execute(
        sql(
            """
        CREATE OR REPLACE TEMP TABLE __filled AS
        WITH candidates AS (
            SELECT b.__seq, p.roomId AS __room,
                   row_number() OVER (
                       PARTITION BY b.__seq
                       ORDER BY p.joinedAt <= {when} DESC NULLS LAST,
                                CASE WHEN p.joinedAt <= {when} THEN p.joinedAt END DESC NULLS LAST,
                                p.joinedAt NULLS LAST, p.roomId
                   ) AS __rank
            FROM __batch b
            JOIN {participants} p
              ON p.id = b.participantId
             AND (b.experimentId IS NULL OR p.experimentId = b.experimentId)
            WHERE b.roomId IS NULL AND p.roomId IS NOT NULL
        )
        SELECT b.* REPLACE (coalesce(b.roomId, c.__room) AS roomId)
        FROM __batch b LEFT JOIN candidates c ON c.__seq = b.__seq AND c.__rank = 1
        """,
            when=when,
            participants=quote(PARTICIPANTS),
        )
    )
    con.execute(f"DROP {kind} __batch")
    con.execute("ALTER TABLE __filled RENAME TO __batch")
    return "TABLE"


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_name = ?",
            [name],
        ).fetchone()[0]
    )
