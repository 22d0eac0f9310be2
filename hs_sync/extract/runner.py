"""Running a run's units: bounded concurrency, each unit's failure turned into the summary
entry the contract asks for; a refused key, a spent budget or a full disk stops the rest."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from hs_sync.config import Config
from hs_sync.errors import AuthError, BudgetExhausted, ForbiddenError, HsSyncError, NotFoundError
from hs_sync.extract.pages import Progress, PullResult
from hs_sync.extract.plan import Planner, Unit
from hs_sync.registry import DataType
from hs_sync.summary import RunSummary, disk_full


class UnitRunner:
    """Runs units for one run, its worker threads sharing what the units found."""

    def __init__(self, config: Config, summary: RunSummary, progress: Progress):
        self.config = config
        self.summary = summary
        self.progress = progress
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.auth_error: AuthError | None = None
        self.forbidden: set[str] = set()  # experiments that answered 403 this run
        self.disk_full: BaseException | None = None

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
        with self.lock:
            self.summary.add(result)
        self.progress("done", data_type=dt.name, experiment=exp, rows=result.rows)
        return result


def run_plan(run: UnitRunner, planner: Planner) -> None:
    """Run the plan's two phases (the second is planned from what the first read)."""
    first = planner.first()
    run_units(run, first)
    second = planner.second()
    run.summary.errors.update(planner.errors)
    for name, reason in planner.skipped_types.items():
        run.summary.skipped_types.setdefault(name, reason)
    run.summary.polls = {"polled": len(first) + len(second), "not_due": planner.not_due}
    run_units(run, second)


def run_units(run: UnitRunner, units: list[Unit]) -> None:
    if not units:
        return
    with ThreadPoolExecutor(run.config.concurrency, thread_name_prefix="hs-unit") as pool:
        futures = [pool.submit(run.unit, u.dt, u.exp, u.pull) for u in units]
        for future in futures:
            future.result()  # re-raise programming errors; unit failures are in the summary
