"""The shapes a client must cope with are in the simulator's dataset, and served."""

from __future__ import annotations

import hashlib
import unicodedata

import httpx
import pytest

from hs_simulator.auth import ALL_SCOPES


def _get(sim, path, key=None, **params):
    headers = {"X-API-Key": key or sim.api_key}
    return httpx.get(sim.base_url + path, params=params, headers=headers, timeout=30)


def test_a_participant_rejoins_another_room_with_the_same_id(sim):
    cases = sim.cases["rejoinedParticipants"]
    assert len(cases) == len(sim.dataset.experiment_ids)
    participants = sim.dataset.records("participants")
    for case in cases:
        pid, rooms = case["participantId"], case["roomIds"]
        assert sorted(p["roomId"] for p in participants if p["id"] == pid) == sorted(rooms)
        for room in rooms:
            got = _get(sim, f"/data/events/participant/{pid}", roomId=room).json()["data"]
            assert got and {e["roomId"] for e in got} == {room}
            truth = [e for e in sim.dataset.records("events") if e["participantId"] == pid]
            assert got == [e for e in truth if e["roomId"] == room]


def test_questionnaires_come_one_question_per_event_and_as_answers_lists(sim):
    answers = [
        e
        for e in sim.dataset.records("events")
        if e["category"] == "questionnaire" and "answers" in (e["response"] or {})
    ]
    single = [
        e
        for e in sim.dataset.records("events")
        if e["category"] == "questionnaire" and "questionId" in (e["response"] or {})
    ]
    assert answers and single
    assert all(len(e["response"]["answers"]) == 4 for e in answers)
    assert {a["questionId"] for a in answers[0]["response"]["answers"]} >= {"q_free"}


def test_rooms_carry_start_time_and_duration(sim):
    rooms = sim.dataset.records("rooms")
    assert all("startedAt" not in r and "completedAt" not in r for r in rooms)
    done = [r for r in rooms if r["status"] == "completed"]
    assert done and all(isinstance(r["duration"], int) and r["startTime"] for r in done)
    running = [r for r in rooms if r["status"] != "completed"]
    assert running and all(r["duration"] is None for r in running)


def test_awkward_values_are_in_the_data(sim):
    gaze = sim.dataset.records("eyetracking")
    assert any(isinstance(g["onset"], float) and g["onset"] % 1 for g in gaze)
    seeds = {c["variables"]["sessionSeed"] for c in sim.dataset.records("components")}
    assert 2**53 + 1 in seeds and 2**64 - 1 in seeds
    video = sim.dataset.records("videochat")
    assert any(v.get("bytesSent", 0) > 2**63 for v in video)
    assert any(isinstance(v.get("bitrateKbps"), str) for v in video)
    assert all(v["timestamp"][-4] != "." for v in video)  # whole seconds, no milliseconds
    answers = [e["response"].get("answer") for e in sim.dataset.records("events")
               if e["category"] == "questionnaire" and "answer" in (e["response"] or {})]  # fmt: skip
    assert any(isinstance(a, str) and a.isdigit() for a in answers)
    chat = "".join(m["content"] for m in sim.dataset.records("chat"))
    for char in ("\u2028", "\u202b", "\u200b", "\u0301", "\u0645"):  # U+2028, bidi, ZW, NFD, RTL
        assert char in chat, repr(char)
    assert unicodedata.normalize("NFC", chat) != chat


def _wide(value) -> list:
    """Every integer in `value`, at any depth, outside the signed 64-bit range."""
    if isinstance(value, dict):
        return [v for x in value.values() for v in _wide(x)]
    if isinstance(value, list):
        return [v for x in value for v in _wide(x)]
    return [value] if isinstance(value, int) and not -(2**63) <= value < 2**63 else []


def _without_u64(record: dict) -> dict:
    """`record` with the two fields that carry u64 values blanked."""
    out = {**record, "bytesSent": None} if "bytesSent" in record else dict(record)
    if isinstance(out.get("variables"), dict):
        out["variables"] = {**out["variables"], "sessionSeed": None}
    return out


def test_int64_only_dataset_has_the_same_rows_and_no_integer_beyond_int64(sim, sim_factory):
    narrow = sim_factory(seed=sim.seed, scale=sim.scale, wide_ints=False)
    assert _wide(sim.dataset.records("components")) and _wide(sim.dataset.records("videochat"))
    for data_type in narrow.dataset.data_types:
        rows, wide_rows = narrow.dataset.records(data_type), sim.dataset.records(data_type)
        assert not _wide(rows), data_type
        assert [list(r) for r in rows] == [list(r) for r in wide_rows], data_type
        if data_type in narrow.dataset.series_types:
            assert list(map(_without_u64, rows)) == list(map(_without_u64, wide_rows))
    served = {  # over HTTP: still past float64's exact range, within int64
        data_type: [
            row
            for exp in narrow.dataset.experiment_ids
            for row in _get(narrow, f"/data/{data_type}/experiment/{exp}").json()["data"]
        ]
        for data_type in ("components", "videochat")
    }
    assert not _wide(served)
    assert 2**63 - 1 in {c["variables"]["sessionSeed"] for c in served["components"]}
    assert any(v.get("bytesSent", 0) > 2**62 for v in served["videochat"])


