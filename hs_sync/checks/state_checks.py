"""Checks over the sync state and the files beside the database: freshness, quarantine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hs_sync import stores as state_stores
from hs_sync.checks.context import CheckContext
from hs_sync.checks.model import Issue
from hs_sync.land import quarantine as quarantine_store


def freshness(ctx: CheckContext) -> list[Issue]:
    """(type, experiment) pairs whose last successful sync is older than freshness_hours."""
    limit = timedelta(hours=ctx.config.freshness_hours)
    now = datetime.now(timezone.utc)
    skipped = {}
    if ctx.runs:
        skipped = ctx.runs[-1].get("skipped_types") or {}
    experiments = ctx.experiments
    if not experiments:
        return [Issue("type", "*", detail="never synced: the warehouse knows no experiment")]
    out = []
    for dt in ctx.config.data_types:
        for exp in experiments:
            last = ctx.last_success(dt.name, exp)
            if last is not None and now - last <= limit:
                continue
            if last is None:
                detail = "never synced"
            else:
                hours = (now - last).total_seconds() / 3600
                detail = f"last synced {last.isoformat(timespec='seconds')} ({hours:.1f} h ago)"
            if dt.name in skipped:
                detail += f"; last run skipped it: {skipped[dt.name]}"
            out.append(Issue("type", f"{dt.name}/{exp}", experiment_id=exp, detail=detail))
    return out


def unconverged_windows(ctx: CheckContext) -> list[Issue]:
    """Time windows the sync stopped re-reading: two re-reads left the API's count and the
    rows landed apart (the extraction state's `unconverged_windows`)."""
    out = []
    for w in ctx.state.unconverged_windows():
        start = _iso(w["window_start"])
        end = _iso(w["window_end"])
        out.append(
            Issue(
                "window",
                f"{w['data_type']}/{w['experiment_id']}/{start}",
                experiment_id=w["experiment_id"],
                detail=(
                    f"{w['data_type']} {start}..{end}: the API counts {w['api_rows']} rows, "
                    f"{w['landed_rows']} landed; seen {w['first_seen']} to {w['last_seen']}"
                ),
            )
        )
    return out


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def stores(ctx: CheckContext) -> list[Issue]:
    """The state file (extraction state, ledger, media manifest) if it does not open or read."""
    return [
        Issue("file", r.path, detail=r.problem or "")
        for r in state_stores.check(ctx.warehouse, state_stores.STATE_STORES)
        if not r.ok
    ]


def quarantine(ctx: CheckContext) -> list[Issue]:
    """Data types with quarantined rows (records that did not fit their schema)."""
    counts = quarantine_store.count(ctx.warehouse)
    out = []
    for type_name, n in sorted(counts.items()):
        reasons = {}
        for row in quarantine_store.rows(ctx.warehouse, type_name):
            reason = str(row.get("reason", "?"))
            reasons[reason] = reasons.get(reason, 0) + 1
        top = ", ".join(f"{r} ({k})" for r, k in sorted(reasons.items(), key=lambda x: -x[1])[:3])
        out.append(Issue("type", type_name, detail=f"{n} quarantined row(s): {top}"))
    return out
