"""Adaptive polling: when each (data type, experiment) is due, from what its last polls saw.

A unit whose polls keep seeing no change is polled less often: after
`poll_after_unchanged` unchanged polls its interval doubles from `FIRST_INTERVAL`
up to `poll_max_interval_seconds`; in an experiment whose rooms are all final it
is a day at once (late rows there are found by that daily verification). A unit's
first poll is the full sync: when the experiment's newest row is already older than
a backed-off interval, the unit starts backed off that far. Any change resets it to every sync; so does a change in the
experiment's row of the experiments listing (a new room or participant), which
one request per run reads for all experiments. Times are the server's.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import orjson

from hs_sync.config import Config
from hs_sync.land.state import ExtractState
from hs_sync.timeutil import parse_time, to_iso

FIRST_INTERVAL = 600.0  # seconds: the first backed-off interval
FINAL_INTERVAL = 86_400.0  # an experiment whose rooms are all final: verified daily
SLACK = 0.1  # a unit is due this fraction of its interval early (schedules jitter)


class Schedule:
    """Which units are due in this run, and what each poll saw (server time `now`)."""

    def __init__(self, state: ExtractState, config: Config, now: str):
        self.state = state
        self.config = config
        self.now = parse_time(now)

    def due(self, data_type: str, experiment_id: str) -> bool:
        if self.config.full_refresh or self.now is None:
            return True
        poll = self.state.poll(data_type, experiment_id)
        if poll is None:
            return True
        due_at = parse_time(poll["due_at"])
        return due_at is None or self.now >= due_at

    def record(
        self, data_type: str, experiment_id: str, *, changed: bool, verified: bool = False
    ) -> None:
        """Note one poll: reset the backoff on a change, else lengthen it."""
        if self.now is None:
            return
        poll = self.state.poll(data_type, experiment_id)
        final = self.final(experiment_id)
        if poll is None:
            unchanged = self._settled(experiment_id, final)
        else:
            unchanged = 0 if changed else poll["unchanged"] + 1
        interval = self.interval(unchanged, final)
        now = to_iso(self.now)
        due = self.now + timedelta(seconds=interval * (1 - SLACK))
        self.state.set_poll(
            data_type,
            experiment_id,
            unchanged=unchanged,
            polled_at=now,
            due_at=to_iso(due),
            verified_at=now if verified else None,
        )

    def interval(self, unchanged: int, final: bool) -> float:
        """Seconds until the next poll of a unit after `unchanged` polls without change."""
        after = self.config.poll_after_unchanged
        if unchanged < after:
            return 0.0
        if final:
            return FINAL_INTERVAL
        return min(self.config.poll_max_interval_seconds, FIRST_INTERVAL * 2 ** (unchanged - after))

    def _settled(self, experiment_id: str, final: bool) -> int:
        """The backoff a unit's first poll (the full sync) starts at: the longest interval
        no longer than the age of the experiment's newest row (0: none, or recent)."""
        newest = self.state.newest_bucket(experiment_id)
        if newest is None or self.now is None:
            return 1
        quiet = self.now.timestamp() - (newest + self.config.bucket_seconds)
        after = self.config.poll_after_unchanged
        if quiet < self.interval(after, final):
            return 1
        steps = after
        while self.interval(steps + 1, final) <= quiet and self.interval(
            steps + 1, final
        ) > self.interval(steps, final):
            steps += 1
        return steps

    # -- experiment-wide signals -------------------------------------------

    def final(self, experiment_id: str) -> bool:
        """Whether every room the experiment's rooms listing last read is final."""
        return self.state.rooms_final(experiment_id)

    def note_listing(self, experiment_id: str, row: dict | None) -> bool:
        """Compare the experiment's listing row with the last one seen; on a change every
        unit of the experiment is due now. True when it changed."""
        if row is None:
            return False
        digest = hashlib.blake2b(
            orjson.dumps(row, option=orjson.OPT_SORT_KEYS), digest_size=16
        ).hexdigest()
        name = f"listing:{experiment_id}"
        seen = self.state.signal(name)
        if seen is not None and seen[0] == digest:
            return False
        if seen is not None:
            self.state.reset_polls(experiment_id)
        self.state.set_signal(name, digest, self._now())
        return seen is not None

    def _now(self) -> str:
        return to_iso(self.now if self.now is not None else datetime.now(timezone.utc))
