"""Helpers for the integrity-check tests: syncs, copies of a warehouse, ground truth."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb

from hs_sync.checks import CheckResult
from hs_sync.config import Config
from hs_sync.run import sync
from tests.extract_helpers import make_config


def synced(sim: Any, warehouse: Path, **changes: Any) -> Config:
    """A config for `sim` whose warehouse has just been synced (and checked to be whole)."""
    config = make_config(sim, warehouse, **changes)
    summary = sync(config)
    assert summary.exit_code == 0, summary.errors
    return config


def copy_of(config: Config, folder: Path) -> Config:
    """The same warehouse copied to `folder`/warehouse, so a test can damage it alone."""
    target = folder / "warehouse"
    shutil.copytree(config.warehouse, target, symlinks=True)  # the published Parquet links
    return config.replace(warehouse=target)


def execute(config: Config, statement: str, params: list | None = None) -> list[tuple]:
    """Change the warehouse database directly, the way a stray hand edit would."""
    con = duckdb.connect(str(Path(config.warehouse) / "hyperstudy.duckdb"))
    try:
        cur = con.execute(statement, params or [])
        return cur.fetchall() if cur.description else []
    finally:
        con.close()


def ids(result: CheckResult) -> set[str]:
    return {issue.id for issue in result.issues}


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def planted(defects: dict) -> dict[str, set[str]]:
    """The issue ids each check must report on the simulator's dataset, from its manifest."""
    missing = {r["roomId"] for r in defects["missingDataRooms"]}
    missing |= {p for r in defects["missingDataRooms"] for p in r["participantIds"]}
    gaps = {
        f"{g['roomId']}/{g['participantId']}/{g['componentId']}@{g['from']}"
        for g in defects["continuousRatingGaps"]
    }
    return {
        "missing_sessions": missing,
        "count_reconciliation": set(),
        "orphans": set(),
        "duplicate_keys": set(),
        "recordings_on_disk": set(),
        "rating_gaps": gaps,
        "missing_sync": {r["roomId"] for r in defects["missingSyncRooms"]},
        "failed_recordings": {r["recordingId"] for r in defects["failedRecordings"]},
        "disconnected_participants": {
            r["participantId"] for r in defects["disconnectedParticipants"]
        },
        "freshness": set(),
        "quarantine": set(),
    }
