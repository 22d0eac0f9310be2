"""`hs-sync rebuild`: rebuild all Parquet and the DuckDB database from raw alone.

Uses no API and no key; holds the warehouse lock, so it never interleaves
with a sync.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hs_sync.cli import printing
from hs_sync.cli.oneline import OneLineCommand
from hs_sync.cli.options import config_option, json_option, print_json, warehouse_option


@click.command("rebuild", cls=OneLineCommand)
@warehouse_option
@click.option("--type", "types", multiple=True, help="Only this data type (repeatable).")
@json_option("the summary")
@config_option
def command(
    warehouse: Path | None, types: tuple[str, ...], as_json: bool, config_file: str | None
) -> None:
    """Rebuild Parquet and hyperstudy.duckdb from the raw NDJSON (no API).

    \b
    Examples:
      hs-sync rebuild
      hs-sync rebuild --type events --json
    """
    from hs_sync.config import load_config
    from hs_sync.load.transform import rebuild
    from hs_sync.lock import warehouse_lock
    from hs_sync.warehouse import Warehouse

    config = load_config(config_file, warehouse=warehouse, types=types)
    wh = Warehouse(config.warehouse)
    if not (wh.root / "raw").is_dir():
        click.echo(f"hs-sync rebuild: no raw data under {wh.root / 'raw'}", err=True)
        sys.exit(2)
    from hs_sync import stores

    stores.require_usable(wh, ("state", "database"))
    with warehouse_lock(wh, timeout=config.lock_timeout_seconds):
        summary = rebuild(wh, config.data_types, config.memory_limit, config.parquet_grace_seconds)
    if as_json:
        print_json(summary)
        return
    for name, rows in summary["rows"].items():
        click.echo(f"{name:20} {printing.count(rows):>15}")
    click.echo(f"quarantined: {summary['quarantined']}   ({summary['seconds']:.1f}s)")
    for name in summary["damaged"]:
        click.echo(f"damaged raw file moved to raw/.damaged/: {name}")
    for name, drift in summary["drift"].items():
        fields = ", ".join(drift["new_fields"]) or "-"
        changes = ", ".join(
            f"{c['field']} {c['declared']}->{c['seen']}" for c in drift["type_changes"]
        )
        printing.echo(f"drift in {name}: new fields {fields}; type changes {changes or '-'}")
