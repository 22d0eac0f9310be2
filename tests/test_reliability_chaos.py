"""Chaos: kill -9 a whole run (sync, transform, DuckDB publish, media) 50 times, resume each time.

The simulator runs live, so every run has new rows, rooms and recordings to
pull, normalize, publish and download. Each kill is aimed at one phase (the
run prints a line as it enters each) at a random moment within it, from a
fixed seed; the next run is the resume. At the end one run completes, and the
warehouse is compared with a clean run's, made in one go from the same server:
every DuckDB table and view, row for row in `_key` order (views in full
order), and the media files byte for byte.

Compared without: `_synced_at` and `_raw_file` (lineage: when and in which raw
file a row first landed; the killed runs landed rows in other files at other
times than the clean run, and every lineage value is checked to point at a raw
file that holds the row), and in `media_files` `attempts`, `last_attempt` and
`downloaded_at` (a download interrupted by a kill is attempted again, later).
Tables are compared exactly; in views, floats to 12 significant digits (an
average over the same values differs in its last bits with the order the rows
are stored in, which the kills change).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import orjson
import pytest

from hs_sync.land import rawfile
from hs_sync.load.lines import synced_at_of
from hs_sync.load.parquet import dataset_files
from hs_sync.media.run import download_media
from hs_sync.registry import DATA_TYPES
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import make_config
from tests.warehouse_helpers import content_columns

KILLS = 50
SEED = 20240611
PHASES = ("extract", "transform", "media")
# How long each phase lasts here at most (s): kills land uniformly within it.
PHASE_SECONDS = {"extract": 0.35, "transform": 0.6, "media": 0.2}
MEDIA_HISTORY = {"attempts", "last_attempt", "downloaded_at"}

RUNNER = """
import sys
from hs_sync.config import load_config
from hs_sync.land import rawfile
from hs_sync.media.run import download_media
from hs_sync.run import sync

config = load_config(sys.argv[1])
def progress(event, **info):
    if event == "transform":
        print("phase transform", flush=True)
print("phase extract", flush=True)
summary = sync(config, progress=progress)
print("phase media", flush=True)
media = download_media(config)
print("phase done", flush=True)
sys.exit(summary.exit_code or media.exit_code)
"""


class _Run:
    """One run in a child process; its phase lines are read as they come."""

    def __init__(self, config_file: Path, env: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(config_file)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.phase = "start"
        self.entered: dict[str, threading.Event] = {p: threading.Event() for p in PHASES}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith(b"phase "):
                self.phase = line.split()[1].decode()
                if self.phase in self.entered:
                    self.entered[self.phase].set()
        for event in self.entered.values():
            event.set()  # the run ended: nobody waits for a phase that will not come

    def finish(self) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=120)
        self._reader.join(5)
        return self.proc.returncode, err.decode()


def _env(sim) -> dict:
    env = {**os.environ, "HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}
    env.pop("HS_SYNC_WAREHOUSE", None)
    env.pop("HYPERSTUDY_ORG_ID", None)
    return env


def _tables(con) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = 'main' ORDER BY table_name"
    ).fetchall()


def _contents(db: Path) -> dict[str, list[tuple]]:
    """Every table and view: its rows without lineage and history columns, in a fixed order."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        out = {}
        for name, kind in _tables(con):
            keep = content_columns(con, name)
            if name == "media_files":
                keep = [c for c in keep if c not in MEDIA_HISTORY]
            cols = ", ".join(f'"{c}"' for c in keep)
            order = '"_key"' if "_key" in keep and kind == "BASE TABLE" else "ALL"
            rows = con.execute(f'SELECT {cols} FROM "{name}" ORDER BY {order}').fetchall()
            if kind == "VIEW":  # sums of floats depend on the order rows are stored in
                rows = [tuple(_rounded(v) for v in row) for row in rows]
            out[f"{kind.lower()} {name}"] = [tuple(map(str, keep)), *rows]
        return out
    finally:
        con.close()


def _rounded(value: object) -> object:
    return float(f"{value:.12g}") if isinstance(value, float) else value


def _check_lineage(root: Path) -> int:
    """Every row's `_raw_file` is a raw file holding its key, `_synced_at` its landing time."""
    checked = 0
    con = duckdb.connect(str(root / "hyperstudy.duckdb"), read_only=True)
    try:
        for dt in DATA_TYPES:
            files = con.execute(
                f'SELECT _raw_file, min(_synced_at), list(_key) FROM "{dt.name}" GROUP BY 1'
            ).fetchall()
            for raw_file, synced_at, keys in files:
                path = root / raw_file
                exp = path.parent.parent.name.split("=", 1)[1]
                in_file = {dt.row_key(exp, orjson.loads(line)) for line in rawfile.lines(path)}
                assert set(keys) <= in_file, f"{dt.name}: rows not in their raw file {raw_file}"
                assert synced_at == synced_at_of(path), raw_file
                checked += len(keys)
    finally:
        con.close()
    return checked


