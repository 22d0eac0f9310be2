"""Count reconciliation: does the warehouse hold as many rows as the API serves?

Per (data type, experiment): the API's `pagination.total` from one `limit=1`
request (counted against the request budget) against the rows in DuckDB that
came from that experiment's raw folder. Time-mode types are compared up to
their watermark (`endTime`), so data that arrived after the last sync is not
a mismatch; merge types up to the last sync's window end on their cursor;
room and snapshot types whole. Then, per room, for the rooms that look
incomplete (every room of a mismatching (type, experiment), fewest rows per
participant first, and every room with participants but no events), the
room-scope total against the room's rows, at most MAX_ROOM_PROBES requests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hs_sync import db, registry
from hs_sync.api.paths import quote_id
from hs_sync.checks.context import CheckContext, check_sql
from hs_sync.checks.model import Issue
from hs_sync.errors import ForbiddenError, NotFoundError
from hs_sync.registry import DataType
from hs_sync.timeutil import to_iso
from hs_sync.warehouse import safe_part

MAX_ROOM_PROBES = 60


def count_reconciliation(ctx: CheckContext) -> tuple[list[Issue], dict[str, Any]]:
    issues: list[Issue] = []
    totals: dict[str, dict[str, dict[str, int]]] = {}
    skipped: dict[str, str] = {}
    probes: list[tuple[DataType, str, datetime | None, dict[str | None, int]]] = []
    types = [
        dt
        for dt in ctx.config.data_types
        if dt.data_endpoint and dt.paged and "experiment" in dt.scopes  # totals to compare
    ]
    for exp in ctx.experiments:
        for dt in types:
            if dt.name in skipped or ctx.last_success(dt.name, exp) is None:
                continue  # never synced here: the freshness check reports it
            until = ctx.synced_until(dt.name, exp)
            rooms = room_counts(ctx, dt, exp, until)
            have = sum(rooms.values())
            try:
                served = api_total(ctx, dt, "experiment", exp, until)
            except ForbiddenError as exc:
                skipped[dt.name] = f"missing scope: {exc}"
                continue
            except NotFoundError:
                issues.append(
                    Issue("count", f"{dt.name}/{exp}", exp, detail="not found on the API")
                )
                continue
            if served is None:
                continue
            totals.setdefault(dt.name, {})[exp] = {"api": served, "warehouse": have}
            if served == have or (served == dt.row_cap and have >= served):
                continue
            issues.append(
                Issue(
                    "count", f"{dt.name}/{exp}", exp, detail=f"API {served} rows, warehouse {have}"
                )
            )
            if "room" in dt.scopes:
                probes.append((dt, exp, until, rooms))
    room_issues, probed, left = _probe_rooms(ctx, probes, skipped)
    details = {
        "totals": totals,
        "rooms_probed": probed,
        "rooms_not_probed": left,
        "skipped_types": skipped,
    }
    return issues + room_issues, details


def room_counts(
    ctx: CheckContext, dt: DataType, exp: str, until: datetime | None
) -> dict[str | None, int]:
    """Rows of this type landed for the experiment, per room (up to `until`)."""
    names = {c.name for c in dt.columns}
    room = dt.column_for("room") or "NULL"
    cursor = db.quote(dt.cursor) if dt.cursor and dt.cursor in names else "NULL"
    text = check_sql(
        "row_counts",
        table=db.quote(dt.name),
        room=db.quote(room) if room != "NULL" else room,
        cursor=cursor if until is not None else "NULL",
    )
    prefix = f"raw/{dt.name}/experiment_id={safe_part(exp)}/"
    rows = ctx.con.execute(text, {"prefix": prefix, "until": until}).fetchall()
    return dict(rows)


def api_total(
    ctx: CheckContext, dt: DataType, scope: str, scope_id: str, until: datetime | None
) -> int | None:
    params: dict[str, Any] = {"limit": 1, **dict(dt.extra_params)}
    if until is not None:
        params["endTime"] = to_iso(until)
    page = ctx.client.get(
        dt.url_path(scope, quote_id(scope_id)), params, endpoint=f"data/{dt.path}/{scope}"
    )
    total = (page.pagination or {}).get("total")
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def _probe_rooms(ctx: CheckContext, probes, skipped) -> tuple[list[Issue], int, int]:
    """Room-scope totals for the rooms that look incomplete, within MAX_ROOM_PROBES."""
    queue: list[tuple[DataType, str, str, datetime | None, int]] = []
    for dt, exp, until, counts in probes:
        people = _room_sizes(ctx, exp)
        rooms = set(people) | {r for r in counts if r is not None}
        ranked = sorted(rooms, key=lambda r: (counts.get(r, 0) / max(people.get(r, 1), 1), r))
        queue += [(dt, exp, r, until, counts.get(r, 0)) for r in ranked]
    events = next(dt for dt in registry.DATA_TYPES if dt.marks_sessions)
    if events.name not in skipped and events in ctx.config.data_types:
        for issue in ctx.issues("missing_session_rooms"):
            until = ctx.synced_until(events.name, issue.experiment_id)
            queue.append((events, issue.experiment_id, issue.room_id, until, 0))
    seen: set[tuple[str, str]] = set()
    issues: list[Issue] = []
    probed = 0
    for dt, exp, room, until, have in queue:
        if (dt.name, room) in seen or dt.name in skipped:
            continue
        if probed >= MAX_ROOM_PROBES:
            break
        seen.add((dt.name, room))
        probed += 1
        try:
            served = api_total(ctx, dt, "room", room, until)
        except NotFoundError:
            served = 0 if have == 0 else None
            if served is None:
                issues.append(Issue("room", f"{dt.name}/{room}", exp, room,
                                    detail="room not found on the API"))  # fmt: skip
                continue
        except ForbiddenError as exc:
            skipped[dt.name] = f"missing scope: {exc}"
            continue
        if served is not None and served != have:
            issues.append(
                Issue(
                    "room",
                    f"{dt.name}/{room}",
                    exp,
                    room,
                    detail=f"API {served} rows, warehouse {have}",
                )  # fmt: skip
            )
    left = len({(dt.name, room) for dt, _, room, _, _ in queue} - seen)
    return issues, probed, left


def _room_sizes(ctx: CheckContext, exp: str) -> dict[str, int]:
    rows = ctx.con.execute(
        "SELECT id, coalesce(participantCount, 0) FROM rooms WHERE experimentId = ?", [exp]
    ).fetchall()
    return dict(rows)
