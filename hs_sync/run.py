"""`sync(config) -> RunSummary`: one incremental extraction run, then the transform.

Order of a run: check the key and each experiment's access (nothing is
written before the key is known good), take the warehouse lock, pull every
(data type, experiment) unit with bounded concurrency (snapshots, time and
merge units first, then the room units the rooms snapshot drives), call the
normalizer, record the run.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from hs_sync import interrupt, objstore, origin, registry, stores
from hs_sync.api.budget import RequestBudget, budget_for
from hs_sync.api.client import ApiClient, Envelope
from hs_sync.config import Config
from hs_sync.errors import (
    AuthError,
    BudgetExhausted,
    ConfigError,
    ForbiddenError,
    HsSyncError,
    NotFoundError,
)
from hs_sync.extract.polling import Schedule
from hs_sync.extract.pulls import Extractor, PullResult, now_iso, quote_id, room_version
from hs_sync.land.batch import sweep_temporaries
from hs_sync.land.state import ExtractState, remembered_access
from hs_sync.lock import warehouse_lock
from hs_sync.media.links import ListedLinks
from hs_sync.registry import DataType, Mode
from hs_sync.warehouse import Warehouse

Progress = Callable[..., None]


@dataclass
class RunSummary:
    """What a sync run did; `to_dict()` is JSON-able, `exit_code` is 0 or 1."""

    run_id: str
    started_at: str
    window_end: str | None = None
    experiments: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # type -> experiment -> rows
    files: int = 0
    requests: int = 0
    # data, probes, verification, media, overhead (discovery, server time, retries)
    requests_by_purpose: dict[str, int] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)  # units polled / not yet due
    retries: int = 0
    bytes_received: int = 0
    windows: list[dict[str, Any]] = field(default_factory=list)
    skipped_types: dict[str, str] = field(default_factory=dict)
    skipped_experiments: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    transform: dict[str, Any] | None = None
    media: dict[str, Any] | None = None
    upload: dict[str, Any] | None = None  # raw files and media sent to the object store
    duration_seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(sum(per.values()) for per in self.rows.values())

    @property
    def quarantined(self) -> int:
        """Raw lines this run's transform could not turn into rows (see quarantine/)."""
        return int((self.transform or {}).get("quarantined", 0))

    @property
    def damaged(self) -> list[str]:
        """Raw files that did not read, moved to raw/.damaged/ (pulled again next run)."""
        return list((self.transform or {}).get("damaged", []))

    @property
    def drift(self) -> dict[str, Any]:
        """Per data type: unknown fields and values that did not convert (kept in `_extra`)."""
        return dict((self.transform or {}).get("drift", {}))

    @property
    def exit_code(self) -> int:
        """0: everything asked for was synced (missing scopes are listed); 1: partial,
        including lines quarantined or raw files found damaged."""
        partial = self.errors or self.budget.get("exhausted") or self.quarantined or self.damaged
        return 1 if partial else 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["total_rows"] = self.total_rows
        out["quarantined"] = self.quarantined
        out["damaged"] = self.damaged
        out["drift"] = self.drift
        out["exit_code"] = self.exit_code
        return out


