"""`hs-sync sql "SELECT ..."`: query the warehouse's DuckDB database and print the result.

The database is opened read-only, so a query never blocks a running sync, and
with DuckDB's external access off (and the configuration locked), so a query
cannot read or write any other file: no COPY ... TO, EXPORT, ATTACH or read_csv.
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import sys
from pathlib import Path

import click
import orjson

from hs_sync.cli import printing
from hs_sync.cli.oneline import OneLineCommand
from hs_sync.cli.options import config_option, warehouse_option


def _plain(value):
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (_dt.timedelta, decimal.Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


@click.command("sql", cls=OneLineCommand)
@click.argument("query")
@warehouse_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (header + rows).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of row objects.")
@click.option("--limit", type=int, default=1000, show_default=True, help="Rows shown in a table.")
@click.option("--snapshot", "snapshot_name", default=None, help="Query this snapshot instead.")
@config_option
def command(
    query: str,
    warehouse: Path | None,
    as_csv: bool,
    as_json: bool,
    limit: int,
    snapshot_name: str | None,
    config_file: str | None,
) -> None:
    """Run QUERY against the warehouse (tables and views) and print the rows.

    QUERY may hold several statements (`;`-separated): each result is printed
    in turn as a table; --csv and --json print one result, so they take a
    single statement.

    \b
    Examples:
      hs-sync sql "SELECT * FROM dashboard_rooms LIMIT 10"
      hs-sync sql "SELECT category, count(*) FROM events GROUP BY 1" --csv > categories.csv
      hs-sync sql "SELECT * FROM open_issues" --json
      hs-sync sql --snapshot paper-2026 "SELECT count(*) FROM events"
    """
    import duckdb

    from hs_sync import snapshot
    from hs_sync.config import load_config
    from hs_sync.db import connect_readonly
    from hs_sync.warehouse import Warehouse

    if as_csv and as_json:
        click.echo("hs-sync sql: --csv and --json cannot be combined; choose one", err=True)
        sys.exit(2)
    config = load_config(config_file, warehouse=warehouse)
    wh = Warehouse(config.warehouse)
    if snapshot_name is None and not wh.db_path.exists():
        click.echo(f"hs-sync sql: no database at {wh.db_path}; run `hs-sync sync` first", err=True)
        sys.exit(2)
    try:
        con = connect_readonly(wh) if snapshot_name is None else snapshot.connect(wh, snapshot_name)
        try:
            _no_files(con)
            statements = con.extract_statements(query)
            if not statements:
                click.echo(
                    'hs-sync sql: the query holds no statement; e.g. hs-sync sql "SELECT 1"',
                    err=True,
                )
                sys.exit(2)
            if len(statements) > 1 and (as_csv or as_json):
                fmt = "--csv" if as_csv else "--json"
                click.echo(
                    f"hs-sync sql: {fmt} prints one result; the query has "
                    f"{len(statements)} statements: run them one at a time",
                    err=True,
                )
                sys.exit(2)
            results = []
            for statement in statements:
                cursor = con.execute(statement)
                names = [d[0] for d in cursor.description] if cursor.description else []
                results.append((names, cursor.fetchall() if names else []))
        finally:
            con.close()
    except duckdb.PermissionException as exc:
        click.echo(
            "hs-sync sql: queries cannot read or write files (use `hs-sync export`): "
            + str(exc).splitlines()[0],
            err=True,
        )
        sys.exit(1)
    except duckdb.Error as exc:
        click.echo(f"hs-sync sql: {exc}", err=True)
        sys.exit(1)
    if len(results) > 1:
        for i, (names, rows) in enumerate(results, 1):
            click.echo(f"result {i} of {len(results)}:")
            _table(names, rows, limit)
        return
    names, rows = results[0]
    if as_json:
        out = [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in rows]
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([[_plain(v) for v in row] for row in rows])
    else:
        _table(names, rows, limit)


def _no_files(con) -> None:
    """Shut the connection off from every file but the database it has open."""
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _table(names: list[str], rows: list[tuple], limit: int) -> None:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    for name in names:
        table.add_column(name, no_wrap=True, overflow="ignore")  # never break inside a value
    for row in rows[:limit]:
        table.add_row(*["NULL" if v is None else str(_plain(v)) for v in row])
    console = Console()
    # as wide as the rows need: a long line beats an id or a time split over lines
    width = Measurement.get(console, console.options.update(width=10**6), table).maximum
    console = Console(width=max(console.width, width))
    console.print(table)
    shown = min(len(rows), limit)
    more = f" (first {shown} shown; --csv or --json for all)" if len(rows) > limit else ""
    console.print(f"{printing.count(len(rows))}{more}")
