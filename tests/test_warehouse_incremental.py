"""Parquet and DuckDB stay duplicate-free and equal to a full run, however the raw arrives."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from hs_sync import registry
from hs_sync.load import parquet as parquet_store
from hs_sync.load.ledger import Ledger
from hs_sync.load.transform import rebuild, transform
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import landed
from tests.warehouse_helpers import db_rows, event, land, parquet_table, query

EVENTS = registry.get("events")
ROOMS = registry.get("rooms")


def room(i: int, status: str, **changes):
    rec = {"id": f"room_{i}", "experimentId": "exp_test", "deploymentId": "dep_1",
           "deploymentName": "main", "status": status, "participantCount": 2,
           "createdAt": "2024-05-01T09:00:00Z", "startedAt": "2024-05-01T09:01:00Z",
           "completedAt": None, "updatedAt": "2024-05-01T09:01:00Z"}  # fmt: skip
    rec.update(changes)
    return rec


def assert_no_duplicate_keys(wh: Warehouse, dt) -> None:
    (dups,) = query(wh, f'SELECT count(*) - count(DISTINCT _key) FROM "{dt.name}"')[0]
    assert dups == 0
    for folder in {f.parent for f in parquet_store.dataset_files(wh, dt.name)}:
        keys = pq.ParquetDataset(folder).read(columns=["_key"]).column("_key").to_pylist()
        assert len(keys) == len(set(keys)), folder
    keys = parquet_table(wh, dt).column("_key").to_pylist()
    assert len(keys) == len(set(keys))


def snapshot(wh: Warehouse, dt):
    return db_rows(wh, dt.name), parquet_table(wh, dt)


def test_late_rows_and_reread_windows_leave_no_duplicate_keys(tmp_path):
    wh = Warehouse(tmp_path / "wh").create()
    land(wh, "events", [event(i) for i in range(0, 10)], batch="20240501T100000000000Z-w1")
    transform(wh, registry.DATA_TYPES)
    # the next window re-reads the lookback (events 7..9) and brings a late row (event 3 is
    # already known; event 20 is new but older than the newest seen)
    late = [event(i) for i in (7, 8, 9)] + [event(20, timestamp="2024-05-01T09:00:00Z")]
    land(wh, "events", late + [event(i) for i in range(10, 15)], batch="20240501T110000000000Z-w2")
    # a window re-read twice in one batch, and a file re-read within the same run
    land(wh, "events", [event(i) for i in range(12, 16)], batch="20240501T110000000000Z-w2", seq=1)
    summary = transform(wh, registry.DATA_TYPES)
    assert summary["types"]["events"]["db_rows_written"] == 7  # 10..15 and 20
    rows = db_rows(wh, "events")
    assert [r["id"] for r in rows] == sorted([f"evt_{i:04d}" for i in list(range(16)) + [20]])
    assert_no_duplicate_keys(wh, EVENTS)
    # the re-read rows keep the lineage of the file that first brought them
    seven = next(r for r in rows if r["id"] == "evt_0007")
    assert seven["_raw_file"].endswith("20240501T100000000000Z-w1/00000.ndjson")


def test_changed_rows_replace_the_stored_row_later_file_wins(tmp_path):
    wh = Warehouse(tmp_path / "wh").create()
    land(wh, "rooms", [room(1, "active"), room(2, "active")], batch="20240501T100000000000Z-s")
    transform(wh, registry.DATA_TYPES)
    land(wh, "rooms", [room(1, "completed", completedAt="2024-05-01T10:00:00Z"), room(2, "active")],
         batch="20240501T110000000000Z-s")  # fmt: skip
    summary = transform(wh, registry.DATA_TYPES)
    assert summary["types"]["rooms"]["db_rows_written"] == 1
    rows = {r["id"]: r for r in db_rows(wh, "rooms")}
    assert rows["room_1"]["status"] == "completed"
    assert rows["room_2"]["status"] == "active"
    pq_rows = {r["id"]: r for r in parquet_table(wh, ROOMS).to_pylist()}
    assert pq_rows["room_1"]["status"] == "completed"
    assert pq_rows["room_1"]["_raw_file"].endswith("20240501T110000000000Z-s/00000.ndjson")
    assert_no_duplicate_keys(wh, ROOMS)
    # within one file the later line wins
    land(wh, "rooms", [room(2, "completed"), room(2, "archived")], batch="20240501T120000000000Z-s")
    transform(wh, registry.DATA_TYPES)
    assert {r["id"]: r["status"] for r in db_rows(wh, "rooms")}["room_2"] == "archived"
    assert_no_duplicate_keys(wh, ROOMS)


def _land_history(wh: Warehouse, upto: int) -> None:
    steps = [
        ("events", [event(i) for i in range(0, 8)], "20240501T100000000000Z-w1"),
        ("rooms", [room(1, "active")], "20240501T100000000001Z-s"),
        ("events", [event(i) for i in range(6, 14)] + [event(3, stateName="fixed")],
         "20240501T110000000000Z-w2"),
        ("rooms", [room(1, "completed"), room(2, "active")], "20240501T110000000001Z-s"),
        ("events", [event(i) for i in range(13, 20)], "20240501T120000000000Z-w3"),
    ]  # fmt: skip
    for type_name, records, batch in steps[:upto]:
        land(wh, type_name, records, batch=batch)


def test_two_incremental_runs_equal_one_full_run_and_a_rebuild(tmp_path):
    step = Warehouse(tmp_path / "step").create()
    for upto in (1, 2, 3, 4, 5):
        shutil.rmtree(step.root / "raw", ignore_errors=True)
        _land_history(step, upto)
        transform(step, registry.DATA_TYPES)
    full = Warehouse(tmp_path / "full").create()
    shutil.copytree(step.root / "raw", full.root / "raw", dirs_exist_ok=True)
    transform(full, registry.DATA_TYPES)
    for dt in (EVENTS, ROOMS):
        s_db, s_pq = snapshot(step, dt)
        f_db, f_pq = snapshot(full, dt)
        assert s_db == f_db
        assert s_pq.equals(f_pq)
        assert_no_duplicate_keys(step, dt)
    before = {dt.name: snapshot(step, dt) for dt in registry.DATA_TYPES}
    rebuild(step, registry.DATA_TYPES)
    for dt in registry.DATA_TYPES:
        db, table = snapshot(step, dt)
        assert db == before[dt.name][0], dt.name
        assert table.equals(before[dt.name][1]), dt.name


def test_a_run_with_nothing_new_does_no_work(tmp_path):
    wh = Warehouse(tmp_path / "wh").create()
    land(wh, "events", [event(i) for i in range(5)])
    transform(wh, registry.DATA_TYPES)
    mtime = wh.db_path.stat().st_mtime_ns
    files = parquet_store.dataset_files(wh, "events")
    summary = transform(wh, registry.DATA_TYPES)
    assert summary["published"] is False
    assert summary["types"]["events"]["files"] == 0
    assert wh.db_path.stat().st_mtime_ns == mtime
    assert parquet_store.dataset_files(wh, "events") == files


def test_applying_the_same_raw_again_changes_nothing(tmp_path):
    """What a crash between the Parquet write and the ledger leaves: files applied twice."""
    wh = Warehouse(tmp_path / "wh").create()
    _land_history(wh, 5)
    transform(wh, registry.DATA_TYPES)
    before = {dt.name: snapshot(wh, dt) for dt in (EVENTS, ROOMS)}
    ledger = Ledger(wh)
    ledger.clear()
    ledger.close()
    summary = transform(wh, registry.DATA_TYPES)
    assert summary["types"]["events"]["db_rows_written"] == 0
    assert summary["types"]["events"]["parquet_rows_written"] == 0
    for dt in (EVENTS, ROOMS):
        db, table = snapshot(wh, dt)
        assert db == before[dt.name][0]
        assert table.equals(before[dt.name][1])


def test_rows_deleted_from_duckdb_come_back_when_their_raw_is_applied_again(tmp_path):
    import duckdb

    wh = Warehouse(tmp_path / "wh").create()
    land(wh, "events", [event(i) for i in range(5)])
    transform(wh, registry.DATA_TYPES)
    con = duckdb.connect(str(wh.db_path))
    con.execute("DELETE FROM events WHERE id = ?", ["evt_0002"])
    con.close()
    land(wh, "events", [event(i) for i in range(5)], batch="20240501T110000000000Z-room-repair")
    transform(wh, registry.DATA_TYPES)
    assert len(db_rows(wh, "events")) == 5
    assert_no_duplicate_keys(wh, EVENTS)


def test_small_files_are_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_store, "MAX_SMALL_FILES", 3)
    wh = Warehouse(tmp_path / "wh").create()
    for run in range(7):
        land(wh, "events", [event(100 * run + 2 * i) for i in range(4)],
             batch=f"20240501T1{run}0000000000Z-w")  # fmt: skip
        transform(wh, registry.DATA_TYPES)
        for folder in {f.parent for f in parquet_store.dataset_files(wh, "events")}:
            assert len(parquet_store.visible_files(folder)) <= 3
    assert parquet_table(wh, EVENTS).num_rows == 28
    assert_no_duplicate_keys(wh, EVENTS)
    schemas = {pq.read_schema(f) for f in parquet_store.dataset_files(wh, "events")}
    assert all(s.equals(EVENTS.arrow_schema) for s in schemas)


@pytest.mark.parametrize("type_name", ["events", "rooms"])
def test_partition_layout(tmp_path, type_name):
    wh = Warehouse(tmp_path / "wh").create()
    records = [event(1), event(2)] if type_name == "events" else [room(1, "active")]
    land(wh, type_name, records)
    transform(wh, registry.DATA_TYPES)
    folders = sorted(
        f.parent.relative_to(wh.parquet_dir(type_name)).as_posix()
        for f in parquet_store.dataset_files(wh, type_name)
    )
    if type_name == "events":
        assert folders == ["experiment_id=exp_test/date=2024-05-01",
                           "experiment_id=exp_test/date=2024-05-02"]  # fmt: skip
    else:
        assert folders == ["experiment_id=exp_test"]


def _parquet_rows(wh: Warehouse, dt) -> list[tuple]:
    """(key, date folder, timestamp, stateName) of every row readers see, hive columns read."""
    import duckdb

    glob = (wh.parquet_dir(dt.name) / "**" / "*.parquet").as_posix()
    return duckdb.sql(
        "SELECT _key, CAST(date AS VARCHAR), timestamp, stateName "
        "FROM read_parquet($glob, hive_partitioning = true)",
        params={"glob": glob},
    ).fetchall()


def _land_later(wh: Warehouse, experiment: str, records: list[dict]) -> None:
    """Land `records` as a batch newer than everything landed so far."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    land(wh, "events", records, batch=f"{stamp}-w", experiment=experiment)


