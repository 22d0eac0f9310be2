"""`hs-sync report`: write the warehouse's charts into one self-contained HTML file.

Read-only and offline. Exit codes: 0 written, 2 no warehouse or no data yet, an
unknown room, an output that cannot be written, or a bad flag or setting.
"""

from __future__ import annotations

from pathlib import Path

import click

from hs_sync.cli.oneline import OneLineCommand
from hs_sync.cli.options import config_option, warehouse_option


@click.command("report", cls=OneLineCommand)
@warehouse_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The HTML file to write (default <warehouse>/report.html).",
)
@click.option(
    "--room",
    default=None,
    help="Room whose continuous ratings are drawn (default: the one with the most samples).",
)
@config_option
def command(warehouse: Path | None, out: Path | None, room: str | None, config_file: str | None):
    """Write the warehouse's charts into one HTML page that opens offline.

    The page needs no server or network: open it in any browser.

    \b
    Examples:
      hs-sync report
      hs-sync report --out ~/study.html --room room_7bbe699e98
    """
    from hs_sync.config import load_config
    from hs_sync.report import write_report

    config = load_config(config_file, warehouse=warehouse)
    summary = write_report(config, out=out, room=room)
    ratings = f"; ratings of room {summary.room}" if summary.room else ""
    click.echo(
        f"wrote {summary.path} ({summary.bytes / 1e6:.1f} MB): {summary.participants} "
        f"participant(s), {summary.sessions} session(s), {summary.findings} finding(s){ratings}"
    )
