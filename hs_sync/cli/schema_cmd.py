"""`hs-sync schema [NAME]`: the data dictionary (tables, views, columns, units)."""

from __future__ import annotations

import click

from hs_sync.cli.oneline import OneLineCommand, OneLineUsageError
from hs_sync.cli.options import json_option, print_json


@click.command("schema", cls=OneLineCommand)
@click.argument("name", required=False)
@click.option("--markdown", is_flag=True, help="Print the whole dictionary as Markdown.")
@json_option("the dictionary")
@click.pass_context
def command(ctx: click.Context, name: str | None, markdown: bool, as_json: bool) -> None:
    """Describe the warehouse's tables and views, or the columns of one of them.

    Needs no warehouse: the dictionary comes with hs-sync (the same text is in
    the database as column comments).

    \b
    Examples:
      hs-sync schema                 # every table and view, one line each
      hs-sync schema ratings_sparse  # its columns: type, unit, description
      hs-sync schema --markdown > docs/data-dictionary.md
    """
    from hs_sync import schema

    if markdown and as_json:
        raise OneLineUsageError("--markdown and --json cannot be combined", ctx)
    relations = schema.catalog()
    if name is not None:
        relations = [r for r in relations if r.name == name]
        if not relations:
            known = ", ".join(r.name for r in schema.catalog())
            raise OneLineUsageError(f"no table or view {name!r}; known: {known}", ctx)
    if markdown:
        click.echo(schema.markdown(relations), nl=False)
    elif as_json:
        print_json([_as_dict(r) for r in relations])
    elif name is None:
        _print_relations(relations)
    else:
        _print_columns(relations[0])


def _as_dict(r) -> dict:
    return {
        "name": r.name,
        "kind": r.kind,
        "description": r.description,
        "columns": [
            {
                "name": n,
                "type": t,
                "unit": d.unit if d else None,
                "description": d.description if d else None,
            }
            for n, t, d in r.columns
        ],
    }


def _print_relations(relations) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="tables and views of hyperstudy.duckdb", title_justify="left")
    for heading in ("name", "kind", "columns", "description"):
        table.add_column(heading, overflow="fold")
    for r in relations:
        table.add_row(r.name, r.kind, str(len(r.columns)), r.description)
    Console(width=140).print(table)
    click.echo("columns of one: hs-sync schema NAME")


def _print_columns(r) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{r.kind} {r.name}: {r.description}", title_justify="left")
    for heading in ("column", "type", "unit", "description"):
        table.add_column(heading, overflow="fold")
    for n, t, d in r.columns:
        table.add_row(n, t, (d.unit or "") if d else "", d.description if d else "")
    Console(width=140).print(table)
