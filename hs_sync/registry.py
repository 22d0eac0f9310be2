"""The one registry of HyperStudy data types: everything else reads it.

Each data type is declared once: where the API serves it, which scopes it
supports, how a record's primary key is formed, how it is replicated and the
typed columns it normalizes into. Adding a data type is one entry here plus
its SQL where it needs a view; code that runs hs-sync can add types of its own
with `register` (or `extended`, for a while) instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from hs_sync import descriptions
from hs_sync.datatype import (  # noqa: F401  (the registry's names for what a type is)
    BOOL,
    FLOAT,
    INT,
    JSON,
    KEY_COLUMN,
    LINEAGE_COLUMNS,
    LIST_STR,
    REDACTED,
    SCOPES_ALL,
    STR,
    TS,
    Column,
    DataType,
    Mode,
    col,
    json_col,
)

_WHO = (col("experimentId", STR), col("roomId", STR), col("participantId", STR))

DATA_TYPES: tuple[DataType, ...] = (
    DataType(
        name="events",
        path="events",
        mode=Mode.TIME,
        api_scope="read:events",
        key=("id",),
        marks_sessions=True,
        date_partitioned=True,
        columns=(
            col("id", STR),
            *_WHO,
            col("onset", FLOAT),
            col("timestamp", TS),
            col("category", STR),
            col("eventType", STR),
            col("componentType", STR),
            json_col("content"),
            col("stateId", STR),
            col("stateName", STR),
            col("participantRole", STR),
            json_col("response"),
        ),
    ),
    DataType(
        name="ratings_continuous",
        path="ratings/continuous",
        mode=Mode.TIME,
        api_scope="read:ratings",
        date_partitioned=True,
        columns=(
            *_WHO,
            col("componentId", STR),
            col("timestamp", TS),
            col("onset", FLOAT),
            col("value", FLOAT),
        ),
    ),
    DataType(
        name="ratings_sparse",
        path="ratings/sparse",
        mode=Mode.TIME,
        api_scope="read:ratings",
        key=("ratingId",),
        date_partitioned=True,
        # the SDK's sparse ratings carry neither experimentId nor roomId
        experiment_from_pull=True,
        room_from=("scope", "participants"),
        columns=(
            col("ratingId", STR),
            *_WHO,
            col("timestamp", TS),
            col("onset", FLOAT),
            col("rawOnset", FLOAT),
            col("clockOffsetApplied", FLOAT),
            col("value", FLOAT),
            col("rawValue", STR),  # a number or text as sent: numbers keep their JSON text
            json_col("scale"),
            col("scaleMin", FLOAT, "scale.min"),
            col("scaleMax", FLOAT, "scale.max"),
            col("type", STR),
            col("stateId", STR),
            col("stimulusId", STR),
            col("stimulusTime", FLOAT),
            col("responseTime", FLOAT),
            col("confidence", FLOAT),
            json_col("metadata"),
            col("question", STR, "metadata.question"),
            col("dimension", STR, "metadata.dimension"),
            col("ratingEndOnset", FLOAT),
            json_col("sparseRatingData"),
            col("stateStartTime", TS),
            col("stateDuration", INT),
        ),
    ),
    DataType(
        name="chat",
        path="chat",
        mode=Mode.TIME,
        api_scope="read:chat",
        key=("messageId",),
        participant_field="senderId",
        count_names=("textchat",),
        date_partitioned=True,
        columns=(
            col("messageId", STR),
            col("experimentId", STR),
            col("roomId", STR),
            col("senderId", STR),
            col("content", STR),
            col("timestamp", TS),
            col("recipientIds", LIST_STR),
            col("senderRole", STR),
            col("stateId", STR),
        ),
    ),
    DataType(
        name="videochat",
        path="videochat",
        mode=Mode.TIME,
        api_scope="read:videochat",
        date_partitioned=True,
        columns=(
            *_WHO,
            col("timestamp", TS),
            col("type", STR),
            # LiveKit connection events, track publications and quality metrics
            col("livekitRoom", STR),
            col("identity", STR),
            col("trackSource", STR),
            col("trackSid", STR),
            col("muted", BOOL),
            col("quality", STR),
            col("bitrateKbps", FLOAT),
            col("packetLossPct", FLOAT),
            col("jitterMs", FLOAT),
            col("rttMs", FLOAT),
            col("reason", STR),
            # a u64 counter beyond BIGINT: its exact digits as text
            col("bytesSent", STR),
        ),
    ),
    DataType(
        name="sync",
        path="sync",
        mode=Mode.TIME,
        api_scope="read:sync",
        date_partitioned=True,
        columns=(
            *_WHO,
            col("timestamp", TS),
            col("timeDrift", FLOAT),
            col("playbackRate", FLOAT),
            col("syncQuality", FLOAT),
            col("latency", FLOAT),
        ),
    ),
    DataType(
        name="components",
        path="components",
        mode=Mode.ROOM,
        api_scope="read:components",
        cursor=None,
        columns=(
            *_WHO,
            col("componentId", STR),
            col("componentType", STR),
            col("stateId", STR),
            col("completed", BOOL),
            col("timestamp", TS),
            json_col("config"),
            json_col("variables"),
        ),
    ),
    DataType(
        name="eyetracking",
        path="eyetracking",
        mode=Mode.ROOM,
        api_scope=None,
        cursor=None,
        columns=(
            *_WHO,
            col("timestamp", TS),
            col("onset", FLOAT),
            col("x", FLOAT),
            col("y", FLOAT),
            col("confidence", FLOAT),
            col("pupilDiameter", FLOAT),
            col("stimulusId", STR),
        ),
    ),
    DataType(
        name="recordings",
        path="recordings",
        mode=Mode.MERGE,
        api_scope="read:recordings",
        key=("recordingId",),
        cursor="startTime",
        triggers_media=True,
        secret_fields=("downloadUrl", "url"),  # legacy records: signed URLs
        experiment_from_pull=True,
        room_from=("scope", "participants"),
        columns=(
            col("recordingId", STR),
            col("egressId", STR),
            *_WHO,
            col("participantName", STR),
            col("startTime", TS),
            col("endTime", TS),
            col("duration", INT),
            col("videoOffset", INT),
            col("fileSize", INT),
            col("format", STR),
            col("status", STR),
            col("resolution", STR),
            json_col("metadata"),
            col("mediaType", STR, "metadata.type"),
            col("recordingType", STR, "metadata.recordingType"),
            col("downloadPath", STR),
            col("downloadUrl", STR),  # legacy records; stored without its signature
            col("url", STR),  # legacy records: the unsigned media URL
        ),
    ),
    DataType(
        name="participants",
        path="participants",
        mode=Mode.SNAPSHOT,
        change_sort="completedAt",
        lists="participant",
        api_scope="read:events",
        scopes=("experiment", "room"),
        key=("id", "roomId"),
        cursor=None,
        columns=(
            col("id", STR),
            col("experimentId", STR),
            col("roomId", STR),
            col("deploymentId", STR),
            col("email", STR),
            col("role", STR),
            col("status", STR),
            col("joinedAt", TS),
            col("completedAt", TS),
            col("completionCode", STR),
        ),
    ),
    DataType(
        name="rooms",
        path="rooms",
        mode=Mode.SNAPSHOT,
        change_sort="updatedAt",
        lists="room",
        row_cap=5000,
        api_scope="read:events",
        scopes=("experiment",),
        key=("id",),
        cursor=None,
        columns=(
            col("id", STR),
            col("experimentId", STR),
            col("deploymentId", STR),
            col("deploymentName", STR),
            col("status", STR),
            col("participantCount", INT),
            col("createdAt", TS),
            col("startedAt", TS),
            col("completedAt", TS),
            col("updatedAt", TS),
            # the dashboard docs' shape: start and duration (ms) instead of started/completed
            col("startTime", TS),
            col("duration", INT),
        ),
    ),
    DataType(
        name="deployments",
        path="deployments",
        mode=Mode.SNAPSHOT,
        lists="deployment",
        api_scope=None,
        scopes=(),
        key=("id",),
        cursor=None,
        data_endpoint=False,
        columns=(
            col("id", STR),
            col("experimentId", STR),
            col("name", STR),
            col("status", STR),
            col("participantCount", INT),
            col("createdAt", TS),
            col("roomCount", INT),
            col("ownerId", STR),
            col("ownerName", STR),
        ),
    ),
    DataType(
        name="experiments",
        path="experiments",
        mode=Mode.SNAPSHOT,
        lists="experiment",
        api_scope="read:experiments",
        scopes=(),
        key=("id",),
        cursor=None,
        data_endpoint=False,
        per_experiment=False,
        columns=(
            col("id", STR),
            col("name", STR),
            col("description", STR),
            col("ownerEmail", STR),
            col("roomCount", INT),
            col("participantCount", INT),
            col("createdAt", TS),
            col("updatedAt", TS),
        ),
    ),
)

# Types served by the SDK's other read endpoints (variables, deployment sessions, agents).
_AGENT_RUN = (  # an AI agent's run manifest
    col("personaId", STR),
    col("seed", INT),
    col("totalInputTokens", INT),
    col("totalOutputTokens", INT),
    col("totalCostUsd", FLOAT),
    col("turns", INT),
    col("codeCommitSha", STR),
    col("startedAt", TS),
    col("endedAt", TS),
)
DATA_TYPES += (
    DataType(
        name="variables",
        path="variables",
        mode=Mode.ROOM,
        api_scope=None,
        scopes=("room",),
        cursor=None,
        paged=False,
        experiment_from_pull=True,
        room_from=("scope",),
        columns=(
            *_WHO,
            col("timestamp", TS),
            col("onset", INT),
            col("stateId", STR),
            col("variable", STR),
            json_col("value"),
            col("source", STR),
            col("persisted", BOOL),
        ),
    ),
    DataType(
        name="deployment_sessions",
        path="deployments/{id}/sessions",
        mode=Mode.SNAPSHOT,
        api_scope=None,
        scopes=(),
        key=("id",),
        cursor=None,
        data_endpoint=False,
        paged=False,
        parent="deployments",
        default=False,  # one request per deployment for what the rooms table holds already
        columns=(
            col("id", STR),
            col("experimentId", STR),
            col("deploymentId", STR),
            col("status", STR),
            col("participantCount", INT),
            col("createdAt", TS),
        ),
    ),
    DataType(
        name="agent_decisions",
        path="agent-decisions",
        mode=Mode.SNAPSHOT,
        api_scope=None,
        scopes=("experiment", "room"),
        key=("_type", "id"),
        cursor=None,
        paged=False,
        experiment_from_pull=True,
        participant_field=None,  # AI agents, not among the room's participants
        columns=(
            col("recordType", STR, "_type"),  # "decision", or "run" (the run's manifest)
            col("id", STR),
            *_WHO,
            col("seq", INT),
            col("stateId", STR),
            col("stateName", STR),
            col("turnKind", STR),
            col("action", STR),
            json_col("value"),
            col("model", STR),
            col("provider", STR),
            col("latencyMs", INT),
            col("inputTokens", INT),
            col("outputTokens", INT),
            col("timestamp", TS),
            *_AGENT_RUN,  # a run's manifest row (recordType 'run')
        ),
    ),
    DataType(
        name="agent_runs",
        path="agent-runs",
        mode=Mode.SNAPSHOT,
        api_scope=None,
        scopes=("experiment",),
        key=("id",),
        cursor=None,
        paged=False,
        experiment_from_pull=True,
        participant_field=None,  # AI agents, not among the room's participants
        columns=(
            col("id", STR),
            *_WHO,
            col("model", STR),
            col("provider", STR),
            *_AGENT_RUN,
            col("roomStatus", STR),
            col("orphaned", BOOL),
        ),
    ),
)

BY_NAME: dict[str, DataType] = {dt.name: dt for dt in DATA_TYPES}
DEFAULT_TYPES: tuple[DataType, ...] = tuple(dt for dt in DATA_TYPES if dt.default)

# Read from the API on demand (by `hs-sync check --room`), never synced into a table.
COUNTS = DataType(
    name="counts",
    path="counts",
    mode=Mode.SNAPSHOT,
    api_scope="read:events",
    scopes=("participant",),
    key=("participantId", "roomId"),
    cursor=None,
    paged=False,
    columns=(
        col("participantId", STR),
        col("roomId", STR),
        json_col("counts"),  # data type -> documents the API holds for the participant
        json_col("hasData"),
    ),
)

_NAME = re.compile(r"[a-z][a-z0-9_]*")  # a table and a folder name


def register(*types: DataType) -> None:
    """Add data types after the registered ones; every layer reads them from then on.

    The way to add a type without editing this file (a lab's own endpoint, a test's
    fixture type); call it before a run starts. A type is checked as it is added:
    a new lower-case name, described columns, its key and cursor among its fields.
    """
    known = dict(BY_NAME)
    for dt in types:
        _check(dt, known)
        known[dt.name] = dt
    _publish(DATA_TYPES + tuple(types))


@contextmanager
def extended(*types: DataType) -> Iterator[tuple[DataType, ...]]:
    """The registry with `types` added (`register`) while the block runs, as it was after."""
    before = DATA_TYPES
    register(*types)
    try:
        yield types
    finally:
        _publish(before)


def _check(dt: DataType, known: dict[str, DataType]) -> None:
    if not _NAME.fullmatch(dt.name):
        raise ValueError(f"data type name {dt.name!r}: lower-case letters, digits and _ only")
    if dt.name in known or dt.name == COUNTS.name or dt.name in descriptions.TABLES:
        raise ValueError(f"data type name {dt.name!r} is taken by a table or view")
    if dt.parent is not None and dt.parent not in known:
        raise ValueError(f"{dt.name}: its parent {dt.parent!r} is no registered type")
    validate(dt)


def validate(dt: DataType) -> None:
    """Raise unless every layer can read `dt`: its key and cursor among its columns, its
    table and every column described (ValueError; KeyError for a column)."""
    fields = dt.declared_names
    if missing := [k for k in dt.key if k not in fields]:
        raise ValueError(f"{dt.name}: key fields {missing} are not among its columns")
    if dt.cursor is not None and dt.mode in (Mode.TIME, Mode.MERGE):
        cursor = next((c for c in dt.columns if c.name == dt.cursor), None)
        if cursor is None or cursor.type != TS:
            raise ValueError(f"{dt.name}: its cursor {dt.cursor!r} must be a timestamp column")
    if not dt.description:
        raise ValueError(f"{dt.name}: no description of its table (give it a doc)")
    for c in dt.columns + LINEAGE_COLUMNS:
        dt.describe(c.name)  # a KeyError names the column that has no description


def _publish(types: tuple[DataType, ...]) -> None:
    global DATA_TYPES, BY_NAME, DEFAULT_TYPES
    DATA_TYPES = types
    BY_NAME = {dt.name: dt for dt in types}
    DEFAULT_TYPES = tuple(dt for dt in types if dt.default)


def media_type() -> DataType:
    """The data type whose rows are the recordings `media` downloads."""
    return next(dt for dt in DATA_TYPES if dt.triggers_media)


def listing(entity: str) -> DataType:
    """The data type that lists `entity` ("room", "experiment", ...)."""
    return next(dt for dt in DATA_TYPES if dt.lists == entity)


def get(name: str) -> DataType:
    """The data type called `name`; a clear error naming the valid ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown data type {name!r}; known: {', '.join(BY_NAME)}") from None
