"""What the API shows, at a given clock, for entities whose state changes over time.

Rooms go waiting -> active -> completed, participants active -> their final
status (with completionCode IN_PROGRESS until then), recordings processing ->
complete (or failed), deployments active -> completed; counts only include what
exists at that instant. Each function returns (time-field ms, record, indexed
columns) triples for `Table.build`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from .plan import Experiment, Recording, Room
from .timeutil import iso, iso_or_none, iso_seconds

Row = tuple[int, dict[str, Any], dict[str, Any]]
OWNER_ID = "usr_simulated_owner"  # the key's user: owner of every experiment and deployment
OWNER_NAME = "Simulated Lab"


def room_rows(rooms: Iterable[Room], now: int) -> list[Row]:
    out = []
    for r in rooms:
        if r.created_at > now:
            continue
        started = r.started_at if r.started_at is not None and r.started_at <= now else None
        completed = r.completed_at if r.completed_at <= now else None
        status = "completed" if completed else "active" if started else "waiting"
        updated = completed or started or r.created_at
        count = sum(1 for p in r.participants if p.joined_at <= now)
        rec = {
            "id": r.id,
            "experimentId": r.experiment_id,
            "deploymentId": r.deployment_id,
            "deploymentName": r.deployment_name,
            "status": status,
            "participantCount": count,
            "createdAt": iso(r.created_at),
            "startTime": iso_or_none(started),
            "duration": completed - started if completed and started else None,  # ms
            "updatedAt": iso(updated),
        }
        cols = {
            "roomId": r.id,
            "deploymentId": r.deployment_id,
            "status": status,
            "id": r.id,
            "createdAt": rec["createdAt"],
            "updatedAt": rec["updatedAt"],
        }
        out.append((r.created_at, rec, cols))
    return out


def participant_rows(rooms: Iterable[Room], now: int) -> list[Row]:
    out = []
    for r in rooms:
        for p in r.participants:
            if p.joined_at > now:
                continue
            ended = p.ended_at <= now
            status = p.final_status if ended else "active"
            code = p.completion_code if ended else "IN_PROGRESS"
            completed_at = iso(p.ended_at) if ended and status == "completed" else None
            rec = {
                "id": p.id,
                "experimentId": p.experiment_id,
                "roomId": p.room_id,
                "deploymentId": p.deployment_id,
                "email": p.email,
                "role": p.role,
                "status": status,
                "joinedAt": iso(p.joined_at),
                "completedAt": completed_at,
                "completionCode": code,
            }
            cols = {
                "roomId": p.room_id,
                "participantId": p.id,
                "deploymentId": p.deployment_id,
                "completionCode": code,
                "joinedAt": rec["joinedAt"],
                "completedAt": completed_at,
                "id": p.id,
                "email": p.email,
                "role": p.role,
                "status": status,
            }
            out.append((p.joined_at, rec, cols))
    return out


def recording_rows(
    recs: Iterable[Recording], now: int, base_url: str, sign, legacy_expires: int
) -> list[Row]:
    """Current records carry a `downloadPath`; legacy ones (whole-second times) a storage
    `url` and a signed `downloadUrl` that stops working at `legacy_expires` (epoch ms).
    Neither carries a top-level roomId or experimentId (only metadata.experimentId)."""
    out = []
    for rec in recs:
        if rec.start > now:
            continue
        done = rec.ready_at <= now
        status = ("failed" if rec.failed else "complete") if done else "processing"
        ended = rec.end <= now
        stamp = iso_seconds if rec.legacy else iso
        record: dict[str, Any] = {
            "recordingId": rec.id,
            "egressId": rec.egress_id,
            "participantId": rec.participant_id,
            "participantName": rec.participant_name,
            "startTime": stamp(rec.start),
            "endTime": stamp(rec.end) if ended else None,
            "duration": rec.end - rec.start if ended else None,
            "videoOffset": rec.video_offset,
            "fileSize": rec.size if status == "complete" else None,
            "format": rec.fmt,
            "status": status,
            "resolution": rec.resolution,
            "metadata": {
                "type": rec.kind,
                "recordingType": "participant",
                "roomName": rec.room_name,
                "experimentId": rec.experiment_id,
            },
        }
        if rec.legacy:
            sig = sign(rec.id, legacy_expires)
            record["url"] = f"{base_url}/media/{rec.id}"  # unsigned: storage refuses it
            record["downloadUrl"] = f"{base_url}/media/{rec.id}?expires={legacy_expires}&sig={sig}"
        else:
            room, rec_id = _segment(rec.room_id), _segment(rec.id)
            record["downloadPath"] = f"/data/recordings/download/{room}/{rec_id}"
        cols = {
            "roomId": rec.room_id,
            "participantId": rec.participant_id,
            "deploymentId": rec.deployment_id,
            "status": status,
        }
        out.append((rec.start, record, cols))
    return out


def deployment_rows(experiments: Iterable[Experiment], rooms: list[Room], now: int) -> list[Row]:
    counts: dict[str, int] = {}
    room_counts: dict[str, int] = {}
    for r in rooms:
        if r.created_at <= now:
            room_counts[r.deployment_id] = room_counts.get(r.deployment_id, 0) + 1
        for p in r.participants:
            if p.joined_at <= now:
                counts[p.deployment_id] = counts.get(p.deployment_id, 0) + 1
    out = []
    for exp in experiments:
        for d in exp.deployments:
            if d.created_at > now:
                continue
            status = "completed" if d.closes_at <= now else "active"
            rec = {
                "id": d.id,
                "experimentId": d.experiment_id,
                "name": d.name,
                "status": status,
                "ownerId": OWNER_ID,
                "ownerName": OWNER_NAME,
                "participantCount": counts.get(d.id, 0),
                "roomCount": room_counts.get(d.id, 0),
                "createdAt": iso(d.created_at),
            }
            cols = {"experimentId": d.experiment_id, "deploymentId": d.id, "status": status}
            out.append((d.created_at, rec, cols))
    return out


def experiment_rows(experiments: Iterable[Experiment], rooms: list[Room], now: int) -> list[Row]:
    out = []
    for exp in experiments:
        mine = [r for r in rooms if r.experiment_id == exp.id and r.created_at <= now]
        people = sum(1 for r in mine for p in r.participants if p.joined_at <= now)
        rec = {
            "id": exp.id,
            "name": exp.name,
            "description": exp.description,
            "ownerEmail": exp.owner_email,
            "roomCount": len(mine),
            "participantCount": people,
            "createdAt": iso(exp.created_at),
            "updatedAt": iso(exp.updated_at),
        }
        out.append((exp.created_at, rec, {"experimentId": exp.id, "name": exp.name}))
    return out


def _segment(value: str) -> str:
    """An id as one percent-encoded URL path segment (`..` included), as the API sends it."""
    text = quote(value, safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text
