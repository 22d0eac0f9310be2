"""Shapes of the SDK and the dashboard docs, planted in the simulator, sync exactly.

Recordings without `roomId`/`experimentId` (the SDK's fixture shape), legacy
`downloadUrl` recordings (one expired), rooms with `startTime`/`duration`, a
questionnaire response with an `answers` list and a participant who rejoins
in a second room: each lands with the right room and experiment, in the right
media folder, and no check reports a false finding.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from hs_simulator import Simulator
from hs_simulator.planted import ABSENT
from hs_simulator.timeutil import iso
from hs_sync.checks import run_check, run_checks
from hs_sync.media import download_media
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse, safe_part
from tests.conftest import SMALL_SCALE
from tests.extract_helpers import make_config
from tests.warehouse_helpers import query

ANSWERS = [
    {"questionId": "q_mood", "question": "How do you feel?", "answer": 4},
    {"questionId": "q_text", "question": "Anything else?", "answer": "all good"},
]


def _plant(sim: Simulator) -> dict:
    """Plant every case; returns what the test needs to know about them."""
    ds = sim.dataset
    # Every recording in the SDK's shape: no top-level room or experiment.
    for rid in ds.recordings:
        sim.plant_fields("recordings", rid, roomId=ABSENT, experimentId=ABSENT)
    legacy = sorted(r.id for r in ds.recordings.values() if r.legacy and not r.failed)
    expired = legacy[0]
    past = int(time.time() * 1000) - 60_000
    url = f"{ds.base_url}/media/{expired}?expires={past}&sig={ds.signer.sign(expired, past)}"
    sim.plant_fields("recordings", expired, downloadUrl=url)

    # Rooms as the dashboard docs give them (the simulator's shape): startTime and
    # duration (ms), no startedAt/completedAt.
    docs_rooms = {}
    for room in ds.records("rooms"):
        assert "startedAt" not in room and "completedAt" not in room
        if room.get("startTime") and room.get("duration") is not None:
            docs_rooms[room["id"]] = (
                ds.rooms[room["id"]].started_at,
                ds.rooms[room["id"]].completed_at,
            )

    # A participant who rejoins in a second room of the experiment, with events there and
    # a recording (without room) that starts after the rejoin.
    first = next(p for p in ds.participants.values() if p.final_status == "completed")
    second = next(
        r for r in ds.rooms.values() if r.experiment_id == first.experiment_id
        and r.id != first.room_id and r.created_at < ds.cutoff - 60_000
    )  # fmt: skip
    rejoined = max(first.ended_at, second.created_at) + 1_000
    participant = next(p for p in ds.records("participants") if p["id"] == first.id)
    sim.plant_rows("participants", first.experiment_id, [{
        **participant, "roomId": second.id, "joinedAt": iso(rejoined), "completedAt": None,
        "status": "active", "completionCode": "IN_PROGRESS",
    }])  # fmt: skip
    template = next(r for r in ds.records("recordings") if r["participantId"] == first.id)
    rejoin_rec = {**template, "recordingId": "EG_rejoin_1", "egressId": "EG_rejoin_1",
                  "startTime": iso(rejoined + 500), "status": "processing", "fileSize": None}  # fmt: skip
    rejoin_rec.pop("downloadUrl", None)
    rejoin_rec.pop("downloadPath", None)
    sim.plant_rows("recordings", first.experiment_id, [rejoin_rec], {"roomId": second.id})
    event = next(
        e for e in ds.records("events", first.experiment_id) if e["participantId"] == first.id
    )
    sim.plant_rows("events", first.experiment_id, [
        {**event, "id": "evt_rejoin_1", "roomId": second.id, "timestamp": iso(rejoined + 10)},
        {**event, "id": "evt_answers_1", "roomId": second.id, "timestamp": iso(rejoined + 20),
         "category": "questionnaire", "eventType": "questionnaire.response",
         "response": {"answers": ANSWERS}},
    ])  # fmt: skip
    ratings = ds.records("ratings/continuous", first.experiment_id)
    rating = next(r for r in ratings if r["participantId"] == first.id)
    sim.plant_rows("ratings/continuous", first.experiment_id, [
        {**rating, "roomId": second.id, "timestamp": iso(rejoined + 30), "onset": 30},
    ])  # fmt: skip
    return {
        "expired": expired,
        "legacy": legacy[1:],
        "docs_rooms": docs_rooms,
        "rejoiner": first,
        "second_room": second.id,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    sim = Simulator(seed=1, scale=SMALL_SCALE, defects=False)
    sim.start()
    try:
        planted = _plant(sim)
        folder: Path = tmp_path_factory.mktemp("fidelity") / "wh"
        config = make_config(sim, folder, retry_floor_seconds=0.01)
        summary = sync(config)
        assert summary.exit_code == 0, summary.errors
        media = download_media(replace(config, media=True))
        yield sim, config, planted, media
    finally:
        sim.stop()


def test_recordings_get_room_and_experiment_without_the_fields(world):
    sim, config, planted, _ = world
    wh = Warehouse(config.warehouse)
    rows = dict(
        ((rid), (exp, room))
        for rid, exp, room in query(wh, "SELECT recordingId, experimentId, roomId FROM recordings")
    )
    truth = {r.id: (r.experiment_id, r.room_id) for r in sim.dataset.recordings.values()}
    truth["EG_rejoin_1"] = (planted["rejoiner"].experiment_id, planted["second_room"])
    assert rows == truth
    # the participant's first-room recordings stay in the first room
    first = planted["rejoiner"]
    mine = [r for r in sim.dataset.recordings.values() if r.participant_id == first.id]
    assert mine and all(rows[r.id][1] == first.room_id for r in mine)


def test_media_lands_in_the_room_folder_and_legacy_links_download(world):
    sim, config, planted, media = world
    wh = Warehouse(config.warehouse)
    for rid in planted["legacy"]:
        rec = sim.dataset.recordings[rid]
        folder = wh.root / "media" / safe_part(rec.experiment_id) / safe_part(rec.room_id)
        files = list((folder / safe_part(rec.participant_id)).glob(f"{safe_part(rid)}.*"))
        assert len(files) == 1 and files[0].read_bytes() == sim.dataset.media_bytes(rid)
    assert not list((wh.root / "media").glob("*/~*")), "a recording landed without its room"
    reason = media.errors[planted["expired"]]
    assert "expired" in reason and "downloadUrl" in reason
    assert set(media.errors) == {planted["expired"]}


def test_missing_sessions_has_no_false_no_recordings(world):
    _, config, _, _ = world
    result = run_check(config, "missing_sessions", use_api=False)
    assert not [i for i in result.issues if "no recordings" in (i.detail or "")]


def test_dashboard_participants_count_recordings_per_room(world):
    sim, config, planted, _ = world
    wh = Warehouse(config.warehouse)
    got = {
        (room, pid): n
        for room, pid, n in query(
            wh, "SELECT room_id, participant_id, recordings FROM dashboard_participants"
        )
    }
    want: dict[tuple, int] = {}
    for r in sim.dataset.recordings.values():
        want[(r.room_id, r.participant_id)] = want.get((r.room_id, r.participant_id), 0) + 1
    first = planted["rejoiner"]
    want[(planted["second_room"], first.id)] = 1
    assert {k: v for k, v in got.items() if v} == want
    # one row per (participant, room): the rejoiner is listed in both rooms
    rooms = {room for room, pid in got if pid == first.id}
    assert rooms == {first.room_id, planted["second_room"]}


def test_rooms_with_start_time_and_duration(world):
    sim, config, planted, _ = world
    wh = Warehouse(config.warehouse)
    rows = {
        r[0]: r[1:]
        for r in query(
            wh,
            "SELECT room_id, epoch_ms(started_at), epoch_ms(completed_at), duration_s "
            "FROM dashboard_rooms",
        )
    }
    assert planted["docs_rooms"]
    for room_id, (start, end) in planted["docs_rooms"].items():
        assert rows[room_id] == (start, end, (end - start) / 1000)
    for room_id, room in sim.dataset.rooms.items():  # rooms with startedAt keep them
        if room_id not in planted["docs_rooms"] and rows[room_id][1] is not None:
            assert rows[room_id][:2] == (room.started_at, room.completed_at)


def test_questionnaire_answers_lists(world):
    _, config, _, _ = world
    wh = Warehouse(config.warehouse)
    got = query(
        wh,
        "SELECT question_id, question, answer FROM questionnaire_responses r "
        "JOIN events e ON e.timestamp = r.timestamp AND e.participantId = r.participant_id "
        "AND e.roomId = r.room_id WHERE e.id = 'evt_answers_1' ORDER BY question_id",
    )
    assert got == [("q_mood", "How do you feel?", "4"), ("q_text", "Anything else?", "all good")]
    nulls = query(wh, "SELECT count(*) FROM questionnaire_responses WHERE question_id IS NULL")
    assert nulls == [(0,)]


def test_no_check_reports_a_false_finding(world):
    _, config, planted, _ = world
    results = {r.name: r for r in run_checks(config)}
    failed = {name for name, r in results.items() if r.status in ("failed", "error")}
    # the one true finding: the legacy recording whose link expired is not on disk
    assert failed <= {"recordings_on_disk"}
    if failed:
        assert [i.id for i in results["recordings_on_disk"].issues] == [planted["expired"]]
