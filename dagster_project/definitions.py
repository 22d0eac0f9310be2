"""The Dagster code location: `dagster dev -m dagster_project.definitions`."""

from __future__ import annotations

from dagster import Definitions, EnvVar, in_process_executor

from dagster_project.checks import build_checks
from dagster_project.factory import build_assets
from dagster_project.resources import HyperStudyResource, WarehouseResource
from dagster_project.schedules import sync_job, sync_schedule
from dagster_project.snapshot_job import snapshot_job
from hs_sync import registry

defs = Definitions(
    assets=build_assets(registry.DEFAULT_TYPES),
    asset_checks=build_checks(),
    jobs=[sync_job, snapshot_job],
    # One process for every step: a run starts no subprocess per step (each would import
    # Dagster and hs-sync again and wait its turn), and the steps run one after another
    # anyway (the pools hold one DuckDB writer and one API caller at a time).
    executor=in_process_executor,
    schedules=[sync_schedule()],
    resources={
        # base URL, org id and warehouse root follow the CLI's layering when not set here
        "hyperstudy": HyperStudyResource(api_key=EnvVar("HYPERSTUDY_API_KEY")),
        "warehouse": WarehouseResource(),
    },
)
