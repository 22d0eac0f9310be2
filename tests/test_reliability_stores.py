"""Damaged state stores: one line naming the repair, never a traceback; `hs-sync doctor
--repair` sets the file aside and rebuilds it, and the next sync goes on."""

from __future__ import annotations

import os
import shutil

import duckdb
import pytest
from click.testing import CliRunner

from hs_simulator import Simulator
from hs_sync import stores
from hs_sync.cli import main
from hs_sync.config import load_config
from hs_sync.lock import warehouse_lock
from hs_sync.warehouse import Warehouse
from tests.warehouse_helpers import query

TYPES = ["--type", "events", "--type", "rooms", "--type", "participants"]
STORES = {"state": "state/state.sqlite", "database": "hyperstudy.duckdb"}


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    sim = Simulator(seed=3, scale=0.2)
    sim.start()
    root = tmp_path_factory.mktemp("stores") / "wh"
    env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}
    result = CliRunner().invoke(
        main, ["sync", "--no-media", *TYPES, "--warehouse", str(root)], env=env
    )
    assert result.exit_code == 0, result.output
    try:
        yield sim, root, env
    finally:
        sim.stop()


def _damage(path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(os.urandom(4096) + b"not a database at all" * 100)
    else:  # cut in half
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("how", ["garbage", "truncated"])
@pytest.mark.parametrize("store", ["state", "database"])
def test_a_damaged_store_is_one_line_then_doctor_repairs_it(synced, tmp_path, store, how):
    sim, original, env = synced
    root = tmp_path / "wh"
    shutil.copytree(original, root)
    rows_before = query(Warehouse(root), "SELECT count(*) FROM events")[0][0]
    path = root / STORES[store]
    if store == "state" and how == "truncated":
        # a small SQLite file cut in half may still open: cut into its first page
        path.write_bytes(path.read_bytes()[:1000])
    else:
        _damage(path, how)
    runner = CliRunner()
    wh = ["--warehouse", str(root)]

    commands = [["status"], ["sync", "--no-media", *TYPES], ["check", "--no-api"], ["rebuild"]]
    if store == "database":
        commands.append(["export", "--level", "experiment", "--id", "x", "--format", "csv"])
        commands[-1] += ["--out", str(tmp_path / "out.csv")]
    for args in commands:
        result = runner.invoke(main, [*args, *wh], env=env)
        if store != "database" and args[0] == "check":
            assert result.exit_code == 1, result.output  # the state_stores check fails
            assert "state_stores" in result.output and "doctor --repair" in result.output
            continue
        assert result.exit_code == 2, (args, result.output)
        line = _one_line(result)
        assert STORES[store] in line and "hs-sync doctor --repair" in line, line

    result = runner.invoke(main, ["doctor", *wh])
    assert result.exit_code == 1 and "DAMAGED" in result.output, result.output
    result = runner.invoke(main, ["doctor", "--repair", *wh])
    assert result.exit_code == 0, result.output
    assert "was damaged" in result.output
    aside = list((root / "state" / "damaged").iterdir())
    assert any(p.name.startswith(path.name) for p in aside), aside
    assert runner.invoke(main, ["doctor", *wh]).exit_code == 0

    result = runner.invoke(main, ["sync", "--no-media", *TYPES, *wh], env=env)
    assert result.exit_code == 0, result.output
    assert query(Warehouse(root), "SELECT count(*) FROM events")[0][0] == rows_before
    result = runner.invoke(main, ["check", "--no-api", "--json", *wh])
    assert '"state_stores"' in result.output


def test_a_damaged_state_file_stops_media_too_and_is_started_afresh(synced, tmp_path):
    sim, original, env = synced
    root = tmp_path / "wh"
    shutil.copytree(original, root)
    _damage(root / STORES["state"], "garbage")
    runner = CliRunner()
    result = runner.invoke(main, ["media", "--warehouse", str(root)], env=env)
    assert result.exit_code == 2 and "state/state.sqlite" in _one_line(result)
    result = runner.invoke(main, ["doctor", "--repair", "--json", "--warehouse", str(root)])
    assert result.exit_code == 0, result.output
    assert '"repaired": "started afresh; database rebuilt from raw/' in result.output


def test_repair_rebuilds_the_configured_types_within_the_memory_limit(synced, tmp_path):
    """The database is rebuilt as `hs-sync rebuild` would: the configured types, under
    the configured memory limit."""
    sim, original, env = synced
    root = tmp_path / "wh"
    shutil.copytree(original, root)
    wh = Warehouse(root)
    events = query(wh, "SELECT count(*) FROM events")[0][0]
    _damage(wh.db_path, "garbage")
    # a limit no rebuild fits in stops it: the setting reached DuckDB
    with warehouse_lock(wh, 1.0), pytest.raises(duckdb.OutOfMemoryException):
        stores.repair(wh, load_config(env={}, warehouse=root, memory_limit="1KB"))

    _damage(wh.db_path, "garbage")
    config = tmp_path / "hs_sync.toml"
    config.write_text(f'warehouse = "{root}"\ntypes = ["events"]\n')
    result = CliRunner().invoke(main, ["doctor", "--repair", "--config", str(config)])
    assert result.exit_code == 0, result.output
    held = "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rooms)"
    assert query(wh, held)[0] == (events, 0)
