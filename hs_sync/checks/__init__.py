"""Integrity checks: which sessions are missing or incomplete, and whether the
warehouse agrees with the API, before anyone analyses the data.

`run_checks(config)` runs every check in `CHECKS`; `run_check(config, name)`
one of them; `record_results(config, results)` stores the outcome in the
warehouse, where the `open_issues` view lists every open issue.
"""

from __future__ import annotations

from hs_sync.checks.catalog import CHECKS, CHECKS_BY_NAME
from hs_sync.checks.model import Check, CheckResult, Issue
from hs_sync.checks.record import record_results
from hs_sync.checks.runner import run_check, run_checks, run_room_checks

__all__ = [
    "CHECKS",
    "CHECKS_BY_NAME",
    "Check",
    "CheckResult",
    "Issue",
    "record_results",
    "run_check",
    "run_checks",
    "run_room_checks",
]
