"""The incremental sync job and its schedule (cron from the environment, stopped by default).

Turn it on in the UI (Automation -> hs_sync_incremental_schedule -> toggle),
with `dagster schedule start hs_sync_incremental_schedule -m dagster_project.definitions`,
or start it already running by setting HS_SYNC_SCHEDULE_RUNNING=1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import (
    AssetSelection,
    DagsterInvalidDefinitionError,
    DefaultScheduleStatus,
    ScheduleDefinition,
    define_asset_job,
)

from hs_sync.errors import ConfigError

JOB_NAME = "hs_sync_incremental"
SCHEDULE_NAME = "hs_sync_incremental_schedule"
DEFAULT_CRON = "0 * * * *"  # hourly; a run with no new data costs ~1 request per (type, experiment)
CRON_VAR = "HS_SYNC_SCHEDULE_CRON"
TIMEZONE_VAR = "HS_SYNC_SCHEDULE_TIMEZONE"
RUNNING_VAR = "HS_SYNC_SCHEDULE_RUNNING"

sync_job = define_asset_job(
    JOB_NAME,
    selection=AssetSelection.all(),
    description=(
        "Incremental sync: pull new data, transform it into Parquet and DuckDB, refresh the "
        "views, download new recordings, run the integrity checks."
    ),
)


def sync_schedule(env: Mapping[str, str] | None = None) -> ScheduleDefinition:
    """The schedule of `sync_job`, configured from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    cron = env.get(CRON_VAR) or DEFAULT_CRON
    running = (env.get(RUNNING_VAR) or "").strip().lower() in ("1", "true", "yes", "on")
    try:
        return ScheduleDefinition(
            name=SCHEDULE_NAME,
            job=sync_job,
            cron_schedule=cron,
            execution_timezone=env.get(TIMEZONE_VAR) or "UTC",
            default_status=DefaultScheduleStatus.RUNNING
            if running
            else DefaultScheduleStatus.STOPPED,
            description=f"Runs {JOB_NAME} on `{cron}` (set {CRON_VAR} to change it).",
        )
    except DagsterInvalidDefinitionError as exc:
        raise ConfigError(CRON_VAR, f"not a usable cron schedule {cron!r}: {exc}") from None
