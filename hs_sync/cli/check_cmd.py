"""`hs-sync check`: run the integrity checks, record them, show what is open.

Exit codes: 0 no error-level check failed (warnings may be shown), 1 an
error-level check failed (or could not run), 2 configuration, authentication
or usage error (no warehouse, a wrong key, a bad flag or setting).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hs_sync.cli.oneline import OneLineCommand
from hs_sync.cli.options import (
    base_url_option,
    config_option,
    json_option,
    print_json,
    warehouse_option,
)


@click.command("check", cls=OneLineCommand)
@warehouse_option
@base_url_option
@click.option(
    "--no-api", is_flag=True, help="Offline: skip the checks that ask the API (reconciliation)."
)
@click.option(
    "--room",
    "rooms",
    multiple=True,
    help="Check this room's participants: which data types hold fewer rows than the API counts.",
)
@json_option("the results")
@config_option
def command(
    warehouse: Path | None,
    base_url: str | None,
    no_api: bool,
    rooms: tuple[str, ...],
    as_json: bool,
    config_file: str | None,
) -> None:
    """Check the warehouse for missing sessions and disagreement with the API.

    The results are also stored in the warehouse: `SELECT * FROM open_issues`.
    With --room, only the named rooms are checked, participant by participant,
    against the API's per-participant counts (one request per participant; not stored).

    \b
    Examples:
      hs-sync check
      hs-sync check --no-api --json | jq '.checks[] | select(.passed | not)'
      hs-sync check --room room_456
    """
    from hs_sync.checks import record_results, run_checks, run_room_checks
    from hs_sync.config import load_config
    from hs_sync.errors import WarehouseLocked, WarehouseNotWritable

    config = load_config(config_file, warehouse=warehouse, base_url=base_url, rooms=rooms)
    if rooms and no_api:
        click.echo("hs-sync check: --room compares with the API: drop --no-api", err=True)
        sys.exit(2)
    if not no_api and not config.api_key:
        click.echo(
            "hs-sync check: config: api_key: no API key: set HYPERSTUDY_API_KEY "
            "(or pass --no-api to skip the API checks)",
            err=True,
        )
        sys.exit(2)
    recorded = False
    if rooms:
        results = run_room_checks(config)
    else:
        results = run_checks(config, use_api=not no_api)
        recorded = True
        try:
            record_results(config, results)
        except (WarehouseLocked, WarehouseNotWritable) as exc:
            recorded = False
            click.echo(f"hs-sync check: results not stored in open_issues: {exc}", err=True)
    code = 1 if any(r.blocking for r in results) else 0
    if as_json:
        out = {"checks": [r.to_dict() for r in results], "recorded": recorded, "exit_code": code}
        print_json(out)
    else:
        _print_table(results, config.warehouse, each_issue=bool(rooms))
    sys.exit(code)


_STYLE = {"passed": "green", "skipped": "dim", "failed": "red", "error": "red"}


def _print_table(results, warehouse: Path, each_issue: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    from hs_sync.checks.hints import with_warehouse
    from hs_sync.cli.printing import rich as shown
    from hs_sync.cli.printing import rich_line

    table = Table(title="hs-sync integrity checks", show_lines=False)
    table.add_column("check")
    table.add_column("severity")
    table.add_column("status")
    table.add_column("count", justify="right")
    table.add_column("sample")
    for r in results:
        style = _STYLE.get(r.status, "")
        if r.status == "failed" and r.severity == "warning":
            style = "yellow"
        more = f" (+{r.count - len(r.sample)})" if r.count > len(r.sample) else ""
        table.add_row(
            r.name,
            r.severity,
            f"[{style}]{r.status}[/]",
            str(r.count),
            ", ".join(shown(s) for s in r.sample[:3]) + (" …" if len(r.sample) > 3 else "") + more,
        )
    console = Console()
    console.print(table)
    for r in results:
        if r.status in ("failed", "error"):
            for issue in r.issues if each_issue else ():
                line = f"{issue.room_id} {issue.id}: {issue.detail}"
                console.print(rich_line(line), highlight=False)
            console.print(f"[bold]{r.name}[/]: {rich_line(r.hint)}", highlight=False)
        elif r.status == "skipped":
            console.print(f"[dim]{r.name} skipped: {rich_line(r.details.get('reason', ''))}[/]")
    query = with_warehouse('`hs-sync sql "SELECT * FROM open_issues"`', warehouse)
    console.print(f"all issues: {rich_line(query.strip('`'))}", highlight=False)
