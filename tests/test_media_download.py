"""Media downloads against the simulator over HTTP: complete, verified, resumed, re-minted."""

from __future__ import annotations

from hs_sync.api.budget import budget_for
from hs_sync.load.transform import rebuild
from hs_sync.media import download_media
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.media_helpers import (
    manifest,
    media_config,
    media_requests,
    mint_requests,
    pick,
    served,
    sha256,
    synced,
)


def test_every_completed_recording_is_downloaded_verified_and_in_the_manifest(sim, tmp_path):
    config = synced(sim, tmp_path)
    summary = download_media(config)

    recs = served(sim)
    complete = {k: r for k, r in recs.items() if r["status"] == "complete"}
    assert any(not r.get("downloadPath") for r in complete.values())  # legacy links too
    assert summary.downloaded == len(complete) > 0
    assert summary.errors == {} and summary.exit_code == 0
    assert summary.bytes_downloaded == sum(r["fileSize"] for r in complete.values())

    rows = manifest(config)
    assert set(rows) == set(recs)
    for rid, rec in complete.items():
        row = rows[rid]
        data = sim.dataset.media_bytes(rid)
        ext = rec["format"]
        assert row["path"] == (
            f"media/{rec['experimentId']}/{rec['roomId']}/{rec['participantId']}/{rid}.{ext}"
        )
        on_disk = (config.warehouse / row["path"]).read_bytes()
        assert on_disk == data
        assert row["status"] == "downloaded" and row["reason"] is None
        assert row["bytes"] == row["expected_bytes"] == len(data)
        assert row["sha256"] == sha256(data)
        assert row["last_attempt"] is not None and row["attempts"] == 1
    for rid, rec in recs.items():
        if rec["status"] == "processing":
            assert rows[rid]["status"] == "pending" and rows[rid]["sha256"] is None
            assert not (config.warehouse / rows[rid]["path"]).exists()
    failed = {d["recordingId"] for d in sim.defects["failedRecordings"]}
    assert failed and set(summary.server_failed) == failed
    for rid in failed:
        assert rows[rid]["status"] == "failed"
        assert "failed on the server" in rows[rid]["reason"]
    assert not list((config.warehouse / "media").rglob("*.part"))

    # A second run fetches nothing: every file is verified on disk.
    sim.reset_requests()
    again = download_media(config)
    assert (again.downloaded, again.up_to_date) == (0, len(complete))
    assert again.api_requests == again.storage_requests == 0
    assert not again.manifest_published  # nothing changed, the database is left alone
    assert not [r for r in sim.requests if r["path"].startswith("/media/")]

    # A file removed from disk is fetched again, and only that one.
    gone = next(iter(complete))
    (config.warehouse / rows[gone]["path"]).unlink()
    third = download_media(config)
    assert third.downloaded == 1 and third.up_to_date == len(complete) - 1
    assert (config.warehouse / rows[gone]["path"]).read_bytes() == sim.dataset.media_bytes(gone)


