"""A client-side request budget, so a well-behaved sync never meets a 429.

Two sliding windows, as the API publishes its limits: requests per key per
hour, and requests per endpoint per minute. The minute budget is waited for;
the hour budget is not (a sync would sit idle for up to an hour), so spending
it raises BudgetExhausted with the time to resume.

The budget also holds the run's time (`max_run_seconds`, on the monotonic
clock): a request, or a wait, that would start or last past it raises
RunOutOfTime instead, so the run stops cleanly with its progress saved. A stop
the client decides (`stop`, e.g. a server too slow) holds for every later
request on the budget, the media step's included.

A request is counted from the moment it is sent until a window's length after
its answer arrived (`settle`): the server counts it when it arrives, somewhere
in between, and starts its window then; a budget that dated requests by their
sending alone let the 101st request of a minute arrive just inside the
server's window when the first one had travelled longer.

The API limits per key, so `budget_for` keeps the windows in a ledger per key
(`SharedBudget`): a SQLite file in the per-user state folder named by a hash of
the API address and key, shared by every warehouse, the CLI and Dagster on the
machine. Each request is counted in one write transaction, so concurrent runs
on one key never spend more than the budget together.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from hs_sync.errors import BudgetExhausted, ConfigError, RunOutOfTime
from hs_sync.statestore import open_wal
from hs_sync.warehouse import user_state_dir

if TYPE_CHECKING:
    from hs_sync.config import Config

HOUR = 3600.0
MINUTE = 60.0


class RequestBudget:
    """Thread-safe sliding-window budget. `acquire(endpoint)` before every request."""

    def __init__(
        self,
        per_hour: int,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        spent: Iterable[float] = (),
        max_seconds: float | None = None,
    ):
        self.per_hour = per_hour
        self.max_seconds = max_seconds
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.stopped: BudgetExhausted | None = None  # set by `stop`: no more requests
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        now = clock()
        # Requests made in the last hour, also by earlier runs, as one-item lists
        # [time] shared by both windows: the send time until `settle` moves it.
        self._hour: deque[list[float]] = deque([t] for t in sorted(spent) if now - t < HOUR)
        self._minute: dict[str, deque[list[float]]] = {}
        self.used = 0  # requests this process made
        self.waited_seconds = 0.0  # wall time while any thread waited (not their sum)
        self._waiters = 0
        self._wait_began = 0.0
        self.exhausted_until: float | None = None
        # called with (endpoint, seconds) before each wait for the minute budget, so a
        # front end can say that it is waiting and for how long
        self.on_wait: Callable[[str, float], None] | None = None

    def acquire(self, endpoint: str) -> list[float]:
        """Count one request to `endpoint`; wait for the minute budget if needed.

        Returns the request's token: pass it to `settle` when the answer arrived.
        """
        while True:
            with self._lock:
                now = self._clock()
                _expire(self._hour, now - HOUR)
                if len(self._hour) >= self.per_hour:
                    self.exhausted_until = self._hour[0][0] + HOUR
                    raise BudgetExhausted(_iso(self.exhausted_until))
                window = self._minute.setdefault(endpoint, deque())
                _expire(window, now - MINUTE)
                if len(window) < self.per_minute:
                    token = [now]
                    window.append(token)
                    self._hour.append(token)
                    self.used += 1
                    return token
                wait = window[0][0] + MINUTE - now
            self.check_time(wait, "the per-minute request budget")
            self._wait(endpoint, wait)

    def _wait(self, endpoint: str, wait: float) -> None:
        """Sleep until the minute budget has room, counting the wall time spent waiting:
        four threads waiting the same minute wait one minute, not four."""
        if self.on_wait is not None:
            self.on_wait(endpoint, max(wait, 0.0))
        with self._lock:
            if not self._waiters:
                self._wait_began = self._clock()
            self._waiters += 1
        try:
            self._sleep(max(wait, 0.01))
        finally:
            with self._lock:
                self._waiters -= 1
                if not self._waiters:
                    self.waited_seconds += max(self._clock() - self._wait_began, 0.0)

    def seconds_left(self) -> float | None:
        """Seconds the run has left (`max_run_seconds`); None when it has no limit."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check_time(self, wait: float = 0.0, waiting_for: str = "") -> None:
        """Raise RunOutOfTime when the run's time is up, or would be before a wait of
        `wait` seconds (for `waiting_for`, named in the message) ends."""
        stopped = self.stopped
        if stopped is not None:
            raise type(stopped)(stopped.resume_at, str(stopped))
        left = self.seconds_left()
        if left is None or (left > 0 and wait <= left):
            return
        resume = _iso(time.time() + max(wait, 0.0))
        if wait > 0 and left > 0:
            why = (
                f"{waiting_for} asks to wait {wait:.0f} s, more than the {left:.0f} s "
                f"the run has left (max_run_seconds {self.max_seconds:g} s)"
            )
        else:
            why = f"the run reached max_run_seconds ({self.max_seconds:g} s)"
        raise RunOutOfTime(resume, f"{why}; progress is saved, resume after {resume}")

    def stop(self, reason: BudgetExhausted) -> None:
        """No request on this budget may start from now on: each raises `reason` again."""
        self.stopped = reason

    def settle(self, token: list[float]) -> None:
        """The request of `token` has its answer (or failed): date it now."""
        with self._lock:
            token[0] = max(token[0], self._clock())

    def remaining_this_hour(self) -> int:
        with self._lock:
            _expire(self._hour, self._clock() - HOUR)
            return max(self.per_hour - len(self._hour), 0)

    def state(self) -> dict:
        return {
            "per_hour": self.per_hour,
            "per_minute": self.per_minute,
            "used": self.used,
            "remaining_this_hour": self.remaining_this_hour(),
            "waited_seconds": round(self.waited_seconds, 3),
            "exhausted": self.exhausted_until is not None,
            "resume_at": _iso(self.exhausted_until) if self.exhausted_until else None,
        }


