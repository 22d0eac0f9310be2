"""Live mode: the clock advances, new rows and rooms appear, statuses change, rows arrive late."""

from __future__ import annotations

import httpx


def _all(sim, data_type, exp, **params) -> list[dict]:
    rows, offset = [], 0
    while True:
        body = httpx.get(
            f"{sim.base_url}/data/{data_type}/experiment/{exp}",
            params={"offset": offset, **params},
            headers={"X-API-Key": sim.api_key},
        ).json()
        rows.extend(body["data"])
        page = body["metadata"]["pagination"]
        if not page["hasMore"]:
            return rows
        offset = page["nextOffset"]


def test_advancing_the_clock_reveals_new_rows_rooms_and_statuses(sim_factory):
    sim = sim_factory(live=True, scale=0.2)
    exp = sim.dataset.experiment_ids[0]
    before = _all(sim, "events", exp)
    assert before == sim.dataset.records("events", exp)
    now = sim.clock.now
    assert max(e["timestamp"] for e in before) <= now.isoformat().replace("+00:00", "Z")
    rooms_before = {r["id"]: r for r in sim.dataset.records("rooms", exp)}
    recs_before = {r["recordingId"]: r["status"] for r in sim.dataset.records("recordings", exp)}
    sim.advance(3 * 3600)
    after = _all(sim, "events", exp)
    assert after == sim.dataset.records("events", exp)
    assert len(after) > len(before)
    assert {e["id"] for e in before} <= {e["id"] for e in after}
    rooms_after = {r["id"]: r for r in sim.dataset.records("rooms", exp)}
    assert set(rooms_after) > set(rooms_before)  # new sessions started
    changed = [r for r in rooms_before if rooms_before[r]["status"] != rooms_after[r]["status"]]
    assert changed and all(rooms_after[r]["status"] == "completed" for r in changed)
    recs_after = {r["recordingId"]: r["status"] for r in sim.dataset.records("recordings", exp)}
    assert any(recs_before[k] == "processing" and recs_after[k] == "complete" for k in recs_before)


def test_some_rows_arrive_after_newer_rows_in_live_mode(sim_factory):
    sim = sim_factory(live=True, scale=0.2)
    seen: dict[str, str] = {}
    late = 0
    for _ in range(12):
        newest = max(seen.values(), default="")
        for exp in sim.dataset.experiment_ids:
            for row in sim.dataset.records("events", exp):
                if row["id"] not in seen:
                    late += bool(newest) and row["timestamp"] < newest
                    seen[row["id"]] = row["timestamp"]
        sim.advance(600)
    assert late > 0


def test_add_late_rows_inserts_older_rows_visible_now(sim_factory):
    sim = sim_factory()  # its data changes
    exp = sim.dataset.experiment_ids[0]
    before = _all(sim, "events", exp)
    newest = before[-1]["timestamp"]
    added = sim.add_late_rows("events", 5, exp)
    assert len(added) == 5 and all(r["timestamp"] < newest for r in added)
    after = _all(sim, "events", exp)
    assert len(after) == len(before) + 5
    assert {r["id"] for r in added} <= {r["id"] for r in after}
    assert [r["timestamp"] for r in after] == sorted(r["timestamp"] for r in after)
    assert after == sim.dataset.records("events", exp)
    assert sim.defects["lateRowsAdded"] == [{"dataType": "events", "experimentId": exp, "count": 5}]


def test_late_rows_leave_the_entity_listings_cached(sim_factory):
    sim = sim_factory()  # its data changes
    # Entity listings depend on the clock only; rebuilding them after every late row
    # would charge the simulator's own work to the sync that follows.
    exp = sim.dataset.experiment_ids[0]
    listing = sim.dataset.table("recordings", exp)
    sim.add_late_rows("events", 3, exp)
    assert sim.dataset.table("recordings", exp) is listing
    rec_id = sim.dataset.records("recordings", exp)[0]["recordingId"]
    sim.override_recording(rec_id, participantName="changed")
    assert sim.dataset.table("recordings", exp) is not listing
    assert sim.dataset.records("recordings", exp)[0]["participantName"] == "changed"


def test_offsets_shift_when_rows_arrive_mid_scan(sim_factory):
    sim = sim_factory()  # its data changes
    exp = sim.dataset.experiment_ids[0]
    url = f"{sim.base_url}/data/ratings/continuous/experiment/{exp}"
    headers = {"X-API-Key": sim.api_key}
    first = httpx.get(url, params={"limit": 100}, headers=headers).json()
    sim.add_late_rows("ratings/continuous", 3, exp)
    second = httpx.get(url, params={"limit": 100, "offset": 100}, headers=headers).json()
    assert second["metadata"]["pagination"]["total"] == first["metadata"]["pagination"]["total"] + 3
