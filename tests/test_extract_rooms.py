"""Room-mode types: a first sync reads each experiment at once, later syncs only changed rooms."""

from __future__ import annotations

import math

import orjson

from hs_sync.land import rawfile
from hs_sync.land.state import ExtractState
from hs_sync.registry import DATA_TYPES, Mode
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import (
    assert_landed_equals_simulator,
    assert_only_collecting_rooms_read,
    collecting_rooms,
    data_files,
    make_config,
)

# room types a first sync reads at experiment scope (variables are served per room only)
ROOM_TYPES = [dt for dt in DATA_TYPES if dt.mode is Mode.ROOM and "experiment" in dt.scopes]


def _room_type_requests(requests: list[dict], dt) -> list[dict]:
    return [r for r in requests if f"/data/{dt.path}/" in r["path"]]


def test_first_sync_reads_room_types_at_experiment_scope(synced_world):
    sim, summary = synced_world.sim, synced_world.summary  # the run's first sync

    assert summary.exit_code == 0, summary.errors
    assert_landed_equals_simulator(sim, synced_world.root)
    for dt in ROOM_TYPES:
        requests = _room_type_requests(synced_world.requests, dt)
        assert requests and all("/experiment/" in r["path"] for r in requests)
        for exp in sim.dataset.experiment_ids:
            rows = len(sim.dataset.records(dt.path, experiment_id=exp))
            mine = [r for r in requests if r["path"].endswith(f"/experiment/{exp}")]
            # one probe, then the pages of one read: never one request per room
            assert len(mine) <= math.ceil(rows / 1000) + 2


def test_a_later_sync_reads_only_rooms_that_changed_or_still_collect(sim, synced_copy):
    config = synced_copy  # synced once from sim

    summary = sync(config)

    assert summary.exit_code == 0, summary.errors
    collecting = collecting_rooms(sim)
    assert collecting, "the dataset has sessions running at its 'now'"
    assert_only_collecting_rooms_read(sim, collecting)


def test_rows_a_running_session_adds_between_syncs_are_landed(sim_factory, tmp_path):
    # seed 6: sessions with eye tracking are running at the dataset's "now"
    sim = sim_factory(seed=6, scale=0.3, live=True)
    config = make_config(sim, tmp_path / "wh")
    assert sync(config).exit_code == 0
    rooms_before = sim.dataset.records("rooms")
    gaze_before = len(sim.dataset.records("eyetracking"))
    sim.advance(3)
    # the premise: new gaze samples, while no room's updatedAt or status moved
    assert sim.dataset.records("rooms") == rooms_before
    assert len(sim.dataset.records("eyetracking")) > gaze_before

    assert sync(config).exit_code == 0
    assert_landed_equals_simulator(sim, tmp_path / "wh")


def test_a_running_session_with_nothing_new_is_not_landed_again(sim, synced_copy):
    # synced once from sim: room types read at experiment scope; polled on both syncs
    config = synced_copy.replace(poll_after_unchanged=3)
    raw = config.warehouse / "raw"
    landed = sorted(raw.rglob("*.ndjson*"))
    assert collecting_rooms(sim), "the dataset has sessions running at its 'now'"

    # the second sync reads each running room by itself for the first time: the
    # experiment-scope read already vouched for its rows
    for _ in range(2):
        sim.reset_requests()
        summary = sync(config)

        assert summary.exit_code == 0, summary.errors
        assert_only_collecting_rooms_read(sim, collecting_rooms(sim))
        assert sorted(raw.rglob("*.ndjson*")) == landed
        assert summary.total_rows == 0
        # nothing new to apply: the database is neither copied nor published
        assert summary.transform["published"] is False


def test_the_room_reads_of_a_unit_land_in_one_batch_each_file_naming_its_room(synced_copy):
    config = synced_copy  # synced once: room-scope-only types were read room by room
    room_only = [dt for dt in DATA_TYPES if dt.mode is Mode.ROOM and dt.scopes == ("room",)]
    assert room_only
    with ExtractState(Warehouse(config.warehouse)) as state:
        for dt in room_only:
            files = data_files(config.warehouse, dt)
            assert files
            ledger = {(r["experiment_id"], r["scope_id"]): r for r in state.ledger(dt.name)}
            for exp_dir in {f.parent.parent for f in files}:
                exp = exp_dir.name.split("=", 1)[1]
                mine = [f for f in files if f.parent.parent == exp_dir]
                # one batch per (type, experiment), not one per room
                assert len({f.parent for f in mine}) == 1
                rooms = [_manifest(f)["scopeId"] for f in mine]
                assert all(_manifest(f)["scope"] == "room" for f in mine)
                assert len(set(rooms)) == len(rooms) > 1  # a file per room read
                for room in rooms:  # each read checkpointed, naming the batch
                    assert ledger[(exp, room)]["batch"] == mine[0].parent.name


def _manifest(data_file) -> dict:
    return orjson.loads(
        data_file.with_name(rawfile.stem(data_file.name) + ".meta.json").read_bytes()
    )
