"""`hs-sync sync`: pull new data into the warehouse and print what was done.

Exit codes: 0 success, 1 partial failure (a unit failed, the hourly budget
ran out, the disk filled, raw lines were quarantined or a raw file was damaged;
progress is saved), 2 configuration, authentication, lock or damaged-store errors,
130/143 stopped by SIGINT/SIGTERM (the run is recorded as interrupted).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hs_sync.cli import printing
from hs_sync.cli.oneline import OneLineCommand
from hs_sync.cli.options import (
    base_url_option,
    config_option,
    experiment_option,
    finish,
    json_option,
    warehouse_option,
)
from hs_sync.cli.progress import SyncProgress


@click.command("sync", cls=OneLineCommand)
@experiment_option
@click.option("--type", "types", multiple=True, help="Data type name (repeatable).")
@click.option("--room", "rooms", multiple=True, help="Re-pull this room at room scope (repair).")
@warehouse_option
@base_url_option
@click.option("--full-refresh", is_flag=True, help="Ignore watermarks: re-read everything.")
@click.option("--lookback", type=float, default=None, help="Seconds re-read before a watermark.")
@click.option("--no-media", is_flag=True, help="Skip downloading recording media files.")
@click.option(
    "--group",
    default=None,
    help="Share the warehouse read-only with this group (0750/0640; setting `group`).",
)
@click.option(
    "--allow-other-api",
    is_flag=True,
    help="Sync even though the warehouse holds data from another API (base URL or "
    "organization); it then follows this one.",
)
@json_option("the run summary")
@config_option
def command(
    experiments: tuple[str, ...],
    types: tuple[str, ...],
    rooms: tuple[str, ...],
    warehouse: Path | None,
    base_url: str | None,
    full_refresh: bool,
    lookback: float | None,
    no_media: bool,
    group: str | None,
    allow_other_api: bool,
    as_json: bool,
    config_file: str | None,
) -> None:
    """Pull every data type incrementally and land it in the warehouse.

    Needs HYPERSTUDY_API_KEY in the environment. Lands raw NDJSON, builds
    Parquet and DuckDB, then downloads recording media.

    \b
    Examples:
      hs-sync sync
      hs-sync sync --experiment exp_123 --type events --type ratings_sparse
      hs-sync sync --room room_456          # repair one room at room scope
      hs-sync sync --no-media --json > last_run.json
    """
    import sqlite3

    from hs_sync.config import load_config
    from hs_sync.interrupt import Interrupted
    from hs_sync.run import disk_full, sync

    config = load_config(
        config_file,
        experiments=experiments,
        types=types,
        rooms=rooms,
        warehouse=warehouse,
        base_url=base_url,
        full_refresh=True if full_refresh else None,
        lookback_seconds=lookback,
        media=False if no_media else None,
        group=group,
    )
    if allow_other_api:
        from hs_sync import origin
        from hs_sync.warehouse import Warehouse

        origin.forget(Warehouse(config.warehouse))
    try:
        with SyncProgress(enabled=not as_json) as progress:
            summary = sync(config, progress=progress, signals=True)
    except Interrupted as exc:
        printing.echo(
            f"hs-sync sync: {exc}; the run is recorded as interrupted, what was landed is kept",
            err=True,
        )
        sys.exit(exc.exit_code)
    except (OSError, sqlite3.OperationalError) as exc:
        if not disk_full(exc):
            raise
        printing.echo(
            f"hs-sync sync: the disk is full ({exc}); free space and run it again", err=True
        )
        sys.exit(1)
    finish(summary, as_json, print_summary)


def print_summary(summary) -> None:
    echo, shown = printing.echo, printing.shown
    echo(
        f"synced {len(summary.experiments)} experiment(s) in {summary.duration_seconds:.1f} s: "
        f"{printing.count(summary.total_rows)}, {summary.files} raw file(s), "
        f"{summary.requests} request(s) ({summary.retries} retried)"
    )
    # What was not typed comes first: a cron job's mail shows it at the top.
    if summary.quarantined:
        echo(
            f"QUARANTINED: {summary.quarantined:,} raw line(s) could not become rows "
            "(see quarantine/ and `hs-sync status`)"
        )
    for name in summary.damaged:
        echo(
            f"DAMAGED: raw file {shown(name)} did not read; moved to raw/.damaged/, "
            "pulled again next sync"
        )
    for type_name, drift in sorted(summary.drift.items()):
        fields = ", ".join(shown(f) for f in drift.get("new_fields", {})) or "-"
        changes = ", ".join(
            f"{shown(c['field'])} ({c['declared']} got {c['seen']}: {printing.count(c['rows'])})"
            for c in drift.get("type_changes", [])
        )
        echo(
            f"DRIFT in {type_name}: new fields {fields}; "
            f"not converted, kept in _extra: {changes or '-'}"
        )
    purposes = {k: v for k, v in summary.requests_by_purpose.items() if v}
    if purposes:
        echo("  requests by purpose: " + ", ".join(f"{k} {v}" for k, v in purposes.items()))
    if summary.polls.get("not_due"):
        echo(f"  {summary.polls['not_due']} unit(s) without recent change not due yet")
    for type_name, per in sorted(summary.rows.items()):
        for exp, rows in sorted(per.items()):
            echo(f"  {shown(type_name):<20} {shown(exp):<24} {printing.count(rows):>15}")
    for type_name, reason in summary.skipped_types.items():
        echo(f"skipped type {shown(type_name)}: {reason}")
    for exp, reason in summary.skipped_experiments.items():
        if f"experiment/{exp}" not in summary.errors:  # a named one: said once, as an error
            echo(f"skipped experiment {shown(exp)}: {reason}")
    for warning in summary.warnings:
        echo(f"warning: {warning}")
    for unit, error in summary.errors.items():
        echo(f"error: {unit}: {error}")
    budget = summary.budget
    others = budget.get("used_by_other_runs")
    shared = f" ({others} used by other runs on this key)" if others else ""
    if budget.get("exhausted"):
        echo(
            f"hourly request budget spent{shared}; progress saved; "
            f"resume after {budget['resume_at']}"
        )
    elif budget:
        echo(
            f"request budget: {budget.get('remaining_this_hour')} of "
            f"{budget.get('per_hour')} left this hour{shared}"
        )
    waited = float(budget.get("waited_seconds") or 0)
    if waited >= 1:
        echo(f"waited {_duration(waited)} in all for the per-minute request budget")
    if summary.media is not None:
        m = summary.media
        echo(
            f"media: {m['downloaded']} downloaded, {m['up_to_date']} up to date, "
            f"{m['pending']} pending, {m['failed']} failed "
            f"({m['bytes_downloaded']:,} bytes)"
        )
    if summary.transform is not None:
        echo(transform_line(summary.transform))


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def transform_line(t: dict) -> str:
    """One line on what the transform did (`--json` has every figure)."""
    types = t.get("types", {})
    files = sum(r.get("files", 0) for r in types.values())
    written = sum(r.get("db_rows_written", 0) for r in types.values())
    changed = sum(1 for r in types.values() if r.get("db_rows_written"))
    line = (
        f"transform: {files} raw file(s) applied, {written:,} row(s) written to "
        f"{changed} table(s) in {t.get('seconds', 0):.1f} s"
    )
    if t.get("quarantined"):
        line += f"; {t['quarantined']} row(s) quarantined (see quarantine/)"
    if t.get("drift"):
        line += f"; new fields in {', '.join(sorted(t['drift']))} (kept in _extra)"
    return line + ("; database published" if t.get("published") else "; database unchanged")
