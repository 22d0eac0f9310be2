"""Time-series types given to the simulator as data: served as the built-in ones are."""

from __future__ import annotations

import httpx
import orjson
import pytest

from hs_simulator import Series, Simulator

STEPS = Series(
    path="steps",
    fields={"count": "integer", "cadence": "number", "foot": "string", "running": "boolean"},
    time_field="sampledAt",
    every_ms=5_000,
    per_participant=12,
    scope="read:events",
    max_limit=100,
    count_name="stepcount",
)


def _get(sim, path, key=None, **params):
    headers = {"X-API-Key": key or sim.api_key}
    return httpx.get(sim.base_url + path, params=params, headers=headers, timeout=30)


@pytest.fixture
def steps_sim(sim_factory) -> Simulator:
    return sim_factory(scale=0.1, series=[STEPS])


def test_a_series_is_served_at_every_scope_with_its_fields_and_time_field(steps_sim):
    sim = steps_sim
    exp = sim.dataset.experiment_ids[0]
    truth = sim.dataset.records("steps", exp)
    assert truth and all(r["experimentId"] == exp for r in truth)
    kinds = {"count": int, "cadence": float, "foot": str, "running": bool}
    for row in truth:
        assert set(row) == {"experimentId", "roomId", "participantId", "sampledAt", *kinds}
        assert all(type(row[name]) is kind for name, kind in kinds.items())
    times = [r["sampledAt"] for r in truth]
    assert times == sorted(times)
    per_person: dict[tuple[str, str], int] = {}
    for r in truth:
        person = (r["roomId"], r["participantId"])
        per_person[person] = per_person.get(person, 0) + 1
    assert max(per_person.values()) == STEPS.per_participant

    body = _get(sim, f"/data/steps/experiment/{exp}", limit=500).json()
    assert body["metadata"]["pagination"]["limit"] == STEPS.max_limit  # clamped
    assert body["data"] == truth[: STEPS.max_limit]
    lo, hi = times[10], times[20]
    window = _get(sim, f"/data/steps/experiment/{exp}", startTime=lo, endTime=hi).json()
    assert window["data"] == [r for r in truth if lo <= r["sampledAt"] <= hi]
    newest = _get(sim, f"/data/steps/experiment/{exp}", sort="sampledAt", order="desc", limit=1)
    assert newest.json()["data"] == [truth[-1]]

    room, participant = truth[0]["roomId"], truth[0]["participantId"]
    by_room = _get(sim, f"/data/steps/room/{room}", limit=100).json()["data"]
    assert by_room == [r for r in truth if r["roomId"] == room][:100]
    mine = _get(sim, f"/data/steps/participant/{participant}", roomId=room).json()["data"]
    assert mine == [r for r in truth if (r["roomId"], r["participantId"]) == (room, participant)]
    counts = _get(sim, f"/data/counts/participant/{participant}", roomId=room).json()
    assert counts["data"][0]["counts"]["stepcount"] == len(mine)


def test_a_series_needs_its_scope_and_grows_with_the_live_clock(sim_factory):
    sim = sim_factory(scale=0.1, live=True, series=[STEPS])
    exp = sim.dataset.experiment_ids[0]
    sim.add_key("hst_test_chat_only", {"read:chat"})
    refused = _get(sim, f"/data/steps/experiment/{exp}", key="hst_test_chat_only")
    assert refused.status_code == 403
    before = sim.dataset.records("steps")
    sim.advance(1800)
    after = sim.dataset.records("steps")
    assert {orjson.dumps(r) for r in before} < {orjson.dumps(r) for r in after}
    late = sim.add_late_rows("steps", 3)
    assert all(r in sim.dataset.records("steps") for r in late)


def test_the_same_seed_gives_the_same_series_and_built_in_paths_are_refused():
    a = Simulator(seed=3, scale=0.1, series=[STEPS])
    b = Simulator(seed=3, scale=0.1, series=[STEPS])
    assert a.dataset.records("steps") == b.dataset.records("steps")
    assert a.dataset.records("events") == Simulator(seed=3, scale=0.1).dataset.records("events")
    with pytest.raises(ValueError, match="replace endpoints"):
        Simulator(scale=0.1, series=[Series(path="chat")])
    with pytest.raises(ValueError, match="unknown field kinds"):
        Series(path="x", fields={"a": "date"})
