"""The SDK's other read endpoints as data types: variables, deployment sessions, agents."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from hs_simulator import Simulator, extras
from hs_sync.checks import run_checks
from hs_sync.cli import main
from hs_sync.registry import DATA_TYPES
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.checks_helpers import copy_of, execute
from tests.conftest import SMALL_SCALE
from tests.extract_helpers import make_config
from tests.warehouse_helpers import query

NEW_TYPES = ("variables", "deployment_sessions", "agent_decisions", "agent_runs")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    sim = Simulator(seed=1, scale=SMALL_SCALE, defects=False)
    sim.start()
    try:
        every = tuple(dt.name for dt in DATA_TYPES)  # deployment sessions are opt-in
        config = make_config(sim, tmp_path_factory.mktemp("sdk") / "wh", types=every)
        summary = sync(config)
        assert summary.exit_code == 0, summary.errors
        yield sim, config, summary
    finally:
        sim.stop()


def _rows(config, sql: str) -> list[tuple]:
    return sorted(query(Warehouse(config.warehouse), sql), key=repr)


def test_variables_per_room_with_room_and_experiment_from_the_pull(world):
    sim, config, summary = world
    ds = sim.dataset
    want = sorted(
        (
            ds.room_experiment[room],
            room,
            w["participantId"],
            w["stateId"],
            w["variable"],
            None if w["value"] is None else orjson.dumps(w["value"]).decode(),
            w["source"],
        )
        for room in ds.rooms
        if room in {r["id"] for r in ds.records("rooms")}
        for w in extras.variable_rows(ds, room)
    )
    got = _rows(
        config,
        "SELECT experimentId, roomId, participantId, stateId, variable, value, source "
        "FROM variables",
    )
    assert want and sorted(got) == want
    # one request per room (no experiment-scope read: the endpoint has none)
    reads = [w for w in summary.windows if w["data_type"] == "variables"]
    assert {w["scope"] for w in reads} == {"room"}


def test_deployment_sessions_per_deployment(world):
    sim, config, _ = world
    want = sorted(
        (r["id"], r["experimentId"], r["deploymentId"], r["status"], r["participantCount"])
        for r in sim.dataset.records("rooms")
    )
    got = _rows(
        config,
        "SELECT id, experimentId, deploymentId, status, participantCount FROM deployment_sessions",
    )
    assert sorted(got) == want


def test_agent_decisions_and_runs(world):
    sim, config, _ = world
    ds = sim.dataset
    decisions = [r for exp in ds.experiment_ids for r in extras.agent_decision_rows(ds, exp)]
    got = _rows(
        config,
        "SELECT recordType, id, experimentId, roomId, participantId, seq, value "
        "FROM agent_decisions",
    )
    want = sorted(
        (
            r["_type"],
            r["id"],
            ds.room_experiment[r["roomId"]],
            r["roomId"],
            r["participantId"],
            r.get("seq"),
            None if "value" not in r else orjson.dumps(r["value"]).decode(),
        )
        for r in decisions
    )
    assert want and sorted(got) == want
    runs = [r for exp in ds.experiment_ids for r in extras.agent_run_rows(ds, exp)]
    got = _rows(
        config,
        "SELECT id, experimentId, roomId, totalInputTokens, totalCostUsd, orphaned FROM agent_runs",
    )
    want = sorted(
        (
            r["id"],
            ds.room_experiment[r["roomId"]],
            r["roomId"],
            r["totalInputTokens"],
            r["totalCostUsd"],
            r["orphaned"],
        )
        for r in runs
    )
    assert want and sorted(got) == want


def test_no_check_reports_a_false_finding(world):
    _, config, _ = world
    failed = {r.name: r.sample for r in run_checks(config) if r.status in ("failed", "error")}
    assert failed == {}


def test_check_room_names_each_incomplete_participant_data_type(world, tmp_path):
    sim, config, _ = world
    damaged = copy_of(config, tmp_path)
    room, participant = query(
        Warehouse(damaged.warehouse),
        "SELECT roomId, participantId FROM events GROUP BY ALL "
        "HAVING count(*) > 3 ORDER BY roomId, participantId LIMIT 1",
    )[0]
    total = sim.dataset.query("events", sim.dataset.room_experiment[room],
                              {"roomId": room, "participantId": participant}, limit=0)[0]  # fmt: skip
    execute(
        damaged,
        "DELETE FROM events WHERE _key IN (SELECT _key FROM events "
        "WHERE roomId = ? AND participantId = ? ORDER BY _key LIMIT 2)",
        [room, participant],
    )
    env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}
    args = ["check", "--warehouse", str(damaged.warehouse), "--room", room]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1, result.output
    assert f"{room} {participant}: events: {total - 2} of {total} rows" in result.output
    out = CliRunner().invoke(main, [*args, "--json"], env=env)
    (check,) = orjson.loads(out.output)["checks"]
    assert check["name"] == "participant_counts" and check["count"] == 1

    intact = CliRunner().invoke(main, ["check", "--warehouse", str(config.warehouse),
                                       "--room", room], env=env)  # fmt: skip
    assert intact.exit_code == 0, intact.output
