"""Kill -9 a sync at random moments, resume: nothing lost, raw files parse, state consistent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from hs_sync import statestore
from hs_sync.config import load_config
from hs_sync.land import rawfile
from hs_sync.land.state import ExtractState
from hs_sync.registry import DATA_TYPES, Mode
from hs_sync.run import sync
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import assert_landed_equals_simulator, data_files, landed, make_config

KILLS = 22
SEED = 20240501


# The extraction alone (the normalizer has its own crash tests), as `hs-sync sync` runs it.
RUNNER = (
    "import sys; from hs_sync.config import load_config; from hs_sync.run import sync; "
    "sys.exit(sync(load_config(sys.argv[1]), transform=False).exit_code)"
)


def _start(config_file: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(config_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


class _Checker:
    """After any crash: every visible file is whole, and no watermark outruns its data."""

    def __init__(self, sim, root: Path):
        self.sim = sim
        self.root = root
        self.seen: set[Path] = set()  # data files are immutable once visible: check each once

    def __call__(self) -> None:
        root = self.root
        for dt in DATA_TYPES:
            for path in data_files(root, dt):
                if path in self.seen:
                    continue
                meta_path = path.with_name(rawfile.stem(path.name) + ".meta.json")
                lines = list(rawfile.lines(path))
                assert len(lines) == orjson.loads(meta_path.read_bytes())["rows"], path
                assert all(isinstance(orjson.loads(line), dict) for line in lines), path
                self.seen.add(path)
        if not statestore.path(Warehouse(root)).exists():
            return
        with ExtractState(Warehouse(root)) as state:
            marks = state.watermarks()
            ledger = state.ledger()
        for entry in ledger:
            if entry["batch"]:
                folder = Warehouse(root).raw_dir(entry["data_type"], entry["experiment_id"])
                assert (folder / entry["batch"]).is_dir(), entry
        by_name = {dt.name: dt for dt in DATA_TYPES}
        have_by_type: dict[str, dict] = {}
        for (name, exp), mark in marks.items():
            dt = by_name[name]
            if name not in have_by_type:
                have_by_type[name] = landed(root, dt)
            have = have_by_type[name].get(exp, {})
            limit = parse_time(mark)
            for record in self.sim.dataset.records(dt.path, experiment_id=exp):
                if parse_time(record.get(dt.cursor)) < limit:
                    assert dt.key_of(record) in have, (
                        f"{name}/{exp}: a row before its watermark is lost"
                    )


def _visible_files(root: Path) -> int:
    raw = root / "raw"
    return sum(1 for _, _, names in os.walk(raw) for name in names if rawfile.is_data_file(name))


@pytest.mark.slow  # 23 sync processes, 22 of them killed: chaos, in `make slow`
def test_kill_9_at_random_moments_then_resume_loses_nothing(sim, tmp_path):
    root = tmp_path / "wh"
    config_file = tmp_path / "hs_sync.toml"
    config_file.write_text(
        f'warehouse = "{root}"\npage_size = 10\nconcurrency = 2\n'
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
    check = _Checker(sim, root)
    kills = 0
    completed = 0
    kills_before_first_completion = None
    progressed = 0  # kills after which more data files were durable than before
    while kills < KILLS:
        files_before = len(check.seen)
        proc = _start(config_file, env)
        # A moment is "after `target` more data files became visible, plus up to 30 ms":
        # random but tied to the run's progress, so a slow machine moves the kills
        # with the work instead of before it.
        target = _visible_files(root) + rng.randint(0, 6)
        while proc.poll() is None and _visible_files(root) < target:
            time.sleep(0.003)
        time.sleep(rng.uniform(0.0, 0.03))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        else:
            completed += 1
            assert proc.returncode == 0, proc.stderr.read().decode()
            if kills_before_first_completion is None:
                kills_before_first_completion = kills
        proc.wait()
        proc.stderr.close()
        check()
        progressed += len(check.seen) > files_before
        if completed and "full_refresh" not in config_file.read_text():
            # Everything is synced: keep interrupting fresh re-reads of everything.
            config_file.write_text(config_file.read_text() + "full_refresh = true\n")
    # The kills interrupted real work: the first sync needed several resumes, and most
    # killed runs had landed files before they died.
    assert kills_before_first_completion is None or kills_before_first_completion >= 2
    assert progressed >= KILLS // 2
    final = _start(config_file, env)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    check()
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


def test_leftovers_of_killed_writes_are_swept_by_the_next_run(sim, tmp_path):
    config = make_config(sim, tmp_path / "wh", types=("events", "recordings"))
    assert sync(config).exit_code == 0
    raw = tmp_path / "wh" / "raw"
    batch = next((raw / "events").glob("experiment_id=*/*"))
    half_file = batch / ".00007.ndjson.4242.tmp"
    half_file.write_bytes(b'{"id": "half')
    staged = batch.parent / f".{batch.name[:-2]}-merge"  # a staged batch never published
    staged.mkdir()
    (staged / "00000.ndjson").write_bytes(b"{}\n")

    assert sync(config).exit_code == 0

    assert not half_file.exists() and not staged.exists()
    assert batch.is_dir()  # published batches are never touched


@pytest.mark.slow
def test_kill_9_during_bisection_then_resume_loses_and_duplicates_nothing(sim_factory, tmp_path):
    sim = sim_factory()  # its data changes
    exp = sim.dataset.experiment_ids[0]
    root = tmp_path / "wh"
    config_file = tmp_path / "hs_sync.toml"
    config_file.write_text(
        f'warehouse = "{root}"\npage_size = 10\nexperiments = ["{exp}"]\ntypes = ["events"]\n'
        "retry_floor_seconds = 0.01\nbudget_per_hour = 1000000\nbudget_per_minute = 1000000\n"
    )
    env = {**os.environ, "HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}
    env.pop("HS_SYNC_WAREHOUSE", None)
    config = load_config(config_file, env=env)
    assert sync(config, transform=False).exit_code == 0
    events = next(dt for dt in DATA_TYPES if dt.name == "events")
    kills = 0
    for round_, wanted in enumerate((1, 3, 6)):
        late = sim.add_late_rows("events", 4, experiment_id=exp, behind_seconds=(round_ + 2) * 3600)
        seen = []
        reached = threading.Event()

        def verification(entry, seen=seen, reached=reached, wanted=wanted):
            params = entry.get("params") or {}
            if params.get("order") == "asc" and params.get("startTime"):
                seen.append(entry)
                if len(seen) >= wanted:
                    reached.set()

        sim.on_request(verification)
        proc = _start(config_file, env)
        if reached.wait(timeout=60) and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        proc.stderr.close()
        sim.on_request(None)
        for path in data_files(root, events):  # every visible file is whole
            assert all(isinstance(orjson.loads(line), dict) for line in rawfile.lines(path))
        summary = sync(config, transform=False)  # resume
        assert summary.exit_code == 0, summary.errors
        got = landed(root, events)[exp]
        assert all(events.key_of(row) in got for row in late)
        want = {events.key_of(r): r for r in sim.dataset.records("events", exp)}
        assert got == want  # by key: nothing lost, nothing extra
        sim.reset_requests()
        assert sync(config, transform=False).total_rows == 0
        assert len([r for r in sim.requests if "/data/events/" in r["path"]]) == 1
    assert kills >= 2
