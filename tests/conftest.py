"""Shared fixtures: one simulator and one synced warehouse per test run, plus simulators
a test owns (started on a free loopback port, stopped after the test).

- `sim` is the session's simulator (seed 1, small scale, not live). A test may read it,
  sync from it and reset its request log; one that changes what it serves (late rows,
  clock, faults, rate limits, hooks) fails at teardown: such a test takes its own from
  `sim_factory`.
- `synced_world` is a warehouse synced once from `sim`. Tests that only read it use it
  directly (a test that writes to it fails at teardown); tests that write take a copy
  with `synced_copy` (or `synced_world.copy(folder)`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hs_simulator import Simulator
from hs_sync.config import Config
from hs_sync.sync import RunSummary, sync
from tests.extract_helpers import make_config

SMALL_SCALE = 0.3  # about 3,000 events: every type present, fast to generate
SHARED_SEED = 1


@dataclass(frozen=True)
class SyncedWorld:
    """The session simulator, a warehouse synced from it once, and that sync's summary."""

    sim: Simulator
    config: Config
    summary: RunSummary

    @property
    def root(self) -> Path:
        return Path(self.config.warehouse)

    def copy(self, folder: Path, **changes: Any) -> Config:
        """The synced warehouse copied to `folder`/warehouse, so a test can change it alone."""
        target = Path(folder) / "warehouse"
        shutil.copytree(self.root, target)
        return self.config.replace(warehouse=target, **changes)


def _served_state(sim: Simulator) -> tuple:
    """What a test could change about what the simulator serves or how it answers."""
    app = sim._app
    limiter = sim._limiter
    return (
        sim.dataset.clock.ms,
        sim.dataset.entity_version,
        len(sim.defects.get("lateRowsAdded", ())),
        dict(sim.dataset.recording_overrides),
        dict(sim.faults.rates),
        sim.faults.only_paths,
        dict(app.media_faults),
        app.media_url_ttl,
        app.on_request,
        (limiter.per_hour, limiter.per_minute),
    )


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="session")
def shared_sim() -> Iterator[Simulator]:
    """The session's small simulator (seed 1, not live); prefer the `sim` fixture."""
    simulator = Simulator(seed=SHARED_SEED, scale=SMALL_SCALE)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def sim(shared_sim: Simulator) -> Iterator[Simulator]:
    """The session's simulator with an empty request log; a test must leave what it
    serves unchanged (tests that change it use `sim_factory`)."""
    shared_sim.reset_requests()
    before = _served_state(shared_sim)
    yield shared_sim
    after = _served_state(shared_sim)
    shared_sim.reset_requests()
    if after != before:
        shared_sim.faults.configure()
        shared_sim.set_rate_limits(None, None)
        shared_sim.on_request(None)
        shared_sim._app.media_faults.clear()
        pytest.fail(
            "the test changed the shared simulator (data, clock, faults, limits or hooks); "
            "it must take its own from sim_factory"
        )


@pytest.fixture(scope="session")
def _synced_once(shared_sim: Simulator, tmp_path_factory) -> SyncedWorld:
    root = tmp_path_factory.mktemp("synced") / "warehouse"
    summary = sync(make_config(shared_sim, root))
    assert summary.exit_code == 0, summary.errors
    return SyncedWorld(shared_sim, make_config(shared_sim, root), summary)


@pytest.fixture
def synced_world(_synced_once: SyncedWorld, sim: Simulator) -> Iterator[SyncedWorld]:
    """The warehouse synced once per run from `sim`: read it, never write to it."""
    before = _files(_synced_once.root)
    yield _synced_once
    after = _files(_synced_once.root)
    changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
    if changed:
        pytest.fail(
            f"the test wrote to the shared synced warehouse ({', '.join(changed[:5])}); "
            "it must use synced_copy"
        )


@pytest.fixture
def synced_copy(_synced_once: SyncedWorld, sim: Simulator, tmp_path: Path) -> Config:
    """A config for a private copy of the synced warehouse (in tmp_path/warehouse)."""
    return _synced_once.copy(tmp_path)


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., Simulator]]:
    """`sim_factory(**Simulator kwargs)` -> a started simulator; all are stopped at teardown."""
    started: list[Simulator] = []

    def make(**kwargs) -> Simulator:
        kwargs.setdefault("scale", SMALL_SCALE)
        simulator = Simulator(**kwargs)
        simulator.start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()
