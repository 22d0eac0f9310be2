"""`hs-sync export`: data of a participant, room, deployment or experiment to CSV, JSON or ZIP.

Reads the local warehouse only: no API requests, no key, no budget.
Exit codes: 0 written, 1 nothing to export (unknown id, or no row matches the
filters; nothing is written), 2 a bad flag or setting (named in the message).
"""

from __future__ import annotations

from pathlib import Path

import click

from hs_sync.cli import printing
from hs_sync.cli.oneline import OneLineCommand
from hs_sync.cli.options import config_option, json_option, print_json, warehouse_option

_LEVELS = ("participant", "room", "deployment", "experiment")
_FORMATS = ("csv", "json", "zip")


@click.command("export", cls=OneLineCommand)
@click.option("--level", required=True, type=click.Choice(_LEVELS), help="What --id names.")
@click.option("--id", "id_", required=True, metavar="ID", help="Participant, room, ... id.")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="NAME",
    help="Only this data type (repeatable). Default: every type at the level.",
)
@click.option(
    "--category",
    "categories",
    multiple=True,
    metavar="C",
    help="Only events of this category (repeatable); exports events only.",
)
@click.option("--since", metavar="T", help="Rows at or after this ISO 8601 time (UTC if no zone).")
@click.option("--until", metavar="T", help="Rows before this ISO 8601 time.")
@click.option("--format", "fmt", required=True, type=click.Choice(_FORMATS), help="Output format.")
@click.option(
    "--out",
    required=True,
    type=click.Path(),  # a str: a trailing "/" (a folder) survives
    help="File (one type, or zip) or folder (several types; a trailing / is a folder).",
)
@warehouse_option
@json_option("what was written")
@config_option
def command(
    level: str,
    id_: str,
    types: tuple[str, ...],
    categories: tuple[str, ...],
    since: str | None,
    until: str | None,
    fmt: str,
    out: str,
    warehouse: Path | None,
    as_json: bool,
    config_file: str | None,
) -> None:
    """Export warehouse data at the dashboard's levels, offline.

    CSV is UTF-8 with a BOM (opens cleanly in Excel), one file per type; JSON
    keeps nested values as objects and lists; ZIP holds one CSV per type plus
    metadata.json (what was exported, filters, row counts, version, time).
    Timestamps are ISO 8601 UTC; onsets are milliseconds as the API gives them.

    \b
    Examples:
      hs-sync export --level participant --id pt_123 --type events --format csv --out events.csv
      hs-sync export --level room --id room_9 --format zip --out room_9.zip
      hs-sync export --level experiment --id exp_1 --category questionnaire \\
          --since 2024-05-01 --until 2024-06-01 --format json --out questionnaires.json
      hs-sync export --level deployment --id dep_4 --format csv --out dep_4/
    """
    from hs_sync.config import load_config
    from hs_sync.export import export

    config = load_config(config_file, warehouse=warehouse)
    summary = export(
        config.warehouse,
        level=level,
        id=id_,
        types=types,
        category=categories or None,
        since=since,
        until=until,
        fmt=fmt,
        out=out,
    )
    if as_json:
        print_json(summary.to_dict())
        return
    click.echo(f"exported {printing.count(summary.total_rows)} of {level} {id_} to {summary.out}")
    for name, rows in summary.rows.items():
        click.echo(f"  {name:<20} {printing.count(rows):>15}")
