"""Options several subcommands share, declared once so they read the same everywhere."""

from __future__ import annotations

import sys

import click
import orjson

warehouse_option = click.option(
    "--warehouse",
    default=None,
    help="Warehouse folder or s3://bucket/prefix (HS_SYNC_WAREHOUSE; default ./warehouse).",
)
base_url_option = click.option(
    "--base-url", default=None, help="API base URL (HYPERSTUDY_BASE_URL)."
)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Settings file (default ./hs_sync.toml if present).",
)
experiment_option = click.option(
    "--experiment", "experiments", multiple=True, help="Experiment id (repeatable)."
)


def json_option(what: str):
    """`--json`: print `what` as JSON instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def print_json(value) -> None:
    """Print `value` as indented JSON (dates and other values as their text)."""
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode())


def finish(summary, as_json: bool, show) -> None:
    """Print a run's summary (as JSON, or with `show`), then exit with its exit code."""
    if as_json:
        print_json(summary.to_dict())
    else:
        show(summary)
    sys.exit(summary.exit_code)
