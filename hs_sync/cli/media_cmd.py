"""`hs-sync media`: download the recordings' files that the warehouse knows of.

Reads recording metadata from the warehouse (run `hs-sync sync` first to
refresh it), fetches every completed recording not yet verified on disk, and
prints what was done. Exit codes: 0 success, 1 some download failed or the
hourly budget ran out (progress is saved), 2 configuration, authentication or
lock errors.
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
from hs_sync.cli.progress import MediaProgress, WaitNotice


@click.command("media", cls=OneLineCommand)
@experiment_option
@warehouse_option
@base_url_option
@json_option("the run summary")
@config_option
def command(
    experiments: tuple[str, ...],
    warehouse: Path | None,
    base_url: str | None,
    as_json: bool,
    config_file: str | None,
) -> None:
    """Download recording media into <warehouse>/media, verified, resuming where it stopped.

    \b
    Examples:
      hs-sync media
      hs-sync media --experiment exp_123 --json
    """
    from hs_sync.config import load_config
    from hs_sync.media import download_media

    config = load_config(
        config_file, experiments=experiments, warehouse=warehouse, base_url=base_url
    )
    bar = not as_json and sys.stderr.isatty()
    with MediaProgress(enabled=bar) as progress:  # without it, long waits are one line
        summary = download_media(config, progress=progress if bar else WaitNotice())
    finish(summary, as_json, _print_summary)


def _print_summary(summary) -> None:
    echo, shown = printing.echo, printing.shown
    echo(
        f"media: {summary.recordings} recording(s) known; {summary.downloaded} downloaded "
        f"({summary.bytes_downloaded:,} bytes), {summary.up_to_date} already verified, "
        f"{summary.pending} pending, {summary.failed} failed, {summary.skipped} skipped "
        f"in {summary.duration_seconds:.1f} s"
    )
    echo(
        f"  {summary.api_requests} API request(s), {summary.storage_requests} storage "
        f"request(s), {summary.resumed} resumed, {summary.reminted} link(s) re-minted; "
        f"{summary.bytes_on_disk:,} bytes verified on disk"
    )
    for rid in summary.server_failed:
        echo(f"failed on the server (not retried): {shown(rid)}")
    for rid, reason in summary.errors.items():
        echo(f"error: {shown(rid)}: {reason}")
