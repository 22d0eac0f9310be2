"""The one state file: an older warehouse's three files are taken over whole, writers
share the file from many threads, and the read-only reader never creates or changes it."""

from __future__ import annotations

import re
import shutil
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import orjson
from click.testing import CliRunner

from hs_sync import statestore
from hs_sync.cli import main
from hs_sync.land.state import ExtractState
from hs_sync.load.ledger import Ledger
from hs_sync.media import download_media
from hs_sync.media.manifest import FIELDS, Entry, Manifest
from hs_sync.run import sync
from hs_sync.statestore import StateReader
from hs_sync.status import status
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import make_config
from tests.warehouse_helpers import db_rows

STAGE_SCHEMAS = {
    "extract": statestore.EXTRACT_SCHEMA,
    "transform": statestore.TRANSFORM_SCHEMA,
    "media": statestore.MEDIA_SCHEMA,
}
OLD_NAMES = {"transform_meta": "meta", "media_meta": "meta"}  # as the older files call them


def _tables(schema: str) -> list[str]:
    return re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema)


def _to_older_layout(wh: Warehouse) -> None:
    """Split the state file into the three files a warehouse kept before it (same tables,
    WAL mode), and remove it."""
    one = statestore.path(wh)
    src = sqlite3.connect(one)
    for stage, schema in STAGE_SCHEMAS.items():
        old = sqlite3.connect(wh.state_dir / statestore.LEGACY_FILES[stage], isolation_level=None)
        old.execute("PRAGMA journal_mode=WAL")
        for table in _tables(schema):
            ddl = src.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
            ).fetchone()[0]
            name = OLD_NAMES.get(table, table)
            old.execute(ddl.replace(f"TABLE {table} ", f"TABLE {name} ", 1))
            rows = src.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                old.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)  # noqa: S608
        old.close()
    src.close()
    for part in statestore.with_journal(one):
        part.unlink(missing_ok=True)


def _everything(wh: Warehouse) -> dict[str, list[tuple]]:
    """Every row of every table of the state file, sorted."""
    db = sqlite3.connect(statestore.path(wh))
    try:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)  # noqa: S608
            for schema in STAGE_SCHEMAS.values()
            for table in _tables(schema)
        }
    finally:
        db.close()


def _requests(sim) -> Counter:
    """What a sync asked for: path and parameters, but the window end (the server's now)."""
    return Counter(
        (r["path"], tuple(sorted((k, v) for k, v in r["params"].items() if k != "endTime")))
        for r in sim.requests
    )


def test_an_older_warehouse_keeps_its_state_and_the_next_sync_sends_only_what_is_new(
    sim, synced_copy, tmp_path
):
    config = synced_copy
    wh = Warehouse(config.warehouse)
    assert download_media(config).downloaded > 0  # a manifest with rows to keep
    before = _everything(wh)
    assert all(before[t] for t in ("watermarks", "ledger", "processed", "media_files"))
    twin = Warehouse(tmp_path / "twin")  # the same warehouse, left in the current layout
    shutil.copytree(wh.root, twin.root)

    _to_older_layout(wh)
    # read-only users read the older files as they are, and create nothing
    assert status(wh.root)["watermarks"] == status(twin.root)["watermarks"]
    assert status(wh.root)["runs"] == status(twin.root)["runs"]
    assert not statestore.path(wh).exists()

    ExtractState(wh).close()  # the first writer takes the older files over
    assert _everything(wh) == before  # nothing lost
    # (each with its -wal and -shm, kept beside it)
    assert sorted(p.name for p in wh.state_dir.glob("*.sqlite*") if p.name[-4] != "-") == [
        "extract.sqlite.migrated",
        "media.sqlite.migrated",
        "normalize.sqlite.migrated",
        "state.sqlite",
    ]

    sim.reset_requests()
    upgraded = sync(config)
    asked = _requests(sim)
    sim.reset_requests()
    control = sync(make_config(sim, twin.root))
    assert upgraded.exit_code == control.exit_code == 0
    assert asked == _requests(sim)  # same windows, same rooms, no access check again
    assert upgraded.total_rows == control.total_rows
    applied = [
        {name: t["files"] for name, t in summary.transform["types"].items()}
        for summary in (upgraded, control)
    ]
    assert applied[0] == applied[1]  # the transform applies only the new raw files
    again = download_media(config)
    assert again.downloaded == 0 and again.up_to_date > 0  # verified files are not fetched


