"""Dagster resources: the HyperStudy API account and the warehouse, turned into one Config.

Settings layer exactly as for the `hs-sync` command (defaults < hs_sync.toml <
environment), with the values set on these resources on top. The API key
comes from the environment (`EnvVar("HYPERSTUDY_API_KEY")`), so Dagster shows
the variable's name, never its value.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from hs_sync.config import Config, load_config

# Dagster waits for the warehouse lock instead of failing after the CLI's 5 s:
# another run or a cron `hs-sync sync` may be writing.
LOCK_WAIT_SECONDS = 3600.0


class HyperStudyResource(ConfigurableResource):
    """The HyperStudy v3 API account the sync reads."""

    api_key: str = Field(description="API key; set it from the HYPERSTUDY_API_KEY variable.")
    base_url: str | None = Field(
        default=None,
        description="API base URL; default HYPERSTUDY_BASE_URL, hs_sync.toml, then the real API.",
    )
    org_id: str | None = Field(default=None, description="Organization id (optional).")
    experiments: list[str] = Field(
        default_factory=list, description="Experiment ids to sync; empty: every one the key sees."
    )


class WarehouseResource(ConfigurableResource):
    """Where the warehouse lives and how long a writer waits for another one."""

    root: str | None = Field(
        default=None,
        description="Warehouse root; default HS_SYNC_WAREHOUSE, hs_sync.toml, then ./warehouse.",
    )
    config_file: str | None = Field(
        default=None, description="An hs_sync.toml to read (default ./hs_sync.toml if present)."
    )
    lock_wait_seconds: float = Field(
        default=LOCK_WAIT_SECONDS, description="How long a step waits for the warehouse lock."
    )


def hs_config(
    warehouse: WarehouseResource, api: HyperStudyResource | None = None, **overrides
) -> Config:
    """The Config a step runs with: the same `load_config` the CLI uses, resources on top.

    Steps that never call the API (transform, views) pass no `api`.
    """
    account = {}
    if api is not None:
        account = dict(
            api_key=api.api_key,
            base_url=api.base_url,
            org_id=api.org_id,
            experiments=tuple(api.experiments),
        )
    return load_config(
        warehouse.config_file,
        warehouse=warehouse.root,
        lock_timeout_seconds=warehouse.lock_wait_seconds,
        **account,
        **overrides,
    )
