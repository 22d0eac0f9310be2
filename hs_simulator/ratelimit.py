"""Rate limits: requests per key per hour and per endpoint per minute (fixed windows, wall clock).

An "endpoint" is the route without its ids: `/data/events/experiment`,
`/deployments`, `/experiments`, ... Windows start at the first request after the
previous window ended; Retry-After is the whole seconds left in the window that
is full. Rejected requests do not count. Off (None) by default.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.monotonic
        self.per_hour: int | None = None
        self.per_minute: int | None = None
        self._lock = threading.Lock()
        self._hour: dict[str, tuple[float, int]] = {}
        self._minute: dict[tuple[str, str], tuple[float, int]] = {}

    def configure(
        self,
        per_hour: int | None,
        per_minute: int | None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Set the limits (None: off); `clock` (seconds) replaces the wall clock, e.g. a
        sped-up clock shared with the client under test."""
        with self._lock:
            self.per_hour, self.per_minute = per_hour, per_minute
            self.clock = clock or time.monotonic
            self._hour.clear()
            self._minute.clear()

    def check(self, key: str, endpoint: str) -> tuple[int, str] | None:
        """Count one request; -> (retry_after_seconds, which limit) when over a limit."""
        now = self.clock()
        with self._lock:
            checks = []
            if self.per_hour is not None:
                checks.append((self._hour, key, 3600.0, self.per_hour, "per_hour"))
            if self.per_minute is not None:
                checks.append((self._minute, (key, endpoint), 60.0, self.per_minute, "per_minute"))
            states = []
            for table, k, window, limit, name in checks:
                start, used = table.get(k, (now, 0))
                if now - start >= window:
                    start, used = now, 0
                if used >= limit:
                    return max(0, math.ceil(start + window - now)), name
                states.append((table, k, start, used))
            for table, k, start, used in states:
                table[k] = (start, used + 1)
            return None
