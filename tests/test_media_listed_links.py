"""A legacy recording's listed signed URL is used while storage accepts it; the room's
listing is read again only once it has expired (or when no listing was read this run)."""

from __future__ import annotations

import httpx

from hs_sync.api.budget import budget_for
from hs_sync.api.client import ApiClient
from hs_sync.media import download_media
from hs_sync.media.links import Links, ListedLinks
from hs_sync.media.plan import Recording
from hs_sync.run import sync
from tests.media_helpers import manifest, media_config, served, synced

ROOM_LISTING = "/api/v3/data/recordings/room/"


def _legacy_complete(sim) -> dict[str, dict]:
    return {
        rid: rec
        for rid, rec in served(sim).items()
        if rec["status"] == "complete" and not rec.get("downloadPath")
    }


def _expired_listing(sim, config, experiment: str) -> ListedLinks:
    """The experiment's recordings listing as a sync would have read it, with legacy
    links that storage then refuses; the room listings carry fresh ones afterwards."""
    sim.legacy_url_ttl = -60
    listed = ListedLinks()
    with ApiClient(config, budget_for(config)) as client:
        page = client.get(
            f"data/recordings/experiment/{experiment}", {"limit": 1000, "offset": 0},
            signed_urls=True,
        )  # fmt: skip
    listed.note(page.records)
    sim.legacy_url_ttl = 3600
    return listed


def _room_reads(sim) -> list[dict]:
    return [r for r in sim.requests if r["path"].startswith(ROOM_LISTING)]


def test_a_sync_downloads_legacy_recordings_with_the_urls_its_listing_carried(sim, tmp_path):
    legacy = _legacy_complete(sim)
    assert legacy, "the simulator serves legacy recordings"
    config = media_config(sim, tmp_path)
    sim.reset_requests()
    summary = sync(config)
    assert summary.exit_code == 0, summary.errors
    assert summary.media["listed_links"] == len(legacy)
    assert _room_reads(sim) == []  # no request for a link the listing already gave
    rows = manifest(config)
    assert all(rows[rid]["status"] == "downloaded" for rid in legacy)
    for rid in legacy:
        on_disk = (config.warehouse / rows[rid]["path"]).read_bytes()
        assert on_disk == sim.dataset.media_bytes(rid)
    # the listed URLs stayed in memory: nothing on disk carries a signature
    for path in config.warehouse.rglob("*"):
        if path.is_file() and path.suffix not in (".mp4", ".webm"):
            assert b"sig=" not in path.read_bytes(), path


def test_without_a_listing_this_run_media_reads_the_room_for_a_fresh_link(sim, tmp_path):
    legacy = _legacy_complete(sim)
    config = synced(sim, tmp_path)
    sim.reset_requests()
    summary = download_media(config)
    assert summary.listed_links == 0
    rooms = {rec["roomId"] for rec in legacy.values()}
    assert {r["path"].rsplit("/", 1)[1] for r in _room_reads(sim)} == rooms
    assert summary.downloaded >= len(legacy)


def test_an_expired_listed_url_is_replaced_by_a_fresh_one(sim, tmp_path):
    legacy = _legacy_complete(sim)
    rid, rec = next(iter(legacy.items()))
    config = synced(sim, tmp_path, experiments=(rec["experimentId"],))
    listed = _expired_listing(sim, config, rec["experimentId"])
    assert listed.get(rid) is not None
    sim.reset_requests()
    summary = download_media(config, listed=listed)
    assert summary.errors == {}
    assert summary.reminted >= 1  # storage refused the listed URLs; fresh ones worked
    rooms = {r["roomId"] for r in legacy.values() if r["experimentId"] == rec["experimentId"]}
    assert {r["path"].rsplit("/", 1)[1] for r in _room_reads(sim)} == rooms
    rows = manifest(config)
    assert rows[rid]["status"] == "downloaded"
    assert (config.warehouse / rows[rid]["path"]).read_bytes() == sim.dataset.media_bytes(rid)


def test_a_recording_refused_its_listed_url_gets_the_rooms_fresh_one_after_a_neighbour_read_it(
    sim, tmp_path
):
    """Two downloads of one room: the first to be refused reads the room; the second,
    refused its listed link afterwards, must get the fresh link, not an "expired" error."""
    by_room: dict[str, list[dict]] = {}
    for rec in _legacy_complete(sim).values():
        by_room.setdefault(rec["roomId"], []).append(rec)
    room, (first, second) = next((r, recs[:2]) for r, recs in by_room.items() if len(recs) > 1)
    config = media_config(sim, tmp_path)
    listed = _expired_listing(sim, config, first["experimentId"])
    with ApiClient(config, budget_for(config)) as client:
        links = Links(client, listed)

        def rec(r: dict) -> Recording:
            return Recording(r["recordingId"], r["experimentId"], room, r["participantId"],
                             "complete", r["fileSize"], r["format"], None, None)  # fmt: skip

        a, b = rec(first), rec(second)
        assert links.mint(a) == listed.get(a.id) and links.mint(b) == listed.get(b.id)
        fresh_a = links.mint(a, fresh=True)  # storage refused a's: the room is read
        fresh_b = links.mint(b, fresh=True)  # then b's was refused too
    assert fresh_a != listed.get(a.id) and fresh_b != listed.get(b.id)
    assert httpx.get(fresh_b.reveal()).status_code == 200
