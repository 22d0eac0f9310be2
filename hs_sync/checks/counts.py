"""`hs-sync check --room ROOM`: which of a room's participants' data types are incomplete.

For each participant of the room (the participants table), one request to the
API's per-participant `counts` (registry.COUNTS) gives the documents it holds
per data type; each is compared with the rows the warehouse holds for that
participant in that room. Count names map to data types by the registry: a
type's name, its API path or one of its `count_names`.
"""

from __future__ import annotations

from typing import Any

from hs_sync import db, registry
from hs_sync.api.paths import quote_id
from hs_sync.checks.context import CheckContext
from hs_sync.checks.model import Issue
from hs_sync.registry import COUNTS, DataType


def count_names() -> dict[str, DataType]:
    """Every name the API's counts may give a data type, to that type."""
    names: dict[str, DataType] = {}
    for dt in registry.DATA_TYPES:
        if dt.column_for("participant") is None or "participant" not in dt.scopes:
            continue
        for name in (dt.name, dt.path, *dt.count_names):
            names.setdefault(name, dt)
    return names


def participant_counts(ctx: CheckContext) -> tuple[list[Issue], dict[str, Any]]:
    """Issues for each (participant, data type) with fewer rows than the API counts."""
    names = count_names()
    issues: list[Issue] = []
    compared: dict[str, dict[str, dict[str, int]]] = {}
    unknown: set[str] = set()
    for room in ctx.config.rooms:
        people = ctx.con.execute(
            "SELECT DISTINCT id, experimentId FROM participants WHERE roomId = ? ORDER BY id",
            [room],
        ).fetchall()
        if not people:
            detail = "no participants of this room in the warehouse: sync it first"
            issues.append(Issue("room", room, None, room, None, detail))
            continue
        for participant, experiment in people:
            counts = _api_counts(ctx, participant, room)
            mine = compared.setdefault(room, {}).setdefault(participant, {})
            for name, expected in sorted(counts.items()):
                dt = names.get(name)
                if dt is None or not isinstance(expected, int):
                    unknown.add(name)
                    continue
                if ctx.last_run_with(dt.name, experiment) is None:
                    continue  # the type is not synced into this warehouse
                have = _warehouse_count(ctx, dt, room, participant)
                mine[dt.name] = have
                if have < expected:
                    issues.append(
                        Issue(
                            "participant",
                            participant,
                            experiment,
                            room,
                            participant,
                            f"{dt.name}: {have} of {expected} rows in the warehouse",
                        )
                    )
    details: dict[str, Any] = {"rooms": list(ctx.config.rooms), "warehouse_rows": compared}
    if unknown:
        details["unknown_count_names"] = sorted(unknown)
    return issues, details


def _api_counts(ctx: CheckContext, participant: str, room: str) -> dict[str, Any]:
    path = COUNTS.url_path("participant", quote_id(participant))
    envelope = ctx.client.get(path, {"roomId": room}, endpoint=f"data/{COUNTS.path}")
    data = envelope.data
    if data is None or isinstance(data, list):  # `[{...}]`, as the SDK reads it
        records = envelope.records
        data = records[0] if records else {}
    counts = data.get("counts") if isinstance(data, dict) else None
    return counts if isinstance(counts, dict) else {}


def _warehouse_count(ctx: CheckContext, dt: DataType, room: str, participant: str) -> int:
    """Rows of `dt` the warehouse holds for the participant in the room."""
    return ctx.scalar(
        db.sql(
            "SELECT count(*) FROM {t} WHERE roomId = ? AND {p} = ?",
            t=db.quote(dt.name),
            p=db.quote(dt.column_for("participant") or "participantId"),
        ),
        [room, participant],
    )
