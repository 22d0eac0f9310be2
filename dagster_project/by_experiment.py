"""A second code location for large labs: the sync partitioned by experiment.

`dagster dev -m dagster_project.by_experiment`. The sensor `discover_experiments`
reads GET /experiments (with the access checks a sync makes) and adds each new
experiment as a partition of `experiments`, requesting a run for it; a backfill
or a schedule can then fan out over the partitions. Each partition runs three
steps: `by_experiment/raw` (one sync run of that experiment, raw landing only),
`by_experiment/tables` (the transform: DuckDB and the Parquet or Iceberg
tables) and `by_experiment/media` (that experiment's recordings, downloaded,
verified and, in a bucket warehouse, uploaded). The API steps share the pool
`hyperstudy_api` and every run counts its requests in the warehouse's budget
record, so however many workers run, the API sees one key's budget; writers of
one local folder queue on its lock.
"""

from __future__ import annotations

from dagster import (
    AssetKey,
    Definitions,
    DynamicPartitionsDefinition,
    EnvVar,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorResult,
    asset,
    define_asset_job,
    multiprocess_executor,
    sensor,
)

from dagster_project.factory import API_POOL, DUCKDB_POOL, media_metadata
from dagster_project.resources import HyperStudyResource, WarehouseResource, hs_config
from hs_sync import pipeline
from hs_sync.run import discover

EXPERIMENTS = DynamicPartitionsDefinition(name="experiments")
GROUP = "by_experiment"
RAW_KEY = AssetKey([GROUP, "raw"])
TABLES_KEY = AssetKey([GROUP, "tables"])
MEDIA_KEY = AssetKey([GROUP, "media"])
JOB_NAME = "hs_sync_by_experiment"


def _partitioned(key: AssetKey, pool: str, kinds: set[str], description: str, deps=()):
    """The asset decorator of one step of an experiment's partition."""
    return asset(
        key=key,
        deps=list(deps),
        partitions_def=EXPERIMENTS,
        group_name=GROUP,
        pool=pool,
        kinds=kinds,
        description=description,
    )


@_partitioned(
    RAW_KEY,
    API_POOL,
    {"hyperstudy", "json"},
    "One experiment's data types pulled incrementally and landed as raw NDJSON.",
)
def raw(context, hyperstudy: HyperStudyResource, warehouse: WarehouseResource) -> MaterializeResult:
    config = hs_config(warehouse, hyperstudy).replace(experiments=(context.partition_key,))
    summary = pipeline.land(config)
    for unit, error in summary.errors.items():
        context.log.error(f"{unit}: {error}")
    return MaterializeResult(
        metadata={
            "rows": summary.total_rows,
            "requests": summary.requests,
            "errors": MetadataValue.json(summary.errors),
            "uploaded": MetadataValue.json(summary.upload or {}),
        }
    )


@_partitioned(
    TABLES_KEY,
    DUCKDB_POOL,
    {"duckdb", "iceberg"},
    "The new raw files typed into DuckDB and the Parquet or Iceberg tables.",
    deps=[RAW_KEY],
)
def tables(warehouse: WarehouseResource) -> MaterializeResult:
    result = pipeline.transform_all(hs_config(warehouse))
    rows = MetadataValue.json(result["rows"])
    return MaterializeResult(
        metadata={"rows": rows, "quarantined": result["quarantined"], "seconds": result["seconds"]}
    )


@_partitioned(
    MEDIA_KEY,
    API_POOL,
    {"hyperstudy", "video"},
    "One experiment's recording media, downloaded and verified on disk.",
    deps=[TABLES_KEY],
)
def media(
    context, hyperstudy: HyperStudyResource, warehouse: WarehouseResource
) -> MaterializeResult:
    config = hs_config(warehouse, hyperstudy).replace(experiments=(context.partition_key,))
    summary, uploaded = pipeline.media(config)
    return MaterializeResult(metadata=media_metadata(context, summary, uploaded))


by_experiment_job = define_asset_job(
    JOB_NAME,
    selection=[RAW_KEY, TABLES_KEY, MEDIA_KEY],
    executor_def=multiprocess_executor,
    description="Sync one experiment: land its raw data, transform it, download its media.",
)


@sensor(job=by_experiment_job, minimum_interval_seconds=3600)
def discover_experiments(
    context, hyperstudy: HyperStudyResource, warehouse: WarehouseResource
) -> SensorResult:
    """Add every experiment the key can export as a partition and request its first run."""
    found = discover(hs_config(warehouse, hyperstudy))
    known = set(context.instance.get_dynamic_partitions(EXPERIMENTS.name))
    new = [e for e in found if e not in known]
    return SensorResult(
        run_requests=[RunRequest(partition_key=e) for e in new],
        dynamic_partitions_requests=[EXPERIMENTS.build_add_request(new)] if new else [],
    )


defs = Definitions(
    assets=[raw, tables, media],
    jobs=[by_experiment_job],
    sensors=[discover_experiments],
    resources={
        "hyperstudy": HyperStudyResource(api_key=EnvVar("HYPERSTUDY_API_KEY")),
        "warehouse": WarehouseResource(),
    },
)


def resolved_job():
    """The job with its resources, for `reconstructable` (the multiprocess executor)."""
    return defs.resolve_job_def(JOB_NAME)
