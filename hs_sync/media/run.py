"""`download_media(config) -> MediaSummary`: the recordings' files, complete and verified.

The library call behind `hs-sync media`, the sync's media step and the Dagster
asset. Under the warehouse lock it reads recording metadata from the warehouse,
decides per recording (already verified on disk, still processing, failed on
the server, or to fetch), downloads with bounded concurrency, records every
outcome in the manifest as it happens, and publishes the manifest to DuckDB.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hs_sync import stores
from hs_sync.api.budget import RequestBudget, budget_for
from hs_sync.api.client import ApiClient
from hs_sync.config import Config
from hs_sync.errors import AuthError, BudgetExhausted, ConfigError
from hs_sync.lock import warehouse_lock
from hs_sync.media import manifest as mf
from hs_sync.media import redact
from hs_sync.media.fetch import CHUNK, Fetcher, Result
from hs_sync.media.links import Links, LinkUnavailable, ListedLinks
from hs_sync.media.plan import Recording, media_file, read_recordings, relative
from hs_sync.warehouse import Warehouse

log = logging.getLogger("hs_sync.media")
Progress = Callable[..., None]


@dataclass
class MediaSummary:
    """What a media run did; `to_dict()` is JSON-able, `exit_code` is 0 or 1."""

    recordings: int = 0  # recordings the warehouse knows (of the selected experiments)
    downloaded: int = 0  # fetched and verified this run
    up_to_date: int = 0  # verified earlier and still on disk: not fetched again
    pending: int = 0  # not complete on the server yet (a later run fetches them)
    failed: int = 0  # this run's download failures plus recordings failed on the server
    skipped: int = 0  # no way to download (no link, missing scope)
    bytes_downloaded: int = 0  # bytes received this run
    bytes_on_disk: int = 0  # size of every verified file
    api_requests: int = 0  # link mints, counted against the request budget
    storage_requests: int = 0
    resumed: int = 0  # requests that continued a file with Range
    reminted: int = 0  # links replaced after storage refused an expired one
    listed_links: int = 0  # legacy links taken from the sync's listing (no request)
    server_failed: list[str] = field(default_factory=list)  # recording ids
    errors: dict[str, str] = field(default_factory=dict)  # recording id (or run) -> reason
    manifest_published: bool = False
    duration_seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 when a download failed or the run stopped early; failures on the server are
        reported, not counted (retrying cannot fix them)."""
        return 1 if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["exit_code"] = self.exit_code
        return out


def download_media(
    config: Config,
    *,
    progress: Progress | None = None,
    lock: bool = True,
    budget: RequestBudget | None = None,
    listed: ListedLinks | None = None,
) -> MediaSummary:
    """Download every completed recording of `config`'s warehouse (and experiments).

    `lock=False` when the caller already holds the warehouse lock (the sync);
    `budget`: share the caller's request budget (then the caller persists it);
    `listed`: legacy links the caller's recordings listing carried, used first.
    Raises AuthError (the key was refused), ConfigError and WarehouseLocked.
    """
    started = time.monotonic()
    progress = progress or (lambda *a, **k: None)
    warehouse = Warehouse(config.warehouse)
    stores.require_usable(warehouse, ("state", "database"))
    redact.install(config.base_url)
    summary = MediaSummary()
    held = (
        warehouse_lock(warehouse, config.lock_timeout_seconds, config.group)
        if lock
        else nullcontext()
    )
    with held:
        warehouse.create()
        manifest = mf.Manifest(warehouse)
        try:
            _Run(config, warehouse, manifest, summary, progress, budget, listed).run()
            # No database yet (nothing transformed): the manifest waits in the state file;
            # creating the database here would make the transform think it has applied raw.
            live = warehouse.db_path.exists()
            if live and (manifest.dirty or not mf.published(warehouse)):
                mf.publish(warehouse, manifest)
                summary.manifest_published = True
        finally:
            manifest.close()
    summary.duration_seconds = round(time.monotonic() - started, 3)
    return summary


