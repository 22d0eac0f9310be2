"""The SDK's other read endpoints: a room's variable writes, AI-agent decisions and runs.

All are derived deterministically from the dataset at its clock, so they double
as ground truth. Shapes follow the SDK's fixtures: decision and run rows of
`agent-decisions` carry `_type`; run manifests carry token and cost totals.
Variable writes are the changes of each participant's variable snapshot as the
components table shows them (the first snapshot seeds every variable).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .timeutil import iso, iso_or_none, parse_iso

PATHS = ("variables", "agent-decisions", "agent-runs", "deployments/{id}/sessions")
SESSION_FIELDS = ("id", "experimentId", "deploymentId", "status", "participantCount", "createdAt")
AGENT_EVERY = 3  # every third started room of an experiment has an AI agent
DECISIONS = 3  # turns per agent run
EXTRA_LIMIT = 1000  # agent decisions an experiment-scope read returns at most
MODEL = ("claude-sim-1", "anthropic")
SEEDED = frozenset({"sessionSeed", "condition"})  # variables a room's seed sets


def variable_rows(ds, room_id: str) -> list[dict[str, Any]]:
    """The room's variable writes, in time order (no room or experiment field: the
    endpoint is per room, as the SDK reads it). Each write comes from one component
    row alone, so a late row adds writes and never changes those already served."""
    exp = ds.room_experiment[room_id]
    _, page, n = ds.query("components", exp, {"roomId": room_id}, limit=1 << 40)
    out = []
    for row in orjson.loads(b"[" + page + b"]") if n else []:
        if not isinstance(row.get("variables"), dict):
            continue
        for name, value in row["variables"].items():
            out.append({
                "participantId": row["participantId"],
                "timestamp": row["timestamp"],
                "stateId": row["stateId"],
                "variable": name,
                "value": value,
                "source": "seed" if name in SEEDED else "component",
                "persisted": True,
            })  # fmt: skip
    return out


def _agent_rooms(ds, experiment_id: str) -> list[dict[str, Any]]:
    """Started rooms that have data (a room whose data never arrived has no agent log)."""
    empty = {r["roomId"] for r in ds._defects.get("missingDataRooms", ())}
    rooms = [r for r in ds.records("rooms", experiment_id) if r.get("startTime")]
    return [r for r in rooms if r["id"] not in empty][::AGENT_EVERY]


def _seed(room_id: str) -> int:
    return int(hashlib.blake2b(room_id.encode(), digest_size=4).hexdigest(), 16)


def agent_run_rows(ds, experiment_id: str) -> list[dict[str, Any]]:
    """One manifest per agent run of the experiment (`agent-runs`)."""
    out = []
    for room in _agent_rooms(ds, experiment_id):
        seed = _seed(room["id"])
        tokens = [(2000 + seed % 500 + 200 * i, 10 + (seed >> 3) % 60) for i in range(DECISIONS)]
        out.append({
            "id": f"agent_{room['id']}",
            "participantId": f"agent_{room['id']}",
            "roomId": room["id"],
            "personaId": f"persona_{seed % 4}",
            "model": MODEL[0],
            "provider": MODEL[1],
            "seed": seed % 100,
            "totalInputTokens": sum(t[0] for t in tokens),
            "totalOutputTokens": sum(t[1] for t in tokens),
            "totalCostUsd": round(sum(t[0] for t in tokens) * 0.000015, 6),
            "turns": DECISIONS,
            "codeCommitSha": "0c0ffee",
            "roomStatus": room["status"],
            "orphaned": room["status"] not in ("completed", "active"),
            "startedAt": iso_or_none(ds.rooms[room["id"]].started_at),
            "endedAt": iso_or_none(ds.rooms[room["id"]].completed_at),
        })  # fmt: skip
    return out


def agent_decision_rows(ds, experiment_id: str, room_id: str | None = None) -> list[dict]:
    """Decision rows, then each run's manifest row, tagged with `_type` (`agent-decisions`)."""
    out = []
    for run in agent_run_rows(ds, experiment_id):
        if room_id not in (None, run["roomId"]):
            continue
        start = parse_iso(run["startedAt"])
        for seq in range(1, DECISIONS + 1):
            out.append({
                "_type": "decision",
                "id": f"{run['participantId']}_{seq}",
                "participantId": run["participantId"],
                "roomId": run["roomId"],
                "seq": seq,
                "stateId": f"state_{seq - 1}",
                "stateName": ("Introduction", "Rating", "Debrief")[seq - 1],
                "turnKind": "chat" if seq != 2 else "component",
                "action": "send_message" if seq != 2 else "respond",
                "value": "Hello!" if seq != 2 else 40 + run["seed"] % 50,
                "model": run["model"],
                "provider": run["provider"],
                "latencyMs": 900 + 10 * seq,
                "inputTokens": 2000 + seq,
                "outputTokens": 20 + seq,
                "timestamp": iso(start + 5_000 * seq),
            })  # fmt: skip
        manifest = {k: v for k, v in run.items() if k not in ("roomStatus", "orphaned")}
        out.append({"_type": "run", **manifest})
    return out


def decision_detail(ds, experiment_id: str, room_id: str, decision_id: str) -> dict | None:
    """One decision as its detail endpoint serves it: the row plus the model's inputs."""
    for row in agent_decision_rows(ds, experiment_id, room_id):
        if row["_type"] == "decision" and row["id"] == decision_id:
            detail = {k: v for k, v in row.items() if k != "_type"}
            return {
                **detail,
                "prompt": f"You play participant {row['participantId']}.\n\nScreen: {row['stateName']}.",
                "reasoning": f"Turn {row['seq']}: {row['action']}.",
                "chain": [
                    {"stage": "perceive", "output": row["stateName"]},
                    {"stage": "decide", "output": f"{row['action']}({row['value']})"},
                ],
                "peerModelSnapshot": {row["participantId"]: {"inferredGoal": "finish the task"}},
                "predictionUpdate": {"predictionError": round(0.1 * row["seq"], 2)},
            }
    return None


def session_rows(ds, deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """The rooms of a deployment as `GET /deployments/{id}/sessions` lists them."""
    rooms = ds.records("rooms", deployment["experimentId"])
    keep = SESSION_FIELDS
    return [{k: r[k] for k in keep} for r in rooms if r["deploymentId"] == deployment["id"]]


def records(
    ds, path: str, experiment_id: str | None = None, room_id: str | None = None
) -> list[dict[str, Any]]:
    """Ground truth of one of `PATHS` for an experiment (None: all): what the endpoints
    serve, read per room (variables: of `room_id` alone when given) or per deployment
    (sessions) and concatenated."""
    out: list[dict[str, Any]] = []
    for exp in ds.experiment_ids:
        if experiment_id not in (None, exp):
            continue
        if path == "variables":
            for room in ds.records("rooms", exp):
                if room_id in (None, room["id"]):
                    out += variable_rows(ds, room["id"])
        elif path == "agent-decisions":
            out += agent_decision_rows(ds, exp)
        elif path == "agent-runs":
            out += agent_run_rows(ds, exp)
        else:
            for deployment in ds.records("deployments", exp):
                out += session_rows(ds, deployment)
    return out
