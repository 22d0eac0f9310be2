"""Store check results in the warehouse database (`check_results`, `check_issues`).

The database is written the way every hs-sync write is: under the warehouse
lock, on a copy that is published atomically (`duck.Build`). Recording a
result replaces the stored rows of that check only, so running one check
refreshes its own issues and leaves the others'.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import orjson
import pyarrow as pa

from hs_sync.checks.model import CheckResult
from hs_sync.config import Config
from hs_sync.load import duck
from hs_sync.load.sqlfiles import sql_dir
from hs_sync.lock import warehouse_lock
from hs_sync.warehouse import Warehouse

VIEW_FILE = "90_open_issues.sql"  # creates the tables and the view
_ISSUE_TEXT = (
    "check_name", "severity", "entity", "id", "experiment_id", "room_id", "participant_id", "detail"
)  # fmt: skip


def record_results(config: Config, results: Sequence[CheckResult]) -> int:
    """Replace the stored results and issues of these checks; returns the issues stored.

    Raises WarehouseLocked when a sync holds the lock longer than lock_timeout_seconds.
    """
    warehouse = Warehouse(config.warehouse)
    now = datetime.now(timezone.utc)
    with warehouse_lock(warehouse, config.lock_timeout_seconds):
        build = duck.Build(warehouse)
        try:
            con = build.con
            con.execute((sql_dir("views") / VIEW_FILE).read_text(encoding="utf-8"))
            names = [r.name for r in results]
            con.execute("DELETE FROM check_results WHERE list_contains(?, check_name)", [names])
            con.execute("DELETE FROM check_issues WHERE list_contains(?, check_name)", [names])
            con.executemany(
                "INSERT INTO check_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.name,
                        r.severity,
                        r.status,
                        r.passed,
                        r.count,
                        r.sample,
                        r.hint,
                        orjson.dumps(r.details, default=str).decode(),
                        now,
                    )
                    for r in results
                ],
            )
            issues = [(r, i) for r in results for i in r.issues]
            table = pa.table(
                {
                    "check_name": [r.name for r, _ in issues],
                    "severity": [r.severity for r, _ in issues],
                    "entity": [i.entity for _, i in issues],
                    "id": [i.id for _, i in issues],
                    "experiment_id": [i.experiment_id for _, i in issues],
                    "room_id": [i.room_id for _, i in issues],
                    "participant_id": [i.participant_id for _, i in issues],
                    "detail": [i.detail for _, i in issues],
                },
                schema=pa.schema([(n, pa.string()) for n in _ISSUE_TEXT]),
            )
            con.register("__issues", table)
            try:
                con.execute(
                    "INSERT INTO check_issues SELECT *, ?::TIMESTAMPTZ FROM __issues", [now]
                )
            finally:
                con.unregister("__issues")
            build.publish()
        except BaseException:
            build.discard()
            raise
    return len(issues)