def test_sparse_ratings_and_recordings_name_no_room_but_the_ground_truth_does(sim):
    for data_type in ("ratings/sparse", "recordings"):
        rows = sim.dataset.records(data_type)
        rooms = sim.dataset.room_ids(data_type)
        assert rows and len(rooms) == len(rows)
        assert all("roomId" not in r and "experimentId" not in r for r in rows)
        room = rooms[0]
        served = _get(sim, f"/data/{data_type}/room/{room}").json()["data"]
        assert served == [r for r, rid in zip(rows, rooms, strict=True) if rid == room]
    sparse = sim.dataset.records("ratings/sparse")
    assert all(isinstance(r["value"], float) and isinstance(r["rawValue"], int) for r in sparse)


@pytest.mark.parametrize(
    ("scopes", "path", "status"),
    [
        ({"read:participants"}, "/data/participants/experiment/{exp}", 200),
        ({"read:participants"}, "/data/events/experiment/{exp}", 403),
        ({"read:events"}, "/data/eyetracking/experiment/{exp}", 200),
        ({"read:experiments"}, "/deployments", 200),
        ({"read:*"}, "/data/chat/experiment/{exp}", 200),
        ({"*"}, "/experiments", 200),
        (set(ALL_SCOPES) - {"read:experiments"}, "/deployments", 403),
    ],
)
def test_scopes_follow_the_docs(sim, scopes, path, status):
    key = "hst_test_" + hashlib.sha256(repr(sorted(scopes)).encode()).hexdigest()
    sim.add_key(key, scopes)
    r = _get(sim, path.format(exp=sim.dataset.experiment_ids[1]), key=key, limit=5)
    assert r.status_code == status, r.text[:200]


def test_participants_are_read_at_experiment_and_room_scope_only(sim):
    p = sim.dataset.records("participants")[0]
    r = _get(sim, f"/data/participants/participant/{p['id']}", roomId=p["roomId"])
    assert r.status_code == 400 and r.json()["error"]["details"]["parameter"] == "scope"
    room = _get(sim, f"/data/participants/room/{p['roomId']}").json()["data"]
    assert p in room


def test_deployments_list_is_one_page_and_counts_use_the_sdk_names(sim):
    body = _get(sim, "/deployments").json()
    assert "pagination" not in body["metadata"]
    assert body["data"] == sim.dataset.records("deployments")
    assert all(d["ownerId"] and d["ownerName"] for d in body["data"])
    chat = sim.dataset.records("chat")[0]
    counts = _get(sim, f"/data/counts/participant/{chat['senderId']}", roomId=chat["roomId"])
    data = counts.json()["data"]
    assert isinstance(data, list) and len(data) == 1
    mine = [m for m in sim.dataset.records("chat")
            if (m["senderId"], m["roomId"]) == (chat["senderId"], chat["roomId"])]  # fmt: skip
    assert data[0]["counts"]["textchat"] == len(mine) and data[0]["hasData"]["textchat"]


def test_late_rows_of_a_room_less_type_are_served_in_their_room(sim_factory):
    sim = sim_factory(seed=2)
    made = sim.add_late_rows("ratings/sparse", 3)
    rows, rooms = sim.dataset.records("ratings/sparse"), sim.dataset.room_ids("ratings/sparse")
    for row in made:
        room = rooms[rows.index(row)]
        assert row in _get(sim, f"/data/ratings/sparse/room/{room}").json()["data"]
    gaze = sim.add_late_rows("eyetracking", 2)
    assert all(isinstance(g["onset"], float) for g in gaze)


def test_hs_sync_simulate_int64_only_serves_no_integer_beyond_int64():
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "hs_sync", "simulate", "--scale", "0.1", "--int64-only"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        base_url = lines[0].split(": ", 1)[1].strip()
        key = lines[1].split(": ", 1)[1].strip()
        headers = {"X-API-Key": key}
        experiments = httpx.get(f"{base_url}/experiments", headers=headers, timeout=30).json()
        served = [
            row
            for exp in experiments["data"]
            for row in httpx.get(
                f"{base_url}/data/videochat/experiment/{exp['id']}", headers=headers, timeout=30
            ).json()["data"]
        ]
        assert served and not _wide(served)
        assert any(v.get("bytesSent", 0) > 2**62 for v in served)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
