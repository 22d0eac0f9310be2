"""A click command whose usage errors are one line naming the flag, with exit code 2.

Click prints usage, a hint and the error over several lines; a researcher (or
cron mail) reads one: `hs-sync export: Invalid value for '--level': ...`.
"""

from __future__ import annotations

import click


class OneLineUsageError(click.UsageError):
    """A usage error shown as `hs-sync <command>: <message>` (exit code 2)."""

    def show(self, file=None) -> None:
        # the program's own name, however it was started (`python -m hs_sync`, a test runner)
        name = self.ctx.command.name if self.ctx is not None else None
        message = " ".join(self.format_message().split())
        prefix = f"hs-sync {name}" if name else "hs-sync"
        click.echo(f"{prefix}: {message}", err=file is None, file=file)


class OneLineCommand(click.Command):
    """Use as `@click.command(cls=OneLineCommand)`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), ctx) from None
