"""Snapshots: a named warehouse that later syncs, rebuilds, repairs, maintenance and
version clean-up never change; verified by checksum, exported as one zip that opens
elsewhere, and taken by the Dagster snapshot job."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import orjson
import pytest
from click.testing import CliRunner

from hs_sync import registry, snapshot
from hs_sync.cli import main
from hs_sync.load import iceberg, versions
from hs_sync.load.transform import transform
from hs_sync.run import sync
from hs_sync.warehouse import DB_FILE, Warehouse
from tests.extract_helpers import make_config
from tests.warehouse_helpers import event, land

COUNTS = "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM dashboard_rooms)"


def cli(*args: str, root: Path | None = None, env: dict | None = None):
    where = ["--warehouse", str(root)] if root is not None else []
    return CliRunner().invoke(main, [*args, *where], env=env)


def counts(root: Path, name: str | None = None) -> list:
    args = ["--snapshot", name] if name else []
    result = cli("sql", *args, "--json", COUNTS, root=root)
    assert result.exit_code == 0, result.output
    return list(orjson.loads(result.output)[0].values())


def live_versions(wh: Warehouse) -> set[Path]:
    """The Parquet version folders published now."""
    return {wh.parquet_dir(dt.name).resolve() for dt in registry.DATA_TYPES}


def test_a_snapshot_answers_as_before_while_syncs_go_on(sim_factory, tmp_path):
    sim = sim_factory(live=True)
    types = ("events", "rooms", "participants", "deployments", "experiments")  # what COUNTS reads
    config = make_config(sim, tmp_path / "wh", lookback_seconds=3600, types=types)
    root = Path(config.warehouse)
    assert sync(config).exit_code == 0
    before = counts(root)

    # No base URL configured here: the manifest names the API the warehouse was filled from.
    made = cli("snapshot", "create", "t1", "--note", "as submitted", root=root)
    assert made.exit_code == 0, made.output
    sim.advance(900)
    assert sim.add_late_rows("events", 25)
    assert sync(config).exit_code == 0

    after = counts(root)
    assert after[0] > before[0]  # the live tables moved on
    assert counts(root, "t1") == before  # the snapshot did not
    m = snapshot.manifest(Warehouse(root), "t1")
    assert m["note"] == "as submitted"
    assert m["tables"]["events"] == before[0] == m["parquet_rows"]["events"]
    assert m["api_base_url"] == sim.base_url
    latest = snapshot._last_sync(Warehouse(root))  # the snapshot follows the first run
    assert m["last_sync"]["run_id"] != latest["run_id"]
    assert m["last_sync"]["window_end"] and m["hs_sync_version"]
    assert "events" in m["data_dictionary"] and m["data_dictionary"]["events"]["columns"]
    assert cli("snapshot", "verify", "t1", root=root).exit_code == 0


def test_rebuild_repair_maintain_and_version_clean_up_leave_a_snapshot_intact(
    synced_copy, tmp_path
):
    root = Path(synced_copy.warehouse)
    wh = Warehouse(root)
    settings = tmp_path / "settings.toml"
    settings.write_text("parquet_grace_seconds = 0\n")  # replaced versions go at once
    assert cli("snapshot", "create", "t1", root=root).exit_code == 0
    frozen = counts(root, "t1")
    linked_from = live_versions(wh)
    database = (root / DB_FILE).stat().st_ino

    rebuilt = cli("rebuild", "--type", "events", "--config", str(settings), root=root)
    assert rebuilt.exit_code == 0, rebuilt.output
    (root / "state" / "state.sqlite").write_bytes(b"not a database" * 500)
    repaired = cli("doctor", "--repair", "--config", str(settings), root=root)
    assert repaired.exit_code == 0, repaired.output
    land(wh, "events", [event(1, stateName="later")], batch="20990101T000000000000Z-w")
    transform(wh, registry.DATA_TYPES, grace_seconds=0)
    versions_left = {p for dt in registry.DATA_TYPES for p in versions_on_disk(wh, dt.name)}

    assert not linked_from & versions_left  # the versions the snapshot came from are gone
    assert (root / DB_FILE).stat().st_ino != database  # so is the database it linked
    result = cli("snapshot", "verify", "t1", root=root)
    assert result.exit_code == 0, result.output
    assert counts(root, "t1") == frozen


def versions_on_disk(wh: Warehouse, type_name: str) -> list[Path]:
    folder = versions.versions_dir(wh, type_name)
    return [p.resolve() for p in folder.iterdir()] if folder.is_dir() else []


def test_a_changed_byte_or_a_missing_file_fails_verify_naming_it(synced_copy):
    root = Path(synced_copy.warehouse)
    assert cli("snapshot", "create", "t1", root=root).exit_code == 0
    folder = snapshot.path(Warehouse(root), "t1")
    part = sorted((folder / "parquet" / "events").rglob("*.parquet"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    (folder / snapshot.DICTIONARY).unlink()

    result = cli("snapshot", "verify", "t1", root=root)
    assert result.exit_code == 1
    named = part.relative_to(folder).as_posix()
    assert f"{named}: changed" in result.output
    assert f"{snapshot.DICTIONARY}: missing" in result.output
    export = cli("snapshot", "export", "t1", "--out", str(root.parent / "t1.zip"), root=root)
    assert export.exit_code == 1 and named in export.output  # a damaged one is not exported


def test_the_exported_zip_opens_elsewhere_with_the_same_counts(synced_copy, tmp_path):
    root = Path(synced_copy.warehouse)
    assert cli("snapshot", "create", "paper.v1", root=root).exit_code == 0
    frozen = counts(root, "paper.v1")
    inside = cli("snapshot", "export", "paper.v1", "--out", str(root / "x.zip"), root=root)
    assert inside.exit_code == 2 and not (root / "x.zip").exists()
    out = tmp_path / "paper.zip"
    assert cli("snapshot", "export", "paper.v1", "--out", str(out), root=root).exit_code == 0
    shutil.rmtree(root)  # the warehouse is gone: the zip must not need it

    unpacked = tmp_path / "elsewhere"
    zipfile.ZipFile(out).extractall(unpacked)
    folder = unpacked / "paper.v1"
    con = duckdb.connect(str(folder / DB_FILE), read_only=True)
    try:
        assert list(con.execute(COUNTS).fetchone()) == frozen
    finally:
        con.close()
    m = orjson.loads((folder / snapshot.MANIFEST).read_bytes())
    assert m["tables"]["events"] == frozen[0]
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split("  ", 1)
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest, rel
    readme = (folder / "README.md").read_text()
    assert "## Citation" in readme and m["last_sync"]["run_id"] in readme
    assert (folder / "parquet" / "events").is_dir() and (folder / snapshot.DICTIONARY).is_file()


def test_the_media_manifest_is_frozen_without_the_media_files(synced_copy):
    import pyarrow.parquet as pq

    from hs_sync.media import download_media

    root = Path(synced_copy.warehouse)
    assert download_media(synced_copy.replace(media=True)).downloaded > 0
    assert cli("snapshot", "create", "t1", root=root).exit_code == 0
    folder = snapshot.path(Warehouse(root), "t1")
    frozen = pq.read_table(folder / snapshot.MEDIA_MANIFEST).to_pylist()
    con = duckdb.connect(str(root / DB_FILE), read_only=True)
    try:
        published = con.execute("SELECT recording_id, sha256, path FROM media_files").fetchall()
    finally:
        con.close()
    assert sorted((r["recording_id"], r["sha256"], r["path"]) for r in frozen) == sorted(published)
    assert snapshot.manifest(Warehouse(root), "t1")["media_files"] == len(published)
    assert not (folder / "media").exists()  # the manifest, not the recordings' bytes


def test_a_name_that_is_not_a_plain_folder_name_is_refused(tmp_path):
    root = tmp_path / "wh"
    for name in ["../t1", "a/b", ".hidden", "", "x" * 101, "t1.building", "t 1"]:
        result = cli("snapshot", "create", name, root=root)
        assert result.exit_code == 2 and "not a snapshot name" in result.output, name
        assert not (root / "snapshots").exists()
        assert cli("sql", "--snapshot", name, "SELECT 1", root=root).exit_code == 2
    usage = cli("snapshot", "verify", root=root)
    assert usage.exit_code == 2
    assert usage.output.strip() == "hs-sync snapshot verify: Missing argument 'NAME'."


def test_list_path_delete_a_taken_name_and_a_damaged_database(synced_copy):
    root = Path(synced_copy.warehouse)
    assert cli("snapshot", "create", "t1", root=root).exit_code == 0
    taken = cli("snapshot", "create", "t1", root=root)
    assert taken.exit_code == 2 and "exists already" in taken.output
    listed = orjson.loads(cli("snapshot", "list", "--json", root=root).output)
    assert [s["name"] for s in listed] == ["t1"] and listed[0]["rows"] > 0
    where = cli("snapshot", "path", "t1", root=root).output.strip()
    assert Path(where) == root / "snapshots" / "t1"
    live = counts(root)
    assert cli("snapshot", "delete", "t1", root=root).exit_code == 0
    assert not Path(where).exists() and counts(root) == live
    gone = cli("sql", "--snapshot", "t1", "SELECT 1", root=root)
    assert gone.exit_code == 2 and "no snapshot 't1'" in gone.output

    (root / DB_FILE).unlink()  # a new file, not the one t1 linked (deleted anyway)
    (root / DB_FILE).write_bytes(b"not a database" * 1000)
    damaged = cli("snapshot", "create", "t2", root=root)
    assert damaged.exit_code == 2 and "doctor --repair" in damaged.output
    assert "Traceback" not in damaged.output and not (root / "snapshots" / "t2").exists()


def test_the_dagster_snapshot_job_takes_a_named_snapshot(synced_copy):
    from dagster_project.definitions import defs
    from dagster_project.resources import HyperStudyResource, WarehouseResource
    from dagster_project.snapshot_job import JOB_NAME

    root = Path(synced_copy.warehouse)
    job = defs.get_job_def(JOB_NAME)
    result = job.execute_in_process(
        run_config={"ops": {"take_snapshot": {"config": {"name": "nightly", "note": "dagster"}}}},
        resources={
            "hyperstudy": HyperStudyResource(api_key="unused", base_url=synced_copy.base_url),
            "warehouse": WarehouseResource(root=str(root)),
        },
    )
    assert result.success
    m = snapshot.manifest(Warehouse(root), "nightly")
    assert m["note"] == "dagster" and m["api_base_url"] == synced_copy.base_url
    assert counts(root, "nightly") == counts(root)
    assert snapshot.verify(Warehouse(root), "nightly") == []


def test_an_iceberg_snapshot_is_a_tag_that_maintain_keeps(tmp_path):
    from hs_sync import objstore

    Warehouse(tmp_path / "wh").create()
    objstore.bind(tmp_path / "wh" / "state", objstore.Storage(table_format="iceberg"))
    wh = Warehouse(tmp_path / "wh")
    events = registry.BY_NAME["events"]
    land(
        wh,
        "events",
        [event(i, stateName="v1") for i in range(20)],
        batch="20240501T100000000000Z-w",
    )
    transform(wh, [events])
    snapshot.create(wh, "t1")
    frozen = sorted(r["stateName"] for r in snapshot.iceberg_rows(wh, "t1", "events").to_pylist())
    for k in (2,):  # a later sync changes every row
        land(
            wh,
            "events",
            [event(i, stateName=f"v{k}") for i in range(20)],
            batch=f"2024050{k}T100000000000Z-w",
        )
        transform(wh, [events])
    later = datetime.now(timezone.utc) + iceberg.KEEP_SNAPSHOTS_FOR + timedelta(minutes=1)
    report = iceberg.maintain(wh, [events], now=later)
    assert report["events"]["snapshots_expired"] > 0  # maintenance did expire others
    assert report["events"]["snapshots_tagged"] == 1

    assert snapshot.verify(wh, "t1") == []
    rows = snapshot.iceberg_rows(wh, "t1", "events").to_pylist()
    assert sorted(r["stateName"] for r in rows) == frozen == ["v1"] * 20
    snapshot.delete(wh, "t1")
    table = iceberg.catalog(wh).load_table(f"{iceberg.NAMESPACE}.events")
    assert snapshot.TAG_PREFIX + "t1" not in table.metadata.refs

    # a tag of that name held by someone else (another folder sharing the tables) is kept
    other = table.current_snapshot().snapshot_id
    table.manage_snapshots().create_tag(other, snapshot.TAG_PREFIX + "t2").commit()
    with pytest.raises(snapshot.SnapshotError, match="have a tag snapshot-t2 already"):
        snapshot.create(wh, "t2")
    table = iceberg.catalog(wh).load_table(f"{iceberg.NAMESPACE}.events")
    assert table.metadata.refs[snapshot.TAG_PREFIX + "t2"].snapshot_id == other
    assert not (wh.root / "snapshots" / "t2").exists()
