"""The simulator's HTTP behaviour: determinism, filters, sorting, formats, errors, defects."""

from __future__ import annotations

import csv
import io

import httpx
import orjson
import pytest

from hs_simulator import Simulator


def _get(sim, path, key=None, **params):
    headers = {"X-API-Key": key or sim.api_key}
    return httpx.get(sim.base_url + path, params=params, headers=headers, timeout=30)


def _all(sim, path, **params) -> list[dict]:
    """Every row, following nextOffset."""
    rows: list[dict] = []
    offset = 0
    while True:
        body = _get(sim, path, offset=offset, **params).json()
        rows.extend(body["data"])
        page = body["metadata"]["pagination"]
        if not page["hasMore"]:
            return rows
        offset = page["nextOffset"]


def _all_bytes(sim) -> list[bytes]:
    out = []
    for exp in sim.dataset.experiment_ids:
        for data_type in ("events", "ratings/continuous", "chat", "sync", "participants", "rooms"):
            out.append(_get(sim, f"/data/{data_type}/experiment/{exp}", limit=1000).content)
    return out


def test_same_seed_gives_the_same_bytes_and_another_seed_differs():
    a = Simulator(seed=7, scale=0.2)
    b = Simulator(seed=7, scale=0.2)
    c = Simulator(seed=8, scale=0.2)
    with a, b, c:
        assert a.dataset.experiment_ids == b.dataset.experiment_ids
        assert _all_bytes(a) == _all_bytes(b)
        assert a.dataset.experiment_ids != c.dataset.experiment_ids
        assert a.dataset.records("events")[:50] != c.dataset.records("events")[:50]


def test_envelope_and_pagination_metadata(sim):
    exp = sim.dataset.experiment_ids[0]
    total = len(sim.dataset.records("events", exp))
    body = _get(sim, f"/data/events/experiment/{exp}", limit=100, offset=200).json()
    assert body["status"] == "success"
    meta = body["metadata"]
    assert (meta["dataType"], meta["scope"], meta["scopeId"]) == ("events", "experiment", exp)
    assert meta["pagination"] == {
        "total": total,
        "returned": 100,
        "hasMore": True,
        "limit": 100,
        "offset": 200,
        "nextOffset": 300,
    }
    assert meta["query"]["sort"] == "timestamp" and meta["query"]["order"] == "asc"
    assert body["data"] == sim.dataset.records("events", exp)[200:300]
    last = _get(sim, f"/data/events/experiment/{exp}", limit=1000, offset=total - 5).json()
    assert last["metadata"]["pagination"]["hasMore"] is False
    assert "nextOffset" not in last["metadata"]["pagination"]
    assert len(last["data"]) == 5


def test_time_filters_are_inclusive_on_both_ends(sim):
    exp = sim.dataset.experiment_ids[0]
    rows = sim.dataset.records("events", exp)
    lo, hi = rows[10]["timestamp"], rows[40]["timestamp"]
    got = _get(sim, f"/data/events/experiment/{exp}", startTime=lo, endTime=hi).json()["data"]
    assert got == [r for r in rows if lo <= r["timestamp"] <= hi]
    assert got[0]["timestamp"] == lo and got[-1]["timestamp"] == hi


def test_filters_category_deployment_components_and_completion_code(sim):
    exp = sim.dataset.experiment_ids[0]
    events = sim.dataset.records("events", exp)
    got = _all(sim, f"/data/events/experiment/{exp}", category="media")
    assert got == [e for e in events if e["category"] == "media"] and got
    participants = sim.dataset.records("participants", exp)
    dep = participants[-1]["deploymentId"]
    room_ids = {r["id"] for r in sim.dataset.records("rooms", exp) if r["deploymentId"] == dep}
    got = _all(sim, f"/data/events/experiment/{exp}", deploymentId=dep)
    assert got == [e for e in events if e["roomId"] in room_ids]
    comps = sim.dataset.records("components", exp)
    got = _get(
        sim, f"/data/components/experiment/{exp}", componentType="likert", completed="true"
    ).json()["data"]
    assert got == [c for c in comps if c["componentType"] == "likert" and c["completed"]]
    got = _get(sim, f"/data/participants/experiment/{exp}", completionCode="SUCCESS").json()
    assert got["data"] == [p for p in participants if p["completionCode"] == "SUCCESS"]