def test_a_row_moved_to_another_day_leaves_its_old_date_partition(synced_copy):
    wh = Warehouse(synced_copy.warehouse)  # synced from the simulator
    experiment, rows = next((e, r) for e, r in sorted(landed(wh.root, EVENTS).items()) if r)
    record = next(iter(rows.values()))
    key = EVENTS.row_key(experiment, record)
    old_date = parse_time(record["timestamp"]).strftime("%Y-%m-%d")
    old_part = wh.parquet_dir("events") / f"experiment_id={experiment}" / f"date={old_date}"
    total = len(_parquet_rows(wh, EVENTS))

    # the API now serves the row a day later, changed: it moves to a date of its own
    _land_later(wh, experiment, [{**record, "timestamp": "2031-01-02T03:04:05.000Z",
                                  "stateName": "moved"}])  # fmt: skip
    transform(wh, registry.DATA_TYPES)
    seen = _parquet_rows(wh, EVENTS)
    assert len(seen) == total == len({r[0] for r in seen})
    assert [r[1:] for r in seen if r[0] == key] == [
        ("2031-01-02", parse_time("2031-01-02T03:04:05Z"), "moved")
    ]
    old_keys = pq.ParquetDataset(old_part).read(columns=["_key"]).column("_key").to_pylist()
    assert key not in old_keys and old_keys  # the rest of the old day stays
    assert_no_duplicate_keys(wh, EVENTS)

    # moved once more, it leaves its own date empty: the folder goes, no empty file stays
    _land_later(wh, experiment, [{**record, "timestamp": "2031-01-03T00:00:00.000Z"}])
    transform(wh, registry.DATA_TYPES)
    seen = _parquet_rows(wh, EVENTS)
    assert len(seen) == total == len({r[0] for r in seen})
    assert [r[1] for r in seen if r[0] == key] == ["2031-01-03"]
    assert not (old_part.parent / "date=2031-01-02").exists()
    assert_no_duplicate_keys(wh, EVENTS)
    assert {r["_key"]: r["timestamp"] for r in db_rows(wh, "events")}[key] == parse_time(
        "2031-01-03T00:00:00Z"
    )


