"""Bodies of the resource endpoints (experiments, deployments, counts) in the SDK's shapes,
and the per-endpoint page limits.

Kept apart from `app` (routing, paging, errors) so the HTTP layer stays one job.
Every function takes the dataset and returns plain JSON-ready values.
"""

from __future__ import annotations

import re
from typing import Any

from .generate import EXPERIMENT_SPECS, STATES
from .snapshots import OWNER_ID
from .timeutil import iso

DEFAULT_LIMIT = 1000
# Largest page per data type (the docs: "limits vary by endpoint"); a larger
# `limit` is clamped, never refused, and the page's `limit` says what was used.
MAX_LIMIT = {
    "events": 1000,
    "ratings/continuous": 5000,
    "ratings/sparse": 1000,
    "chat": 1000,
    "videochat": 1000,
    "sync": 5000,
    "components": 1000,
    "eyetracking": 5000,
    "recordings": 500,
    "participants": 1000,
    "rooms": 5000,
}

# data type -> its name in the counts endpoint (the SDK's names, e.g. `textchat`)
COUNT_NAMES = {
    "events": "events",
    "chat": "textchat",
    "videochat": "videochat",
    "sync": "sync",
    "ratings/continuous": "continuousrating",
    "ratings/sparse": "sparserating",
    "components": "components",
    "eyetracking": "eyetracking",
    "recordings": "recordings",
}

_FOCUS = {
    "info": "showtext",
    "media_continuous": "showvideo",
    "media_sparse": "showvideo",
    "chat": "textchat",
    "conversation": "videochat",
    "questionnaire": "likertscale",
}


def _spec(exp) -> dict:
    return EXPERIMENT_SPECS[exp.index]


def experiment_config(exp) -> dict[str, Any]:
    """The experiment's configuration document (the SDK's experiment schema)."""
    spec = _spec(exp)
    states = []
    for order, (state_id, name, kind, lo, hi) in enumerate(STATES[spec["key"]]):
        states.append(
            {
                "id": state_id,
                "name": name,
                "order": order,
                "focusComponent": {"type": _FOCUS[kind], "config": {"minSeconds": lo}},
                "transitionRules": {"type": "timed", "durationMs": hi * 1000},
                "globalComponentsVisibility": {},
            }
        )
    roles: dict[str, dict] = {}
    for role in spec["roles"]:  # one slot per seat; a role can hold several
        entry = roles.setdefault(role, {"name": role.title(), "participantCount": 0})
        entry["participantCount"] += 1
    return {
        "id": exp.id,
        "name": exp.name,
        "description": exp.description or "",
        "requiredParticipants": min(size for size, _ in spec["sizes"]),
        "randomizeStates": False,
        "states": states,
        "roles": roles,
        "globalComponents": {},
        "variables": {"condition": "A", "round": 0},
        "consentFormEnabled": True,
        "consentFormTitle": "Consent",
        "consentFormContent": "<p>You agree to take part.</p>",
        "instructionsEnabled": True,
        "instructionsTitle": "Instructions",
        "instructionsContent": "<p>Watch, rate and answer.</p>",
        "completionScreenDurationMs": 5000,
    }


def experiment_detail(row: dict, exp) -> dict[str, Any]:
    """`GET /experiments/{id}`: the listing row enriched with owner and configuration."""
    config = experiment_config(exp)
    return {
        **row,
        "ownerId": OWNER_ID,
        "states": config["states"],
        "roles": config["roles"],
        "requiredParticipants": config["requiredParticipants"],
    }


def experiment_export(exp) -> tuple[dict[str, Any], dict[str, Any]]:
    """`GET /experiments/{id}/export` -> (metadata extras, the export document)."""
    config = experiment_config(exp)
    assets = [
        {"url": f"https://cdn.simulated.example/{exp.id}/{s['id']}.mp4", "stateId": s["id"]}
        for s in config["states"]
        if s["focusComponent"]["type"] == "showvideo"
    ]
    slug = re.sub(r"[^a-z0-9]+", "-", exp.name.lower()).strip("-") or "experiment"
    meta = {"filename": f"{slug}-export.json", "mediaAssetsCount": len(assets)}
    return meta, {"experiment": config, "mediaAssets": assets}


def deployment_detail(row: dict, plan) -> dict[str, Any]:
    """`GET /deployments/{id}`: the listing row with capacity and last update."""
    updated = min(plan.closes_at, max(plan.created_at, plan.created_at + 86_400_000))
    return {
        **row,
        "maxParticipants": 200 if plan.name == "main" else 40,
        "updatedAt": iso(updated),
    }