def test_sorting_desc_and_by_onset(sim):
    exp = sim.dataset.experiment_ids[0]
    rows = sim.dataset.records("events", exp)
    got = _get(sim, f"/data/events/experiment/{exp}", order="desc", limit=50).json()["data"]
    assert got == rows[::-1][:50]
    got = _all(sim, f"/data/events/experiment/{exp}", sort="onset")
    onsets = [r["onset"] for r in got]
    assert onsets == sorted(onsets) and onsets[0] == min(r["onset"] for r in rows)
    people = _get(sim, f"/data/participants/experiment/{exp}", sort="email", order="desc")
    emails = [p["email"] for p in people.json()["data"] if p["email"] is not None]
    assert emails == sorted(emails, reverse=True)


def test_formats_json_csv_ndjson_carry_the_same_rows(sim):
    exp = sim.dataset.experiment_ids[0]
    expected = sim.dataset.records("ratings/sparse", exp)[:20]
    path = f"/data/ratings/sparse/experiment/{exp}"
    nd = _get(sim, path, format="ndjson", limit=20)
    assert nd.headers["content-type"].startswith("application/x-ndjson")
    assert [orjson.loads(line) for line in nd.content.splitlines()] == expected
    assert int(nd.headers["X-Total-Count"]) == len(sim.dataset.records("ratings/sparse", exp))
    assert nd.headers["X-Has-More"] == "true" and nd.headers["X-Next-Offset"] == "20"
    text = _get(sim, path, format="csv", limit=20)
    assert text.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(text.text)))
    assert [r["ratingId"] for r in table] == [r["ratingId"] for r in expected]
    assert orjson.loads(table[0]["scale"]) == expected[0]["scale"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"startTime": "yesterday"}, "startTime"),
        ({"order": "up"}, "order"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_parameters_are_400_with_the_parameter_named(sim, params, parameter):
    exp = sim.dataset.experiment_ids[0]
    r = _get(sim, f"/data/events/experiment/{exp}", **params)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "INVALID_PARAMETER" and err["details"]["parameter"] == parameter


def test_a_limit_above_the_endpoint_maximum_is_clamped_and_an_unknown_sort_ignored(sim):
    exp = sim.dataset.experiment_ids[0]
    rows = sim.dataset.records("events", exp)
    body = _get(sim, f"/data/events/experiment/{exp}", limit=5000, sort="nope").json()
    assert body["metadata"]["pagination"]["limit"] == 1000
    assert body["metadata"]["query"]["sort"] == "timestamp"
    assert body["data"] == rows[:1000]
    recs = _get(sim, f"/data/recordings/experiment/{exp}", limit=1000).json()["metadata"]
    assert recs["pagination"]["limit"] == 500  # limits vary by endpoint
    assert recs["pagination"]["returned"] == min(500, recs["pagination"]["total"])


def test_plain_queries_on_one_experiment_carry_a_missing_index_warning(sim):
    warned, plain = sim.dataset.experiment_ids[2], sim.dataset.experiment_ids[0]
    meta = _get(sim, f"/data/events/experiment/{warned}", limit=10).json()["metadata"]
    assert meta["_warnings"][0].startswith("MISSING_INDEX:")
    assert "_warnings" not in _get(sim, f"/data/events/experiment/{plain}").json()["metadata"]
    rows = _all(sim, f"/data/events/experiment/{warned}")
    assert rows == sim.dataset.records("events", warned)  # the warning is advisory


def test_unknown_ids_are_404_and_keys_are_checked(sim):
    assert _get(sim, "/data/events/experiment/exp_nope").status_code == 404
    assert _get(sim, "/data/events/room/room_nope").json()["error"]["code"] == "NOT_FOUND"
    r = httpx.get(sim.base_url + "/data/events/experiment/" + sim.dataset.experiment_ids[0])
    assert r.status_code == 401 and r.json()["error"]["code"] == "AUTHENTICATION_ERROR"
    assert httpx.get(sim.base_url + "/health").status_code == 200


def test_check_access_and_sync_aggregation(sim):
    exp = sim.dataset.experiment_ids[0]
    body = _get(sim, f"/data/check-access/experiment/{exp}").json()["data"]
    assert body["canView"] is True and body["canExport"] is True
    unknown = _get(sim, "/data/check-access/experiment/exp_nope")
    assert unknown.status_code == 200
    assert unknown.json()["data"] == {"experimentId": "exp_nope", "canView": False,
                                      "canExport": False}  # fmt: skip
    raw = sim.dataset.records("sync", exp)
    agg = _get(sim, f"/data/sync/experiment/{exp}", aggregationWindow=10_000).json()
    assert sum(r["sampleCount"] for r in agg["data"]) == len(raw) > 0
    assert len(agg["data"]) < len(raw)


def test_defects_manifest_matches_the_data(sim):
    manifest = _get(sim, "/_sim/defects").json()
    assert manifest == sim.defects
    assert manifest["missingDataRooms"] and manifest["continuousRatingGaps"]
    assert manifest["failedRecordings"] and manifest["disconnectedParticipants"]
    assert manifest["missingSyncRooms"]
    participants = sim.dataset.records("participants")
    for room in manifest["missingDataRooms"]:
        members = [p["id"] for p in participants if p["roomId"] == room["roomId"]]
        assert members == room["participantIds"] and members
        for data_type in ("events", "ratings/continuous", "chat", "videochat"):
            assert not [r for r in sim.dataset.records(data_type) if r["roomId"] == room["roomId"]]
        path = f"/data/recordings/room/{room['roomId']}"
        assert _get(sim, path).json()["data"] == []  # recordings carry no roomId: ask by room
    for room in manifest["missingSyncRooms"]:
        assert not [r for r in sim.dataset.records("sync") if r["roomId"] == room["roomId"]]
        assert sum(p["roomId"] == room["roomId"] for p in participants) >= 2
    recordings = {r["recordingId"]: r for r in sim.dataset.records("recordings")}
    for item in manifest["failedRecordings"]:
        assert recordings[item["recordingId"]]["status"] == "failed"
    by_id = {p["id"]: p for p in participants}
    for item in manifest["disconnectedParticipants"]:
        assert by_id[item["participantId"]]["status"] == "disconnected"
        assert by_id[item["participantId"]]["completionCode"] == "TECHNICAL"
    ratings = sim.dataset.records("ratings/continuous")
    for gap in manifest["continuousRatingGaps"]:
        stream = [
            r["timestamp"]
            for r in ratings
            if (r["participantId"], r["componentId"]) == (gap["participantId"], gap["componentId"])
        ]
        i = stream.index(gap["from"])
        assert stream[i + 1] == gap["to"]


def test_a_clean_dataset_has_no_defects(sim_factory):
    clean = sim_factory(defects=False)
    manifest = clean.defects
    assert not any(v for v in manifest.values())
    assert not [p for p in clean.dataset.records("participants") if p["status"] == "disconnected"]
    assert not [r for r in clean.dataset.records("recordings") if r["status"] == "failed"]


def test_sync_rows_only_in_multi_participant_rooms(sim):
    sizes: dict[str, int] = {}
    for p in sim.dataset.records("participants"):
        sizes[p["roomId"]] = sizes.get(p["roomId"], 0) + 1
    sync_rooms = {r["roomId"] for r in sim.dataset.records("sync")}
    assert sync_rooms and all(sizes[r] >= 2 for r in sync_rooms)
    drifts = [abs(r["timeDrift"]) for r in sim.dataset.records("sync")]
    assert min(drifts) < 100 and any(100 <= d <= 500 for d in drifts) and max(drifts) > 500


def test_arrow_ground_truth_has_the_same_rows(sim):
    table = sim.dataset.arrow("events")
    assert table.num_rows == len(sim.dataset.records("events"))
    assert table.column("id").to_pylist() == [r["id"] for r in sim.dataset.records("events")]