def test_dropped_connection_resumes_with_range_not_from_the_start(sim, tmp_path):
    rec = pick(sim)[0]
    rid, size = rec["recordingId"], rec["fileSize"]
    config = synced(sim, tmp_path, experiments=(rec["experimentId"],))
    sim.media_fault(rid, "drop")
    sim.reset_requests()
    summary = download_media(config)

    assert summary.errors == {} and summary.resumed >= 1
    first, second = media_requests(sim, rid)
    assert first["range"] is None and first["fault"] == "drop"
    start = int(second["range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start < size  # continued from the bytes kept, not restarted
    assert second["status"] == 206
    row = manifest(config)[rid]
    data = sim.dataset.media_bytes(rid)
    assert row["status"] == "downloaded" and row["sha256"] == sha256(data)
    assert (config.warehouse / row["path"]).read_bytes() == data


def test_a_part_file_left_by_a_failed_run_is_resumed_by_the_next(sim, tmp_path):
    rec = pick(sim)[0]
    rid = rec["recordingId"]
    config = synced(sim, tmp_path, experiments=(rec["experimentId"],), max_attempts=2)
    sim.media_fault(rid, "drop", times=2)
    first = download_media(config)
    assert "broke off" in first.errors[rid] and first.exit_code == 1
    row = manifest(config)[rid]
    assert row["status"] == "failed" and row["sha256"] is None
    final = config.warehouse / row["path"]
    part = final.with_name(final.name + ".part")
    kept = part.stat().st_size
    assert not final.exists() and 0 < kept < rec["fileSize"]

    sim.reset_requests()
    second = download_media(config)
    assert second.downloaded == 1 and second.errors == {}
    (request,) = media_requests(sim, rid)
    assert request["range"] == f"bytes={kept}-" and request["status"] == 206
    data = sim.dataset.media_bytes(rid)
    assert final.read_bytes() == data and not part.exists()
    assert manifest(config)[rid]["sha256"] == sha256(data)
    assert manifest(config)[rid]["attempts"] == 2


def test_signed_url_expiring_mid_download_is_reminted_and_the_file_completes(sim, tmp_path):
    rec = pick(sim)[0]
    rid = rec["recordingId"]
    config = synced(sim, tmp_path, experiments=(rec["experimentId"],))
    sim.media_url_ttl = 1.5
    # Half the file arrives, then the connection stalls past the link's expiry and drops.
    sim.media_fault(rid, "drop", delay=2.0)
    sim.reset_requests()
    summary = download_media(config)

    assert summary.errors == {} and summary.reminted >= 1
    statuses = [r["status"] for r in media_requests(sim, rid)]
    assert statuses[0] == 200 and 400 in statuses and statuses[-1] == 206  # expired: 400
    assert len(mint_requests(sim, rid)) == 2
    row = manifest(config)[rid]
    data = sim.dataset.media_bytes(rid)
    assert row["status"] == "downloaded" and row["sha256"] == sha256(data)
    assert (config.warehouse / row["path"]).read_bytes() == data


def test_wrong_size_from_the_server_is_detected_and_never_marked_downloaded(sim, tmp_path):
    short, long_ = pick(sim, 2)
    config = synced(sim, tmp_path, experiments=(short["experimentId"],))
    sim.media_fault(short["recordingId"], "resize", times=100, delta=-1000)
    sim.media_fault(long_["recordingId"], "resize", times=100, delta=+512)
    for _ in range(2):  # and not on a second attempt either
        summary = download_media(config)
        rows = manifest(config)
        for rec in (short, long_):
            rid = rec["recordingId"]
            assert "size mismatch" in summary.errors[rid]
            assert str(rec["fileSize"]) in summary.errors[rid]
            assert rows[rid]["status"] == "failed" and rows[rid]["sha256"] is None
            final = config.warehouse / rows[rid]["path"]
            assert not final.exists() and not final.with_name(final.name + ".part").exists()
        assert summary.exit_code == 1
        assert (
            summary.downloaded + summary.up_to_date
            == len(
                [
                    r
                    for r in served(sim, short["experimentId"]).values()
                    if r["status"] == "complete"
                ]
            )
            - 2
        )


def test_recording_still_processing_is_downloaded_by_a_later_sync(sim_factory, tmp_path):
    sim = sim_factory(live=True)
    # one experiment keeps the link mints under the API's 100 a minute per endpoint
    processing = [r for r in served(sim).values() if r["status"] == "processing"]
    exp = min({r["experimentId"] for r in processing}, key=lambda e: len(served(sim, e)))
    config = synced(sim, tmp_path, experiments=(exp,))
    first = download_media(config)
    pending = {k for k, r in manifest(config).items() if r["status"] == "pending"}
    assert pending and first.pending == len(pending)

    sim.advance(600)
    later = sync(config)  # the merge re-read picks up processing -> complete, then downloads
    assert not later.errors
    rows = manifest(config)
    now_complete = {k for k in pending if served(sim)[k]["status"] == "complete"}
    assert now_complete
    for rid in now_complete:
        assert rows[rid]["status"] == "downloaded"
        data = sim.dataset.media_bytes(rid)
        assert (config.warehouse / rows[rid]["path"]).read_bytes() == data
        assert rows[rid]["sha256"] == sha256(data)
    assert later.media["downloaded"] >= len(now_complete) and later.media["errors"] == {}


def test_manifest_survives_transform_runs_and_returns_after_a_rebuild(sim, tmp_path):
    config = synced(sim, tmp_path)
    download_media(config)
    before = manifest(config)

    full = sync(config.replace(full_refresh=True))  # lands and publishes the database again
    assert full.transform and full.transform["published"]
    assert manifest(config) == before

    rebuild(Warehouse(config.warehouse))  # a fresh database from raw alone
    sim.reset_requests()
    summary = download_media(config)
    assert summary.manifest_published and summary.storage_requests == 0
    assert manifest(config) == before


def test_media_reads_raw_records_when_the_database_has_none(sim, tmp_path):
    config = synced(sim, tmp_path)
    db = config.warehouse / "hyperstudy.duckdb"
    db.unlink()
    summary = download_media(config)
    complete = [r for r in served(sim).values() if r["status"] == "complete"]
    assert summary.downloaded == len(complete) and summary.errors == {}
    # the manifest waits in state/ rather than creating a database the transform did not build
    assert not db.exists() and not summary.manifest_published
    rebuild(Warehouse(config.warehouse))
    again = download_media(config)
    assert again.manifest_published and again.storage_requests == 0
    assert {r["status"] for r in manifest(config).values()} >= {"downloaded", "pending"}


def test_spent_request_budget_stops_cleanly_and_the_next_run_finishes(sim, tmp_path):
    rec = pick(sim)[0]
    config = synced(sim, tmp_path, experiments=(rec["experimentId"],))
    ledger = budget_for(config)  # the key's requests of the last hour, this test's sync's
    spent = config.budget_per_hour - ledger.remaining_this_hour()
    ledger.close()
    summary = download_media(config.replace(budget_per_hour=spent + 3, media_concurrency=1))
    assert "budget" in summary.errors and summary.exit_code == 1
    assert summary.api_requests == 3 and summary.downloaded <= 3
    rows = manifest(config)
    waiting = [r for r in rows.values() if (r["reason"] or "").startswith("not attempted")]
    assert waiting and all(r["status"] == "pending" for r in waiting)

    finished = download_media(config)
    complete = [r for r in served(sim, rec["experimentId"]).values() if r["status"] == "complete"]
    assert finished.errors == {}
    assert finished.downloaded + finished.up_to_date == len(complete)
    assert finished.up_to_date == summary.downloaded


def test_terminal_progress_follows_every_byte(sim, tmp_path):
    from hs_sync.cli.progress import MediaProgress

    rec = pick(sim)[0]
    config = synced(sim, tmp_path, experiments=(rec["experimentId"],))
    sim.media_fault(rec["recordingId"], "drop")
    with MediaProgress(enabled=True) as progress:
        summary = download_media(config, progress=progress)
        bar = progress._bar
        (overall,) = bar.tasks  # per-file lines are gone once their file is done
        assert overall.completed == overall.total == summary.bytes_downloaded


def test_only_the_selected_experiments_are_downloaded(sim, tmp_path):
    rec = pick(sim)[0]
    config = media_config(sim, tmp_path, experiments=(rec["experimentId"],))
    synced(sim, tmp_path)  # metadata of every experiment
    summary = download_media(config)
    rows = manifest(config)
    assert {r["experiment_id"] for r in rows.values()} == {rec["experimentId"]}
    assert summary.recordings == len(served(sim, rec["experimentId"]))
