"""The `hs-sync` command: a thin front end; each subcommand lives in its own module."""

from __future__ import annotations

import importlib

import click

from hs_sync.cli import printing
from hs_sync.errors import HsSyncError

# subcommand -> module under hs_sync.cli that defines `command`
SUBCOMMANDS = {
    "demo": "demo_cmd",
    "sync": "sync_cmd",
    "media": "media_cmd",
    "status": "status_cmd",
    "check": "check_cmd",
    "sql": "sql_cmd",
    "schema": "schema_cmd",
    "export": "export_cmd",
    "report": "report_cmd",
    "rebuild": "rebuild_cmd",
    "maintain": "maintain_cmd",
    "doctor": "doctor_cmd",
    "snapshot": "snapshot_cmd",
    "simulate": "simulate_cmd",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs (fast --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in SUBCOMMANDS if self._module(name) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = self._module(name)
        return getattr(module, "command", None) if module else None

    def invoke(self, ctx: click.Context):
        """Run the subcommand; an hs-sync error becomes one line and its exit code."""
        try:
            return super().invoke(ctx)
        except HsSyncError as exc:
            printing.echo(f"hs-sync {ctx.invoked_subcommand}: {exc}", err=True)
            ctx.exit(exc.exit_code)

    @staticmethod
    def _module(name: str):
        if name not in SUBCOMMANDS:
            return None
        try:
            return importlib.import_module(f"hs_sync.cli.{SUBCOMMANDS[name]}")
        except ModuleNotFoundError as exc:
            if exc.name == f"hs_sync.cli.{SUBCOMMANDS[name]}":
                return None  # not built yet
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hs-sync")
def main() -> None:
    """Keep a local, analysis-ready warehouse of HyperStudy experiment data.

    \b
    Exit codes: 0 success, 1 partial failure (some unit or check failed),
    2 configuration, authentication, usage, lock or damaged-store error,
    130/143 a sync stopped by SIGINT/SIGTERM.
    """
