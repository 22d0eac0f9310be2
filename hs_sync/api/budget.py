"""A client-side request budget, so a well-behaved sync never meets a 429.

Two sliding windows, as the API publishes its limits: requests per key per
hour, and requests per endpoint per minute. The minute budget is waited for;
the hour budget is not (a sync would sit idle for up to an hour), so spending
it raises BudgetExhausted with the time to resume.

A request is counted from the moment it is sent until a window's length after
its answer arrived (`settle`): the server counts it when it arrives, somewhere
in between, and starts its window then; a budget that dated requests by their
sending alone let the 101st request of a minute arrive just inside the
server's window when the first one had travelled longer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

from hs_sync.errors import BudgetExhausted

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
    ):
        self.per_hour = per_hour
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
        self.waited_seconds = 0.0
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
            if self.on_wait is not None:
                self.on_wait(endpoint, max(wait, 0.0))
            self.waited_seconds += max(wait, 0.0)
            self._sleep(max(wait, 0.01))

    def settle(self, token: list[float]) -> None:
        """The request of `token` has its answer (or failed): date it now."""
        with self._lock:
            token[0] = max(token[0], self._clock())

    def remember(self, times: Iterable[float]) -> None:
        """Count requests made before this budget existed (e.g. by an earlier run)."""
        with self._lock:
            cutoff = self._clock() - HOUR
            known = [*self._hour, *([t] for t in times if t > cutoff)]
            self._hour = deque(sorted(known, key=lambda token: token[0]))

    def remaining_this_hour(self) -> int:
        with self._lock:
            _expire(self._hour, self._clock() - HOUR)
            return max(self.per_hour - len(self._hour), 0)

    def recent(self) -> list[float]:
        """Request times within the last hour (persisted so the next run honours them)."""
        with self._lock:
            _expire(self._hour, self._clock() - HOUR)
            return [token[0] for token in self._hour]

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
