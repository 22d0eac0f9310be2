"""The Dagster code location: `dagster dev -m dagster_project.definitions`."""

from __future__ import annotations

from dagster import Definitions, EnvVar

from dagster_project.checks import build_checks
from dagster_project.factory import build_assets
from dagster_project.resources import HyperStudyResource, WarehouseResource
from dagster_project.schedules import sync_job, sync_schedule
from hs_sync.registry import DEFAULT_TYPES

defs = Definitions(
    assets=build_assets(DEFAULT_TYPES),
    asset_checks=build_checks(),
    jobs=[sync_job],
    schedules=[sync_schedule()],
    resources={
        # base URL, org id and warehouse root follow the CLI's layering when not set here
        "hyperstudy": HyperStudyResource(api_key=EnvVar("HYPERSTUDY_API_KEY")),
        "warehouse": WarehouseResource(),
    },
)