def _assert_no_duplicate_keys(root: Path) -> None:
    db = root / "hyperstudy.duckdb"
    if not db.exists():
        return
    con = duckdb.connect(str(db), read_only=True)
    try:
        for dt in DATA_TYPES:
            dupes = con.execute(
                f'SELECT count(*) - count(DISTINCT _key) FROM "{dt.name}"'
            ).fetchone()[0]
            assert dupes == 0, dt.name
    finally:
        con.close()


def _media(root: Path) -> dict[str, bytes]:
    base = root / "media"
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for p in base.rglob("*")
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".part")
    }


@pytest.mark.slow
def test_50_kills_across_every_phase_then_the_warehouse_equals_a_clean_runs(sim_factory, tmp_path):
    sim = sim_factory(seed=21, scale=0.08, live=True)
    root = tmp_path / "chaos"
    config_file = tmp_path / "hs_sync.toml"
    config_file.write_text(
        f'warehouse = "{root}"\npage_size = 20\nconcurrency = 2\nretry_floor_seconds = 0.01\n'
        "budget_per_hour = 1000000\nbudget_per_minute = 1000000\n"
    )
    env = _env(sim)
    rng = random.Random(SEED)
    killed_in: dict[str, int] = {}
    completed = 0
    kills = 0
    while kills < KILLS:
        target = PHASES[kills % len(PHASES)] if rng.random() < 0.85 else rng.choice(PHASES)
        run = _Run(config_file, env)
        run.entered[target].wait(30)
        time.sleep(rng.uniform(0, PHASE_SECONDS[target]))
        phase = run.phase
        if phase in PHASES and run.proc.poll() is None:
            os.kill(run.proc.pid, signal.SIGKILL)
            kills += 1
            killed_in[phase] = killed_in.get(phase, 0) + 1
        code, err = run.finish()
        if code != -signal.SIGKILL:
            completed += 1
            assert code == 0, err
        _assert_no_duplicate_keys(root)
        sim.advance(rng.uniform(20, 90))  # data collection goes on between runs
    # Data collection ends (every session completes, late rows arrive), then one run
    # completes. Room types are pulled again only when a room's updatedAt or status
    # changes, and an active session's rows arrive without either changing; so while
    # a session runs, its newest rows can be missing until it completes (reported).
    sim.advance(4 * 3600)
    final = _Run(config_file, env)
    code, err = final.finish()
    assert code == 0, err
    # The database copies of killed transforms are cleared by the next one.
    assert not list((root / "state").glob(".*.building*"))

    clean_root = tmp_path / "clean"
    clean_config = make_config(sim, clean_root, page_size=1000)
    summary = sync(clean_config)
    media = download_media(clean_config)
    assert summary.exit_code == 0 and media.exit_code == 0, (summary.errors, media.errors)

    chaos, clean = (
        _contents(root / "hyperstudy.duckdb"),
        _contents(clean_root / "hyperstudy.duckdb"),
    )
    assert chaos.keys() == clean.keys()
    for name in clean:
        assert chaos[name] == clean[name], f"{name} differs after {kills} kills"
    rows_compared = sum(len(rows) - 1 for rows in clean.values())
    assert rows_compared > 2000
    data_rows = sum(len(clean[f"base table {dt.name}"]) - 1 for dt in DATA_TYPES)
    assert _check_lineage(root) == data_rows
    assert _media(root) == _media(clean_root) and len(_media(root)) > 10
    # Parquet holds the same keys as DuckDB, each once.
    con = duckdb.connect()
    wh = Warehouse(root)
    for dt in DATA_TYPES:
        files = [str(p) for p in dataset_files(wh, dt.name)]
        if not files:  # a type the sync does not pull by default has no Parquet at all
            assert len(clean[f"base table {dt.name}"]) == 1, dt.name  # the header row only
            continue
        (n, distinct) = con.execute(
            "SELECT count(*), count(DISTINCT _key) FROM read_parquet(?)", [files]
        ).fetchone()
        assert n == distinct == len(clean[f"base table {dt.name}"]) - 1, dt.name
    # Every phase was hit, and the figures for the README.
    assert set(PHASES) <= set(killed_in), killed_in
    print(
        f"\nchaos: {kills} kills {killed_in}, {completed} runs completed between them, "
        f"{rows_compared} rows compared in {len(clean)} tables and views, "
        f"{len(_media(root))} media files compared"
    )
