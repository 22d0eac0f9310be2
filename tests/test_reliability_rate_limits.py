"""Rate limits at the published values (1000/hour per key, 100/minute per endpoint).

The simulator enforces both limits on a sped-up clock that the sync's request
budget shares: a minute passes in a second, and an hour can be skipped. The
sync must never meet a 429: it waits for the minute budget itself, and when
the hourly budget is spent it stops cleanly (exit 1, progress saved, the time
to resume), and a later run finishes the job.
"""

from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner

from hs_sync.cli import main
from hs_sync.land.state import ExtractState
from hs_sync.registry import BY_NAME
from hs_sync.run import sync
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import assert_landed_equals_simulator, make_config
from tests.warehouse_helpers import query

PER_HOUR = 1000  # the published per-key limit
PER_MINUTE = 100  # the published per-endpoint limit
SPEED = 60.0  # one simulated minute per real second


class SpedUpClock:
    """Wall-clock seconds that run SPEED times faster; `advance` skips ahead."""

    def __init__(self, speed: float):
        self.speed = speed
        self._base = time.time()
        self._start = time.monotonic()
        self._skipped = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            elapsed = (time.monotonic() - self._start) * self.speed
            return self._base + elapsed + self._skipped

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0) / self.speed)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._skipped += seconds


def _api_requests(sim) -> list[dict]:
    return [r for r in sim.requests if "/_sim/" not in r["path"]]


@pytest.mark.slow
def test_published_limits_never_429_and_hourly_exhaustion_resumes(sim_factory, tmp_path):
    sim = sim_factory(seed=5, scale=0.3)
    clock = SpedUpClock(SPEED)
    sim.set_rate_limits(PER_HOUR, PER_MINUTE, clock=clock.time)
    root = tmp_path / "wh"
    # Pages of 10 rows: the data needs well over 1000 requests, and the events
    # endpoint alone several minutes' worth of its 100 a minute.
    config = make_config(
        sim,
        root,
        page_size=8,
        budget_per_hour=PER_HOUR,
        budget_per_minute=PER_MINUTE,
        retry_max_wait_seconds=5.0,
    )

    first = sync(config, clock=clock)

    statuses = [r["status"] for r in _api_requests(sim)]
    assert 429 not in statuses, "the budget let a request meet the server's limit"
    assert first.exit_code == 1
    assert first.budget["exhausted"] and first.budget["remaining_this_hour"] == 0
    assert first.budget["waited_seconds"] > 60, "the minute limit was never reached"
    assert len(statuses) == first.requests <= PER_HOUR
    resume_at = parse_time(first.budget["resume_at"])
    assert resume_at.timestamp() > clock.time()
    assert "budget" in first.errors
    with ExtractState(Warehouse(root)) as state:
        saved_windows = len(state.ledger())
        assert saved_windows > 0, "completed windows are kept"

    # The command line, within the hour: one clear line, exit 1, no request sent.
    before = len(sim.requests)
    env = {
        "HYPERSTUDY_API_KEY": sim.api_key,
        "HYPERSTUDY_BASE_URL": sim.base_url,
        "HYPERSTUDY_ORG_ID": "",
    }
    result = CliRunner().invoke(main, ["sync", "--warehouse", str(root)], env=env)
    assert result.exit_code == 1, result.output
    assert "budget spent" in result.output and "resume after" in result.output
    assert "progress is saved" in result.output
    assert len(sim.requests) == before

    # An hour later the next run finishes the job, still without a single 429.
    clock.advance(3600)
    sim.reset_requests()
    resumed = sync(config, clock=clock)

    assert resumed.exit_code == 0, resumed.errors
    assert 429 not in {r["status"] for r in _api_requests(sim)}
    assert resumed.requests <= PER_HOUR
    assert_landed_equals_simulator(sim, root)
    events = BY_NAME["events"]
    (stored,) = query(Warehouse(root), "SELECT count(*) FROM events")[0]
    assert stored == len(sim.dataset.records(events.path))
    print(
        f"\nrate limits: {first.requests} requests then the hour was spent "
        f"({first.budget['waited_seconds']:.0f} simulated s waited for minute budgets), "
        f"{resumed.requests} more after it; 0 responses 429"
    )