def _older_layout_with_rows(root: Path) -> Warehouse:
    wh = Warehouse(root).create()
    with ExtractState(wh) as state:
        state.begin_run("run-1")
        for i in range(20):
            state.complete_window(
                "run-1", "events", f"exp_{i}", scope="experiment", scope_id=f"exp_{i}",
                start=None, end="2024-05-01T00:00:00Z", rows=i, total=i, requests=1,
                batch=f"b{i}", watermark="2024-05-01T00:00:00Z",
            )  # fmt: skip
    ledger = Ledger(wh)
    ledger.record("events", [(f"raw/{i}.ndjson.zst", 10, 1, 0) for i in range(20)])
    ledger.set_meta("views", "digest")
    ledger.close()
    manifest = Manifest(wh)
    manifest.put(Entry("rec_1", "exp_1", path="media/x.mp4", status="downloaded", attempts=1))
    manifest.close()
    _to_older_layout(wh)
    return wh


def test_an_upgrade_cut_short_is_finished_by_the_next_open(tmp_path):
    wh = _older_layout_with_rows(tmp_path / "wh")
    expected = _everything_of_older(wh)
    # cut short while copying: a half-made copy under its temporary name
    (wh.state_dir / ".state.sqlite.x1.migrating").write_bytes(b"half a database")
    ExtractState(wh).close()
    assert _everything(wh) == expected
    assert not list(wh.state_dir.glob("*.migrating*"))

    # cut short after the copy was in place, before the old files were moved aside
    for old in wh.state_dir.glob("*.sqlite.migrated"):
        old.rename(old.with_name(old.name.removesuffix(".migrated")))
    ledger = Ledger(wh)
    assert ledger.get_meta("views") == "digest"
    ledger.close()
    assert _everything(wh) == expected  # not copied twice
    assert not statestore.legacy_paths(wh)
    assert Manifest(wh).dirty


def _everything_of_older(wh: Warehouse) -> dict[str, list[tuple]]:
    out = {}
    for stage, schema in STAGE_SCHEMAS.items():
        db = sqlite3.connect(wh.state_dir / statestore.LEGACY_FILES[stage])
        for table in _tables(schema):
            query = f"SELECT * FROM {OLD_NAMES.get(table, table)}"  # noqa: S608
            out[table] = sorted(db.execute(query).fetchall(), key=repr)
        db.close()
    return out


