"""Shared fixtures: simulators started on a free loopback port and stopped after the test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from hs_simulator import Simulator
from tests.objstore_helpers import s3  # noqa: F401  (a local S3 server, module scope)

SMALL_SCALE = 0.3  # about 3,000 events: every type present, fast to generate


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


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A started small simulator (seed 1, not live); stopped after the test."""
    simulator = Simulator(seed=1, scale=SMALL_SCALE)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


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
