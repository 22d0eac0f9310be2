"""Run checks against one warehouse: each check becomes a CheckResult."""

from __future__ import annotations

import time

from hs_sync.checks import hints
from hs_sync.checks.catalog import CHECKS, ROOM_CHECKS, get
from hs_sync.checks.context import CheckContext
from hs_sync.checks.media_check import NoManifest
from hs_sync.checks.model import Check, CheckResult, errored, result_of, skipped
from hs_sync.config import Config
from hs_sync.errors import (
    AuthError,
    BudgetExhausted,
    ConfigError,
    HsSyncError,
    ServerUnreachable,
)


def run_checks(config: Config, *, use_api: bool = True) -> list[CheckResult]:
    """Every registered check, in registry order.

    Raises ConfigError (no warehouse) and AuthError (a wrong key); a check that
    cannot run for another reason is reported with status "error".
    """
    with CheckContext(config, use_api=use_api) as ctx:
        return [_run(ctx, check) for check in CHECKS]


def run_room_checks(config: Config) -> list[CheckResult]:
    """The checks of the rooms `config.rooms` names (each participant's data types against
    the API's counts)."""
    with CheckContext(config, use_api=True) as ctx:
        return [_run(ctx, check) for check in ROOM_CHECKS]


def run_check(config: Config, name: str, *, use_api: bool = True) -> CheckResult:
    """One check by name (KeyError naming the known checks if there is none)."""
    check = get(name)
    with CheckContext(config, use_api=use_api) as ctx:
        return _run(ctx, check)


def _run(ctx: CheckContext, check: Check) -> CheckResult:
    if check.uses_api and not ctx.use_api:
        return skipped(check, "API checks turned off (--no-api)")
    if check.uses_api and not ctx.config.api_key:
        return skipped(check, "no API key: set HYPERSTUDY_API_KEY (or pass --no-api)")
    started = time.monotonic()
    try:
        outcome = check.run(ctx)
    except NoManifest as exc:
        return skipped(check, str(exc))
    except ServerUnreachable as exc:  # the offline checks still run and are shown
        result = errored(check, str(exc))
    except (AuthError, ConfigError):
        raise
    except BudgetExhausted as exc:
        result = errored(check, str(exc), hints.budget_spent(exc.resume_at))
    except HsSyncError as exc:
        result = errored(check, f"{type(exc).__name__}: {exc}")
    else:
        result = _result(check, outcome, started)
    result.hint = hints.with_warehouse(result.hint, ctx.config.warehouse)
    return result


def _result(check: Check, outcome, started: float) -> CheckResult:
    if isinstance(outcome, tuple):
        issues, details = outcome
    else:
        issues, details = outcome, {}
    result = result_of(check, issues, **details)
    result.details["seconds"] = round(time.monotonic() - started, 3)
    if issues:
        by_entity: dict[str, int] = {}
        for issue in issues:
            by_entity[issue.entity] = by_entity.get(issue.entity, 0) + 1
        result.details["by_entity"] = by_entity
    return result
