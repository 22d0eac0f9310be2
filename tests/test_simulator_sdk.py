"""The official `hyperstudy` SDK, used as a client against the running simulator."""

from __future__ import annotations

import hyperstudy
import pytest
from hyperstudy.exceptions import AuthenticationError, ForbiddenError, ValidationError

SERIES_METHODS = {
    "events": lambda hs, sid, **kw: hs.get_events(sid, **kw),
    "ratings/continuous": lambda hs, sid, **kw: hs.get_ratings(sid, kind="continuous", **kw),
    "ratings/sparse": lambda hs, sid, **kw: hs.get_ratings(sid, kind="sparse", **kw),
    "chat": lambda hs, sid, **kw: hs.get_chat(sid, **kw),
    "videochat": lambda hs, sid, **kw: hs.get_videochat(sid, **kw),
    "sync": lambda hs, sid, **kw: hs.get_sync(sid, **kw),
    "components": lambda hs, sid, **kw: hs.get_components(sid, **kw),
    "eyetracking": lambda hs, sid, **kw: hs.get_eyetracking(sid, **kw),
    "recordings": lambda hs, sid, **kw: hs.get_recordings(sid, **kw),
    "participants": lambda hs, sid, **kw: hs.get_participants(sid, **kw),
}


def _client(sim, key=None):
    return hyperstudy.HyperStudy(api_key=key or sim.api_key, base_url=sim.base_url)


def _key(record: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in record.items()))


def _by_room(sim, data_type) -> list[tuple[str, dict]]:
    """Every row with its room (some types carry no roomId; the ground truth knows it)."""
    return list(zip(sim.dataset.room_ids(data_type), sim.dataset.records(data_type), strict=True))


def _busiest_room(sim, data_type):
    counts: dict[str, int] = {}
    for room, _ in _by_room(sim, data_type):
        counts[room] = counts.get(room, 0) + 1
    return max(counts, key=counts.get)


@pytest.mark.parametrize("data_type", sorted(SERIES_METHODS))
def test_every_get_method_at_every_scope_returns_the_ground_truth(sim, data_type):
    hs = _client(sim)
    fetch = SERIES_METHODS[data_type]
    for exp in sim.dataset.experiment_ids:
        got = fetch(hs, exp, output="dict", progress=False)
        assert got == sim.dataset.records(data_type, exp)
    room = _busiest_room(sim, data_type)
    expected_room = [r for rid, r in _by_room(sim, data_type) if rid == room]
    got = fetch(hs, room, scope="room", output="dict", progress=False)
    assert sorted(map(_key, got)) == sorted(map(_key, expected_room))
    assert got
    if data_type == "participants":  # experiment and room scope only
        with pytest.raises(ValidationError):
            fetch(hs, got[0]["id"], scope="participant", room_id=room, output="dict")
        return
    who = (
        "senderId"
        if data_type == "chat"
        else ("id" if data_type == "participants" else "participantId")
    )
    person = expected_room[0][who]
    got = fetch(hs, person, scope="participant", room_id=room, output="dict", progress=False)
    assert got == [r for r in expected_room if r[who] == person]


def test_rooms_at_experiment_and_room_scope(sim):
    hs = _client(sim)
    exp = sim.dataset.experiment_ids[0]
    rooms = hs.get_rooms(exp, output="dict", progress=False)
    assert rooms == sim.dataset.records("rooms", exp)
    one = hs.get_rooms(rooms[3]["id"], scope="room", output="dict", progress=False)
    assert one == [rooms[3]]