def _run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class _Run:
    """The mutable parts of one run, shared by its worker threads."""

    def __init__(self, config: Config, summary: RunSummary, progress: Progress):
        self.config = config
        self.summary = summary
        self.progress = progress
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.auth_error: AuthError | None = None
        self.forbidden: set[str] = set()  # experiments that answered 403 this run
        self.disk_full: BaseException | None = None

    def record(self, result: PullResult) -> None:
        with self.lock:
            s = self.summary
            for purpose, n in result.by_purpose().items():
                s.requests_by_purpose[purpose] = s.requests_by_purpose.get(purpose, 0) + n
            per = s.rows.setdefault(result.data_type, {})
            per[result.experiment_id] = per.get(result.experiment_id, 0) + result.rows
            s.files += result.files
            s.windows += result.windows
            for w in result.warnings:
                line = f"{result.data_type}/{result.experiment_id}: {w}"
                if w.startswith(f"{result.data_type}/") or line in s.warnings:
                    line = w
                if line not in s.warnings:
                    s.warnings.append(line)
            for i, e in enumerate(result.errors):
                s.errors[f"{result.data_type}/{result.experiment_id}" + (f"#{i}" if i else "")] = e

    def unit(self, dt: DataType, exp: str, pull: Callable[[], PullResult]) -> PullResult | None:
        """Run one pull; turn its failure into the summary entry the contract asks for."""
        if self.stop.is_set() or dt.name in self.summary.skipped_types:
            return None
        name = f"{dt.name}/{exp}"
        try:
            result = pull()
        except ForbiddenError as exc:
            with self.lock:
                self.forbidden.add(exp)
                self.summary.skipped_types.setdefault(dt.name, f"missing scope: {exc}")
            self.progress("skip", data_type=dt.name, experiment=exp, reason=str(exc))
            return None
        except BudgetExhausted as exc:
            self.stop.set()
            with self.lock:
                if exc.kind == "budget":  # not the run's time up, nor a server too slow
                    self.summary.budget["exhausted"] = True
                self.summary.budget["resume_at"] = exc.resume_at
                self.summary.errors.setdefault(exc.kind, str(exc))
            return None
        except AuthError as exc:
            self.stop.set()
            self.auth_error = exc
            return None
        except NotFoundError as exc:
            with self.lock:
                self.summary.errors[name] = str(exc)
            return None
        except (OSError, sqlite3.OperationalError) as exc:
            if not disk_full(exc):
                with self.lock:
                    self.summary.errors[name] = f"{type(exc).__name__}: {exc}"
                return None
            self.stop.set()  # every other unit would fail the same way
            with self.lock:
                self.disk_full = self.disk_full or exc
                self.summary.errors[name] = f"the disk is full ({exc})"
            return None
        except HsSyncError as exc:
            with self.lock:
                self.summary.errors[name] = f"{type(exc).__name__}: {exc}"
            self.progress("error", data_type=dt.name, experiment=exp, reason=str(exc))
            return None
        self.record(result)
        self.progress("done", data_type=dt.name, experiment=exp, rows=result.rows)
        return result


