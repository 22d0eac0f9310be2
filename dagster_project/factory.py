"""The one asset factory: the registry's data types as Dagster assets.

For each data type three assets, grouped by layer:
`raw/<type>` (the incremental pull) -> `parquet/<type>` -> `duckdb/<type>`;
then `duckdb/views` over every table and `media/recordings` for the files.

The raw assets of all types are computed by one subsettable step: one sync
run for the selected types, so experiment discovery, access checks and the
rooms list are requested once per run, not once per type (the hourly request
budget is shared). Likewise the Parquet and DuckDB assets of all types come
from one subsettable step, one `transform` call for the selected types, which
writes both and publishes the database once. Every step calls the same
library functions as the `hs-sync` command (`hs_sync.pipeline`).

Steps that call the API share the pool `hyperstudy_api`; steps that write the
DuckDB database share `hs_sync_duckdb`. With a pool limit of 1 (dagster.yaml)
two runs never hammer the API at once and DuckDB writes are serialized; the
warehouse lock taken by the library is the backstop across processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
    multi_asset,
)

from dagster_project.resources import HyperStudyResource, WarehouseResource, hs_config
from hs_sync import pipeline, registry
from hs_sync.load.duck import duck_type
from hs_sync.media import MediaSummary
from hs_sync.registry import LINEAGE_COLUMNS, DataType, media_type
from hs_sync.run import RunSummary
from hs_sync.warehouse import Warehouse

API_POOL = "hyperstudy_api"
DUCKDB_POOL = "hs_sync_duckdb"

VIEWS_KEY = AssetKey(["duckdb", "views"])
MEDIA_KEY = AssetKey(["media", media_type().name])
PULL_CHECK = "pull_complete"
_WINDOWS_SHOWN = 200  # window details kept in the metadata (the count is always complete)


@dataclass(frozen=True)
class TypeAssets:
    """The assets one data type contributes: raw, Parquet and DuckDB table."""

    data_type: DataType

    @property
    def name(self) -> str:
        return self.data_type.name

    @property
    def raw_key(self) -> AssetKey:
        return AssetKey(["raw", self.name])

    @property
    def parquet_key(self) -> AssetKey:
        return AssetKey(["parquet", self.name])

    @property
    def duckdb_key(self) -> AssetKey:
        return AssetKey(["duckdb", self.name])

    def raw_spec(self) -> AssetSpec:
        dt = self.data_type
        return AssetSpec(
            self.raw_key,
            group_name="raw",
            kinds={"hyperstudy", "json"},
            description=(
                f"HyperStudy `{dt.path}` pulled incrementally ({dt.mode.value} mode) and "
                f"landed as NDJSON pages under raw/{self.name}/."
            ),
            metadata={"mode": dt.mode.value, "api_scope": dt.api_scope or "(none documented)"},
        )

    def pull_check_spec(self) -> AssetCheckSpec:
        return AssetCheckSpec(
            PULL_CHECK,
            asset=self.raw_key,
            description="Every (type, experiment) unit of the pull finished without an error.",
        )

    def parquet_spec(self) -> AssetSpec:
        return AssetSpec(
            self.parquet_key,
            deps=[self.raw_key],
            group_name="parquet",
            kinds={"parquet"},
            description=f"Typed, de-duplicated Parquet partitions under parquet/{self.name}/.",
        )

    def duckdb_spec(self) -> AssetSpec:
        dt = self.data_type
        columns = [
            TableColumn(c.name, duck_type(c.type, c.json), description=dt.describe(c.name).text)
            for c in dt.columns + LINEAGE_COLUMNS
        ]
        return AssetSpec(
            self.duckdb_key,
            deps=[self.parquet_key],
            group_name="duckdb",
            kinds={"duckdb", "table"},
            description=f"Table `{self.name}` in hyperstudy.duckdb, one row per key: "
            f"{dt.description}.",
            metadata={
                "dagster/table_name": f"hyperstudy.main.{self.name}",
                "dagster/column_schema": TableSchema(columns=columns),
            },
        )


def build_assets(data_types: Sequence[DataType] | None = None) -> list[AssetsDefinition]:
    """Every asset the registry implies (for `data_types`, default all), merged into one list."""
    types = [TypeAssets(dt) for dt in (registry.DATA_TYPES if data_types is None else data_types)]
    return [
        pull_assets(types),
        transform_assets(types),
        views_asset(types),
        media_asset(),
    ]


def pull_assets(types: Sequence[TypeAssets]) -> AssetsDefinition:
    """`raw/<type>` for every type: one sync run (raw landing only) for the selected ones."""
    by_key = {t.raw_key: t for t in types}

    @multi_asset(
        name="hyperstudy_pull",
        specs=[t.raw_spec() for t in types],
        check_specs=[t.pull_check_spec() for t in types],
        can_subset=True,
        pool=API_POOL,
        description="One incremental sync run of the selected data types (raw landing).",
    )
    def hyperstudy_pull(
        context,
        hyperstudy: HyperStudyResource,
        warehouse: WarehouseResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        selected = [t for key, t in by_key.items() if key in context.selected_asset_keys]
        names = tuple(t.name for t in selected)
        config = hs_config(warehouse, hyperstudy, types=names)
        summary = pipeline.land(config)
        _log_summary(context, summary)
        checks = context.selected_asset_check_keys
        for t in selected:
            errors = _errors_of(summary, t.name)
            yield MaterializeResult(asset_key=t.raw_key, metadata=_raw_metadata(summary, t.name))
            if any(k.asset_key == t.raw_key for k in checks):
                yield AssetCheckResult(
                    asset_key=t.raw_key,
                    check_name=PULL_CHECK,
                    passed=not errors,
                    severity=AssetCheckSeverity.ERROR,
                    metadata={"errors": MetadataValue.json(errors)},
                    description=(
                        "Units failed; their progress is saved and the next run resumes them."
                        if errors
                        else None
                    ),
                )

    return hyperstudy_pull


def transform_assets(types: Sequence[TypeAssets]) -> AssetsDefinition:
    """`parquet/<type>` and `duckdb/<type>` of the selected types: one transform call of
    their new raw files, so the database is copied and published once per run."""
    by_name = {t.name: t for t in types}

    @multi_asset(
        name="transform",
        specs=[spec for t in types for spec in (t.parquet_spec(), t.duckdb_spec())],
        can_subset=True,
        pool=DUCKDB_POOL,
        description="Normalize the new raw files of the selected types into Parquet and DuckDB.",
    )
    def transform(context, warehouse: WarehouseResource) -> Iterator[MaterializeResult]:
        keys = context.selected_asset_keys
        selected = [t for t in types if t.parquet_key in keys or t.duckdb_key in keys]
        config = hs_config(warehouse)
        result = pipeline.transform_types(config, [t.data_type for t in selected])
        counts = pipeline.table_rows(config, [by_name[name].data_type for name in result["types"]])
        for name, r in result["types"].items():
            t = by_name[name]
            common = {"files_applied": r["files"], "rows_read": r["rows_read"]}
            parquet = {
                "rows_written": r["parquet_rows_written"],
                "partitions_touched": r["partitions_touched"],
                "partitions_rewritten": r["partitions_rewritten"],
                "quarantined": r["quarantined"],
                "drift": MetadataValue.json(r["drift"]),
                "path": MetadataValue.path(str(Warehouse(config.warehouse).parquet_dir(name))),
            }
            table = {
                "rows_unique": r["rows_unique"],
                "rows_written": r["db_rows_written"],
                "dagster/row_count": counts[name],
                "published": result["published"],
            }
            for key, metadata in ((t.parquet_key, parquet), (t.duckdb_key, table)):
                if key in keys:
                    yield MaterializeResult(asset_key=key, metadata={**common, **metadata})

    return transform


def views_asset(types: Sequence[TypeAssets]) -> AssetsDefinition:
    """`duckdb/views`: the views of sql/views/, current with their definitions."""

    @asset(
        key=VIEWS_KEY,
        deps=[t.duckdb_key for t in types],
        group_name="duckdb",
        kinds={"duckdb", "sql"},
        pool=DUCKDB_POOL,
        description="The SQL views (sql/views/*.sql) over the tables, for analysis.",
    )
    def views(warehouse: WarehouseResource) -> MaterializeResult:
        result = pipeline.refresh_views(hs_config(warehouse))
        return MaterializeResult(
            metadata={
                "views": MetadataValue.json(result["views"]),
                "view_count": len(result["views"]),
                "republished": result["republished"],
            }
        )

    return views


def media_asset() -> AssetsDefinition:
    """`media/recordings`: the recording files, downloaded and verified on disk."""

    @asset(
        key=MEDIA_KEY,
        deps=[AssetKey(["duckdb", media_type().name])],
        group_name="media",
        kinds={"hyperstudy", "video"},
        pool=API_POOL,
        description="Recording media files under media/<experiment>/<room>/<participant>/.",
    )
    def media(
        context, hyperstudy: HyperStudyResource, warehouse: WarehouseResource
    ) -> MaterializeResult:
        summary, uploaded = pipeline.media(hs_config(warehouse, hyperstudy))
        return MaterializeResult(metadata=media_metadata(context, summary, uploaded))

    return media


def media_metadata(
    context, summary: MediaSummary, uploaded: dict[str, int] | None
) -> dict[str, Any]:
    """A media step's metadata; its failed files logged as warnings."""
    for recording, reason in summary.errors.items():
        # failed files are retried by the next run; recordings_on_disk reports what is missing
        context.log.warning(f"media {recording}: {reason}")
    return _flat_metadata({**summary.to_dict(), "uploaded": uploaded})