def test_a_crash_between_writing_the_new_date_and_the_old_one_is_repaired(tmp_path):
    wh = Warehouse(tmp_path / "wh").create()
    land(wh, "events", [event(i) for i in range(6)])
    transform(wh, registry.DATA_TYPES)
    old = wh.parquet_dir("events") / "experiment_id=exp_test" / "date=2024-05-02"
    kept = tmp_path / "kept"
    shutil.copytree(old, kept / "old")
    for f in wh.state_dir.glob("state.sqlite*"):  # the transform's ledger
        shutil.copy2(f, kept / f.name)
    shutil.copy2(wh.db_path, kept / "db")
    land(
        wh, "events", [event(3, timestamp="2024-05-01T12:00:00Z")], batch="20240501T110000000000Z-w"
    )
    transform(wh, registry.DATA_TYPES)
    # as if killed after the new date's file was written: the old date, the database
    # and the ledger are as before
    shutil.rmtree(old)
    shutil.copytree(kept / "old", old)
    for f in kept.glob("state.sqlite*"):
        shutil.copy2(f, wh.state_dir / f.name)
    shutil.copy2(kept / "db", wh.db_path)
    transform(wh, registry.DATA_TYPES)
    seen = {r[0]: r[1] for r in _parquet_rows(wh, EVENTS)}
    assert len(_parquet_rows(wh, EVENTS)) == len(seen) == 6
    assert seen["exp_test|evt_0003"] == "2024-05-01"
    assert_no_duplicate_keys(wh, EVENTS)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_raw_file_that_does_not_read_is_moved_aside_and_the_rest_is_applied(
    tmp_path, compression
):
    """A truncated file never blocks the warehouse: it goes to raw/.damaged/, the
    summary names it, and every other file is applied."""
    wh = Warehouse(tmp_path / "wh").create()
    land(wh, "events", [event(i) for i in range(5)])
    chat = {
        "messageId": "m1",
        "senderId": "p1",
        "content": "hi",
        "timestamp": "2024-05-01T10:00:00Z",
    }
    land(wh, "chat", [chat])
    broken = land(wh, "chat", [{**chat, "messageId": "m2"}], seq=1, compression=compression)
    broken.write_bytes(broken.read_bytes()[:-4])  # truncated: its end never reached the disk
    summary = transform(wh, registry.DATA_TYPES)
    name = broken.relative_to(wh.root).as_posix()
    assert summary["damaged"] == [name]
    assert summary["rows"]["events"] == 5 and summary["rows"]["chat"] == 1
    assert not broken.exists()
    assert (wh.root / "raw" / ".damaged" / broken.relative_to(wh.root / "raw")).exists()
    assert len(db_rows(wh, "events")) == 5
    assert [r["messageId"] for r in db_rows(wh, "chat")] == ["m1"]
    assert parquet_table(wh, registry.get("events")).num_rows == 5
    again = transform(wh, registry.DATA_TYPES)  # nothing left to report or apply
    assert again["damaged"] == [] and again["types"]["chat"]["files"] == 0
