"""One request budget per API key, shared by every warehouse and process on the machine."""

from __future__ import annotations

import threading

import pytest

from hs_sync.api.budget import budget_for, ledger_path
from hs_sync.config import load_config
from hs_sync.errors import BudgetExhausted
from hs_sync.run import sync
from hs_sync.warehouse import user_state_dir
from tests.extract_helpers import make_config

PER_HOUR = 40  # small, so that two syncs of the small dataset spend it quickly


def _api_requests(sim) -> list[dict]:
    return [r for r in sim.requests if "/_sim/" not in r["path"]]


def test_two_warehouses_on_one_key_never_exceed_the_hourly_budget_together(sim, tmp_path):
    sim.set_rate_limits(per_hour=PER_HOUR)  # the server refuses what the budget lets through
    configs = [
        make_config(sim, tmp_path / name, budget_per_hour=PER_HOUR, concurrency=2, page_size=200)
        for name in ("a", "b")
    ]
    summaries: dict[int, object] = {}
    start = threading.Barrier(2)

    def run(i: int) -> None:
        start.wait()
        summaries[i] = sync(configs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sent = _api_requests(sim)
    assert 429 not in {r["status"] for r in sent}, "the two runs overspent the key together"
    assert len(sent) == sum(s.requests for s in summaries.values()) == PER_HOUR
    assert all(s.budget["exhausted"] and s.exit_code == 1 for s in summaries.values())
    # each run's summary says how much of the hour the other run used
    for i, summary in summaries.items():
        other = summaries[1 - i]
        assert summary.budget["used_by_other_runs"] == other.requests
        assert summary.budget["remaining_this_hour"] == 0

    # A third warehouse on the same key, later in the hour, sends nothing at all.
    before = len(sim.requests)
    with pytest.raises(BudgetExhausted):
        sync(make_config(sim, tmp_path / "c", budget_per_hour=PER_HOUR))
    assert len(sim.requests) == before


def test_the_ledger_is_named_by_a_hash_and_kept_per_api_and_key(sim, tmp_path):
    config = make_config(sim, tmp_path / "wh", state_dir=tmp_path / "state")
    budget = budget_for(config)
    budget.settle(budget.acquire("experiments"))
    path = ledger_path(user_state_dir(config.state_dir), config.base_url, config.api_key)
    assert budget.path == path and path.parent == tmp_path / "state"
    assert config.api_key not in path.name and path.stat().st_mode & 0o077 == 0
    assert config.api_key.encode() not in path.read_bytes()
    # another key, or the same key at another API, is another budget
    assert ledger_path(path.parent, config.base_url, "other") != path
    assert ledger_path(path.parent, "https://elsewhere/api/v3", config.api_key) != path
    again = budget_for(config)
    assert again.state()["used_by_other_runs"] == 1 and again.state()["used"] == 0


def test_state_dir_follows_the_setting_then_the_environment(tmp_path):
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    assert user_state_dir(None, env) == tmp_path / "xdg" / "hs-sync"
    env["HS_SYNC_STATE_DIR"] = str(tmp_path / "override")
    assert user_state_dir(None, env) == tmp_path / "override"
    assert user_state_dir(tmp_path / "setting", env) == tmp_path / "setting"


def test_a_bucket_warehouse_keeps_its_local_part_in_the_state_dir(tmp_path):
    """The ledgers and a bucket warehouse's default local folder share one state folder."""
    config = load_config(env={}, warehouse="s3://lab-data/study", state_dir=str(tmp_path / "state"))
    assert config.warehouse_uri == "s3://lab-data/study"
    assert config.warehouse.parent == tmp_path / "state" / "warehouses"
    assert config.warehouse.name.startswith("lab-data_study")
