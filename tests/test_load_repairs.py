"""The load path's guarantees against damage and repeats: per-experiment keys, damaged
raw files set aside and pulled again, one quarantine copy per source line, leftovers
removed, and a run that quarantined says so and exits 1."""

from __future__ import annotations

import hashlib

import orjson
from click.testing import CliRunner

from hs_sync import registry
from hs_sync.cli import main
from hs_sync.land import quarantine, rawfile
from hs_sync.load.lines import manifest_path
from hs_sync.load.transform import raw_files, rebuild, transform
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse, safe_part
from tests.extract_helpers import make_config
from tests.warehouse_helpers import db_rows, event, land, parquet_table

EVENTS = registry.get("events")


def test_one_event_id_in_two_experiments_stays_two_rows(tmp_path):
    wh = Warehouse(tmp_path / "wh").create()
    land(wh, "events", [event(1, stateName="in a")], experiment="exp_a")
    land(wh, "events", [event(1, stateName="in b")], experiment="exp_b")
    transform(wh, registry.DATA_TYPES)
    rows = db_rows(wh, "events")
    assert [(r["_key"], r["stateName"]) for r in rows] == [
        ("exp_a|evt_0001", "in a"),
        ("exp_b|evt_0001", "in b"),
    ]
    assert parquet_table(wh, EVENTS).num_rows == 2


def test_quarantine_keeps_one_copy_per_source_line(tmp_path):
    wh = Warehouse(tmp_path / "wh").create()
    lines = [event(1), b"{not json", event(2, id=None)]
    land(wh, "events", lines, batch="20240501T100000000000Z-w")
    first = transform(wh, registry.DATA_TYPES)
    assert first["quarantined"] == 2
    # the same window pulled again (as --full-refresh does) lands the same lines anew
    land(wh, "events", lines, batch="20240502T100000000000Z-w")
    again = transform(wh, registry.DATA_TYPES)
    assert again["quarantined"] == 0
    assert quarantine.count(wh) == {"events": 2}
    rebuilt = rebuild(wh)
    assert rebuilt["quarantined"] == 2 and quarantine.count(wh) == {"events": 2}
    assert [r["reason"] for r in quarantine.rows(wh, "events")] == [
        "not JSON",
        "no key: id missing, empty or not a string",
    ]
    assert len(db_rows(wh, "events")) == 1


def test_leftover_building_copies_spill_files_and_staging_are_removed(tmp_path):
    wh = Warehouse(tmp_path / "wh").create()
    state = wh.state_dir
    (state / ".hyperstudy.duckdb.4242.building").write_bytes(b"x" * 100)
    (state / ".hyperstudy.duckdb.4242.building.wal").write_bytes(b"x")
    (state / ".hyperstudy.duckdb.4242.building.tmp").mkdir()
    (state / ".hyperstudy.duckdb.4242.building.tmp" / "spill.block").write_bytes(b"x" * 100)
    (state / "duckdb-tmp").mkdir()
    (state / "duckdb-tmp" / "spill.block").write_bytes(b"x")
    (state / "parquet-staging").mkdir()
    (state / "parquet-staging" / "stage-events.parquet").write_bytes(b"x")
    half = wh.quarantine_dir("events") / "experiment_id=x" / "b" / ".00000.ndjson.77.tmp"
    half.parent.mkdir(parents=True)
    half.write_bytes(b"x")
    transform(wh, registry.DATA_TYPES)  # nothing to apply: the leftovers go all the same
    left = [p.name for p in state.iterdir() if p.name.startswith((".", "duckdb", "parq"))]
    assert left == [] and not half.exists()
    land(wh, "events", [event(1)])
    transform(wh, registry.DATA_TYPES)
    assert len(db_rows(wh, "events")) == 1


def test_a_damaged_raw_file_is_set_aside_reported_and_pulled_again(sim, tmp_path):
    config = make_config(sim, tmp_path / "wh", types=("events",))
    wh = Warehouse(config.warehouse)
    assert sync(config).exit_code == 0
    expected = len(db_rows(wh, "events"))
    damaged = raw_files(wh, EVENTS)[0]
    damaged.path.write_bytes(damaged.path.read_bytes()[:100])  # cut short
    # the file is already applied; a rebuild reads it again and sets it aside
    summary = rebuild(wh, [EVENTS])
    assert summary["damaged"] == [damaged.name]
    assert (wh.root / "raw" / ".damaged" / damaged.path.relative_to(wh.root / "raw")).exists()
    assert len(db_rows(wh, "events")) < expected
    # the next sync pulls the damaged file's window again: every row is back
    again = sync(config)
    assert again.exit_code == 0, again.errors
    truth = {EVENTS.row_key(safe_part(r["experimentId"]), r) for r in sim.dataset.records("events")}
    assert {r["_key"] for r in db_rows(wh, "events")} == truth


def test_a_raw_file_changed_on_disk_is_caught_by_its_checksum(sim, tmp_path):
    """A file that still decompresses but is not what was landed (a line lost) does not
    match the SHA-256 its manifest recorded: it is set aside like a truncated one."""
    config = make_config(sim, tmp_path / "wh", types=("events",))
    wh = Warehouse(config.warehouse)
    assert sync(config).exit_code == 0
    changed = raw_files(wh, EVENTS)[0]
    manifest = orjson.loads(manifest_path(changed.path).read_bytes())
    assert manifest["sha256"] == hashlib.sha256(changed.path.read_bytes()).hexdigest()
    kept = b"".join(line + b"\n" for line in list(rawfile.lines(changed.path))[:-1])
    changed.path.write_bytes(rawfile.encode(kept, "zstd"))
    summary = rebuild(wh, [EVENTS])
    assert summary["damaged"] == [changed.name]
    assert not changed.path.exists()
    again = sync(config)
    assert again.exit_code == 0, again.errors
    truth = {EVENTS.row_key(safe_part(r["experimentId"]), r) for r in sim.dataset.records("events")}
    assert {r["_key"] for r in db_rows(wh, "events")} == truth


def test_a_sync_that_quarantined_says_so_first_and_exits_1(sim, tmp_path):
    root = tmp_path / "wh"
    wh = Warehouse(root).create()
    experiment = sim.dataset.records("events")[0]["experimentId"]
    land(wh, "events", [b"{not json"], experiment=safe_part(experiment))
    env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}
    args = ["sync", "--warehouse", str(root), "--type", "events", "--no-media"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("synced "))
    assert lines[first + 1].startswith("QUARANTINED: 1 raw line"), result.output
    result = CliRunner().invoke(main, [*args, "--json"], env=env)
    assert result.exit_code == 0  # the line was quarantined by the run before
    report = orjson.loads(result.stdout)
    assert report["quarantined"] == 0 and report["exit_code"] == 0