def sync(
    config: Config,
    *,
    progress: Progress | None = None,
    transform: bool = True,
    clock: Any = time,
    signals: bool = False,
) -> RunSummary:
    """Run one incremental sync of `config`'s experiments and data types.

    With `transform=False` the run only lands raw data (an orchestrator then
    calls the transform per data type itself). `clock` is what the request
    budget reads and waits on: anything with `time()` and `sleep(seconds)`
    (the `time` module; tests pass a sped-up clock). With `signals=True` (the
    command line), SIGTERM and SIGINT stop the run within seconds (`hs_sync/interrupt.py`):
    it is recorded as interrupted and raises Interrupted.
    Raises AuthError (401, nothing written), ConfigError, WarehouseLocked and
    DiskFull (the run is recorded, no half-written file is left); every other
    failure is reported per unit in the returned RunSummary.
    """
    if not config.api_key:
        raise ConfigError("api_key", "no API key: set HYPERSTUDY_API_KEY")
    started = time.monotonic()
    progress = progress or (lambda *a, **k: None)
    summary = RunSummary(run_id=_run_id(), started_at=now_iso())
    warehouse = objstore.open_warehouse(config)
    stores.require_usable(warehouse)  # one line naming the repair, before any request
    origin.check(warehouse, config)  # never mix two APIs' data unasked
    budget = budget_for(
        config, clock=clock.time, sleep=interrupt.sleep if clock is time else clock.sleep
    )
    types = config.data_types
    with ApiClient(config, budget) as client, _signals(signals, client, warehouse, summary):
        access = remembered_access(warehouse, config.access_cache_hours)
        experiments, listing, checked = _discover(client, config, summary, access)
        summary.experiments = experiments
        # The run's window end comes from the server's clock, never ours.
        summary.window_end, source = client.server_now()
        if source != "server":
            summary.warnings.append(
                f"the API sent no server time; time windows end at the {source} time"
            )
        with warehouse_lock(warehouse, config.lock_timeout_seconds, config.group):
            sweep_temporaries(warehouse)
            with ExtractState(warehouse) as state:
                state.begin_run(summary.run_id)
                origin.remember(warehouse, config)
                for name, value in checked.items():
                    state.set_signal(name, value, summary.started_at)
                run = _Run(config, summary, progress)
                status = "failed"
                with_media = transform and config.media and any(dt.triggers_media for dt in types)
                listed = ListedLinks() if with_media else None
                try:
                    extractor = Extractor(
                        client,
                        warehouse,
                        state,
                        config,
                        run_id=summary.run_id,
                        window_end=summary.window_end,
                        progress=progress,
                        listed=listed,
                    )
                    schedule = Schedule(state, config, summary.window_end)
                    _pull_all(run, extractor, client, types, experiments, listing, schedule)
                    for exp in run.forbidden:  # a 403: check access again next run
                        state.forget_signal(f"access:{exp}")
                    if run.auth_error is not None:
                        raise run.auth_error
                    if run.disk_full is not None:
                        raise DiskFull(run.disk_full)
                    if transform:
                        summary.transform = _transform(warehouse, types, summary, run)
                        interrupt.check()  # DuckDB may have turned the signal into its error
                        if with_media:
                            summary.media = _media(config, budget, summary, progress, listed)
                    summary.upload = _upload(warehouse, summary, run)
                    status = "partial" if summary.exit_code else "ok"
                except interrupt.Interrupted:
                    status = "interrupted"
                    raise
                finally:
                    if status in ("interrupted", "failed"):
                        _sweep(warehouse)  # half-landed batches, the transform's copy
                    media_requests = (summary.media or {}).get("api_requests", 0)
                    summary.requests = client.attempts + media_requests
                    purposes = summary.requests_by_purpose
                    purposes["media"] = media_requests
                    purposes["overhead"] = client.attempts - sum(
                        v for k, v in purposes.items() if k not in ("media", "overhead")
                    )
                    summary.retries = client.retries
                    summary.bytes_received = client.bytes_received
                    summary.budget = {**budget.state(), **summary.budget}
                    summary.duration_seconds = round(time.monotonic() - started, 3)
                    try:
                        state.save_budget_requests(budget.recent())
                        state.finish_run(
                            summary.run_id, status, summary.requests, summary.to_dict()
                        )
                    except sqlite3.OperationalError as exc:
                        if not disk_full(exc):
                            raise
                        raise DiskFull(exc) from None
    return summary


def discover(config: Config) -> list[str]:
    """The experiments a sync of `config` would pull (GET /experiments unless named),
    each checked for access; a few requests, counted in the warehouse's budget."""
    warehouse = Warehouse(config.warehouse)
    budget = budget_for(config)  # the key's shared ledger, as every run on this machine
    with ApiClient(config, budget) as client:
        summary = RunSummary(run_id=_run_id(), started_at=now_iso())
        access = remembered_access(warehouse, config.access_cache_hours)
        return _discover(client, config, summary, access)[0]


class DiskFull(HsSyncError):
    """The disk filled while landing: the run stops, recorded where possible (exit 1)."""

    def __init__(self, cause: BaseException):
        super().__init__(
            f"the disk is full ({cause}); free space under the warehouse and run it again: "
            "what was landed is kept"
        )


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk (or a quota, or the file size limit) is full."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)


def _sweep(warehouse: Warehouse) -> None:
    """Remove what this stopped run left half-done: hidden batches and temporaries
    under raw/, its building copy of the database, the transform's staging folder."""
    sweep_temporaries(warehouse)
    for stale in warehouse.state_dir.glob(f".{warehouse.db_path.name}.{os.getpid()}.*"):
        stale.unlink(missing_ok=True)
    shutil.rmtree(warehouse.state_dir / "parquet-staging", ignore_errors=True)


