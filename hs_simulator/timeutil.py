"""Millisecond timestamps <-> the API's ISO 8601 strings, and the simulator's clock.

All simulator times are integers: milliseconds since the Unix epoch, UTC. On the
wire they are `YYYY-MM-DDTHH:MM:SS.mmmZ`, or `YYYY-MM-DDTHH:MM:SSZ` for sources with
whole-second times (`iso_seconds`). Formatting is hand-rolled because it
runs once per generated row (millions of times at scale 100).
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

_DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)
_day_prefix: dict[int, str] = {}


_second_prefix: dict[int, str] = {}


def iso(ms: int) -> str:
    """`1772446530123` -> `"2026-03-02T10:15:30.123Z"`."""
    second, milli = divmod(ms, 1000)
    prefix = _second_prefix.get(second)
    if prefix is None:
        if len(_second_prefix) > 200_000:
            _second_prefix.clear()
        prefix = _second_prefix[second] = _iso_second(ms)[:-5]
    return f"{prefix}.{milli:03d}Z"


def _iso_second(ms: int) -> str:
    day, rem = divmod(ms, _DAY_MS)
    prefix = _day_prefix.get(day)
    if prefix is None:
        prefix = _day_prefix[day] = (_EPOCH + timedelta(days=day)).isoformat() + "T"
    sec, milli = divmod(rem, 1000)
    hour, sec = divmod(sec, 3600)
    minute, sec = divmod(sec, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{sec:02d}.{milli:03d}Z"


def iso_seconds(ms: int) -> str:
    """A whole-second time without milliseconds: `1772446530000` -> `"2026-03-02T10:15:30Z"`
    (some sources send times that way)."""
    return iso(ms - ms % 1000)[:-5] + "Z"


def iso_or_none(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


def parse_iso(text: str) -> int:
    """ISO 8601 (with `Z` or an offset; a naive time is taken as UTC) -> epoch ms.

    Raises ValueError on anything else.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1000))


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


class Clock:
    """The simulated 'now' (epoch ms). It only moves forward, and only when told to."""

    def __init__(self, start_ms: int) -> None:
        self._ms = start_ms
        self._lock = threading.Lock()

    @property
    def ms(self) -> int:
        return self._ms

    @property
    def now(self) -> datetime:
        return to_datetime(self._ms)

    def advance(self, seconds: float) -> int:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._ms += int(round(seconds * 1000))
            return self._ms
