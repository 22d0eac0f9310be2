"""The entities of a simulated dataset: experiments, deployments, rooms, participants, recordings.

These are plans with every transition time fixed at generation; what the API
shows for them at a given clock (status, counts, nullable end times) is worked
out in `snapshots.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Feature:
    """What an experiment's sessions contain."""

    synced_media: bool
    videochat: bool
    continuous: bool
    sparse: bool
    eyetracking: bool
    chat: bool


@dataclass
class Experiment:
    id: str
    name: str
    description: str | None
    owner_email: str
    created_at: int
    updated_at: int
    features: Feature
    index: int
    deployments: list[Deployment] = field(default_factory=list)


@dataclass
class Deployment:
    id: str
    experiment_id: str
    name: str
    created_at: int
    closes_at: int  # after this the deployment is `completed`


@dataclass
class Participant:
    id: str
    room_id: str
    experiment_id: str
    deployment_id: str
    email: str | None
    name: str
    role: str
    joined_at: int
    ended_at: int  # left, completed or disconnected (may lie beyond the clock)
    completion_code: str  # final code; IN_PROGRESS is derived while active
    final_status: str  # completed, disconnected, left, timed_out, declined


@dataclass
class Room:
    id: str
    experiment_id: str
    deployment_id: str
    deployment_name: str
    created_at: int
    started_at: int | None
    completed_at: int
    participants: list[Participant] = field(default_factory=list)


@dataclass
class Recording:
    id: str
    egress_id: str
    room_id: str
    experiment_id: str
    deployment_id: str
    participant_id: str
    participant_name: str
    room_name: str
    kind: str  # video | audio
    fmt: str  # mp4 | webm
    start: int
    end: int
    ready_at: int  # processing finishes (complete or failed)
    failed: bool
    legacy: bool  # carries a downloadUrl instead of a downloadPath
    size: int
    video_offset: int
    resolution: str | None
