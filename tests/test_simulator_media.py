"""Recording media: the download-path mint endpoint, signed URL expiry, HTTP Range."""

from __future__ import annotations

import time

import httpx


def _complete_recording(sim) -> dict:
    return next(
        r
        for r in sim.dataset.records("recordings")
        if r["status"] == "complete" and r.get("downloadPath")
    )


def _mint(sim, rec) -> str:
    r = httpx.get(sim.base_url + rec["downloadPath"], headers={"X-API-Key": sim.api_key})
    assert r.status_code == 200
    return r.json()["data"]["url"]


def test_signed_url_serves_the_bytes_with_content_length_and_no_key(sim):
    rec = _complete_recording(sim)
    url = _mint(sim, rec)
    assert url.startswith("http://127.0.0.1:")
    r = httpx.get(url)
    assert r.status_code == 200
    assert r.content == sim.dataset.media_bytes(rec["recordingId"])
    assert int(r.headers["Content-Length"]) == rec["fileSize"] == len(r.content)
    assert r.headers["Accept-Ranges"] == "bytes"


def test_range_requests(sim):
    rec = _complete_recording(sim)
    url = _mint(sim, rec)
    data = sim.dataset.media_bytes(rec["recordingId"])
    size = len(data)
    r = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.content == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert r.headers["Content-Length"] == "100"
    r = httpx.get(url, headers={"Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == data[1000:]
    r = httpx.get(url, headers={"Range": "bytes=-10"})
    assert (
        r.content == data[-10:]
        and r.headers["Content-Range"] == f"bytes {size - 10}-{size - 1}/{size}"
    )
    r = httpx.get(url, headers={"Range": f"bytes={size + 5}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{size}"


def test_signed_urls_expire_and_cannot_be_altered(sim):
    sim.media_url_ttl = 0.3
    rec = _complete_recording(sim)
    url = _mint(sim, rec)
    assert httpx.get(url).status_code == 200
    time.sleep(0.5)
    r = httpx.get(url)
    assert r.status_code == 400 and b"ExpiredToken" in r.content  # as the storage service
    sim.media_url_ttl = 300
    fresh = _mint(sim, rec)
    tampered = fresh.replace("expires=", "expires=9")
    assert httpx.get(tampered).status_code == 403
    assert httpx.get(fresh).status_code == 200


def test_mint_refuses_failed_and_unknown_recordings(sim):
    failed = sim.defects["failedRecordings"][0]
    path = f"/data/recordings/download/{failed['roomId']}/{failed['recordingId']}"
    r = httpx.get(sim.base_url + path, headers={"X-API-Key": sim.api_key})
    assert r.status_code == 404 and r.json()["error"]["details"]["status"] == "failed"
    r = httpx.get(
        sim.base_url + "/data/recordings/download/room_x/rec_x", headers={"X-API-Key": sim.api_key}
    )
    assert r.status_code == 404


def test_legacy_recordings_carry_a_download_url_that_works_until_it_expires(sim):
    legacy = [r for r in sim.dataset.records("recordings") if "downloadUrl" in r]
    assert legacy and all("downloadPath" not in r for r in legacy)
    current = [r for r in sim.dataset.records("recordings") if "downloadPath" in r]
    assert current and all("downloadUrl" not in r and "url" not in r for r in current)
    assert all("roomId" not in r and "experimentId" not in r for r in legacy + current)
    assert all(r["startTime"].endswith(":00Z") or r["startTime"][-4] != "." for r in legacy)
    rec = next(r for r in legacy if r["status"] == "complete")
    r = httpx.get(rec["downloadUrl"])
    assert r.status_code == 200 and r.content == sim.dataset.media_bytes(rec["recordingId"])
    assert httpx.get(rec["url"]).status_code == 403  # the unsigned storage address
    sim.legacy_url_ttl = 0.3  # listings from now on carry URLs that expire in 0.3 s
    short = next(
        r for r in sim.dataset.records("recordings") if r["recordingId"] == rec["recordingId"]
    )
    assert short["downloadUrl"] != rec["downloadUrl"]
    assert httpx.get(short["downloadUrl"]).status_code == 200
    time.sleep(0.5)
    r = httpx.get(short["downloadUrl"])
    assert r.status_code == 400 and b"ExpiredToken" in r.content
