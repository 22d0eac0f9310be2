"""What a check is and what it reports: `Check`, `Issue` and `CheckResult`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SAMPLE_SIZE = 10  # affected ids shown per check


@dataclass(frozen=True)
class Issue:
    """One affected thing: a room, a participant, a recording, a (type, experiment)..."""

    entity: str  # room, participant, recording, gap, key, count, type, file
    id: str
    experiment_id: str | None = None
    room_id: str | None = None
    participant_id: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CheckResult:
    """The outcome of one check. `status` is passed, failed, skipped or error."""

    name: str
    severity: str  # "error" | "warning"
    passed: bool
    count: int
    sample: list[str]
    hint: str
    details: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    issues: list[Issue] = field(default_factory=list, repr=False)  # every affected thing

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "passed" if self.passed else "failed"

    @property
    def blocking(self) -> bool:
        """True when this result should fail a run: an error-level check that did not pass."""
        return self.severity == "error" and not self.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "severity": self.severity,
            "status": self.status,
            "passed": self.passed,
            "count": self.count,
            "sample": list(self.sample),
            "hint": self.hint,
            "details": self.details,
        }


@dataclass(frozen=True)
class Check:
    """One registered check: `run(ctx)`, given the run's `checks.context.CheckContext`,
    returns its issues, or (issues, details)."""

    name: str
    severity: str
    description: str
    # the context is above this module (it builds Issues), so it is not named here
    run: Callable[[Any], Any] = field(repr=False)
    hint: Callable[[list[Issue]], str] = field(repr=False)
    uses_api: bool = False


def result_of(check: Check, issues: list[Issue], **details: Any) -> CheckResult:
    """A CheckResult from the issues a check found."""
    return CheckResult(
        name=check.name,
        severity=check.severity,
        passed=not issues,
        count=len(issues),
        sample=[i.id for i in issues[:SAMPLE_SIZE]],
        hint=check.hint(issues) if issues else "",
        details=details,
        issues=issues,
    )


def skipped(check: Check, reason: str) -> CheckResult:
    return CheckResult(
        check.name, check.severity, True, 0, [], "", {"reason": reason}, status="skipped"
    )


def errored(check: Check, reason: str, hint: str | None = None) -> CheckResult:
    hint = hint or f"could not run ({reason}); fix the cause and run `hs-sync check` again"
    return CheckResult(
        check.name, check.severity, False, 0, [], hint, {"error": reason}, status="error"
    )
