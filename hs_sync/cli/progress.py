"""Progress on a terminal for long work; plain lines (or nothing) when not a terminal.

A run reports events as `progress(event, **info)`: the sync's units and pages
drive a status line, the media downloader's `media_*` events a byte-level bar.
"""

from __future__ import annotations

import sys
import threading
import time

import click

from hs_sync.cli import printing

WAIT_SHOWN_SECONDS = 5.0  # a wait for the request budget this long is said in every mode


class SyncProgress:
    """A live status line on a terminal; plain lines per finished unit otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.rows = 0
        self.units = 0
        self._lock = threading.Lock()
        self._status = None
        self._media = MediaProgress(self.tty)
        self._waits = WaitNotice()

    def __enter__(self) -> SyncProgress:
        if self.tty:
            from rich.console import Console

            self._status = Console(stderr=True).status("syncing…")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._media.__exit__(*exc)
        if self._status is not None:
            self._status.stop()

    def __call__(self, event: str, **info: object) -> None:
        if event == "media_wait" and not self.tty:  # cron, --json: no bar shows the wait
            self._waits(event, **info)
        if not self.enabled:
            return
        if event.startswith("media_"):
            if event == "media_plan" and self._status is not None:
                self._status.stop()  # the byte bar takes over the terminal
                self._status = None
                self._media.__enter__()
            self._media(event, **info)
            return
        with self._lock:
            if event == "page":
                self.rows += int(info.get("rows", 0))
            elif event in ("done", "skip", "error"):
                self.units += 1
            kind = info.get("data_type")
            where = printing.shown(f"{kind}/{info.get('experiment', '')}") if kind else ""
            if self._status is not None:
                doing = "normalizing into Parquet and DuckDB" if event == "transform" else event
                text = (
                    f"syncing… {self.units} units done, {printing.count(self.rows)} · {doing} "
                    + printing.rich_line(where)
                )
                self._status.update(text.rstrip())
            elif event == "done":
                printing.echo(f"done {where}: {printing.count(info.get('rows', 0))}", err=True)
            elif event in ("skip", "error"):
                printing.echo(f"{event} {where}: {info.get('reason', '')}", err=True)
            elif event == "transform":
                click.echo("normalizing…", err=True)


class WaitNotice:
    """One stderr line when downloads start waiting for the request budget, for output
    without a live bar (cron, --json): the threads waiting the same minute say it once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quiet_until = 0.0

    def __call__(self, event: str, **info: object) -> None:
        seconds = float(info.get("seconds") or 0)  # type: ignore[arg-type]
        if event != "media_wait" or seconds < WAIT_SHOWN_SECONDS:
            return
        with self._lock:
            now = time.monotonic()
            if now < self._quiet_until:
                return
            self._quiet_until = now + seconds
        printing.echo(
            f"media: waiting {seconds:.0f} s for the request budget "
            f"({info.get('per_minute')}/min per endpoint)",
            err=True,
        )


def waiting_line(label: str, info: dict, files_left: int) -> str:
    """The media bar's label while downloads wait for the request budget, with the least
    time the files left need at that rate (the bar's own estimate assumes no waits)."""
    per_minute = int(info.get("per_minute") or 1)
    line = (
        f"{label} · waiting {float(info.get('seconds') or 0):.0f} s for the request budget "
        f"({per_minute}/min)"
    )
    if files_left > per_minute:
        line += f"; {files_left} file(s) left need at least {files_left / per_minute:.0f} min"
    return line


class MediaProgress:
    """A byte-level bar with one line per file in flight, on a terminal only."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._lock = threading.Lock()
        self._bar = None
        self._total = None
        self._files: dict[str, object] = {}
        self._label = "media"
        self._planned = self._started = 0

    def __enter__(self) -> MediaProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, event: str, **info: object) -> None:
        bar = self._bar
        if bar is None:
            return
        with self._lock:
            rid = str(info.get("recording", ""))
            if event == "media_plan":
                self._label = f"media: {info['files']} file(s)"
                self._planned = int(info["files"] or 0)
                self._total = bar.add_task(self._label, total=int(info["bytes"] or 0) or None)
            elif event == "media_wait":
                # the bar's time estimate cannot know about the pause: the line says it
                if self._total is not None:
                    left = max(self._planned - self._started, 0)
                    bar.update(self._total, description=waiting_line(self._label, info, left))
            elif event == "media_start":
                self._started += 1
                task = bar.add_task(
                    f"  {printing.rich(rid)}", total=info.get("size"), completed=info["offset"]
                )
                self._files[rid] = task
                if self._total is not None:
                    bar.update(self._total, description=self._label)  # no longer waiting
                    bar.advance(self._total, int(info.get("offset") or 0))
            elif event == "media_bytes":
                n = int(info.get("n") or 0)
                if rid in self._files:
                    bar.advance(self._files[rid], n)
                if self._total is not None:
                    bar.advance(self._total, n)
            elif event == "media_done":
                task = self._files.pop(rid, None)
                if task is not None:
                    bar.remove_task(task)
                if info.get("status") != "downloaded":
                    bar.console.print(
                        f"{printing.rich(info['status'])} {printing.rich(rid)}: "
                        + printing.rich_line(info.get("reason") or "")
                    )
