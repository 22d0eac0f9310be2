"""A sync lands exactly the simulator's rows, incrementally, through faults and late data."""

from __future__ import annotations

import math
import threading
import time

import orjson
import pytest

from hs_sync.errors import WarehouseLocked
from hs_sync.land import rawfile
from hs_sync.land.state import ExtractState
from hs_sync.registry import BY_NAME, DATA_TYPES, Mode
from hs_sync.run import sync
from hs_sync.statestore import StateReader
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import (
    assert_landed_equals_simulator,
    assert_only_collecting_rooms_read,
    collecting_rooms,
    data_files,
    file_bytes,
    landed,
    landed_lines,
    make_config,
)

TIME_TYPES = [dt for dt in DATA_TYPES if dt.mode is Mode.TIME]


def test_full_sync_lands_every_simulator_row_for_every_type(synced_world):
    sim, root, summary = synced_world.sim, synced_world.root, synced_world.summary

    assert summary.exit_code == 0, summary.errors
    assert not summary.skipped_types and not summary.errors
    assert set(summary.experiments) == set(sim.dataset.experiment_ids)
    compared = assert_landed_equals_simulator(sim, root)
    assert compared == summary.total_rows  # a static dataset: nothing fetched twice
    # Every data file has a manifest that names its pages and never the key.
    for dt in DATA_TYPES:
        for path in data_files(root, dt):
            meta = orjson.loads(path.with_name(rawfile.stem(path.name) + ".meta.json").read_bytes())
            assert meta["dataType"] == dt.name and meta["rows"] == len(list(rawfile.lines(path)))
            assert all("pagination" in page and "params" in page for page in meta["pages"])
    assert sim.api_key not in _all_text(root)


def _all_text(root) -> str:
    return "\n".join(
        file_bytes(p).decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()
    )


def test_requests_stay_within_pages_plus_one_per_unit(sim, tmp_path):
    sim.reset_requests()
    summary = sync(make_config(sim, tmp_path / "wh", page_size=500))
    for window in summary.windows:
        total = window.get("total")
        if total is not None:
            assert window["requests"] <= math.ceil(total / 500) + 1, window
            assert window["rows"] == total


def test_no_change_resync_makes_one_request_per_unit_plus_snapshots(sim, synced_copy):
    config = synced_copy  # synced once from sim
    before = {dt.name: landed_lines(config.warehouse, dt) for dt in DATA_TYPES}
    sim.reset_requests()

    summary = sync(config)

    assert summary.exit_code == 0, summary.errors
    experiments = sim.dataset.experiment_ids
    by_path: dict[str, int] = {}
    for request in sim.requests:
        by_path[request["path"]] = by_path.get(request["path"], 0) + 1
    room_paths = tuple(f"/data/{dt.path}/" for dt in DATA_TYPES if dt.mode is Mode.ROOM)
    room_requests = [r for r in sim.requests if r["path"].startswith(room_paths, 7)]
    assert_only_collecting_rooms_read(sim, collecting_rooms(sim))
    data_requests = [
        r
        for r in sim.requests
        if "/data/" in r["path"] and "check-access" not in r["path"] and r not in room_requests
    ]
    # One page per (time type, experiment) and per snapshot/merge table; rooms are read
    # only while they still collect data (checked above).
    snapshot_pages = 0
    for dt in DATA_TYPES:
        if dt.mode in (Mode.SNAPSHOT, Mode.MERGE) and dt.data_endpoint:
            for exp in experiments:
                rows = len(sim.dataset.records(dt.path, experiment_id=exp))
                snapshot_pages += max(1, math.ceil(rows / config.page_size))
    assert len(data_requests) == len(TIME_TYPES) * len(experiments) + snapshot_pages
    checks = [r for r in sim.requests if "check-access" in r["path"]]
    assert not checks  # access checks are remembered for a day
    listing = [r for r in sim.requests if r["path"].rstrip("/").endswith("/experiments")]
    assert len(listing) == 1
    deployments = [r for r in sim.requests if "/deployments" in r["path"]]
    assert len(deployments) == len(experiments)
    assert len(sim.requests) == (
        len(data_requests) + len(room_requests) + len(checks) + 1 + len(deployments)
    )
    # Unchanged snapshots are not landed again.
    for name in ("rooms", "participants", "deployments", "experiments", "recordings"):
        assert landed_lines(config.warehouse, BY_NAME[name]) == before[name]


def test_live_mode_lands_new_and_late_rows_once(sim_factory, tmp_path):
    sim = sim_factory(live=True)
    config = make_config(sim, tmp_path / "wh", lookback_seconds=3600)
    assert sync(config).exit_code == 0
    sim.advance(900)
    late = sim.add_late_rows("events", 25)
    assert late
    summary = sync(config)

    assert summary.exit_code == 0, summary.errors
    assert_landed_equals_simulator(sim, tmp_path / "wh")
    got = landed(tmp_path / "wh", BY_NAME["events"])
    events = BY_NAME["events"]
    for row in late:
        assert events.key_of(row) in got[row["experimentId"]]
    with ExtractState(Warehouse(tmp_path / "wh")) as state:
        marks = state.watermarks()
        windows = state.ledger("events")
    assert all(mark == summary.window_end for (name, _), mark in marks.items() if name == "events")
    second_run = [w for w in windows if w["run_id"] == summary.run_id]
    assert second_run and all(w["start_time"] is not None for w in second_run)


