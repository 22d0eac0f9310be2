"""`hs-sync status`: watermarks, last runs, rows per type and experiment, drift, quarantine.

Read-only and offline. Exit codes: 0 shown, 2 no warehouse or a bad flag or setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hs_sync.cli.oneline import OneLineCommand
from hs_sync.cli.options import config_option, json_option, print_json, warehouse_option


@click.command("status", cls=OneLineCommand)
@warehouse_option
@click.option(
    "--runs",
    "last_runs",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="How many recent runs to show.",
)
@json_option("the status")
@config_option
def command(warehouse: Path | None, last_runs: int, as_json: bool, config_file: str | None) -> None:
    """Show what the warehouse holds and how fresh it is.

    Freshness is the time since the last fully successful sync, against the
    `freshness_hours` setting (default 26).

    \b
    Examples:
      hs-sync status
      hs-sync status --warehouse /data/hs --json | jq .freshness
    """
    from hs_sync.config import load_config
    from hs_sync.status import status

    config = load_config(config_file, warehouse=warehouse)
    report = status(config.warehouse, freshness_hours=config.freshness_hours, last_runs=last_runs)
    if as_json:
        print_json(report)
    else:
        _print(report)


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from hs_sync.cli.printing import rich as shown

    console = Console(highlight=False)
    db = report["database"]
    fresh = report["freshness"]
    console.print(f"[bold]warehouse[/bold] {report['warehouse']}")
    if db["exists"]:
        console.print(f"database  {db['path']} ({db['bytes'] / 1e6:.1f} MB)")
    else:
        console.print(f"database  {db['path']} [yellow](not built yet)[/yellow]")
    if fresh["last_success_at"]:
        verdict = "[red]STALE[/red]" if fresh["stale"] else "[green]fresh[/green]"
        console.print(
            f"freshness {verdict}: last successful sync {fresh['last_success_at']} "
            f"({fresh['hours_since_success']} h ago; threshold {fresh['threshold_hours']} h)"
        )
    else:
        console.print("freshness [red]STALE[/red]: no successful sync yet")
    if fresh["newest_row_at"]:
        console.print(f"newest row {fresh['newest_row_at']}")

    table = Table(title="Rows per type and experiment", title_justify="left")
    for name, justify in (("type", "left"), ("experiment", "left"), ("rows", "right")):
        table.add_column(name, justify=justify)
    table.add_column("newest row")
    for row in report["tables"]:
        table.add_row(
            shown(row["data_type"]),
            shown(row["experiment_id"]),
            f"{row['rows']:,}",
            shown(row["newest"] or "-"),
        )
    console.print(table)

    if report["runs"]:
        runs = Table(title="Last runs (newest first)", title_justify="left")
        for name in ("run", "started", "status", "rows", "requests", "seconds", "errors"):
            runs.add_column(name, justify="right" if name in ("rows", "requests") else "left")
        for run in report["runs"]:
            runs.add_row(
                run["run_id"],
                run["started_at"],
                run["status"] or "-",
                _num(run["total_rows"]),
                _num(run["requests"]),
                _num(run["duration_seconds"]),
                str(len(run["errors"])),
            )
        console.print(runs)

    if report["watermarks"]:
        marks = Table(title="Watermarks", title_justify="left")
        for name in ("type", "experiment", "watermark", "updated"):
            marks.add_column(name)
        for mark in report["watermarks"]:
            marks.add_row(
                *(shown(mark[k]) for k in ("data_type", "experiment_id")),
                shown(mark["watermark"]),
                shown(mark["updated_at"]),
            )
        console.print(marks)

    if report["drift"]:
        drift = Table(title="Schema drift (kept in _extra)", title_justify="left")
        for name in ("type", "kind", "field", "declared", "seen", "rows", "last seen"):
            drift.add_column(name)
        for d in report["drift"]:
            drift.add_row(
                shown(d["data_type"]),
                shown(d["kind"]),
                shown(d["field"]),
                shown(d["declared"] or "-"),
                shown(d["seen"] or "-"),
                f"{d['rows']:,}",
                d["last_seen"],
            )
        console.print(drift)
    else:
        console.print("schema drift: none")

    if report["quarantine"]:
        per = ", ".join(f"{t} {n:,}" for t, n in report["quarantine"].items())
        console.print(f"quarantined rows: {report['quarantined_rows']:,} ({per})")
    else:
        console.print("quarantined rows: 0")


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,}"
