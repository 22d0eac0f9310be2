"""The integrity checks of `hs_sync.checks` as Dagster asset checks.

One asset check per registered check, run by the same `run_checks` /
`run_check` calls as `hs-sync check`, and recorded in the warehouse the same
way (the `open_issues` view). Checks about recording files sit on
`media/recordings`; the rest judge the warehouse as a whole and sit on
`duckdb/views`, the asset downstream of every table.

Pipeline faults (duplicate keys, counts that do not match the API, rows
pointing nowhere, recordings missing on disk) are blocking, error-severity
checks: one that fails fails the run. Everything else is a finding about the
study (missing sessions, rating gaps, missing sync, failed recordings,
disconnected participants): a warning that leaves the run green, so a live
study's pipeline does not stay red for good. Which checks block is a setting:
HS_SYNC_BLOCKING_CHECKS, a comma-separated list of check names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence

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
from hs_sync.errors import ConfigError

ON_MEDIA = frozenset({"recordings_on_disk", "failed_recordings"})
# Faults of the pipeline, not of the study: these fail a run (the default of the setting).
PIPELINE_FAULTS = ("duplicate_keys", "count_reconciliation", "orphans", "recordings_on_disk")
BLOCKING_VAR = "HS_SYNC_BLOCKING_CHECKS"


def blocking_checks(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The checks that fail a run: HS_SYNC_BLOCKING_CHECKS, else the pipeline faults.

    Raises ConfigError naming an unknown check.
    """
    env = os.environ if env is None else env
    raw = env.get(BLOCKING_VAR)
    if raw is None:
        return frozenset(PIPELINE_FAULTS)
    names = frozenset(n.strip() for n in raw.split(",") if n.strip())
    unknown = sorted(names - {c.name for c in CHECKS})
    if unknown:
        known = ", ".join(c.name for c in CHECKS)
        raise ConfigError(BLOCKING_VAR, f"unknown check {unknown[0]!r}; known: {known}")
    return names


def asset_of(check: Check) -> AssetKey:
    return MEDIA_KEY if check.name in ON_MEDIA else VIEWS_KEY


def build_checks(
    checks: Sequence[Check] = CHECKS, blocking: frozenset[str] | None = None
) -> list[AssetChecksDefinition]:
    """One subsettable step running the selected checks (API totals count: `hyperstudy_api`).

    `blocking`: the checks that fail a run (default: `blocking_checks()`); the rest warn.
    """
    blocking = blocking_checks() if blocking is None else blocking
    by_name = {c.name: c for c in checks}
    specs = [
        AssetCheckSpec(
            c.name,
            asset=asset_of(c),
            description=c.description,
            blocking=c.name in blocking,
            metadata={
                "severity": "error" if c.name in blocking else "warning",
                "uses_api": c.uses_api,
            },
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
                yield _check_result(by_name[result.name], result, result.name in blocking)

    return [integrity_checks]


def _check_result(check: Check, result: CheckResult, blocks: bool) -> AssetCheckResult:
    severity = AssetCheckSeverity.ERROR if blocks else AssetCheckSeverity.WARN
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
