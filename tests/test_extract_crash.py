"""Kill -9 a sync at random moments, resume: nothing lost, raw files parse, state consistent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from hs_sync.registry import DATA_TYPES, Mode
from hs_sync.state import ExtractState
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import assert_landed_equals_simulator, data_files, landed

KILLS = 22
SEED = 20240501


def _start(config_file: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hs_sync", "sync", "--config", str(config_file), "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _assert_consistent(sim, root: Path) -> None:
    """After any crash: every visible file is whole, and no watermark outruns its data."""
    for dt in DATA_TYPES:
        for path in data_files(root, dt):
            meta = orjson.loads(
                path.with_name(path.name.replace(".ndjson", ".meta.json")).read_bytes()
            )
            lines = path.read_bytes().splitlines()
            assert len(lines) == meta["rows"], path
            for line in lines:
                assert isinstance(orjson.loads(line), dict)
    if not (root / "state" / "extract.sqlite").exists():
        return
    with ExtractState(Warehouse(root)) as state:
        marks = state.watermarks()
        ledger = state.ledger()
    for entry in ledger:
        if entry["batch"]:
            folder = Warehouse(root).raw_dir(entry["data_type"], entry["experiment_id"])
            assert (folder / entry["batch"]).is_dir(), entry
    by_name = {dt.name: dt for dt in DATA_TYPES}
    for (name, exp), mark in marks.items():
        dt = by_name[name]
        have = landed(root, dt).get(exp, {})
        limit = parse_time(mark)
        for record in sim.dataset.records(dt.path, experiment_id=exp):
            if parse_time(record.get(dt.cursor)) < limit:
                assert dt.key_of(record) in have, (
                    f"{name}/{exp}: a row before the watermark is lost"
                )


def test_kill_9_at_random_moments_then_resume_loses_nothing(sim, tmp_path):
    root = tmp_path / "wh"
    config_file = tmp_path / "hs_sync.toml"
    config_file.write_text(
        f'warehouse = "{root}"\npage_size = 100\nconcurrency = 2\n'
        "retry_floor_seconds = 0.01\nbudget_per_hour = 1000000\nbudget_per_minute = 1000000\n"
    )
    env = {
        **os.environ,
        "HYPERSTUDY_API_KEY": sim.api_key,
        "HYPERSTUDY_BASE_URL": sim.base_url,
        "PYTHONHASHSEED": "0",
    }
    env.pop("HS_SYNC_WAREHOUSE", None)
    rng = random.Random(SEED)
    kills = 0
    completed = 0
    while kills < KILLS:
        proc = _start(config_file, env)
        # Python start-up is ~0.5 s; the kills spread over the pulls, renames and state writes.
        time.sleep(rng.uniform(0.4, 2.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        else:
            completed += 1
            assert proc.returncode == 0, proc.stderr.read().decode()
        proc.wait()
        proc.stderr.close()
        _assert_consistent(sim, root)
        if completed and "full_refresh" not in config_file.read_text():
            # Everything is synced: keep interrupting fresh re-reads of everything.
            config_file.write_text(config_file.read_text() + "full_refresh = true\n")
    final = _start(config_file, env)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    _assert_consistent(sim, root)
    assert_landed_equals_simulator(sim, root)
    with ExtractState(Warehouse(root)) as state:
        marks = state.watermarks()
    time_units = {
        (dt.name, exp)
        for dt in DATA_TYPES
        if dt.mode is Mode.TIME
        for exp in sim.dataset.experiment_ids
    }
    assert time_units <= set(marks)
