"""The client and sync facing bad input: wrong key, missing scope, unknown experiment, budget."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from hs_simulator.auth import ALL_SCOPES
from hs_sync.api.budget import RequestBudget
from hs_sync.api.client import ApiClient
from hs_sync.cli import main
from hs_sync.errors import AuthError, BadRequestError, BudgetExhausted, NotFoundError
from hs_sync.land.state import ExtractState
from hs_sync.registry import BY_NAME, DEFAULT_TYPES
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import (
    assert_landed_equals_simulator,
    file_bytes,
    files_under,
    make_config,
)

WRONG_KEY = "hst_test_" + "Zq9" * 21 + "x"


def _cli_env(sim, key):
    return {"HYPERSTUDY_API_KEY": key, "HYPERSTUDY_BASE_URL": sim.base_url, "HYPERSTUDY_ORG_ID": ""}


def test_wrong_key_exits_2_with_one_line_and_writes_nothing(sim, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    warehouse = tmp_path / "wh"
    result = CliRunner().invoke(
        main, ["sync", "--warehouse", str(warehouse)], env=_cli_env(sim, WRONG_KEY)
    )

    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "rejected the key" in lines[0] and "401" in lines[0]
    assert not warehouse.exists()
    assert WRONG_KEY not in result.output
    assert all(WRONG_KEY not in record.getMessage() for record in caplog.records)
    assert {r["status"] for r in sim.requests} == {401}
    assert len(sim.requests) == 1  # 401 is never retried


def test_the_key_appears_in_no_file_and_no_log_line(sim, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(
        main,
        ["sync", "--warehouse", str(tmp_path / "wh"), "--json"],
        env=_cli_env(sim, sim.api_key),
    )
    assert result.exit_code == 0, result.output
    assert sim.api_key not in result.output
    assert all(sim.api_key not in record.getMessage() for record in caplog.records)
    for path in files_under(tmp_path):
        assert sim.api_key.encode() not in file_bytes(path), path


def test_missing_scope_skips_that_type_and_syncs_the_rest(sim, tmp_path):
    key = "hst_test_" + "s" * 64
    sim.add_key(key, set(ALL_SCOPES) - {"read:chat"})

    types = ("chat", "events", "videochat", "components", "rooms")  # chat and every mode
    summary = sync(make_config(sim, tmp_path / "wh", api_key=key, types=types))

    assert summary.exit_code == 0, summary.errors
    assert set(summary.skipped_types) == {"chat"}
    assert "read:chat" in summary.skipped_types["chat"]
    others = [dt for dt in DEFAULT_TYPES if dt.name in types and dt.name != "chat"]
    assert len(others) == len(types) - 1
    assert_landed_equals_simulator(sim, tmp_path / "wh", others)
    assert not (tmp_path / "wh" / "raw" / "chat").exists()


def test_unknown_experiment_is_reported_and_the_rest_goes_on(sim, tmp_path):
    real = sim.dataset.experiment_ids[0]
    config = make_config(sim, tmp_path / "wh", experiments=(real, "exp_does_not_exist"))

    summary = sync(config)

    assert summary.exit_code == 1
    assert "exp_does_not_exist" in summary.skipped_experiments
    assert "unknown, or not visible" in summary.skipped_experiments["exp_does_not_exist"]
    assert summary.experiments == [real]
    events = BY_NAME["events"]
    assert summary.rows["events"][real] == len(sim.dataset.records(events.path, experiment_id=real))


def test_hourly_budget_stops_cleanly_with_progress_saved_then_resumes(sim, tmp_path):
    # about five of these go to checking what the API honours, before the units
    small = make_config(sim, tmp_path / "wh", budget_per_hour=20, concurrency=1, page_size=200)

    first = sync(small)

    assert first.exit_code == 1
    assert first.budget["exhausted"] and first.budget["resume_at"]
    assert first.requests <= 20
    assert 429 not in {r["status"] for r in sim.requests}
    with ExtractState(Warehouse(tmp_path / "wh")) as state:
        assert state.ledger(), "completed windows are kept"
    # The spent budget is remembered: an immediate second run stops before any request.
    before = len(sim.requests)
    with pytest.raises(BudgetExhausted):
        sync(small)
    assert len(sim.requests) == before

    resumed = sync(small.replace(budget_per_hour=100_000))
    assert resumed.exit_code == 0, resumed.errors
    assert_landed_equals_simulator(sim, tmp_path / "wh")


def test_400_and_404_are_never_retried_5xx_is(sim_factory):
    sim = sim_factory()
    config = make_config(sim, "unused")
    exp = sim.dataset.experiment_ids[0]
    with ApiClient(config) as client:
        with pytest.raises(BadRequestError):
            client.get(f"data/events/experiment/{exp}", {"limit": 0})
        with pytest.raises(NotFoundError):
            client.get("data/events/experiment/exp_does_not_exist", {"limit": 10})
        assert client.attempts == 2 and client.retries == 0
    sim.faults.configure(http_5xx=1.0, seed=3)
    with ApiClient(config.replace(max_attempts=3)) as client:
        with pytest.raises(Exception, match="HTTP 5"):
            client.get(f"data/events/experiment/{exp}", {"limit": 10})
        assert client.attempts == 3
    sim.faults.configure(seed=3)
    with ApiClient(config.replace(api_key=WRONG_KEY)) as client:
        with pytest.raises(AuthError) as info:
            client.get(f"data/check-access/experiment/{exp}")
        assert WRONG_KEY not in str(info.value)
        assert client.attempts == 1


def test_budget_waits_for_the_minute_and_raises_for_the_hour():
    now = [1_000_000.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    budget = RequestBudget(5, 2, clock=lambda: now[0], sleep=sleep)
    for _ in range(2):
        budget.acquire("data/events/experiment")
    budget.acquire("data/chat/experiment")  # another endpoint: its own minute
    assert not slept
    budget.acquire("data/events/experiment")  # third in a minute on one endpoint: waits
    assert slept and 59 <= sum(slept) <= 61
    budget.acquire("data/events/experiment")
    with pytest.raises(BudgetExhausted) as info:
        budget.acquire("data/sync/experiment")
    assert "resume after" in str(info.value)
    assert budget.state()["exhausted"] and budget.remaining_this_hour() == 0


def test_a_unit_that_keeps_failing_fails_alone_with_its_state_intact(sim, tmp_path):
    sim.faults.configure(http_5xx=0.5, html_5xx=0.5, only_paths="/data/chat/", seed=3)
    types = ("chat", "events", "rooms")  # the failing type and others beside it
    config = make_config(sim, tmp_path / "wh", max_attempts=3, types=types)

    summary = sync(config)

    chat_units = {f"chat/{exp}" for exp in sim.dataset.experiment_ids}
    assert summary.exit_code == 1
    assert set(summary.errors) == chat_units  # every other unit completed
    assert all("5" in reason for reason in summary.errors.values())
    with ExtractState(Warehouse(tmp_path / "wh")) as state:
        marks = state.watermarks()
    assert not any(name == "chat" for name, _ in marks)  # no watermark moved for chat
    assert any(name == "events" for name, _ in marks)
    chat_requests = [r for r in sim.requests if "/data/chat/" in r["path"]]
    assert len(chat_requests) == 3 * len(chat_units)  # bounded attempts, then give up

    sim.faults.configure()  # the outage is over: the next run completes the job
    assert sync(config).exit_code == 0
    landed_types = [dt for dt in DEFAULT_TYPES if dt.name in types]
    assert_landed_equals_simulator(sim, tmp_path / "wh", landed_types)