def _signals(enabled: bool, client: ApiClient, warehouse: Warehouse, summary: RunSummary):
    """SIGTERM/SIGINT handling for a run (see hs_sync/interrupt.py), or nothing."""
    if not enabled:
        return nullcontext()

    def last_resort(signum: int) -> None:
        # The main thread did not unwind in time: record and clean up from here.
        try:
            _sweep(warehouse)
            with ExtractState(warehouse) as state:
                state.finish_run(summary.run_id, "interrupted", client.attempts, summary.to_dict())
        finally:
            print(
                f"hs-sync sync: {interrupt.Interrupted(signum)}; the run is recorded as "
                "interrupted",
                file=sys.stderr,
            )

    return interrupt.on_signals(client.close, last_resort)


def _discover(
    client: ApiClient, config: Config, summary: RunSummary, access: dict[str, str]
) -> tuple[list[str], Envelope | None, dict[str, str]]:
    """The experiments to sync, checked for access. Read-only: the key's first test.

    A check-access answer is remembered for `access_cache_hours` (`access`: what
    earlier runs saw); the answers checked now are returned to be remembered.
    The experiments listing is read whenever no check is made, so the key is
    still tested before anything is written.
    """
    listing = None
    if config.experiments:
        candidates = list(dict.fromkeys(config.experiments))
        if all(access.get(f"access:{exp}") == "ok" for exp in candidates):
            try:
                listing = client.get("experiments", endpoint="experiments")
            except ForbiddenError:
                access = {}  # the key cannot list: test it with the access checks
    else:
        try:
            listing = client.get("experiments", endpoint="experiments")
        except ForbiddenError as exc:
            raise ConfigError(
                "experiments",
                f"the key cannot list experiments ({exc}); name them with --experiment",
            ) from None
        candidates = [str(r["id"]) for r in listing.records if isinstance(r, dict) and r.get("id")]
    usable = []
    checked: dict[str, str] = {}
    for exp in candidates:
        if access.get(f"access:{exp}") == "ok":
            usable.append(exp)
            continue
        try:
            access_data = client.get(
                f"data/check-access/experiment/{quote_id(exp)}", endpoint="data/check-access"
            ).data
        except NotFoundError:
            reason = "not found (404)"
            summary.skipped_experiments[exp] = reason
            if config.experiments:
                summary.errors[f"experiment/{exp}"] = f"experiment {exp}: {reason}"
            continue
        except ForbiddenError as exc:
            access_data = {"canExport": False, "reason": str(exc)}
        access_data = access_data if isinstance(access_data, dict) else {}
        if access_data.get("canExport") is False or access_data.get("canView") is False:
            reason = (
                "unknown, or not visible to this key (check-access: canView is false)"
                if access_data.get("canView") is False
                else "the key cannot export this experiment (check-access: canExport is false)"
            )
            summary.skipped_experiments[exp] = reason
            if config.experiments:
                summary.errors[f"experiment/{exp}"] = f"experiment {exp}: {reason}"
            continue
        checked[f"access:{exp}"] = "ok"
        usable.append(exp)
    return usable, listing, checked


