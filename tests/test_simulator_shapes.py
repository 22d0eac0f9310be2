"""The simulator's responses have the shapes of the official SDK's fixtures.

tests/fixtures/sdk/ holds, for each fixture of the `hyperstudy` SDK, one of our own
with the same field names and JSON types. For each, the matching endpoint is asked
over HTTP and every field the fixture has, at any depth, must be in the response
with the same JSON type (int, float, string, bool, object, array); a fixture null
accepts any type. Each item of a response list must match one of the fixture's items,
and each item of a fixture's `data` list must be matched by some item of the
response (so both shapes of a type that has two, e.g. legacy and current
recordings, are served).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hs_simulator import Simulator

FIXTURES = Path(__file__).parent / "fixtures" / "sdk"
# objects whose keys are data (video ids, agent ids, role names), not field names: their
# values are compared with the fixture's values, whatever the keys
FREE_FORM = frozenset({"previousRatings", "peerModelSnapshot", "roles", "variables"})
# fixtures of the same endpoint: a row may have the shape of any of them
SAME_ENDPOINT = {"events_response": ("pre_experiment_response",)}
NO_AGENTS = "this dataset serves no agent data (the agent data types are added separately)"


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def mismatches(value: Any, template: Any, where: str = "$") -> list[str]:
    """Where `value` lacks a field of `template` or has another JSON type ([] if none)."""
    if template is None:
        return []
    if kind(value) != kind(template):
        return [f"{where}: {kind(value)} where the fixture has {kind(template)}"]
    if isinstance(template, dict) and where.rsplit(".", 1)[-1] in FREE_FORM and template:
        out = []
        for name, item in value.items():
            tries = [mismatches(item, t, f"{where}.{name}") for t in template.values()]
            if all(tries):
                out.extend(min(tries, key=len))
        return out
    if isinstance(template, dict):
        out = []
        for name, sub in template.items():
            if name not in value:
                out.append(f"{where}.{name}: missing")
            else:
                out.extend(mismatches(value[name], sub, f"{where}.{name}"))
        return out
    if isinstance(template, list) and template:
        out = []
        for i, item in enumerate(value):
            tries = [mismatches(item, t, f"{where}[{i}]") for t in template]
            if all(tries):
                out.extend(min(tries, key=len))
        return out
    return []


def uncovered(items: list, template: list) -> list[int]:
    """The fixture items that no response item matches."""
    return [i for i, t in enumerate(template) if all(mismatches(v, t) for v in items)]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# -- asking the simulator ---------------------------------------------------


class Api:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.exps = sim.dataset.experiment_ids

    def get(self, path: str, key: str | None = None, **params) -> httpx.Response:
        headers = {"X-API-Key": key or self.sim.api_key}
        return httpx.get(self.sim.base_url + path, params=params, headers=headers, timeout=30)

    def body(self, path: str, **params) -> dict:
        r = self.get(path, **params)
        assert r.status_code == 200, r.text[:300]
        return r.json()

    def pages(self, path: str, **params) -> tuple[dict, list]:
        """The first page's body, with `data` replaced by every page's rows."""
        first = self.body(path, **params)
        rows = list(first["data"])
        body = first
        while body["metadata"].get("pagination", {}).get("hasMore"):
            offset = body["metadata"]["pagination"]["nextOffset"]
            body = self.body(path, **{**params, "offset": offset})
            rows.extend(body["data"])
        return first, rows

    def series(self, data_type: str, exp: str, **params) -> tuple[dict, list]:
        return self.pages(f"/data/{data_type}/experiment/{exp}", **params)

    def agent_room(self) -> tuple[str, dict]:
        """A room with agent decisions and one of its component turns (the turn kind the
        SDK's detail fixture shows, whose value is a number)."""
        for exp in self.exps:
            rows = self.body(f"/data/agent-decisions/experiment/{exp}")["data"]
            decisions = [
                r for r in rows if r.get("_type") == "decision" and r.get("turnKind") == "component"
            ]
            if decisions:
                return decisions[0]["roomId"], decisions[0]
        pytest.skip(NO_AGENTS)

    def agent_experiment(self) -> str:
        for exp in self.exps:
            if self.body(f"/data/agent-runs/experiment/{exp}")["data"]:
                return exp
        pytest.skip(NO_AGENTS)

    def deployment(self) -> str:
        return self.body("/deployments", experimentId=self.exps[0])["data"][-1]["id"]


def _agent_decisions(api: Api):
    room, _ = api.agent_room()
    return api.pages(f"/data/agent-decisions/room/{room}")


def _agent_detail(api: Api):
    room, decision = api.agent_room()
    body = api.body(f"/data/agent-decisions/room/{room}/decision/{decision['id']}")
    return body, None


def _agent_truncated(api: Api):
    body = api.body(f"/data/agent-decisions/experiment/{api.agent_experiment()}", limit=1)
    assert body["metadata"]["truncated"] is True
    return body, body["data"]


def _error(status: int, key: str | None):
    def ask(api: Api):
        r = api.get(f"/data/events/experiment/{api.exps[0]}", key=key)
        assert r.status_code == status
        return r.json(), None

    return ask


def _forbidden(api: Api):
    key = "hst_test_" + "7" * 64
    api.sim.add_key(key, {"read:recordings"})
    return _error(403, key)(api)


def _page(which: int):
    def ask(api: Api):
        path = f"/data/events/experiment/{api.exps[0]}"
        total = api.body(path, limit=1)["metadata"]["pagination"]["total"]
        body = api.body(path, limit=2, offset=0 if which == 1 else total - 2)
        return body, body["data"]

    return ask


def _warned(api: Api):
    first, rows = api.series("events", api.exps[2])
    assert first["metadata"]["_warnings"]
    return first, rows


def _experiment(api: Api):
    body = api.body(f"/experiments/{api.exps[0]}")
    return body, body["data"]


ASK: dict[str, Callable[[Api], tuple[dict, list | None]]] = {
    "agent_decision_detail_response": _agent_detail,
    "agent_decisions_response": _agent_decisions,
    "agent_decisions_truncated_response": _agent_truncated,
    "agent_runs_response": lambda api: api.pages(
        f"/data/agent-runs/experiment/{api.agent_experiment()}"
    ),
    "deployment_sessions_response": lambda api: api.pages(
        f"/deployments/{api.deployment()}/sessions"
    ),
    "deployment_single_response": lambda api: (api.body(f"/deployments/{api.deployment()}"), None),
    "deployments_list_response": lambda api: api.pages("/deployments"),
    "error_401": _error(401, "hst_test_" + "0" * 64),
    "error_403": _forbidden,
    "events_response": lambda api: api.series("events", api.exps[0]),
    "experiment_single_response": _experiment,
    "experiments_list_response": lambda api: api.pages("/experiments"),
    "paginated_page1": _page(1),
    "paginated_page2": _page(2),
    "pre_experiment_response": lambda api: api.series(
        "events", api.exps[0], category="pre_experiment"
    ),
    "recordings_response": lambda api: api.series("recordings", api.exps[0]),
    "sparse_ratings_response": lambda api: api.series("ratings/sparse", api.exps[0]),
    "warnings_response": _warned,
}


@pytest.fixture(scope="module")
def api():
    sim = Simulator(seed=1, scale=0.3)
    sim.start()
    try:
        yield Api(sim)
    finally:
        sim.stop()


def test_every_sdk_fixture_has_a_request():
    names = {p.name.removesuffix(".json") for p in FIXTURES.glob("*.json")}
    assert names == set(ASK) | {"experiment.schema"}


@pytest.mark.parametrize("name", sorted(ASK))
def test_the_response_has_the_fixture_shape(api, name):
    template = fixture(name)
    body, rows = ASK[name](api)
    if rows is not None:  # every page's rows, against the fixture's items
        body = {**body, "data": rows}
    if isinstance(template.get("data"), list):
        items = list(template["data"])
        for other in SAME_ENDPOINT.get(name, ()):
            items.extend(fixture(other)["data"])
        template = {**template, "data": items}
    problems = mismatches(body, template)
    assert not problems, "\n".join(problems[:20])
    own = fixture(name).get("data")
    if isinstance(own, list) and rows is not None:
        assert rows, "no rows to compare"
        missing = uncovered(rows, own)
        assert not missing, f"no response row has the shape of fixture item(s) {missing}"


SCHEMA_TYPES = {
    "string": "string",
    "integer": "int",
    "boolean": "bool",
    "object": "object",
    "array": "array",
    "number": "float",
}


def schema_mismatches(value: Any, schema: dict, where: str = "$") -> list[str]:
    """`value` against the `type`, `required`, `properties` and `items` of a JSON schema."""
    wanted = SCHEMA_TYPES[schema["type"]]
    got = kind(value)
    if got != wanted and not (wanted == "float" and got == "int"):
        return [f"{where}: {got} where the schema wants {schema['type']}"]
    out = [f"{where}.{n}: missing" for n in schema.get("required", ()) if n not in value]
    for name, sub in schema.get("properties", {}).items():
        if isinstance(value, dict) and name in value and "type" in sub:
            out.extend(schema_mismatches(value[name], sub, f"{where}.{name}"))
    if wanted == "array" and "items" in schema:
        for i, item in enumerate(value):
            out.extend(schema_mismatches(item, schema["items"], f"{where}[{i}]"))
    return out


def test_experiment_config_follows_the_experiment_schema(api):
    schema = fixture("experiment.schema")
    for exp in api.exps:
        data = api.body(f"/experiments/{exp}/config")["data"]
        config = data[0] if isinstance(data, list) else data
        problems = schema_mismatches(config, schema)
        assert not problems, problems
        assert set(schema["properties"]) - set(config) <= {
            "waitingRoomConfig",
            "disconnectTimeout",
            "instructionsPages",
            "postExperimentQuestionnaire",
        }


def test_the_shape_check_catches_a_wrong_type_a_missing_field_and_a_missing_shape():
    template = fixture("recordings_response")["data"][:2]  # complete ones: no nulls
    legacy, current = template
    assert mismatches([current], template) == []
    assert mismatches([{**current, "fileSize": "20417"}], template)
    assert mismatches([{**current, "duration": 1.5}], template)  # float is not int
    assert mismatches([{k: v for k, v in current.items() if k != "metadata"}], template)
    assert uncovered([current], template) == [0]
    sparse = fixture("sparse_ratings_response")["data"][1]
    assert mismatches({**sparse, "confidence": "high"}, sparse) == []  # a fixture null: any
    data = sparse["sparseRatingData"]
    other_video = {**sparse, "sparseRatingData": {**data, "previousRatings": {"clip9": 3}}}
    assert mismatches(other_video, sparse) == []  # free-form keys
    as_text = {**sparse, "sparseRatingData": {**data, "previousRatings": {"clip9": "3"}}}
    assert mismatches(as_text, sparse)
