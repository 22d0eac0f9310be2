"""The integrity checks of `hs_sync.checks` as Dagster asset checks.

One asset check per registered check, run by the same `run_checks` /
`run_check` calls as `hs-sync check`, and recorded in the warehouse the same
way (the `open_issues` view). Error-severity checks are blocking: a failure
fails the run, as `hs-sync check` exits 1. Checks about recording files sit
on `media/recordings`; the rest judge the warehouse as a whole and sit on
`duckdb/views`, the asset downstream of every table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from dagster_project.factory import API_POOL, MEDIA_KEY, VIEWS_KEY
from dagster_project.resources import HyperStudyResource, WarehouseResource, hs_config
from hs_sync.checks import CHECKS, Check, CheckResult, record_results, run_check, run_checks

ON_MEDIA = frozenset({"recordings_on_disk", "failed_recordings"})


def asset_of(check: Check) -> AssetKey:
    return MEDIA_KEY if check.name in ON_MEDIA else VIEWS_KEY


def build_checks(checks: Sequence[Check] = CHECKS) -> list[AssetChecksDefinition]:
    """One subsettable step running the selected checks (API totals count: `hyperstudy_api`)."""
    by_name = {c.name: c for c in checks}
    specs = [
        AssetCheckSpec(
            c.name,
            asset=asset_of(c),
            description=c.description,
            blocking=c.severity == "error",
            metadata={"severity": c.severity, "uses_api": c.uses_api},
        )
        for c in checks
    ]

    @multi_asset_check(
        name="integrity_checks",
        specs=specs,
        can_subset=True,
        pool=API_POOL,
        description="Missing sessions, reconciliation with the API, orphans, duplicates, ...",
    )
    def integrity_checks(
        context, hyperstudy: HyperStudyResource, warehouse: WarehouseResource
    ) -> Iterator[AssetCheckResult]:
        config = hs_config(warehouse, hyperstudy)
        selected = {k.name for k in context.selected_asset_check_keys}
        if selected >= set(by_name):
            results = run_checks(config)
        else:
            results = [run_check(config, c.name) for c in checks if c.name in selected]
        record_results(config, results)
        for result in results:
            if result.name in by_name:
                yield _check_result(by_name[result.name], result)

    return [integrity_checks]


def _check_result(check: Check, result: CheckResult) -> AssetCheckResult:
    severity = AssetCheckSeverity.ERROR if result.severity == "error" else AssetCheckSeverity.WARN
    return AssetCheckResult(
        asset_key=asset_of(check),
        check_name=result.name,
        passed=result.passed,
        severity=severity,
        description=result.hint or None,
        metadata={
            "status": result.status,
            "count": result.count,
            "sample": MetadataValue.json(list(result.sample)),
            "hint": result.hint,
            "details": MetadataValue.json(result.details),
        },
    )