def _pull_all(
    run: _Run,
    ex: Extractor,
    client: ApiClient,
    types: Sequence[DataType],
    experiments: list[str],
    listing: Envelope | None,
    schedule: Schedule,
) -> None:
    config = run.config
    by_name = {dt.name: dt for dt in types}
    rooms_dt = registry.listing("room")
    rooms_of: dict[str, dict[str, str] | None] = {}
    rooms_changed: set[str] = set()  # experiments whose rooms list changed this run
    rooms_read: set[str] = set()  # experiments whose rooms list this run reads
    repairing = bool(config.rooms)
    listing_lock = threading.Lock()
    cached = [listing]

    def experiments_listing() -> Envelope:
        with listing_lock:  # one GET /experiments per run, shared by the experiment units
            if cached[0] is None:
                cached[0] = client.get("experiments", endpoint="experiments")
            return cached[0]

    def rooms_unit(exp: str) -> PullResult:
        result = ex.pull_whole(rooms_dt, exp)
        if result.rooms is None:  # a probe saw no change: the rooms of the last read
            seen = ex.state.signal(f"rooms:{exp}")
            result.rooms = orjson.loads(seen[0]) if seen else None
        else:
            ex.state.set_signal(f"rooms:{exp}", orjson.dumps(result.rooms).decode(), now_iso())
        rooms_of[exp] = result.rooms
        if result.rows:
            rooms_changed.add(exp)
        schedule.note_rooms(exp, result.rooms or {})
        return result

    # A change in an experiment's listing row (rooms, participants) makes all its units due.
    if listing is not None and not config.full_refresh:
        rows = {str(r.get("id")): r for r in listing.records if isinstance(r, dict)}
        for exp in experiments:
            schedule.note_listing(exp, rows.get(exp))

    room_types = [dt for dt in types if dt.mode is Mode.ROOM]

    def due(dt: DataType, exp: str) -> bool:
        """Whether to poll a unit now; the rooms list is read whenever a room unit is due
        (it drives the room units)."""
        if repairing or schedule.due(dt.name, exp):
            return True
        return dt is rooms_dt and any(schedule.due(rt.name, exp) for rt in room_types)

    def polled(dt: DataType, exp: str, pull: Callable[[], PullResult]) -> Callable[[], PullResult]:
        def run_and_note() -> PullResult:
            result = pull()
            if not result.errors:
                schedule.record(
                    dt.name,
                    exp,
                    changed=result.rows > 0,
                    verified=(dt.name, exp) in ex.verified_full,
                )
            return result

        return run_and_note

    def pull_for(dt: DataType, exp: str) -> Callable[[], PullResult]:
        if dt is rooms_dt:
            return lambda: rooms_unit(exp)
        if dt.lists == "experiment":
            return lambda: _land_experiment(ex, dt, exp, experiments_listing())
        if dt.mode is Mode.TIME:
            return lambda: ex.pull_time(dt, exp)
        if dt.parent is not None:
            return lambda: ex.pull_children(dt, exp)
        return lambda: ex.pull_whole(dt, exp)

    # Phase 1: everything except the room units (the rooms snapshot drives those).
    first = []
    waiting = 0
    for dt in types:
        if dt.mode is Mode.ROOM or (repairing and dt is not rooms_dt):
            continue
        for exp in experiments:
            if due(dt, exp):
                first.append((dt, exp, polled(dt, exp, pull_for(dt, exp))))
                if dt is rooms_dt:
                    rooms_read.add(exp)
            else:
                waiting += 1
    if (repairing or any(dt.mode is Mode.ROOM for dt in types)) and rooms_dt.name not in by_name:
        # Room units need the rooms list even when the rooms table is not synced.
        rooms_read.update(exp for exp in experiments if due(rooms_dt, exp))
        rooms_changed.update(rooms_read)  # not landed: no change to compare
        first += [(rooms_dt, exp, lambda e=exp: _read_rooms(ex, rooms_of, e)) for exp in rooms_read]
    _run_units(run, first)

    # Phase 2: room pulls.
    second = []
    if repairing:
        found: set[str] = set()
        for exp in experiments:
            rooms = rooms_of.get(exp) or {}
            wanted = {r: rooms[r] for r in config.rooms if r in rooms}
            found |= set(wanted)
            if not wanted:
                continue
            for dt in types:
                if dt.data_endpoint and "room" in dt.scopes:
                    second.append(
                        (dt, exp, lambda d=dt, e=exp, w=wanted: ex.pull_rooms(d, e, w, force=True))
                    )
        for room in config.rooms:
            if room not in found:
                run.summary.errors[f"room/{room}"] = (
                    f"room {room} is not among the rooms of the experiments synced"
                )
    else:
        for dt in types:
            if dt.mode is not Mode.ROOM:
                continue
            for exp in experiments:
                wanted = exp in rooms_changed or schedule.due(dt.name, exp)
                if exp not in rooms_read or not wanted:
                    waiting += 1  # not due, and its rooms list did not change
                    continue
                rooms = rooms_of.get(exp)
                if rooms is None:
                    run.summary.skipped_types.setdefault(
                        dt.name, "the rooms list could not be read (see rooms)"
                    )
                    continue
                pull = polled(dt, exp, lambda d=dt, e=exp, r=rooms: ex.pull_rooms(d, e, r))
                second.append((dt, exp, pull))
    run.summary.polls = {"polled": len(first) + len(second), "not_due": waiting}
    _run_units(run, second)


