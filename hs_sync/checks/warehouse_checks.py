"""Checks that are queries over the warehouse database (one `sql/checks/*.sql` each)."""

from __future__ import annotations

from hs_sync import db, registry
from hs_sync.checks.context import CheckContext
from hs_sync.checks.model import Issue

ACTIVE_TIMEOUT_SECONDS = 6 * 3600  # a participant 'active' this long after joining is stuck
RATING_GAP_MS = 2_000  # continuous ratings are sampled every 100-500 ms


def missing_sessions(ctx: CheckContext) -> list[Issue]:
    rooms = ctx.issues("missing_session_rooms")
    people = ctx.issues(
        "missing_session_participants",
        {"as_of": ctx.as_of, "active_timeout_seconds": ACTIVE_TIMEOUT_SECONDS},
    )
    return rooms + people


def orphans(ctx: CheckContext) -> list[Issue]:
    found: dict[tuple[str, str, str | None], Issue] = {}
    for dt in registry.DATA_TYPES:
        if dt.lists == "room" or dt.column_for("room") is None:
            continue
        participant = dt.column_for("participant")
        checkable = dt.lists != "participant" and participant is not None
        rows = ctx.issues(
            "orphans",
            table=db.quote(dt.name),
            name=dt.name,
            participant=db.quote(participant if checkable else "roomId"),
            check_participant="TRUE" if checkable else "FALSE",
        )
        for issue in rows:
            key = (issue.entity, issue.id, issue.room_id if issue.entity == "participant" else None)
            if key in found:  # the same unknown room or participant, seen from another table
                old = found[key]
                issue = Issue(**{**old.to_dict(), "detail": f"{old.detail}; {issue.detail}"})
            found[key] = issue
    return sorted(found.values(), key=lambda i: (i.entity, i.experiment_id or "", i.id))


def duplicate_keys(ctx: CheckContext) -> list[Issue]:
    out: list[Issue] = []
    for dt in registry.DATA_TYPES:
        if ctx.table_exists(dt.name):
            out += ctx.issues("duplicate_keys", table=db.quote(dt.name), name=dt.name)
    return out


def rating_gaps(ctx: CheckContext) -> list[Issue]:
    return ctx.issues("rating_gaps", {"gap_ms": RATING_GAP_MS})


def missing_sync(ctx: CheckContext) -> list[Issue]:
    return ctx.issues("missing_sync")


def failed_recordings(ctx: CheckContext) -> list[Issue]:
    return ctx.issues("failed_recordings")


def disconnected_participants(ctx: CheckContext) -> list[Issue]:
    return ctx.issues("disconnected_participants")