def test_faults_change_nothing_in_what_lands(synced_world, sim_factory, tmp_path):
    clean, clean_summary = synced_world.root, synced_world.summary  # synced without faults
    faulty = sim_factory(seed=synced_world.sim.seed)  # the same dataset
    faulty.faults.configure(
        http_5xx=0.05,
        html_5xx=0.05,
        rate_429=0.05,
        retry_after=0,
        reset=0.03,
        truncate=0.03,
        seed=7,
    )
    summary = sync(make_config(faulty, tmp_path / "faulty", max_attempts=12))

    assert summary.exit_code == 0, summary.errors
    assert summary.retries > 0
    statuses = {r["status"] for r in faulty.requests}
    assert 429 in statuses and any(s >= 500 for s in statuses if isinstance(s, int))
    assert_landed_equals_simulator(faulty, tmp_path / "faulty")
    for dt in DATA_TYPES:  # same keys (record bodies carry each server's own URLs)
        want = {e: set(rows) for e, rows in landed(clean, dt).items()}
        assert {e: set(rows) for e, rows in landed(tmp_path / "faulty", dt).items()} == want
    assert summary.total_rows == clean_summary.total_rows


def test_room_repair_re_pulls_a_room_at_room_scope(sim, synced_copy):
    config = synced_copy  # synced once from sim
    exp = sim.dataset.experiment_ids[0]
    room = sim.dataset.records("rooms", experiment_id=exp)[0]["id"]
    sim.reset_requests()

    summary = sync(config.replace(rooms=(room,)))

    assert summary.exit_code == 0, summary.errors
    room_windows = [w for w in summary.windows if w["scope"] == "room"]
    capable = {dt.name for dt in DATA_TYPES if dt.data_endpoint and "room" in dt.scopes}
    assert {w["data_type"] for w in room_windows} == capable
    assert all(w["scope_id"] == room for w in room_windows)
    assert not any(
        "/experiment/" in r["path"]
        and "/rooms/" not in r["path"]
        and "check-access" not in r["path"]
        for r in sim.requests
    )
    manifests = [
        orjson.loads(p.with_name(rawfile.stem(p.name) + ".meta.json").read_bytes())
        for p in data_files(config.warehouse, BY_NAME["events"])
    ]
    assert any(m["scope"] == "room" and m["scopeId"] == room for m in manifests)
    assert_landed_equals_simulator(sim, config.warehouse)


def test_a_second_concurrent_sync_waits_then_stops_with_a_clear_message(sim_factory, tmp_path):
    sim = sim_factory()
    root = tmp_path / "wh"
    # two types are enough: every request of the first run is slowed below
    config = make_config(sim, root, lock_timeout_seconds=0.5, types=("rooms", "participants"))
    sim.faults.configure(slow=1.0, slow_seconds=0.2, seed=1)  # the first run holds the lock a while
    first_done: list = []
    first = threading.Thread(target=lambda: first_done.append(sync(config)))
    first.start()
    try:
        assert _wait_for_running_run(root), "the first sync never took the lock"
        with pytest.raises(WarehouseLocked, match="another hs-sync run"):
            sync(config)
    finally:
        sim.faults.configure(seed=1)
        first.join(timeout=120)
    assert first_done and first_done[0].exit_code == 0
    with ExtractState(Warehouse(root)) as state:
        assert [r["status"] for r in state.runs()] == ["ok"]  # the second run never started


def _wait_for_running_run(root, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with StateReader(Warehouse(root)) as state:
            if state.running():
                return True
        time.sleep(0.02)
    return False


def test_rows_arriving_mid_scan_make_the_window_be_read_again(sim_factory, tmp_path):
    sim = sim_factory()  # its data changes
    exp = max(sim.dataset.experiment_ids, key=lambda e: len(sim.dataset.records("events", e)))
    assert len(sim.dataset.records("events", experiment_id=exp)) > 1000  # several pages
    late: list[dict] = []

    def arrive_during_the_scan(entry):
        # once the first page of exp's events is answered, late rows arrive
        if (
            not late
            and entry["path"].endswith(f"/data/events/experiment/{exp}")
            and entry["params"].get("offset") == "0"
        ):
            late.extend(sim.add_late_rows("events", 40, experiment_id=exp))

    events = BY_NAME["events"]
    sim.on_request(arrive_during_the_scan)
    summary = sync(make_config(sim, tmp_path / "wh", types=(events.name,)))
    sim.on_request(None)

    assert summary.exit_code == 0, summary.errors
    assert late, "the late rows arrived mid-scan"
    passes = [
        w for w in summary.windows if w["data_type"] == "events" and w["experiment_id"] == exp
    ]
    # the first pass saw pagination.total change between its pages; the second agreed
    assert len(passes) == 2
    assert passes[1]["fetched"] == passes[1]["total"]
    got = landed(tmp_path / "wh", events)[exp]
    assert {events.key_of(r) for r in late} <= set(got)
    assert_landed_equals_simulator(sim, tmp_path / "wh", types=(events,))


def test_an_unchanged_whole_table_spanning_several_files_is_not_landed_again(sim, tmp_path):
    # pages of 2 rows: an experiment's recordings listing spans several raw files
    config = make_config(sim, tmp_path / "wh", types=("recordings", "rooms"), page_size=2)
    first = sync(config)
    assert first.exit_code == 0, first.errors
    recordings = BY_NAME["recordings"]
    folders = [f.parent for f in data_files(tmp_path / "wh", recordings)]
    assert max(folders.count(f) for f in folders) > 1
    before = landed_lines(tmp_path / "wh", recordings)

    second = sync(config)

    assert second.exit_code == 0, second.errors
    assert landed_lines(tmp_path / "wh", recordings) == before
    assert not any((tmp_path / "wh" / "raw").rglob(".*-merge"))  # no staging left behind
    assert_landed_equals_simulator(sim, tmp_path / "wh", types=(recordings,))
