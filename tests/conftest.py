"""Shared fixtures: one simulator and one synced warehouse per test run, plus simulators
a test owns (started on a free loopback port, stopped after the test).

- `sim` is the session's simulator (seed 1, small scale, not live). A test may read it,
  sync from it, and set faults, limits and hooks (reset after each test); one that
  changes the data it serves (late rows, clock, overrides) fails at teardown: such a
  test takes its own from `sim_factory`.
- `clean_sim` and `clean_synced_copy` are the same without planted defects.
- `synced_world` is a warehouse synced once from `sim`. Tests that only read it use it
  directly (a test that writes to it fails at teardown); tests that write take a copy
  with `synced_copy` (or `synced_world.copy(folder)`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hs_simulator import Simulator
from hs_simulator.dataset import LEGACY_URL_TTL
from hs_sync.config import Config
from hs_sync.run import RunSummary, sync
from tests.checks_helpers import copy_of
from tests.extract_helpers import make_config
from tests.objstore_helpers import s3  # noqa: F401  (a local S3 server, module scope)

SMALL_SCALE = 0.3  # about 3,000 events: every type present, fast to generate
SHARED_SEED = 1
_MEDIA_URL_TTL = 300.0  # the simulator's own, read when the session's one starts


@dataclass(frozen=True)
class SyncedWorld:
    """The session simulator, a warehouse synced from it once, that sync's summary and
    the requests it made."""

    sim: Simulator
    config: Config
    summary: RunSummary
    requests: list[dict]

    @property
    def root(self) -> Path:
        return Path(self.config.warehouse)

    def copy(self, folder: Path, **changes: Any) -> Config:
        """The synced warehouse copied to `folder`/warehouse, so a test can change it alone."""
        return copy_of(self.config, Path(folder)).replace(**changes)


def _served_data(sim: Simulator) -> tuple:
    """What the simulator serves: its clock, late rows and overridden records."""
    return (
        sim.dataset.clock.ms,
        sim.dataset.entity_version,
        len(sim.defects.get("lateRowsAdded", ())),
        dict(sim.dataset.recording_overrides),
    )


def _reset_controls(sim: Simulator) -> None:
    """Back to answering every request plainly: no faults, limits, media faults or hook."""
    sim.faults.configure()
    sim.set_rate_limits(None, None)
    sim.on_request(None)
    sim._app.media_faults.clear()
    sim.media_url_ttl = _MEDIA_URL_TTL
    if sim.legacy_url_ttl < LEGACY_URL_TTL / 2:  # a test shortened the legacy links' life
        sim.legacy_url_ttl = LEGACY_URL_TTL
    sim.reset_requests()


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
    global _MEDIA_URL_TTL
    _MEDIA_URL_TTL = simulator.media_url_ttl
    try:
        yield simulator
    finally:
        simulator.stop()


def _guarded(simulator: Simulator) -> Iterator[Simulator]:
    _reset_controls(simulator)
    before = _served_data(simulator)
    yield simulator
    if simulator.base_url is None or simulator._server is None:
        simulator.start()
        pytest.fail("the test stopped a shared simulator; it must take its own from sim_factory")
    _reset_controls(simulator)
    if _served_data(simulator) != before:
        pytest.fail(
            "the test changed the data a shared simulator serves; "
            "it must take its own from sim_factory"
        )


def _sync_once(simulator: Simulator, folder: Path) -> SyncedWorld:
    root = folder / "warehouse"
    _reset_controls(simulator)
    summary = sync(make_config(simulator, root))
    assert summary.exit_code == 0, summary.errors
    return SyncedWorld(simulator, make_config(simulator, root), summary, simulator.requests)


@pytest.fixture(scope="session", autouse=True)
def _state_dir(tmp_path_factory) -> Iterator[None]:
    """Request ledgers go to a folder of the test session, never the user's own."""
    previous = os.environ.get("HS_SYNC_STATE_DIR")
    os.environ["HS_SYNC_STATE_DIR"] = str(tmp_path_factory.mktemp("hs-sync-state"))
    yield
    if previous is None:
        os.environ.pop("HS_SYNC_STATE_DIR", None)
    else:
        os.environ["HS_SYNC_STATE_DIR"] = previous


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path_factory, monkeypatch) -> None:
    """Each test has its own per-user state (request ledgers): a test's budget is not
    spent by the tests before it, which talk to the same simulator with the same key."""
    monkeypatch.setenv("HS_SYNC_STATE_DIR", str(tmp_path_factory.mktemp("user-state")))


@pytest.fixture
def sim(shared_sim: Simulator) -> Iterator[Simulator]:
    """The session's simulator with an empty request log. A test may set faults, limits,
    media faults and hooks (all reset after it) but must not change the data it serves
    (late rows, clock, overrides): such a test takes its own from `sim_factory`."""
    yield from _guarded(shared_sim)


@pytest.fixture(scope="session")
def _synced_once(shared_sim: Simulator, tmp_path_factory) -> SyncedWorld:
    return _sync_once(shared_sim, tmp_path_factory.mktemp("synced"))


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


@pytest.fixture(scope="session")
def _clean_sim() -> Iterator[Simulator]:
    simulator = Simulator(seed=SHARED_SEED, scale=SMALL_SCALE, defects=False)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def clean_sim(_clean_sim: Simulator) -> Iterator[Simulator]:
    """The session's simulator without planted defects, shared as `sim` is."""
    yield from _guarded(_clean_sim)


@pytest.fixture(scope="session")
def _clean_synced_once(_clean_sim: Simulator, tmp_path_factory) -> SyncedWorld:
    return _sync_once(_clean_sim, tmp_path_factory.mktemp("clean"))


@pytest.fixture
def clean_synced_copy(_clean_synced_once: SyncedWorld, clean_sim, tmp_path: Path) -> Config:
    """A private copy (tmp_path/warehouse) of a warehouse synced once from `clean_sim`."""
    return _clean_synced_once.copy(tmp_path)


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
