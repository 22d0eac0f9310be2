"""`hs-sync snapshot ...`: freeze the warehouse under a name, list, verify, export, delete.

Exit codes: 0 done (`verify`: intact), 1 `verify` or `export` found changed or
missing files (named on stderr), 2 a bad, unknown or taken name, or a lock error.
"""

from __future__ import annotations

import sys

import click

from hs_sync.cli import printing
from hs_sync.cli.oneline import OneLineCommand, OneLineUsageError
from hs_sync.cli.options import (
    base_url_option,
    config_option,
    json_option,
    print_json,
    warehouse_option,
)


def _warehouse(warehouse: str | None, config_file: str | None, **settings):
    from hs_sync.config import load_config
    from hs_sync.warehouse import Warehouse

    config = load_config(config_file, warehouse=warehouse, **settings)
    return config, Warehouse(config.warehouse)


class _UsageError(OneLineUsageError):
    def show(self, file=None) -> None:
        # `hs-sync snapshot verify: ...`, not the subcommand's name alone
        words = self.ctx.command_path.split()[1:] if self.ctx is not None else []
        message = " ".join(self.format_message().split())
        click.echo(f"{' '.join(['hs-sync', *words])}: {message}", err=file is None, file=file)


class _Command(OneLineCommand):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _UsageError(exc.format_message(), ctx) from None


@click.group("snapshot")
def command() -> None:
    """Named snapshots of the whole warehouse that later syncs never change.

    \b
    Examples:
      hs-sync snapshot create paper-2026 --note "submitted version"
      hs-sync sql --snapshot paper-2026 "SELECT count(*) FROM events"
      hs-sync snapshot verify paper-2026
      hs-sync snapshot export paper-2026 --out ~/paper-2026.zip
    """


@command.command("create", cls=_Command)
@click.argument("name")
@click.option("--note", default=None, help="A line kept in the snapshot's manifest.")
@warehouse_option
@base_url_option
@json_option("the manifest")
@config_option
def create(
    name: str,
    note: str | None,
    warehouse: str | None,
    base_url: str | None,
    as_json: bool,
    config_file: str | None,
) -> None:
    """Freeze every table, view and Parquet file, and the media manifest, as NAME.

    The manifest records the API base URL the warehouse is synced from (as `sync`
    reads it: --base-url, HYPERSTUDY_BASE_URL, hs_sync.toml).
    """
    from hs_sync import snapshot

    config, wh = _warehouse(warehouse, config_file, base_url=base_url)
    m = snapshot.create(
        wh, name, note=note, base_url=config.base_url, lock_timeout=config.lock_timeout_seconds
    )
    if as_json:
        print_json({k: v for k, v in m.items() if k != "data_dictionary"})
        return
    sync = m["last_sync"] or {}
    printing.echo(
        f"snapshot {printing.shown(name)}: {sum(m['tables'].values()):,} rows in "
        f"{len(m['tables'])} tables, {len(m['files'])} files; after sync "
        f"{sync.get('run_id', '-')} (data through {sync.get('window_end') or '-'})"
    )
    click.echo(str(snapshot.path(wh, name)))


@command.command("list", cls=_Command)
@warehouse_option
@json_option("the snapshots")
@config_option
def list_(warehouse: str | None, as_json: bool, config_file: str | None) -> None:
    """Every snapshot: name, when it was made, the sync it follows, rows, note."""
    from hs_sync import snapshot

    _, wh = _warehouse(warehouse, config_file)
    found = snapshot.listing(wh)
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("no snapshots yet (hs-sync snapshot create NAME)")
    for s in found:
        sync = s["last_sync"] or {}
        printing.echo(
            f"{printing.shown(s['name']):<24} {s['created_at']}  {s['rows']:>12,} rows  "
            f"data through {sync.get('window_end') or '-'}  {printing.shown(s['note'] or '')}"
        )


@command.command("verify", cls=_Command)
@click.argument("name")
@warehouse_option
@config_option
def verify(name: str, warehouse: str | None, config_file: str | None) -> None:
    """Recompute every file's checksum: exit 0 intact, 1 naming each file that is not."""
    from hs_sync import snapshot

    _, wh = _warehouse(warehouse, config_file)
    files = len(snapshot.manifest(wh, name)["files"])
    problems = snapshot.verify(wh, name)
    for problem in problems:
        printing.echo(f"hs-sync snapshot verify: {name}: {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"snapshot {name}: intact ({files} files match their checksums)")


@command.command("path", cls=_Command)
@click.argument("name")
@warehouse_option
@config_option
def path(name: str, warehouse: str | None, config_file: str | None) -> None:
    """Print the snapshot's folder (its database is hyperstudy.duckdb inside)."""
    from hs_sync import snapshot

    _, wh = _warehouse(warehouse, config_file)
    click.echo(str(snapshot.path(wh, name)))


@command.command("export", cls=_Command)
@click.argument("name")
@click.option("--out", required=True, help="The zip file to write (outside the warehouse).")
@warehouse_option
@config_option
def export(name: str, out: str, warehouse: str | None, config_file: str | None) -> None:
    """Write the snapshot as one self-contained zip with a README and a citation stub."""
    from hs_sync import snapshot_export

    _, wh = _warehouse(warehouse, config_file)
    done = snapshot_export.export(wh, name, out)
    click.echo(f"{done['out']} ({done['bytes']:,} bytes)")


@command.command("delete", cls=_Command)
@click.argument("name")
@warehouse_option
@config_option
def delete(name: str, warehouse: str | None, config_file: str | None) -> None:
    """Remove the snapshot (the live warehouse is not touched)."""
    from hs_sync import snapshot

    config, wh = _warehouse(warehouse, config_file)
    snapshot.delete(wh, name, lock_timeout=config.lock_timeout_seconds)
    click.echo(f"snapshot {name} deleted")
