"""`hs-sync demo`: sync the embedded simulator into a warehouse and show what came of it."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import click

from hs_sync.cli.oneline import OneLineCommand
from hs_sync.cli.options import json_option, print_json


@click.command("demo", cls=OneLineCommand)
@click.option(
    "--warehouse",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("warehouse"),
    show_default=True,
    help="Warehouse folder to sync into.",
)
@json_option("the whole result")
def command(warehouse: Path, as_json: bool) -> None:
    """Run a full sync with media and checks against the embedded simulator.

    No account and no network needed: the simulator serves a generated lab
    (three experiments, pilot and main deployments, planted missing sessions)
    on a free loopback port and is stopped again at the end. Re-run it for an
    incremental sync: the simulator's clock has moved on.

    \b
    Example:
      hs-sync demo
      hs-sync sql "SELECT * FROM dashboard_rooms LIMIT 5"
    """
    from hs_sync.cli.progress import SyncProgress
    from hs_sync.cli.sync_cmd import print_summary
    from hs_sync.demo import run_demo

    with SyncProgress(enabled=not as_json) as progress:
        result = run_demo(warehouse, progress=progress)
    if as_json:
        print_json(result.to_dict())
        sys.exit(result.exit_code)

    click.echo(f"demo run {result.run} · simulator clock at {result.simulated_now}\n")
    print_summary(result.sync)
    _print_checks(result.checks)
    for q in result.queries:
        _print_query(q)
    click.echo(f"\nwarehouse: {warehouse}/")
    run = _invocation()
    here = "" if warehouse == Path("warehouse") else f" --warehouse {shlex.quote(str(warehouse))}"
    click.echo("next:")
    for args in ('sql "SELECT * FROM dashboard_rooms LIMIT 10"', "check --no-api", "report"):
        click.echo(f"  {run} {args}{here}")
    click.echo(
        f"\nyour own account: HYPERSTUDY_API_KEY=... {run} sync --warehouse lab-warehouse "
        f"({warehouse}/ holds the demo's data and refuses another API's)"
    )
    sys.exit(result.exit_code)


def _invocation() -> str:
    """How this process was started, as a command that works from the current folder:
    `hs-sync` when that is on PATH, else the script's path (`.venv/bin/hs-sync`)."""
    script = Path(sys.argv[0])
    if script.match("__main__.py"):  # python -m hs_sync
        return f"{shlex.quote(_near(Path(sys.executable)))} -m hs_sync"
    found = shutil.which("hs-sync")
    if found and Path(found).resolve() == script.resolve():
        return "hs-sync"
    return shlex.quote(_near(script))


def _near(path: Path) -> str:
    """`path` relative to the current folder when it is inside it, else absolute."""
    relative = os.path.relpath(path.absolute())
    return str(path.absolute()) if relative.startswith("..") else relative


def _print_checks(checks: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="integrity checks", title_justify="left")
    for name in ("check", "severity", "status", "count", "sample", "hint"):  # as `check` shows
        table.add_column(name, overflow="fold")
    for c in checks:
        sample = ", ".join(map(str, c.get("sample", [])[:3]))
        row = (c["name"], c["severity"], c["status"], str(c["count"]), sample, c.get("hint", ""))
        table.add_row(*row)
    click.echo()
    Console(width=140).print(table)


def _print_query(q: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=q["title"], caption=q["sql"], title_justify="left", caption_justify="left")
    for name in q["columns"]:
        table.add_column(str(name))
    for row in q["rows"][:12]:
        table.add_row(*("" if v is None else str(v) for v in row))
    click.echo()
    Console(width=140).print(table)