def test_multi_page_pagination_with_the_sdk(sim):
    hs = _client(sim)
    exp = max(sim.dataset.experiment_ids, key=lambda e: len(sim.dataset.records("events", e)))
    expected = sim.dataset.records("events", exp)
    assert len(expected) > 1000  # so the SDK has to follow nextOffset
    sim.reset_requests()
    got = hs.get_events(exp, output="dict", progress=False)
    assert got == expected
    pages = [r for r in sim.requests if r["path"].endswith(f"/events/experiment/{exp}")]
    assert len(pages) == -(-len(expected) // 1000)


def test_category_wrappers_questionnaire_instructions_consent(sim):
    hs = _client(sim)
    exp = sim.dataset.experiment_ids[0]
    events = sim.dataset.records("events", exp)
    q = hs.get_questionnaire(exp, output="dict", progress=False)
    assert q == [e for e in events if e["category"] == "questionnaire"] and q
    ins = hs.get_instructions(exp, output="dict", progress=False)
    assert ins == [e for e in events if e["eventType"].startswith("instructions.")] and ins
    consent = hs.get_consent(exp, output="dict", progress=False)
    assert consent == [e for e in events if e["eventType"].startswith("consent.")] and consent
    assert all(e["onset"] < 0 for e in consent)


def test_counts_all_data_deployments_experiments_health(sim):
    hs = _client(sim)
    assert hs.health()["status"] == "healthy"
    exp = sim.dataset.experiment_ids[0]
    p = next(
        p for p in sim.dataset.records("participants", exp) if p["completionCode"] == "SUCCESS"
    )
    mine = [e for e in sim.dataset.records("events", exp) if e["participantId"] == p["id"]]
    counts = hs.get_counts(p["id"], p["roomId"])
    assert counts["counts"]["events"] == len(mine) > 0
    assert counts["hasData"]["events"] is True
    assert set(counts["counts"]) >= {"textchat", "continuousrating", "sparserating"}
    everything = hs.get_all_data(p["id"], room_id=p["roomId"], output="dict")
    assert everything["events"] == mine
    deployments = hs.list_deployments(experiment_id=exp, output="dict")
    assert {d["name"] for d in deployments} == {"pilot", "main"}
    main = next(d for d in deployments if d["name"] == "main")
    detail = hs.get_deployment(main["id"])
    assert {k: detail[k] for k in main} == main and detail["maxParticipants"] > 0
    sessions = hs.get_deployment_sessions(main["id"], output="dict")
    rooms = [r for r in sim.dataset.records("rooms", exp) if r["deploymentId"] == main["id"]]
    assert [s["id"] for s in sessions] == [r["id"] for r in rooms]
    listed = hs.list_experiments(output="dict", progress=False)
    assert listed == sim.dataset.records("experiments")
    one = hs.get_experiment(exp)
    assert {k: one[k] for k in listed[0]} == next(e for e in listed if e["id"] == exp)
    assert one["states"] and one["requiredParticipants"] >= 1
    config = hs.get_experiment_config(exp)
    assert config["id"] == exp and [s["id"] for s in config["states"]] == [
        s["id"] for s in one["states"]
    ]
    export = hs.export_experiment(exp)
    assert export["experiment"]["name"] == one["name"] and export["mediaAssets"]


def test_download_recording_through_download_path(sim_factory, tmp_path):
    # Its own simulator: legacy downloadUrls expire `legacy_url_ttl` (wall clock) after
    # the dataset is made and then answer 400, so a long session's shared one may have
    # none valid left; here they are re-signed to stay valid through the test.
    sim = sim_factory()
    sim.legacy_url_ttl = 600
    hs = _client(sim)
    recs = [
        r
        for r in sim.dataset.records("recordings")
        if r["status"] == "complete" and r.get("downloadPath")
    ]
    rec = recs[0]
    path = hs.download_recording(rec, output_dir=str(tmp_path))
    assert path.read_bytes() == sim.dataset.media_bytes(rec["recordingId"])
    assert path.stat().st_size == rec["fileSize"]
    legacy = next(
        r
        for r in sim.dataset.records("recordings")
        if r.get("downloadUrl") and r["status"] == "complete"
    )
    path = hs.download_recording(legacy, output_dir=str(tmp_path))
    assert path.read_bytes() == sim.dataset.media_bytes(legacy["recordingId"])


def test_wrong_key_raises_authentication_error(sim):
    hs = _client(sim, key="hst_test_" + "0" * 64)
    with pytest.raises(AuthenticationError):
        hs.get_events(sim.dataset.experiment_ids[0], output="dict", progress=False)


def test_missing_scope_raises_forbidden_error(sim):
    key = "hst_test_" + "a" * 64
    sim.add_key(key, {"read:events"})
    hs = _client(sim, key=key)
    exp = sim.dataset.experiment_ids[0]
    assert hs.get_events(exp, limit=5, output="dict")
    with pytest.raises(ForbiddenError) as info:
        hs.get_chat(exp, output="dict", progress=False)
    assert info.value.details == {"required": ["read:chat"], "provided": ["read:events"]}


def test_participant_scope_without_room_is_a_validation_error(sim):
    hs = _client(sim)
    p = sim.dataset.records("participants")[0]
    with pytest.raises(ValidationError) as info:
        hs.get_events(p["id"], scope="participant", output="dict", progress=False)
    assert info.value.details["parameter"] == "roomId"