def _run_units(run: _Run, units: list[tuple[DataType, str, Callable[[], PullResult]]]) -> None:
    if not units:
        return
    with ThreadPoolExecutor(run.config.concurrency, thread_name_prefix="hs-unit") as pool:
        futures = [pool.submit(run.unit, dt, exp, pull) for dt, exp, pull in units]
        for future in futures:
            future.result()  # re-raise programming errors; unit failures are in the summary


def _read_rooms(ex: Extractor, rooms_of: dict, exp: str) -> PullResult:
    """Read the rooms list for room units without landing it (rooms not selected)."""
    dt = registry.listing("room")
    result = PullResult(dt.name, exp, rooms={})
    path = dt.url_path("experiment", quote_id(exp))
    for page, _ in ex.pages(path, {}, endpoint=f"data/{dt.path}/experiment"):
        result.requests += 1
        for room in page.records:
            if isinstance(room, dict) and room.get("id") is not None:
                result.rooms[str(room["id"])] = room_version(room)
    rooms_of[exp] = result.rooms
    return PullResult(dt.name, exp)  # nothing landed, no rows to report


def _land_experiment(ex: Extractor, dt: DataType, exp: str, listing: Envelope) -> PullResult:
    """Land one experiment's row of the experiments listing in its own folder."""
    rows = [r for r in listing.records if isinstance(r, dict) and str(r.get("id")) == exp]
    page = Envelope(listing.path, listing.params, rows, listing.metadata, listing.server_time)
    result = ex.land_whole(dt, exp, [(page, now_iso())])
    result.requests = 0  # the run's one listing request is counted once, as overhead
    return result


def _transform(
    warehouse: Warehouse, types: Sequence[DataType], summary: RunSummary, run: _Run
) -> dict[str, Any] | None:
    from hs_sync.load.transform import transform

    run.progress("transform")
    try:
        return transform(
            warehouse, list(types), run.config.memory_limit, run.config.parquet_grace_seconds
        )
    except Exception as exc:  # the raw landing stands; the next run normalizes again
        summary.errors["transform"] = f"{type(exc).__name__}: {exc}"
        return None


def _upload(warehouse: Warehouse, summary: RunSummary, run: _Run) -> dict[str, Any] | None:
    """Send the new raw files and media to the object store (a bucket warehouse only)."""
    if not warehouse.storage.uri:
        return None
    run.progress("upload")
    try:
        return objstore.push(warehouse.root, warehouse.storage)
    except OSError as exc:  # the local copies stand; the next run uploads them
        summary.errors["upload"] = f"{type(exc).__name__}: {exc}"
        return None


def _media(
    config: Config,
    budget: RequestBudget,
    summary: RunSummary,
    progress: Progress,
    listed: ListedLinks | None,
) -> dict[str, Any]:
    """Download the recordings' media; failures are reported, the sync stands."""
    from hs_sync.media import download_media

    media = download_media(config, progress=progress, lock=False, budget=budget, listed=listed)
    for recording, reason in media.errors.items():
        summary.errors[f"media/{recording}"] = reason
    return media.to_dict()