def _expire(window: deque[list[float]], cutoff: float) -> None:
    # Settling can leave a window slightly out of order; an entry behind a later
    # one then expires with it: later, never early.
    while window and window[0][0] <= cutoff:
        window.popleft()


def _iso(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, tz=timezone.utc) + timedelta(seconds=1)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


# -- one budget per key, shared on this machine -------------------------------

BUSY_TIMEOUT_SECONDS = 30.0

_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,        -- send time, moved to the answer's time by settle
    endpoint TEXT NOT NULL,  -- the rate-limit bucket (route without ids)
    owner TEXT NOT NULL      -- the budget (run) that made the request
);
CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
CREATE INDEX IF NOT EXISTS requests_endpoint ON requests (endpoint, at);
"""


def ledger_path(folder: Path, base_url: str, api_key: str) -> Path:
    """The key's ledger file: named by a hash of the API address and the key (never the
    key itself); a key is one budget per API."""
    digest = hashlib.blake2b(f"{base_url.rstrip('/')}\n{api_key}".encode(), digest_size=12)
    return folder / f"budget-{digest.hexdigest()}.sqlite"


def budget_for(
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> SharedBudget:
    """The request budget of `config`'s key, shared with every other run on this machine."""
    folder = user_state_dir(config.state_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError("state_dir", f"cannot create the state folder {folder}: {exc}") from None
    path = ledger_path(folder, config.base_url, config.api_key)
    return SharedBudget(
        config.budget_per_hour,
        config.budget_per_minute,
        path,
        clock=clock,
        sleep=sleep,
        max_seconds=config.max_run_seconds,
    )


class SharedBudget(RequestBudget):
    """`RequestBudget` whose windows live in the key's ledger file, not in memory.

    Thread-safe and process-safe: counting a request is one `BEGIN IMMEDIATE`
    transaction (SQLite's write lock), so no two runs can both take the last slot.
    """

    def __init__(
        self,
        per_hour: int,
        per_minute: int,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_seconds: float | None = None,
    ):
        super().__init__(per_hour, per_minute, clock=clock, sleep=sleep, max_seconds=max_seconds)
        self.path = path
        self.owner = uuid.uuid4().hex
        try:
            self._db = open_wal(
                path, _LEDGER_SCHEMA, synchronous="NORMAL", timeout=BUSY_TIMEOUT_SECONDS
            )
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(
                "state_dir", f"cannot open the request ledger {path}: {exc}"
            ) from None
        self._prune()

    def acquire(self, endpoint: str) -> list[float]:
        while True:
            with self._lock:
                now = self._clock()
                db = self._db
                db.execute("BEGIN IMMEDIATE")
                try:
                    hour, oldest = db.execute(
                        "SELECT count(*), min(at) FROM requests WHERE at > ?", [now - HOUR]
                    ).fetchone()
                    if hour >= self.per_hour:
                        self.exhausted_until = oldest + HOUR
                        raise BudgetExhausted(_iso(self.exhausted_until))
                    minute, first = db.execute(
                        "SELECT count(*), min(at) FROM requests WHERE endpoint = ? AND at > ?",
                        [endpoint, now - MINUTE],
                    ).fetchone()
                    if minute < self.per_minute:
                        row = db.execute(
                            "INSERT INTO requests (at, endpoint, owner) VALUES (?, ?, ?)",
                            [now, endpoint, self.owner],
                        ).lastrowid
                        db.execute("COMMIT")
                        self.used += 1
                        return [now, float(row)]
                    wait = first + MINUTE - now
                finally:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
            self.check_time(wait, "the per-minute request budget")
            self._wait(endpoint, wait)

    def settle(self, token: list[float]) -> None:
        with self._lock:
            now = self._clock()
            token[0] = max(token[0], now)
            self._db.execute(
                "UPDATE requests SET at = max(at, ?) WHERE id = ?", [now, int(token[1])]
            )

    def _counts(self) -> tuple[int, int]:
        """(requests of the last hour on this key, of them by other runs)."""
        with self._lock:
            return self._db.execute(
                "SELECT count(*), count(*) FILTER (WHERE owner <> ?) FROM requests WHERE at > ?",
                [self.owner, self._clock() - HOUR],
            ).fetchone()

    def remaining_this_hour(self) -> int:
        return max(self.per_hour - self._counts()[0], 0)

    def state(self) -> dict:
        spent, others = self._counts()
        return {
            **super().state(),
            "remaining_this_hour": max(self.per_hour - spent, 0),
            "used_by_other_runs": others,
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _prune(self) -> None:
        """Forget requests older than any window (keeps the file small)."""
        with self._lock:
            try:
                self._db.execute("DELETE FROM requests WHERE at <= ?", [self._clock() - HOUR])
            except sqlite3.OperationalError:
                pass  # busy: another run prunes, or the next one
