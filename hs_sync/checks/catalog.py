"""The registry of checks: name, severity, description, the function and its hint."""

from __future__ import annotations

from hs_sync.checks import (
    counts,
    hints,
    media_check,
    reconcile,
    state_checks,
    warehouse_checks,
)
from hs_sync.checks.model import Check

ERROR = "error"
WARNING = "warning"

CHECKS: tuple[Check, ...] = (
    Check(
        "missing_sessions",
        ERROR,
        "Rooms with participants but no events; participants who completed (or stayed "
        "active past a timeout) with no events, no ratings where the experiment has rating "
        "components, or no recordings where video chat was on.",
        warehouse_checks.missing_sessions,
        hints.missing_sessions,
    ),
    Check(
        "count_reconciliation",
        ERROR,
        "Rows per (data type, experiment) in DuckDB against the API's pagination.total, and "
        "per room for rooms that look incomplete.",
        reconcile.count_reconciliation,
        hints.reconciliation,
        uses_api=True,
    ),
    Check(
        "orphans",
        ERROR,
        "Rows pointing to a room or participant the warehouse does not know.",
        warehouse_checks.orphans,
        hints.orphans,
    ),
    Check(
        "duplicate_keys",
        ERROR,
        "Primary keys that occur more than once in any table (must be none).",
        warehouse_checks.duplicate_keys,
        hints.duplicate_keys,
    ),
    Check(
        "recordings_on_disk",
        ERROR,
        "Recordings complete on the server but missing on disk, or whose size or sha256 "
        "does not match.",
        media_check.recordings_on_disk,
        hints.recordings_on_disk,
    ),
    Check(
        "rating_gaps",
        WARNING,
        f"Continuous-rating gaps longer than {warehouse_checks.RATING_GAP_MS} ms "
        "(samples come every 100-500 ms).",
        warehouse_checks.rating_gaps,
        hints.rating_gaps,
    ),
    Check(
        "missing_sync",
        WARNING,
        "Multi-participant rooms that played synchronized media but have no sync metrics "
        "(single-participant rooms are never flagged).",
        warehouse_checks.missing_sync,
        hints.missing_sync,
    ),
    Check(
        "failed_recordings",
        WARNING,
        "Recordings that failed on the server.",
        warehouse_checks.failed_recordings,
        hints.failed_recordings,
    ),
    Check(
        "disconnected_participants",
        WARNING,
        "Participants whose session ended on a technical fault (connection lost).",
        warehouse_checks.disconnected_participants,
        hints.disconnected,
    ),
    Check(
        "freshness",
        WARNING,
        "Data types whose last successful sync is older than freshness_hours.",
        state_checks.freshness,
        hints.freshness,
    ),
    Check(
        "quarantine",
        WARNING,
        "Records that did not fit their schema and wait in quarantine.",
        state_checks.quarantine,
        hints.quarantine,
    ),
    Check(
        "unconverged_windows",
        ERROR,
        "Time windows where the API's count and the rows landed still differed after two "
        "re-reads: the sync stopped re-reading them and names their bounds and counts.",
        state_checks.unconverged_windows,
        hints.unconverged_windows,
    ),
    Check(
        "state_stores",
        ERROR,
        "The state file (extraction state, transform ledger, media manifest) opens and "
        "passes SQLite's integrity check.",
        state_checks.stores,
        hints.stores,
    ),
)

# Checks of the rooms a run names (`hs-sync check --room ROOM`), not of the whole warehouse.
ROOM_CHECKS: tuple[Check, ...] = (
    Check(
        "participant_counts",
        ERROR,
        "Per participant of the room: the documents the API counts per data type against "
        "the rows the warehouse holds; names each incomplete (participant, data type).",
        counts.participant_counts,
        hints.participant_counts,
        uses_api=True,
    ),
)

CHECKS_BY_NAME: dict[str, Check] = {c.name: c for c in CHECKS + ROOM_CHECKS}


def get(name: str) -> Check:
    try:
        return CHECKS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown check {name!r}; known: {', '.join(CHECKS_BY_NAME)}") from None