def test_writers_opening_an_older_warehouse_at_once_copy_it_once_then_share_the_file(tmp_path):
    wh = _older_layout_with_rows(tmp_path / "wh")
    expected = _everything_of_older(wh)
    errors: list[BaseException] = []
    start = threading.Barrier(9)

    def extract(n: int) -> None:
        with ExtractState(wh) as state:
            start.wait()
            for i in range(60):
                state.advance_watermark("events", f"w{n}", f"2024-06-01T00:{i:02d}:00Z")

    def transform(n: int) -> None:
        ledger = Ledger(wh)
        start.wait()
        for i in range(60):
            ledger.record("rooms", [(f"raw/{n}-{i}.ndjson.zst", 1, 1, 0)])
        ledger.close()

    def media(n: int) -> None:
        manifest = Manifest(wh)
        start.wait()
        for i in range(60):
            manifest.put(Entry(f"rec_{n}_{i}", "exp_1", status="pending", attempts=i))
        manifest.close()

    def run(work, n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
            start.abort()

    threads = [
        threading.Thread(target=run, args=(work, n))
        for n in range(3)
        for work in (extract, transform, media)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    after = _everything(wh)
    assert after["ledger"] == expected["ledger"]  # the older rows, copied once
    assert set(expected["processed"]) <= set(after["processed"])
    assert len(after["processed"]) == len(expected["processed"]) + 3 * 60
    assert len(after["media_files"]) == len(expected["media_files"]) + 3 * 60
    with StateReader(wh) as reader:
        marks = {(w["data_type"], w["experiment_id"]): w["watermark"] for w in reader.watermarks()}
    assert all(marks[("events", f"w{n}")] == "2024-06-01T00:59:00Z" for n in range(3))


def test_the_reader_creates_nothing_and_answers_empty_without_state(tmp_path):
    wh = Warehouse(tmp_path / "wh").create()
    with StateReader(wh) as reader:
        assert reader.runs() == reader.watermarks() == reader.drift() == []
        assert reader.watermark("events", "exp") is None and reader.units_synced_at() is None
        assert reader.files() == [] and reader.problem() is None
    assert list(wh.state_dir.iterdir()) == []
    # a state file made before a table existed reads as empty for that table
    db = sqlite3.connect(statestore.path(wh))
    db.execute("CREATE TABLE runs (run_id TEXT, started_at TEXT, finished_at TEXT, "
               "status TEXT, requests INTEGER, summary TEXT)")  # fmt: skip
    db.execute("INSERT INTO runs VALUES ('r', '2024-01-01', NULL, 'running', 0, NULL)")
    db.commit()
    db.close()
    with StateReader(wh) as reader:
        assert reader.running() and reader.drift() == []


def test_the_manifest_columns_are_the_entry_fields(tmp_path):
    wh = Warehouse(tmp_path / "wh")
    statestore.connect(wh).close()
    db = sqlite3.connect(statestore.path(wh))
    columns = [r[1] for r in db.execute("PRAGMA table_info(media_files)")]
    db.close()
    assert columns == FIELDS


def test_a_damaged_older_file_is_named_then_set_aside_and_the_rest_taken_over(sim, synced_copy):
    wh = Warehouse(synced_copy.warehouse)
    with StateReader(wh) as reader:
        marks = reader.watermarks()
    _to_older_layout(wh)
    (wh.state_dir / "normalize.sqlite").write_bytes(b"not a database at all" * 300)
    runner = CliRunner()
    args = ["--warehouse", str(wh.root)]
    shown = runner.invoke(main, ["status", *args])
    assert shown.exit_code == 2 and "Traceback" not in shown.output
    assert "state/normalize.sqlite is damaged" in shown.output
    assert "hs-sync doctor --repair" in shown.output

    repaired = runner.invoke(main, ["doctor", "--repair", *args])
    assert repaired.exit_code == 0, repaired.output
    aside = [p.name for p in (wh.state_dir / "damaged").iterdir()]
    assert aside and all(name.startswith("normalize.sqlite.") for name in aside), aside
    with StateReader(wh) as reader:
        assert reader.files() == [statestore.path(wh)]
        assert reader.watermarks() == marks  # the extraction state was taken over
    assert db_rows(wh, "events")  # the database rebuilt from raw/
    result = sync(synced_copy)
    assert result.exit_code == 0 and result.total_rows == 0  # nothing pulled again


def _to_mode_signals(wh: Warehouse) -> None:
    """Turn the mode state into the encoded signals an older version kept it in
    (`snapshot:{type}:{experiment}`, `rooms:{experiment}`, `final:{experiment}`), and
    drop the tables that replace them."""
    db = sqlite3.connect(statestore.path(wh), isolation_level=None)
    signals = []
    probes = "SELECT data_type, experiment_id, pages, total, first_row, read_at FROM whole_probes"
    for data_type, exp, pages, total, first_row, read_at in db.execute(probes).fetchall():
        seen = None if first_row is None else [total, first_row]
        signals.append((f"snapshot:{data_type}:{exp}", orjson.dumps([pages, seen]), read_at))
    for exp, read_at in db.execute("SELECT experiment_id, read_at FROM room_lists").fetchall():
        rooms = dict(
            db.execute(
                "SELECT room_id, version FROM listed_rooms WHERE experiment_id = ?", [exp]
            ).fetchall()
        )
        signals.append((f"rooms:{exp}", orjson.dumps(rooms), read_at))
        final = bool(rooms) and all(rooms.values())
        signals.append((f"final:{exp}", b"1" if final else b"0", read_at))
    db.executemany(
        "INSERT INTO signals VALUES (?, ?, ?)", [(n, v.decode(), s) for n, v, s in signals]
    )
    for table in ("whole_probes", "room_lists", "listed_rooms"):
        db.execute(f"DROP TABLE {table}")
    db.close()
    assert any(name.startswith("snapshot:") for name, _, _ in signals)
    assert any(name.startswith("rooms:") for name, _, _ in signals)


def _requests(sim) -> list[tuple[str, tuple]]:
    return sorted((r["path"], tuple(sorted(r["params"].items()))) for r in sim.requests)


def test_a_state_of_older_mode_signals_syncs_with_the_same_requests(sim_factory, tmp_path):
    sim = sim_factory()
    exp = sim.dataset.experiment_ids[0]
    configs = [
        make_config(  # every sync polls, so the probes and the room units show
            sim,
            tmp_path / name,
            types=("participants", "rooms", "eyetracking"),
            experiments=(exp,),
            page_size=5,
            poll_after_unchanged=100,
        )
        for name in ("current", "older")
    ]
    for config in configs:
        assert sync(config).exit_code == 0  # a full read
        assert sync(config).exit_code == 0  # the first probe, remembered
    older = Warehouse(configs[1].warehouse)
    _to_mode_signals(older)
    seen = []
    for config in configs:
        sim.reset_requests()
        summary = sync(config)
        assert summary.exit_code == 0
        seen.append((_requests(sim), summary.requests_by_purpose, summary.polls))
    assert seen[0] == seen[1]
    assert seen[0][1].get("probe") == 2  # participants and rooms: probed, not re-read
    assert any("/data/eyetracking/" in path for path, _ in seen[0][0])  # the room units
    with StateReader(older) as reader:
        assert reader.signals("snapshot:") == reader.signals("rooms:") == []
