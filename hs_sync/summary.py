"""What a sync run did (`RunSummary`), and the one failure that stops a run outright: a full disk."""

from __future__ import annotations

import errno
import secrets
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from hs_sync.errors import HsSyncError

if TYPE_CHECKING:
    from hs_sync.extract.pages import PullResult


@dataclass
class RunSummary:
    """What a sync run did; `to_dict()` is JSON-able, `exit_code` is 0 or 1."""

    run_id: str
    started_at: str
    window_end: str | None = None
    experiments: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # type -> experiment -> rows
    files: int = 0
    requests: int = 0
    # data, probes, verification, media, overhead (discovery, server time, retries)
    requests_by_purpose: dict[str, int] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)  # units polled / not yet due
    retries: int = 0
    bytes_received: int = 0
    windows: list[dict[str, Any]] = field(default_factory=list)
    skipped_types: dict[str, str] = field(default_factory=dict)
    skipped_experiments: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    transform: dict[str, Any] | None = None
    media: dict[str, Any] | None = None
    upload: dict[str, Any] | None = None  # raw files and media sent to the object store
    duration_seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(sum(per.values()) for per in self.rows.values())

    @property
    def quarantined(self) -> int:
        """Raw lines this run's transform could not turn into rows (see quarantine/)."""
        return int((self.transform or {}).get("quarantined", 0))

    @property
    def damaged(self) -> list[str]:
        """Raw files that did not read, moved to raw/.damaged/ (pulled again next run)."""
        return list((self.transform or {}).get("damaged", []))

    @property
    def drift(self) -> dict[str, Any]:
        """Per data type: unknown fields and values that did not convert (kept in `_extra`)."""
        return dict((self.transform or {}).get("drift", {}))

    @property
    def exit_code(self) -> int:
        """0: everything asked for was synced (missing scopes are listed); 1: partial,
        including lines quarantined or raw files found damaged."""
        partial = self.errors or self.budget.get("exhausted") or self.quarantined or self.damaged
        return 1 if partial else 0

    def add(self, result: PullResult) -> None:
        """Count what one pull did (the caller serializes calls)."""
        for purpose, n in result.by_purpose().items():
            self.requests_by_purpose[purpose] = self.requests_by_purpose.get(purpose, 0) + n
        per = self.rows.setdefault(result.data_type, {})
        per[result.experiment_id] = per.get(result.experiment_id, 0) + result.rows
        self.files += result.files
        self.windows += result.windows
        for w in result.warnings:
            line = f"{result.data_type}/{result.experiment_id}: {w}"
            if w.startswith(f"{result.data_type}/") or line in self.warnings:
                line = w
            if line not in self.warnings:
                self.warnings.append(line)
        for i, e in enumerate(result.errors):
            self.errors[f"{result.data_type}/{result.experiment_id}" + (f"#{i}" if i else "")] = e

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["total_rows"] = self.total_rows
        out["quarantined"] = self.quarantined
        out["damaged"] = self.damaged
        out["drift"] = self.drift
        out["exit_code"] = self.exit_code
        return out


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class DiskFull(HsSyncError):
    """The disk filled while landing: the run stops, recorded where possible (exit 1)."""

    def __init__(self, cause: BaseException):
        super().__init__(
            f"the disk is full ({cause}); free space under the warehouse and run it again: "
            "what was landed is kept"
        )


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk (or a quota, or the file size limit) is full."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)
