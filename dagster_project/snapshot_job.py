"""The snapshot job: freeze the warehouse under a name given in the run's config.

Launch it after a sync (launchpad, `dagster job launch -j hs_sync_snapshot`, or a
sensor of your own) with

    ops:
      take_snapshot:
        config: {name: paper-2026, note: "submitted version"}

The step waits for the warehouse lock like every writer, so a snapshot launched
while a sync runs is taken once that sync has published. A thin front end over
`hs_sync.snapshot.create`.
"""

# no `from __future__ import annotations`: Dagster reads the op's annotations at definition
from dagster import Config, MetadataValue, OpExecutionContext, Output, job, op
from pydantic import Field

from dagster_project.resources import HyperStudyResource, WarehouseResource, hs_config
from hs_sync import snapshot
from hs_sync.warehouse import Warehouse

JOB_NAME = "hs_sync_snapshot"


class SnapshotConfig(Config):
    name: str = Field(description="The snapshot's name: letters, digits, '.', '_' or '-'.")
    note: str | None = Field(default=None, description="A line kept in the snapshot's manifest.")


@op(description="Freeze the warehouse as the last complete sync left it (hs-sync snapshot create).")
def take_snapshot(
    context: OpExecutionContext,
    config: SnapshotConfig,
    warehouse: WarehouseResource,
    hyperstudy: HyperStudyResource,
) -> Output[str]:
    settings = hs_config(warehouse, hyperstudy)
    wh = Warehouse(settings.warehouse)
    m = snapshot.create(
        wh,
        config.name,
        note=config.note,
        base_url=settings.base_url,
        lock_timeout=settings.lock_timeout_seconds,
    )
    folder = str(snapshot.path(wh, config.name))
    context.log.info(f"snapshot {config.name} at {folder}")
    return Output(
        folder,
        metadata={
            "path": folder,
            "rows": sum(m["tables"].values()),
            "files": len(m["files"]),
            "last_sync": MetadataValue.json(m["last_sync"] or {}),
        },
    )


@job(name=JOB_NAME, description="Freeze the warehouse under the name given in the run config.")
def snapshot_job() -> None:
    take_snapshot()
