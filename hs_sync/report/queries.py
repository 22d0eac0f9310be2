"""The report's data: read-only queries over the warehouse database's views.

Every function takes a read-only connection and returns plain rows (dicts);
values travel as parameters, identifiers only from the constants below.
"""

from __future__ import annotations

from typing import Any

import duckdb

from hs_sync.db import quote, sql
from hs_sync.load.duck import participant_types


def participant_counts() -> list[tuple[str, str]]:
    """The per-participant row-count columns of `dashboard_participants`, one per data
    type whose rows name a participant (from the registry): (column, label)."""
    return [(dt.name, dt.name.replace("_", " ")) for dt in participant_types()]


# The names a chart shows, for a query whose rooms are `r` (dashboard_rooms) and
# whose experiments are `e` (experiments).
_NAMES = (
    "coalesce(e.name, r.experiment_id) AS experiment_name, "
    "coalesce(r.deployment_name, r.deployment_id, '(no deployment)') AS deployment_name"
)


def rows(con: duckdb.DuckDBPyConnection, text: str, params: list | None = None) -> list[dict]:
    cur = con.execute(text, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _named(con: duckdb.DuckDBPyConnection, template: str) -> list[dict]:
    """Rows of a query whose `{names}` are the experiment and deployment names."""
    return rows(con, sql(template, names=_NAMES))


def totals(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """How many experiments, deployments, rooms and participants the warehouse holds."""
    return rows(
        con,
        "SELECT (SELECT count(*) FROM experiments) AS experiments, "
        "(SELECT count(*) FROM deployments) AS deployments, "
        "(SELECT count(*) FROM rooms) AS rooms, "
        "(SELECT count(*) FROM participants) AS participants, "
        "(SELECT max(_synced_at) FROM participants) AS synced_at",
    )[0]


def completeness(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One row per participant: their row count of each type, and the typical count.

    `typical_<column>` is the median count among the participants of the same
    experiment and role who have that type at all (a host may record what a guest
    does not); NULL when none of them has it.
    """
    typical = ", ".join(
        sql(
            "median({c}) FILTER (WHERE {c} > 0) OVER (PARTITION BY p.experiment_id, p.role) AS {t}",
            c=quote(column),
            t=quote(f"typical_{column}"),
        )
        for column, _ in participant_counts()
    )
    counts = ", ".join(f"p.{quote(column)}" for column, _ in participant_counts())
    return rows(
        con,
        sql(
            "SELECT p.experiment_id, coalesce(e.name, p.experiment_id) AS experiment_name, "
            "p.deployment_id, p.room_id, p.participant_id, p.role, p.status, "
            "p.completion_code, {counts}, {typical} "
            "FROM dashboard_participants p LEFT JOIN experiments e ON e.id = p.experiment_id "
            "ORDER BY experiment_name, p.experiment_id, p.deployment_id, p.room_id, "
            "p.participant_id",
            counts=counts,
            typical=typical,
        ),
    )


_SESSIONS = (
    "SELECT r.experiment_id, r.deployment_id, {names}, r.room_id, r.status, "
    "r.participant_count, coalesce(r.started_at, r.created_at) AS started_at, r.duration_s "
    "FROM dashboard_rooms r LEFT JOIN experiments e ON e.id = r.experiment_id "
    "ORDER BY started_at NULLS LAST, r.room_id"
)
_SYNC_QUALITY = (
    "SELECT {names}, q.quality_class, count(*) AS sessions, sum(q.samples) AS samples, "
    "median(q.median_abs_drift_ms) AS median_abs_drift_ms FROM sync_quality q "
    "LEFT JOIN dashboard_rooms r ON r.room_id = q.room_id "
    "LEFT JOIN experiments e ON e.id = q.experiment_id "
    "GROUP BY ALL ORDER BY experiment_name, deployment_name, q.quality_class"
)


def sessions(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One row per room (session), oldest first, with its experiment and deployment names."""
    return _named(con, _SESSIONS)


def sync_quality(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Participant sessions per deployment and sync-quality class, with their samples."""
    return _named(con, _SYNC_QUALITY)


def busiest_rating_room(con: duckdb.DuckDBPyConnection) -> str | None:
    """The room with the most continuous-rating samples (None: no ratings at all)."""
    row = con.execute(
        "SELECT roomId FROM ratings_continuous WHERE roomId IS NOT NULL "
        "GROUP BY roomId ORDER BY count(*) DESC, roomId LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def room_info(con: duckdb.DuckDBPyConnection, room_id: str) -> dict[str, Any] | None:
    found = rows(
        con,
        "SELECT r.room_id, coalesce(e.name, r.experiment_id) AS experiment_name, "
        "coalesce(r.deployment_name, r.deployment_id) AS deployment_name, r.status, "
        "r.started_at FROM dashboard_rooms r LEFT JOIN experiments e "
        "ON e.id = r.experiment_id WHERE r.room_id = ?",
        [room_id],
    )
    return found[0] if found else None


def ratings(con: duckdb.DuckDBPyConnection, room_id: str) -> list[dict[str, Any]]:
    """The room's continuous-rating samples in onset order per participant and component."""
    return rows(
        con,
        "SELECT participantId AS participant_id, componentId AS component_id, onset, value "
        "FROM ratings_continuous WHERE roomId = ? AND onset IS NOT NULL "
        "ORDER BY participantId, componentId, onset",
        [room_id],
    )
