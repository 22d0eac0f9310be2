"""A client-side request budget, so a well-behaved sync never meets a 429.

Two sliding windows, as the API publishes its limits: requests per key per
hour, and requests per endpoint per minute. The minute budget is waited for;
the hour budget is not (a sync would sit idle for up to an hour), so spending
it raises BudgetExhausted with the time to resume.
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
        # Wall-clock times of requests made in the last hour, also by earlier runs.
        self._hour: deque[float] = deque(sorted(t for t in spent if now - t < HOUR))
        self._minute: dict[str, deque[float]] = {}
        self.used = 0  # requests this process made
        self.waited_seconds = 0.0
        self.exhausted_until: float | None = None

    def acquire(self, endpoint: str) -> None:
        """Count one request to `endpoint`; wait for the minute budget if needed."""
        while True:
            with self._lock:
                now = self._clock()
                _expire(self._hour, now - HOUR)
                if len(self._hour) >= self.per_hour:
                    self.exhausted_until = self._hour[0] + HOUR
                    raise BudgetExhausted(_iso(self.exhausted_until))
                window = self._minute.setdefault(endpoint, deque())
                _expire(window, now - MINUTE)
                if len(window) < self.per_minute:
                    window.append(now)
                    self._hour.append(now)
                    self.used += 1
                    return
                wait = window[0] + MINUTE - now
            self.waited_seconds += max(wait, 0.0)
            self._sleep(max(wait, 0.01))

    def remember(self, times: Iterable[float]) -> None:
        """Count requests made before this budget existed (e.g. by an earlier run)."""
        with self._lock:
            cutoff = self._clock() - HOUR
            self._hour = deque(sorted([*self._hour, *(t for t in times if t > cutoff)]))

    def remaining_this_hour(self) -> int:
        with self._lock:
            _expire(self._hour, self._clock() - HOUR)
            return max(self.per_hour - len(self._hour), 0)

    def recent(self) -> list[float]:
        """Request times within the last hour (persisted so the next run honours them)."""
        with self._lock:
            _expire(self._hour, self._clock() - HOUR)
            return list(self._hour)

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


def _expire(window: deque[float], cutoff: float) -> None:
    while window and window[0] <= cutoff:
        window.popleft()


def _iso(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, tz=timezone.utc) + timedelta(seconds=1)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