@dataclass
class _Job:
    rec: Recording
    dest: Path
    entry: mf.Entry


class _Run:
    def _waiting(self, endpoint: str, seconds: float) -> None:
        """A download waits for the per-minute request budget: say so, and for how long.
        A wait under a tenth of a second is the end of a wait already shown (a woken
        download checking again), not a new one."""
        if seconds < 0.1:
            return
        self.progress(
            "media_wait", seconds=round(seconds, 1), per_minute=self.config.budget_per_minute
        )

    def __init__(self, config, warehouse, manifest, summary, progress, budget, listed=None):
        self.config: Config = config
        self.warehouse: Warehouse = warehouse
        self.manifest: mf.Manifest = manifest
        self.summary: MediaSummary = summary
        self.progress: Progress = progress
        self.budget: RequestBudget | None = budget
        self.listed: ListedLinks | None = listed
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.auth_error: AuthError | None = None

    def run(self) -> None:
        recs = read_recordings(self.warehouse, self.config.experiments)
        self.summary.recordings = len(recs)
        known = self.manifest.entries()
        jobs = self._plan(recs, known)
        self.progress(
            "media_plan",
            files=len(jobs),
            bytes=sum(j.rec.file_size or 0 for j in jobs),
            known=len(recs),
        )
        if jobs:
            self._fetch_all(jobs)
        if self.auth_error is not None:
            raise self.auth_error
        s = self.summary
        s.bytes_on_disk = sum(
            e.bytes or 0 for e in self.manifest.entries().values() if e.status == "downloaded"
        )

    # -- deciding -----------------------------------------------------------

    def _plan(self, recs: list[Recording], known: dict[str, mf.Entry]) -> list[_Job]:
        jobs = []
        taken: dict[str, str] = {}  # lower-cased path -> recording id
        for rec in recs:
            dest = media_file(self.warehouse, rec)
            rel = relative(self.warehouse, dest)
            old = known.get(rec.id)
            entry = mf.Entry(
                recording_id=rec.id,
                experiment_id=rec.experiment_id,
                room_id=rec.room_id,
                participant_id=rec.participant_id,
                path=rel,
                expected_bytes=rec.file_size,
                attempts=old.attempts if old else 0,
                last_attempt=old.last_attempt if old else None,
            )
            other = taken.setdefault(rel.lower(), rec.id)
            if other != rec.id:  # cannot happen with safe_part names; never overwrite a file
                self._record(entry, "skipped", f"path collides with recording {other}")
                continue
            status = (rec.status or "").strip().lower()
            if status == "failed":
                self._record(entry, "failed", "the recording failed on the server")
                self.summary.server_failed.append(rec.id)
                continue
            if status != "complete":
                shown = status or "unknown"
                self._record(entry, "pending", f"not complete on the server yet ({shown})")
                continue
            if self._up_to_date(old, rel, dest, rec):
                entry.bytes, entry.sha256 = old.bytes, old.sha256
                entry.downloaded_at = old.downloaded_at
                self._record(entry, "downloaded", None)
                self.summary.up_to_date += 1
                continue
            if self._adopt(entry, dest, rec):
                continue
            jobs.append(_Job(rec, dest, entry))
        return jobs

    @staticmethod
    def _up_to_date(old: mf.Entry | None, rel: str, dest: Path, rec: Recording) -> bool:
        if old is None or old.status != "downloaded" or old.path != rel or not old.sha256:
            return False
        if rec.file_size is not None and rec.file_size != old.bytes:
            return False  # the server's file changed
        try:
            return dest.stat().st_size == old.bytes
        except OSError:
            return False

    def _adopt(self, entry: mf.Entry, dest: Path, rec: Recording) -> bool:
        """A final file the manifest does not know (a run stopped between the rename and
        the manifest write): only ever renamed after verification, so hash and keep it."""
        if rec.file_size is None or not dest.is_file() or dest.stat().st_size != rec.file_size:
            return False
        digest = hashlib.sha256()
        with open(dest, "rb") as fh:
            while block := fh.read(CHUNK):
                digest.update(block)
        entry.bytes, entry.sha256 = rec.file_size, digest.hexdigest()
        entry.downloaded_at = _now()
        self._record(entry, "downloaded", None)
        self.summary.up_to_date += 1
        return True

    # -- fetching -----------------------------------------------------------

    def _fetch_all(self, jobs: list[_Job]) -> None:
        config = self.config
        if not config.api_key:
            raise ConfigError("api_key", "no API key: set HYPERSTUDY_API_KEY")
        own_budget = self.budget is None
        budget = self.budget or budget_for(config)
        fetcher = Fetcher(config, self.progress)
        waiting_before, budget.on_wait = budget.on_wait, self._waiting
        try:
            with ApiClient(config, budget) as client:
                links = Links(client, self.listed)
                try:
                    with ThreadPoolExecutor(
                        config.media_concurrency, thread_name_prefix="hs-media"
                    ) as pool:
                        futures = [pool.submit(self._one, job, fetcher, links) for job in jobs]
                        for future in futures:
                            future.result()
                finally:
                    self.summary.api_requests = client.attempts
                    self.summary.listed_links = links.listed_used
        finally:
            budget.on_wait = waiting_before
            fetcher.close()
            if own_budget:
                budget.close()

    def _one(self, job: _Job, fetcher: Fetcher, links: Links) -> None:
        rec, entry = job.rec, job.entry
        if self.stop.is_set():
            why = "the key was refused" if self.auth_error else self.summary.errors.get("budget")
            self._record(entry, "pending", f"not attempted: {why or 'the run stopped'}")
            return
        entry.attempts += 1
        entry.last_attempt = _now()
        try:
            result = fetcher.fetch(rec, job.dest, lambda fresh: links.mint(rec, fresh=fresh))
        except LinkUnavailable as exc:
            result = Result(exc.status, reason=exc.reason, server_failed=exc.server_failed)
        except BudgetExhausted as exc:
            self.stop.set()
            with self.lock:
                self.summary.errors.setdefault("budget", str(exc))
            result = Result("pending", reason=f"not attempted: {exc}")
        except AuthError as exc:
            self.stop.set()
            self.auth_error = exc
            result = Result("pending", reason="not attempted: the key was refused")
        self._finish(job, result)

    def _finish(self, job: _Job, result: Result) -> None:
        entry, s = job.entry, self.summary
        with self.lock:
            s.bytes_downloaded += result.transferred
            s.storage_requests += result.storage_requests
            s.resumed += result.resumes
            s.reminted += result.remints
            if result.status == "downloaded":
                s.downloaded += 1
            elif result.server_failed:
                s.server_failed.append(entry.recording_id)
            elif result.status == "failed":
                s.errors[entry.recording_id] = result.reason or "failed"
        if result.status == "downloaded":
            entry.bytes, entry.sha256, entry.downloaded_at = result.bytes, result.sha256, _now()
        else:  # no verification kept for a file that is not (or no longer) verified
            entry.bytes = entry.sha256 = entry.downloaded_at = None
        self._record(entry, result.status, result.reason)
        log.info(
            "media %s: %s%s",
            entry.recording_id,
            result.status,
            f" ({result.reason})" if result.reason else "",
        )
        self.progress(
            "media_done",
            recording=entry.recording_id,
            status=result.status,
            reason=result.reason,
            path=entry.path,
        )

    def _record(self, entry: mf.Entry, status: str, reason: str | None) -> None:
        """Write the entry's row now (durable per file) and count non-downloads."""
        entry.status, entry.reason = status, reason
        self.manifest.put(entry)
        if status != "downloaded":
            with self.lock:
                setattr(self.summary, status, getattr(self.summary, status) + 1)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
