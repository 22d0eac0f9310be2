"""The demo: a full sync, media and checks against the embedded simulator.

Each run starts the simulator in live mode with its clock moved on by
`STEP_SECONDS` per earlier demo run on the same warehouse, so a re-run is an
incremental sync that picks up new sessions, late rows and status changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hs_sync import origin
from hs_sync.config import load_config
from hs_sync.run import RunSummary
from hs_sync.warehouse import Warehouse, atomic_write

SEED = 7
SCALE = 0.3  # about 3,000 events: every type, defect and media kind, synced in seconds
STEP_SECONDS = 900.0  # simulated time between two demo runs
MAX_STEPS = 11  # the live simulator produces data for three hours

EXAMPLE_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "Rooms, participants and session length per deployment",
        "SELECT experiment_id, deployment_name, rooms, participants, completed_success,\n"
        "       round(median_session_duration_s / 60, 1) AS median_minutes, share_poor_sync\n"
        "FROM deployment_summary ORDER BY experiment_id, deployment_name",
    ),
    (
        "Media sync quality: samples per drift class",
        "SELECT quality_class, count(*) AS samples, round(avg(abs_drift_ms), 1) AS mean_drift_ms\n"
        "FROM sync_samples GROUP BY quality_class ORDER BY samples DESC",
    ),
    (
        "Events per category (onsets before 0 are pre-experiment)",
        "SELECT category, count(*) AS events, min(onset) AS first_onset_ms\n"
        "FROM events GROUP BY category ORDER BY events DESC",
    ),
)


@dataclass
class DemoResult:
    run: int
    simulated_now: str
    sync: RunSummary  # its `media` holds what the media download did
    checks: list[dict[str, Any]]
    queries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.sync.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "simulated_now": self.simulated_now,
            "sync": self.sync.to_dict(),
            "checks": self.checks,
            "queries": self.queries,
            "exit_code": self.exit_code,
        }


def run_demo(warehouse: Path, *, progress: Callable[..., None] | None = None) -> DemoResult:
    """Serve the simulator on a free loopback port, sync everything, stop it again."""
    from hs_simulator import Simulator
    from hs_sync.checks import run_checks
    from hs_sync.run import sync

    origin.claim_for_demo(Warehouse(warehouse))
    wh = Warehouse(warehouse).create()
    marker = wh.state_dir / origin.DEMO_MARKER
    runs = orjson.loads(marker.read_bytes())["runs"] if marker.exists() else 0
    with Simulator(seed=SEED, scale=SCALE, live=True) as sim:
        sim.advance(min(runs, MAX_STEPS) * STEP_SECONDS)
        # The simulator enforces no rate limits unless asked, so the demo lifts the
        # client's budget; against the real API the published limits apply.
        config = load_config(
            env={},
            api_key=sim.api_key,
            base_url=sim.base_url,
            warehouse=wh.root,
            budget_per_hour=100_000,
            budget_per_minute=10_000,
        )
        origin.remember(wh, config, demo=True)
        summary = sync(config, progress=progress)
        checks = [c.to_dict() for c in run_checks(config)]
        now = sim.clock.now.isoformat()
    atomic_write(marker, orjson.dumps({"runs": runs + 1}))
    result = DemoResult(runs + 1, now, summary, checks)
    result.queries = run_queries(wh)
    return result


def run_queries(wh: Warehouse) -> list[dict[str, Any]]:
    """The README's example queries, with their results."""
    from hs_sync.db import connect_readonly

    out = []
    con = connect_readonly(wh)
    try:
        for title, sql in EXAMPLE_QUERIES:
            cur = con.execute(sql)
            columns = [d[0] for d in cur.description]
            out.append({"title": title, "sql": sql, "columns": columns, "rows": cur.fetchall()})
    finally:
        con.close()
    return out
