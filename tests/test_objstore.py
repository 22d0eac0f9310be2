"""A warehouse in an object store: `hs-sync sync --warehouse s3://...` against the
simulator and a local S3 server (moto) equals the API's data, in Iceberg tables,
in the local DuckDB database, and as raw objects in the bucket."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from hs_sync import registry
from hs_sync.cli import main
from hs_sync.config import load_config
from hs_sync.land import rawfile
from hs_sync.load import iceberg
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.objstore_helpers import BUCKET, iceberg_rows, objects
from tests.test_warehouse_sim import comparable, truth
from tests.warehouse_helpers import db_rows

URI = f"s3://{BUCKET}/lab"


@pytest.fixture(scope="module")
def synced(s3, tmp_path_factory):
    from hs_simulator import Simulator

    sim = Simulator(seed=3, scale=0.2)
    sim.start()
    local = tmp_path_factory.mktemp("local")
    env = {
        "HYPERSTUDY_API_KEY": sim.api_key,
        "HYPERSTUDY_BASE_URL": sim.base_url,
        "HS_SYNC_LOCAL_DIR": str(local),
    }
    try:
        args = ["sync", "--warehouse", URI, "--no-media", "--json"]
        result = CliRunner().invoke(main, args, env=env)
        yield sim, Warehouse(local), result
    finally:
        sim.stop()


def test_the_sync_succeeds_and_binds_the_local_folder(synced):
    _, wh, result = synced
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert summary["upload"]["objects"] > 0
    assert wh.storage.uri == URI and wh.storage.table_format == "iceberg"
    assert not wh.parquet_dir("events").exists()  # the tables are in the bucket


@pytest.mark.parametrize("dt", registry.DATA_TYPES, ids=lambda dt: dt.name)
def test_iceberg_and_duckdb_equal_the_api_row_for_row(synced, dt):
    sim, wh, _ = synced
    expected = truth(sim, dt)
    stored = {r["_key"]: comparable(dt, r) for r in db_rows(wh, dt.name)}
    assert stored == expected
    rows = iceberg_rows(wh, dt)
    assert len(rows) == len(expected)  # no key twice
    assert {r["_key"]: comparable(dt, r) for r in rows} == expected
    for row in rows:  # the partition column names the experiment the row came from
        assert row["_raw_file"].split("/")[2] == f"experiment_id={row['experiment_id']}"


def local_raw(wh: Warehouse, top: str = "raw") -> dict[str, bytes]:
    """The local working copies the bucket should hold (dot names stay local)."""
    return {
        p.relative_to(wh.root / top).as_posix(): p.read_bytes()
        for p in (wh.root / top).rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.parts)
    }


def test_raw_files_are_objects_in_the_bucket(synced, s3):
    _, wh, _ = synced
    local = local_raw(wh)
    assert any(rawfile.is_data_file(name) for name in local)
    assert objects(s3, "lab/raw/") == local


def test_a_second_sync_uploads_only_its_new_files_and_media(synced, s3):
    sim, wh, _ = synced
    before = local_raw(wh)
    config = load_config(
        None,
        env={},
        api_key=sim.api_key,
        base_url=sim.base_url,
        warehouse=URI,
        local_dir=wh.root,
        media=True,
        retry_floor_seconds=0.01,
        budget_per_hour=100_000,
        budget_per_minute=100_000,
    )
    summary = sync(config)
    assert summary.exit_code == 0, summary.errors
    after, media = local_raw(wh), local_raw(wh, "media")
    assert media, "the simulator's recordings were not downloaded"
    assert summary.upload["objects"] == len(after.keys() - before.keys()) + len(media)
    assert objects(s3, "lab/raw/") == after
    assert objects(s3, "lab/media/") == media
    for dt in registry.DATA_TYPES:
        assert len(iceberg_rows(wh, dt)) == len(truth(sim, dt)), dt.name


def test_a_local_folder_bound_to_a_bucket_refuses_another(synced):
    sim, wh, _ = synced
    result = CliRunner().invoke(
        main,
        ["sync", "--warehouse", f"s3://{BUCKET}/other"],
        env={
            "HYPERSTUDY_API_KEY": sim.api_key,
            "HYPERSTUDY_BASE_URL": sim.base_url,
            "HS_SYNC_LOCAL_DIR": str(wh.root),
        },
    )
    assert result.exit_code == 2
    assert "belongs to s3://hs-warehouse/lab" in result.output


def test_hs_sync_maintain_on_the_bucket_and_refused_on_parquet(synced, tmp_path):
    _, wh, _ = synced
    env = {"HS_SYNC_LOCAL_DIR": str(wh.root)}
    result = CliRunner().invoke(main, ["maintain", "--warehouse", URI, "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert set(report) == {dt.name for dt in registry.DEFAULT_TYPES}
    events = registry.BY_NAME["events"]
    assert len(iceberg_rows(wh, events)) == len(truth(synced[0], events))
    local = CliRunner().invoke(main, ["maintain", "--warehouse", str(tmp_path / "plain")])
    assert local.exit_code == 2
    assert "keeps hive Parquet" in local.output


def test_settings_of_a_bucket_warehouse(tmp_path, monkeypatch):
    from hs_sync import objstore
    from hs_sync.errors import ConfigError

    monkeypatch.delenv("HS_SYNC_STATE_DIR")  # the default state folder, under XDG_STATE_HOME
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hs_sync.toml").write_text(
        'warehouse = "s3://lab-data/hs/"\ns3_endpoint = "http://minio.lab:9000"\n'
        'catalog_uri = "postgresql+psycopg2://hs@db.lab/iceberg"\n'
    )
    config = load_config(env={})
    assert config.warehouse_uri == "s3://lab-data/hs"
    assert config.warehouse.parent == tmp_path / "state" / "hs-sync" / "warehouses"
    assert config.warehouse.name.startswith("lab-data_hs")
    storage = objstore.from_config(config)
    assert (storage.bucket, storage.prefix, storage.table_format) == ("lab-data", "hs", "iceberg")
    assert storage.endpoint == "http://minio.lab:9000"
    assert storage.key("raw/x") == "lab-data/hs/raw/x"
    named = load_config(env={"HS_SYNC_LOCAL_DIR": str(tmp_path / "here")})
    assert named.warehouse == tmp_path / "here" and named.warehouse_uri == "s3://lab-data/hs"
    plain = objstore.from_config(load_config(env={}, warehouse=tmp_path / "plain"))
    assert (plain.uri, plain.table_format) == (None, "parquet")
    with pytest.raises(ConfigError, match="table_format"):
        load_config(env={}, table_format="delta")
    with pytest.raises(ConfigError, match="Iceberg"):
        objstore.from_config(load_config(env={}, table_format="parquet"))


def test_hs_sync_rebuild_replaces_the_iceberg_tables_in_one_commit_each(synced):
    sim, wh, _ = synced
    env = {"HS_SYNC_LOCAL_DIR": str(wh.root)}
    events = registry.BY_NAME["events"]
    before = len(iceberg.table(iceberg.catalog(wh), events).metadata.snapshots)
    result = CliRunner().invoke(main, ["rebuild", "--warehouse", URI, "--json"], env=env)
    assert result.exit_code == 0, result.output
    for dt in registry.DATA_TYPES:
        rows = iceberg_rows(wh, dt)
        assert len(rows) == len(truth(sim, dt)), dt.name
        assert {r["_key"]: comparable(dt, r) for r in rows} == truth(sim, dt), dt.name
    # one transaction per table: the delete of everything and the append
    assert len(iceberg.table(iceberg.catalog(wh), events).metadata.snapshots) == before + 2


def test_a_new_machine_restores_raw_from_the_bucket_with_doctor_repair(synced, s3, tmp_path):
    sim, _, _ = synced
    fresh = tmp_path / "new-machine"
    env = {"HS_SYNC_LOCAL_DIR": str(fresh)}
    before = CliRunner().invoke(main, ["doctor", "--warehouse", URI, "--json"], env=env)
    assert before.exit_code == 1, before.output
    raw = next(s for s in orjson.loads(before.stdout)["stores"] if s["store"] == "raw")
    in_bucket = objects(s3, "lab/raw/")
    assert raw["problem"] == f"{len(in_bucket):,} raw files of {URI} are not in this folder"

    # A sync would build the database from its own rows only: it is refused, nothing written.
    api = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}
    refused = CliRunner().invoke(main, ["sync", "--warehouse", URI], env={**env, **api})
    assert refused.exit_code == 2, refused.output
    assert "doctor --repair" in refused.output
    assert local_raw(Warehouse(fresh)) == {}

    repaired = CliRunner().invoke(main, ["doctor", "--warehouse", URI, "--repair"], env=env)
    assert repaired.exit_code == 0, repaired.output
    assert (
        f"{len(in_bucket):,} files" in repaired.output
        and "fetched from the bucket" in repaired.output
    )
    wh = Warehouse(fresh)
    assert local_raw(wh) == in_bucket
    for dt in registry.DATA_TYPES:
        expected = truth(sim, dt)
        assert {r["_key"]: comparable(dt, r) for r in db_rows(wh, dt.name)} == expected, dt.name
        assert {r["_key"]: comparable(dt, r) for r in iceberg_rows(wh, dt)} == expected, dt.name
    after = CliRunner().invoke(main, ["doctor", "--warehouse", URI], env=env)
    assert after.exit_code == 0, after.output


def test_doctor_names_an_unreachable_bucket_in_one_line(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "HS_SYNC_LOCAL_DIR": str(tmp_path / "local"),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    result = CliRunner().invoke(main, ["doctor", "--warehouse", URI], env=env)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"hs-sync doctor: config: warehouse: cannot list {URI}/raw: ")
    assert "Traceback" not in result.output and len(result.output.splitlines()) == 1
