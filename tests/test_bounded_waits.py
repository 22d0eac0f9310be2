"""Every wait is bounded: a trickling server, the run's own time limit and a Retry-After
beyond it each end the run cleanly (exit 1, progress saved, one line saying why)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from hs_sync.api.client import ApiClient
from hs_sync.cli import main
from hs_sync.config import Config
from hs_sync.errors import RunOutOfTime, ServerTooSlow
from hs_sync.run import sync
from hs_sync.statestore import StateReader
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import make_config


def _events(sim) -> str:
    return f"data/events/experiment/{sim.dataset.experiment_ids[0]}"


def _status(config: Config) -> str:
    with StateReader(Warehouse(config.warehouse)) as reader:
        return reader.runs()[-1]["status"]


def test_the_default_deadline_ends_a_trickling_server_within_a_minute():
    config = Config(api_key="k")
    assert config.request_deadline_seconds < 60
    assert config.max_run_seconds is None


def test_a_trickling_server_ends_the_command_with_one_line_and_no_retry(sim, tmp_path):
    sim.faults.configure(trickle=1.0, trickle_seconds=0.05)
    (tmp_path / "hs_sync.toml").write_text(
        f'warehouse = "{tmp_path / "wh"}"\nrequest_deadline_seconds = 1.0\n'
        "retry_floor_seconds = 0.01\nmedia = false\n"
    )
    env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}
    result = CliRunner().invoke(main, ["sync", "--config", str(tmp_path / "hs_sync.toml")], env=env)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hs-sync sync: GET experiments: the response was still arriving")
    assert "request_deadline_seconds" in lines[0]
    assert [r["path"] for r in sim.requests] == ["/api/v3/experiments"]  # never retried


def test_a_trickling_data_endpoint_stops_the_run_with_progress_saved(sim, tmp_path):
    sim.faults.configure(trickle=1.0, trickle_seconds=0.05, only_paths="/data/events/")
    config = make_config(sim, tmp_path / "wh", types=("events",), request_deadline_seconds=1.0)
    summary = sync(config, transform=False)
    assert summary.exit_code == 1
    assert list(summary.errors) == ["server"], summary.errors
    assert "request_deadline_seconds" in summary.errors["server"]
    assert not summary.budget.get("exhausted")  # the request budget is not what ran out
    assert summary.retries == 0
    trickled = [r["path"] for r in sim.requests if r.get("fault") == "trickle"]
    assert trickled and max(Counter(trickled).values()) == 1
    assert _status(config) == "partial"


def test_after_a_server_too_slow_no_request_of_the_run_is_sent(sim, tmp_path):
    sim.faults.configure(trickle=1.0, trickle_seconds=0.05, only_paths="/data/events/")
    config = make_config(sim, tmp_path / "wh", request_deadline_seconds=0.5)
    with ApiClient(config) as client:
        with pytest.raises(ServerTooSlow):
            client.get(_events(sim), {"limit": 5})
        sent = len(sim.requests)
        with pytest.raises(ServerTooSlow, match="request_deadline_seconds"):
            client.get("experiments")  # answers at once, but the run is over
        with ApiClient(config, client.budget) as media:  # the media step shares the budget
            with pytest.raises(ServerTooSlow):
                media.get("health")
    assert len(sim.requests) == sent


def test_the_run_deadline_also_bounds_a_body_being_read(sim, tmp_path):
    sim.faults.configure(trickle=1.0, trickle_seconds=0.05, only_paths="/data/events/")
    config = make_config(sim, tmp_path / "wh", request_deadline_seconds=60, max_run_seconds=1)
    with ApiClient(config) as client, pytest.raises(RunOutOfTime, match="max_run_seconds"):
        client.get(_events(sim), {"limit": 5})


def test_max_run_seconds_ends_the_run_cleanly(sim, tmp_path):
    sim.faults.configure(slow=1.0, slow_seconds=0.3, only_paths="/data/events/")
    config = make_config(
        sim, tmp_path / "wh", types=("events",), page_size=20, concurrency=1, max_run_seconds=1.5
    )
    summary = sync(config, transform=False)
    assert summary.exit_code == 1
    assert list(summary.errors) == ["deadline"], summary.errors
    assert "the run reached max_run_seconds (1.5 s)" in summary.errors["deadline"]
    assert _status(config) == "partial"
    sim.faults.configure()
    again = sync(config.replace(max_run_seconds=None), transform=False)  # resumes
    assert again.exit_code == 0 and again.total_rows > 0
    with pytest.raises(RunOutOfTime):  # no request starts after the end
        ApiClient(config.replace(max_run_seconds=1e-9)).get("health")


def test_a_retry_after_beyond_the_run_time_left_stops_with_the_time_to_resume(sim, tmp_path):
    sim.faults.configure(rate_429=1.0, retry_after=25, only_paths="/data/events/")
    config = make_config(
        sim,
        tmp_path / "wh",
        types=("events",),
        retry_max_wait_seconds=30.0,  # a wait the run would take, were it not for its limit
        max_run_seconds=20,
    )
    before = datetime.now(timezone.utc)
    summary = sync(config, transform=False)
    assert summary.exit_code == 1
    assert list(summary.errors) == ["deadline"], summary.errors
    message = summary.errors["deadline"]
    assert "the API (Retry-After) asks to wait 25 s" in message and "max_run_seconds" in message
    resume = datetime.fromisoformat(summary.budget["resume_at"].replace("Z", "+00:00"))
    assert 20 <= (resume - before).total_seconds() <= 60
    assert f"resume after {summary.budget['resume_at']}" in message
    assert summary.retries == 0  # it did not sleep through the wait
    limited = [r["path"] for r in sim.requests if r.get("fault") == "rate_429"]
    assert limited and max(Counter(limited).values()) == 1


def test_a_wait_for_the_minute_budget_beyond_the_run_time_stops_too(sim, tmp_path):
    config = make_config(
        sim, tmp_path / "wh", budget_per_minute=1, concurrency=1, max_run_seconds=30
    )
    with ApiClient(config) as client:
        client.get(_events(sim), {"limit": 1})
        with pytest.raises(RunOutOfTime, match="per-minute request budget asks to wait"):
            client.get(_events(sim), {"limit": 1})


def test_max_run_seconds_is_validated():
    from hs_sync.config import load_config
    from hs_sync.errors import ConfigError

    assert load_config(env={}, max_run_seconds="90").max_run_seconds == 90.0
    with pytest.raises(ConfigError, match="max_run_seconds"):
        Config(api_key="k", max_run_seconds=0)


def test_a_slow_server_is_a_clean_stop_of_its_own_kind():
    assert ServerTooSlow.kind == "server" and RunOutOfTime.kind == "deadline"