def _errors_of(summary: RunSummary, name: str) -> dict[str, str]:
    """The run's errors that concern this type: its own units, and run-wide ones."""
    return {
        key: value
        for key, value in summary.errors.items()
        if key.split("/", 1)[0] == name or key.split("/", 1)[0] not in registry.BY_NAME
    }


def _raw_metadata(summary: RunSummary, name: str) -> dict[str, Any]:
    windows = [w for w in summary.windows if w.get("data_type") == name]
    per_experiment = summary.rows.get(name, {})
    return {
        "rows": sum(per_experiment.values()),
        "rows_by_experiment": MetadataValue.json(per_experiment),
        "requests": sum(int(w.get("requests") or 0) for w in windows),
        "windows": len(windows),
        "window_details": MetadataValue.json(windows[:_WINDOWS_SHOWN]),
        "skipped": summary.skipped_types.get(name, ""),
        "errors": MetadataValue.json(_errors_of(summary, name)),
        "run_id": summary.run_id,
        "run_requests": summary.requests,
        "run_skipped_types": MetadataValue.json(summary.skipped_types),
        "window_end": summary.window_end or "",
    }


def _flat_metadata(summary: dict[str, Any]) -> dict[str, Any]:
    """Numbers and text as they are; anything nested as JSON."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif value is not None:
            out[key] = MetadataValue.json(value)
    return out


def _log_summary(context: AssetExecutionContext, summary: RunSummary) -> None:
    context.log.info(
        f"sync run {summary.run_id}: {summary.total_rows} rows, {summary.requests} requests, "
        f"{len(summary.windows)} windows, experiments {summary.experiments}"
    )
    for name, reason in summary.skipped_types.items():
        context.log.warning(f"skipped {name}: {reason}")
    for line in summary.warnings:
        context.log.warning(line)
    for unit, error in summary.errors.items():
        context.log.error(f"{unit}: {error}")
