"""Integrity checks against the simulator: each finds exactly the planted defects."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from hs_simulator import Simulator
from hs_sync import registry
from hs_sync.checks import CHECKS, record_results, run_check, run_checks
from hs_sync.load.transform import transform
from hs_sync.warehouse import Warehouse
from tests.checks_helpers import by_name, execute, ids, planted, synced


@pytest.fixture
def world(sim, synced_copy) -> tuple[Simulator, object]:
    """The simulator's dataset with planted defects and a copy of the warehouse synced
    from it once per run (checks that ask the API record the requests they spend)."""
    return sim, synced_copy


def test_registry_names_severities_and_descriptions():
    assert len({c.name for c in CHECKS}) == len(CHECKS)
    assert {c.severity for c in CHECKS} <= {"error", "warning"}
    assert all(c.description for c in CHECKS)
    assert {"missing_sessions", "count_reconciliation", "orphans", "duplicate_keys",
            "rating_gaps", "missing_sync", "recordings_on_disk", "freshness",
            "quarantine"} <= {c.name for c in CHECKS}  # fmt: skip


def test_each_check_finds_exactly_the_planted_defects(world):
    sim, config = world
    expected = planted(sim.defects)
    assert expected["missing_sessions"] and expected["rating_gaps"] and expected["missing_sync"]
    results = by_name(run_checks(config))
    assert set(results) == {c.name for c in CHECKS}
    for name, want in expected.items():
        result = results[name]
        assert ids(result) == want, name
        assert result.count == len(want)
        assert result.passed is (not want)
        assert set(result.sample) <= want
        if want:
            assert result.hint
    assert results["recordings_on_disk"].status == "skipped"  # no media downloaded yet
    assert "media_files" in results["recordings_on_disk"].details["reason"]
    # each missing room's hint names the command that re-pulls it
    for room in (r["roomId"] for r in sim.defects["missingDataRooms"]):
        assert f"--room {room}" in results["missing_sessions"].hint


def test_missing_session_reasons_follow_the_experiment_features(world):
    sim, config = world
    result = run_check(config, "missing_sessions")
    people = {i.id: i for i in result.issues if i.entity == "participant"}
    features = {e.id: e.features for e in sim.dataset._gen.experiments}
    for room in sim.defects["missingDataRooms"]:
        f = features[room["experimentId"]]
        for pid in room["participantIds"]:
            reasons = set(people[pid].detail.split(", "))
            want = {"no events"}
            if f.continuous or f.sparse:
                want.add("no ratings")
            if f.videochat:
                want.add("no recordings")
            assert reasons == want, (pid, reasons)


def test_sync_metrics_never_flagged_for_single_participant_rooms(world):
    sim, config = world
    flagged = ids(run_check(config, "missing_sync"))
    coview = next(e for e in sim.dataset._gen.experiments if e.features.synced_media)
    rooms = [r for r in sim.dataset._gen.rooms if r.experiment_id == coview.id]
    con = duckdb.connect(str(config.warehouse / "hyperstudy.duckdb"), read_only=True)
    with_sync = {r[0] for r in con.execute("SELECT DISTINCT roomId FROM sync").fetchall()}
    con.close()
    solo = [r.id for r in rooms if len(r.participants) == 1]
    assert solo and not set(solo) & with_sync  # single rooms have no sync rows...
    assert not set(solo) & flagged  # ...and are never flagged for it
    for room in flagged:
        assert len(sim.dataset.rooms[room].participants) >= 2


def test_clean_dataset_no_check_fires(clean_synced_copy):
    from hs_sync.media import download_media

    config = clean_synced_copy  # synced from a simulator without planted defects
    download_media(config)  # so the recordings check runs instead of being skipped
    results = run_checks(config)
    for result in results:
        assert result.passed and result.count == 0, (result.name, result.sample)
        assert result.status == "passed", (result.name, result.details)


def test_reconciliation_notices_deleted_rows_and_room_repull_repairs(world):
    sim, config = world
    missing = {r["roomId"] for r in sim.defects["missingDataRooms"]}
    room_a, exp_a = execute(
        config,
        "SELECT roomId, experimentId FROM events WHERE list_contains(?, roomId) IS NOT TRUE "
        "GROUP BY ALL ORDER BY count(*) DESC, roomId LIMIT 1",
        [sorted(missing)],
    )[0]
    room_b, exp_b = execute(
        config,
        "SELECT roomId, experimentId FROM ratings_continuous WHERE experimentId <> ? "
        "GROUP BY ALL ORDER BY count(*) DESC, roomId LIMIT 1",
        [exp_a],
    )[0]
    execute(config, "DELETE FROM events WHERE roomId = ?", [room_a])
    execute(
        config,
        "DELETE FROM ratings_continuous WHERE roomId = ? AND _key IN "
        "(SELECT _key FROM ratings_continuous WHERE roomId = ? ORDER BY _key LIMIT 10)",
        [room_b, room_b],
    )

    found = run_check(config, "count_reconciliation")
    assert not found.passed
    assert ids(found) == {
        f"events/{exp_a}",
        f"events/{room_a}",
        f"ratings_continuous/{exp_b}",
        f"ratings_continuous/{room_b}",
    }
    detail = {i.id: i.detail for i in found.issues}
    served, have = map(int, re.findall(r"\d+", detail[f"ratings_continuous/{room_b}"]))
    assert served - have == 10
    assert detail[f"events/{room_a}"].endswith("warehouse 0")
    assert f"--room {room_a}" in found.hint and f"--room {room_b}" in found.hint
    # the emptied room is also a missing session now
    assert room_a in ids(run_check(config, "missing_sessions"))

    synced(sim, config.warehouse, rooms=(room_a, room_b))
    results = by_name(run_checks(config))
    assert results["count_reconciliation"].passed, results["count_reconciliation"].issues
    assert ids(results["missing_sessions"]) == planted(sim.defects)["missing_sessions"]


def test_reconciliation_notices_rows_that_arrived_late(sim_factory, tmp_path):
    sim = sim_factory(seed=3)
    config = synced(sim, tmp_path / "warehouse")
    assert run_check(config, "count_reconciliation").passed
    late = sim.add_late_rows("events", 3)
    exp = sim.defects["lateRowsAdded"][0]["experimentId"]
    found = run_check(config, "count_reconciliation")
    assert {i.id for i in found.issues if i.entity == "count"} == {f"events/{exp}"}
    assert {i.id for i in found.issues if i.entity == "room"} == {
        f"events/{r['roomId']}" for r in late
    }
    synced(sim, config.warehouse)  # the lookback re-reads them
    assert run_check(config, "count_reconciliation").passed


def test_reconciliation_requests_are_cheap_and_skipped_offline(world):
    sim, config = world
    sim.reset_requests()
    result = run_check(config, "count_reconciliation")
    assert result.passed
    data_requests = [r for r in sim.requests if "/data/" in str(r.get("path", ""))]
    pairs = sum(len(per) for per in result.details["totals"].values())
    rooms = len(sim.defects["missingDataRooms"])  # each probed once, at room scope
    assert len(data_requests) == pairs + rooms
    offline = run_check(config, "count_reconciliation", use_api=False)
    assert offline.status == "skipped" and offline.passed


def test_orphans_and_duplicate_keys(world):
    sim, config = world
    room, _participant = execute(
        config, "SELECT roomId, participantId FROM events ORDER BY id LIMIT 1"
    )[0]
    other_room, other_pt = execute(
        config,
        "SELECT roomId, senderId FROM chat WHERE roomId <> ? ORDER BY messageId LIMIT 1",
        [room],
    )[0]
    execute(config, "DELETE FROM rooms WHERE id = ?", [room])
    execute(config, "DELETE FROM participants WHERE id = ? AND roomId = ?", [other_pt, other_room])
    key = execute(config, "SELECT _key FROM ratings_sparse ORDER BY _key LIMIT 1")[0][0]
    execute(config, "INSERT INTO ratings_sparse SELECT * FROM ratings_sparse WHERE _key = ?", [key])

    orphans = run_check(config, "orphans")
    assert ids(orphans) == {room, other_pt}
    unknown_room = next(i for i in orphans.issues if i.id == room)
    assert "events" in unknown_room.detail and "participants" in unknown_room.detail
    duplicates = run_check(config, "duplicate_keys")
    assert ids(duplicates) == {f"ratings_sparse:{key}"}
    assert "hs-sync rebuild --type ratings_sparse" in duplicates.hint


def test_recordings_on_disk_missing_truncated_or_corrupt(world):
    from hs_sync.media import download_media

    sim, config = world
    download_media(config)
    assert run_check(config, "recordings_on_disk").passed
    rows = execute(
        config,
        "SELECT recording_id, path FROM media_files WHERE status = 'downloaded' "
        "ORDER BY recording_id LIMIT 3",
    )
    (gone, p1), (short, p2), (flipped, p3) = rows
    root = config.warehouse
    (root / p1).unlink()
    data = (root / p2).read_bytes()
    (root / p2).write_bytes(data[:-10])
    data = bytearray((root / p3).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / p3).write_bytes(bytes(data))

    result = run_check(config, "recordings_on_disk")
    assert ids(result) == {gone, short, flipped}
    detail = {i.id: i.detail for i in result.issues}
    assert detail[gone].startswith("missing on disk")
    assert detail[short].startswith("size mismatch")
    assert detail[flipped].startswith("checksum mismatch")
    assert "hs-sync media" in result.hint


def test_freshness_follows_the_configured_age(world):
    sim, config = world
    assert run_check(config, "freshness").passed
    stale = run_check(config.replace(freshness_hours=1e-9), "freshness")
    exps = sim.dataset.experiment_ids
    assert ids(stale) == {f"{dt.name}/{e}" for dt in config.data_types for e in exps}
    assert all("h ago" in i.detail for i in stale.issues)


def test_freshness_reports_types_never_synced(sim, tmp_path):
    config = synced(sim, tmp_path / "warehouse", types=("rooms", "participants", "experiments"))
    result = run_check(config.replace(types=()), "freshness")
    synced_types = {"rooms", "participants", "experiments"}
    exps = sim.dataset.experiment_ids
    from hs_sync.registry import DEFAULT_TYPES  # the types a sync names no types pulls

    assert ids(result) == {
        f"{dt.name}/{e}" for dt in DEFAULT_TYPES if dt.name not in synced_types for e in exps
    }
    assert all(i.detail == "never synced" for i in result.issues)


def test_quarantine_not_empty(world):
    sim, config = world
    exp = sim.dataset.experiment_ids[0]
    batch = config.warehouse / "raw" / "events" / f"experiment_id={exp}"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    (batch / f"{stamp}-w").mkdir()
    (batch / f"{stamp}-w" / "00000.ndjson").write_bytes(
        b'{"id": "evt_bad", "experimentId": "%s", "onset": "soon", "timestamp": "never"}\n'
        % exp.encode()
    )
    transform(Warehouse(config.warehouse), [registry.get("events")])
    result = run_check(config, "quarantine")
    assert ids(result) == {"events"}
    assert result.issues[0].detail.startswith("1 quarantined row")
    assert "hs-sync rebuild --type events" in result.hint


def test_open_issues_view_lists_every_open_issue(world):
    sim, config = world
    results = run_checks(config, use_api=False)
    stored = record_results(config, results)
    issues = {(r.name, i.id) for r in results for i in r.issues}
    assert stored == len(issues) > 0
    con = duckdb.connect(str(config.warehouse / "hyperstudy.duckdb"), read_only=True)
    rows = con.execute("SELECT check_name, id, severity, hint FROM open_issues").fetchall()
    con.close()
    assert {(c, i) for c, i, _, _ in rows} == issues
    assert rows[0][2] == "error"  # errors first
    assert all(hint for *_, hint in rows)

    # re-running one check replaces its own issues only
    room = next(i.id for i in results[0].issues if i.entity == "room")
    execute(config, "DELETE FROM rooms WHERE id = ?", [room])
    orphans = run_check(config, "orphans")
    assert ids(orphans) == {room}
    record_results(config, [orphans])
    con = duckdb.connect(str(config.warehouse / "hyperstudy.duckdb"), read_only=True)
    names = {r[0] for r in con.execute("SELECT DISTINCT check_name FROM open_issues").fetchall()}
    con.close()
    assert "orphans" in names and "missing_sessions" in names


def test_a_warehouse_that_does_not_exist_is_a_config_error(tmp_path):
    from hs_sync.config import Config
    from hs_sync.errors import ConfigError

    with pytest.raises(ConfigError, match="warehouse"):
        run_checks(Config(warehouse=tmp_path / "nowhere"), use_api=False)


def test_active_participants_past_the_timeout_count_as_due(world):
    sim, config = world
    # a participant who never left (still 'active' long after joining) and has no data
    pid, room, exp = execute(
        config,
        "SELECT id, roomId, experimentId FROM participants WHERE status = 'completed' "
        "AND experimentId IN (SELECT experimentId FROM ratings_continuous) ORDER BY id LIMIT 1",
    )[0]
    execute(config, "UPDATE participants SET status = 'active', completedAt = NULL WHERE id = ?",
            [pid])  # fmt: skip
    execute(config, "DELETE FROM ratings_continuous WHERE participantId = ?", [pid])
    execute(config, "DELETE FROM ratings_sparse WHERE participantId = ?", [pid])
    found = run_check(config, "missing_sessions", use_api=False)
    assert pid in ids(found)
    # joined recently (relative to the snapshot): not due yet
    execute(config, "UPDATE participants SET joinedAt = ? WHERE id = ?",
            [datetime(2100, 1, 1, tzinfo=timezone.utc) - timedelta(hours=1), pid])  # fmt: skip
    assert pid not in ids(run_check(config, "missing_sessions", use_api=False))
    assert room and exp
