"""`sync(config) -> RunSummary`: one incremental extraction run, then the transform.

Order of a run: check the key and each experiment's access (nothing is
written before the key is known good), take the warehouse lock, pull the
units the plan finds due with bounded concurrency (hs_sync/extract/plan.py:
time windows, whole tables and listings first, then the room units the rooms
listing drives), call the normalizer, record the run.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from hs_sync import interrupt, objstore, origin, stores
from hs_sync.api import capabilities
from hs_sync.api.budget import RequestBudget, budget_for
from hs_sync.api.client import ApiClient
from hs_sync.config import Config
from hs_sync.discovery import check_experiments, discover
from hs_sync.errors import ApiError, AuthError, BudgetExhausted, ConfigError
from hs_sync.extract.pages import Progress, PullContext, now_iso
from hs_sync.extract.plan import Planner
from hs_sync.extract.polling import Schedule
from hs_sync.extract.promises import Promises
from hs_sync.extract.runner import UnitRunner, run_plan
from hs_sync.land.batch import sweep_temporaries
from hs_sync.land.state import ExtractState, remembered_access
from hs_sync.lock import warehouse_lock
from hs_sync.media.links import ListedLinks
from hs_sync.registry import DataType
from hs_sync.summary import DiskFull, RunSummary, disk_full, new_run_id
from hs_sync.warehouse import Warehouse

__all__ = ["DiskFull", "Progress", "RunSummary", "discover", "disk_full", "sync"]


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
    summary = RunSummary(run_id=new_run_id(), started_at=now_iso())
    warehouse = objstore.open_warehouse(config)
    stores.require_usable(warehouse)  # one line naming the repair, before any request
    origin.check(warehouse, config)  # never mix two APIs' data unasked
    budget = budget_for(
        config, clock=clock.time, sleep=interrupt.sleep if clock is time else clock.sleep
    )
    types = config.data_types
    with ApiClient(config, budget) as client, _signals(signals, client, warehouse, summary):
        access = remembered_access(warehouse, config.access_cache_hours)
        experiments, listing, checked = check_experiments(client, config, summary, access)
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
                run = UnitRunner(config, summary, progress)
                status = "failed"
                with_media = transform and config.media and any(dt.triggers_media for dt in types)
                listed = ListedLinks() if with_media else None
                try:
                    promises = _promises(client, warehouse, config, summary, experiments, listing)
                    ctx = PullContext(
                        client,
                        warehouse,
                        state,
                        config,
                        run_id=summary.run_id,
                        window_end=summary.window_end,
                        progress=progress,
                        keep=listed.note if listed is not None else None,
                        listing=listing,
                        promises=promises or Promises(),
                    )
                    schedule = Schedule(state, config, summary.window_end)
                    if promises is not None:
                        run_plan(run, Planner(ctx, schedule, types, experiments, listing))
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
                        state.finish_run(
                            summary.run_id, status, summary.requests, summary.to_dict()
                        )
                    except sqlite3.OperationalError as exc:
                        if not disk_full(exc):
                            raise
                        raise DiskFull(exc) from None
    return summary


def _promises(
    client: ApiClient,
    warehouse: Warehouse,
    config: Config,
    summary: RunSummary,
    experiments: list[str],
    listing: Any,
) -> Promises | None:
    """What the run may rely on of the API: checked on first use of its base URL and
    daily (a few requests), kept in the state file otherwise. A missing behaviour leads
    the summary's warnings, with what doing without it costs. None: the run's request
    budget or time ran out during the check (recorded in the summary)."""
    experiment = _busiest(experiments, listing)
    if experiment is None:
        return Promises()
    try:
        caps = capabilities.ensure_checked(
            client, warehouse, experiment, now=summary.window_end, page_size=config.page_size
        )
    except BudgetExhausted as exc:  # as a unit's would: the run stops, progress is kept
        if exc.kind == "budget":
            summary.budget["exhausted"] = True
        summary.budget["resume_at"] = exc.resume_at
        summary.errors.setdefault(exc.kind, str(exc))
        return None
    except AuthError:
        raise
    except ApiError as exc:
        summary.warnings.insert(
            0, f"what the API honours could not be checked ({exc}); relied on as documented"
        )
        return Promises()
    promises = Promises.from_capabilities(caps)
    summary.warnings[:0] = promises.warnings(caps.base_url)
    return promises


def _busiest(experiments: list[str], listing: Any) -> str | None:
    """The synced experiment the listing shows with the most participants (the first
    one when the listing says nothing): the one whose rows the check reads."""
    if not experiments:
        return None
    rows = {str(r.get("id")): r for r in getattr(listing, "records", ()) if isinstance(r, dict)}

    def people(exp: str) -> float:
        count = (rows.get(exp) or {}).get("participantCount")
        ok = isinstance(count, (int, float)) and not isinstance(count, bool)
        return float(count) if ok else 0.0

    return max(experiments, key=people)


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


def _transform(
    warehouse: Warehouse, types: Sequence[DataType], summary: RunSummary, run: UnitRunner
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


def _upload(warehouse: Warehouse, summary: RunSummary, run: UnitRunner) -> dict[str, Any] | None:
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
