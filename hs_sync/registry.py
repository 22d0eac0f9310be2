"""The one registry of HyperStudy data types: everything else reads it.

Each data type is declared once: where the API serves it, which scopes it
supports, how a record's primary key is formed, how it is replicated and the
typed columns it normalizes into. Adding a data type is one entry here plus
its SQL where it needs a view; code that runs hs-sync can add types of its own
with `register` (or `extended`, for a while) instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pyarrow as pa

from hs_sync import descriptions, jsontext
from hs_sync.descriptions import Doc
from hs_sync.scrub import REDACTED  # what a secret field's value is landed as


class Mode(str, Enum):
    """How a data type is replicated."""

    TIME = "time"  # experiment-scope pulls filtered by startTime from a watermark
    ROOM = "room"  # per-room pulls of rooms new or changed since the last sync
    MERGE = "merge"  # re-read and upsert by key (content changes over time)
    SNAPSHOT = "snapshot"  # small tables re-read whole each run


SCOPES_ALL = ("experiment", "room", "participant")

# Arrow types used by the declared schemas. Times the API measures in (fractional)
# milliseconds, such as onsets, are FLOAT.
STR = pa.string()
INT = pa.int64()
FLOAT = pa.float64()
BOOL = pa.bool_()
TS = pa.timestamp("us", tz="UTC")
LIST_STR = pa.list_(pa.string())
JSON = pa.string()  # nested JSON kept whole as JSON text


@dataclass(frozen=True)
class Column:
    """A typed column; `source` is a dotted path into the record (default: the name)."""

    name: str
    type: pa.DataType
    source: str | None = None
    json: bool = False  # value is nested JSON, stored as JSON text
    # Its description (wins over hs_sync/descriptions.py's; a name described there needs none).
    doc: Doc | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple((self.source or self.name).split("."))


def col(name: str, type_: pa.DataType, source: str | None = None, doc: Doc | None = None) -> Column:
    return Column(name, type_, source, json=False, doc=doc)


def json_col(name: str, source: str | None = None, doc: Doc | None = None) -> Column:
    return Column(name, JSON, source, json=True, doc=doc)


# Columns every normalized table carries besides its declared ones.
KEY_COLUMN = "_key"
LINEAGE_COLUMNS = (
    Column("_key", STR),
    Column("_extra", JSON, json=True),  # fields the schema does not know, as JSON
    Column("_synced_at", TS),
    Column("_raw_file", STR),
)


@dataclass(frozen=True)
class DataType:
    """One HyperStudy data type, as hs-sync replicates it."""

    name: str  # warehouse name (table, folder)
    path: str  # API path: `data/{path}/{scope}/{id}` for data endpoints, else as is
    mode: Mode
    columns: tuple[Column, ...]
    api_scope: str | None  # API-key scope the endpoint needs (None: undocumented)
    scopes: tuple[str, ...] = SCOPES_ALL
    key: tuple[str, ...] = ()  # record fields forming the key; () = hash of the whole record
    cursor: str | None = "timestamp"  # time field filtered by startTime/endTime
    sort: str | None = None  # sort parameter sent to the API (None: API default)
    data_endpoint: bool = True  # served under /data/{path}/{scope}/{id}
    per_experiment: bool = True  # pulled once per experiment (else once per run)
    date_partitioned: bool = False  # parquet partitioned by date of `cursor`
    extra_params: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # Fields that carry credentials (signed media URLs): never landed, stored or logged.
    secret_fields: tuple[str, ...] = ()
    # Where a record that lacks them gets its experiment and its room (recordings in the
    # SDK's shape carry neither): `experiment_from_pull` fills `experimentId` with the
    # experiment the record was pulled for; `room_from` lists the sources of `roomId`, in
    # order: "scope" (the room a room-scope read was for), "participants" (the room of the
    # participant `participantId` of the same experiment, the one joined last before the
    # record's `cursor` time when the participant was in several rooms).
    experiment_from_pull: bool = False
    room_from: tuple[str, ...] = ()
    paged: bool = True  # the endpoint pages by limit/offset (else one answer holds it all)
    # Pulled once per record of this other type in the experiment: `path` then holds
    # `{id}`, that record's id (deployment sessions: `deployments/{id}/sessions`).
    parent: str | None = None
    # Names the API's per-participant `counts` may give this type besides its name and path.
    count_names: tuple[str, ...] = ()
    default: bool = True  # synced when no types are named (else only when named)
    # Snapshot tables: the field whose newest value (sorted descending) shows a change,
    # so a probe of one row can tell whether a re-read is needed.
    change_sort: str | None = None
    # The entity this table lists, whose `id` column names it ("experiment",
    # "deployment", "room", "participant"); None for data tables.
    lists: str | None = None
    # The field naming a row's participant (chat: the sender); None: its participants are
    # not listed in the participants table (AI agents).
    participant_field: str | None = "participantId"
    triggers_media: bool = False  # its rows are recordings whose files `media` downloads
    row_cap: int | None = None  # the API lists at most this many rows
    marks_sessions: bool = False  # a room with none of its rows is a missing session
    # One line on what its table holds (wins over hs_sync/descriptions.py's TABLES).
    doc: str | None = None

    def column_for(self, entity: str) -> str | None:
        """The column naming a row's `entity` ("room", "participant", ...), if it has one."""
        if self.lists == entity:
            return "id"
        name = self.participant_field if entity == "participant" else f"{entity}Id"
        return name if name is not None and name in {c.name for c in self.columns} else None

    def redact(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`records` with every `secret_fields` value replaced by REDACTED (copies only those)."""
        if not self.secret_fields:
            return records
        secret = self.secret_fields
        return [
            {k: (REDACTED if k in secret and v is not None else v) for k, v in r.items()}
            if isinstance(r, dict) and any(k in r for k in secret)
            else r
            for r in records
        ]

    def describe(self, column: str) -> Doc:
        """The description of one of this type's columns (or lineage): its own, else the
        data dictionary's."""
        own = next((c.doc for c in self.columns if c.name == column and c.doc), None)
        doc = own or descriptions.named(self.name, column)
        if doc is None:
            raise KeyError(
                f"no description of {self.name}.{column}: give the column a doc, "
                "or describe the name in hs_sync/descriptions.py"
            )
        return doc

    @property
    def description(self) -> str:
        """One line on what the type's table holds (its own, else the data dictionary's)."""
        return self.doc or descriptions.TABLES.get(self.name) or ""

    def url_path(self, scope: str, scope_id: str, parent_id: str | None = None) -> str:
        if self.data_endpoint:
            return f"data/{self.path}/{scope}/{scope_id}"
        if self.parent is not None:
            return self.path.format(id=parent_id)
        return self.path

    @property
    def declared_names(self) -> frozenset[str]:
        """Top-level record fields the declared columns read."""
        return frozenset(c.path[0] for c in self.columns)

    @property
    def arrow_schema(self) -> pa.Schema:
        """The normalized table's schema: declared columns then lineage columns."""
        cols = self.columns + LINEAGE_COLUMNS
        return pa.schema([pa.field(c.name, c.type) for c in cols])

    def key_of(self, record: Any) -> str:
        """The record's primary key as one string (stable across runs); a record that is
        not an object is keyed by its whole value."""
        if self.key and isinstance(record, dict):
            return self.key_from([record.get(k) for k in self.key])
        return "h:" + _digest(record)

    def row_key(self, experiment: str, record: dict[str, Any]) -> str | None:
        """The warehouse `_key` of a record landed in folder `experiment_id=<experiment>`,
        as the typing SQL builds it (None: the record has no key and is quarantined).
        Per-experiment types include the experiment: the API promises no global ids."""
        if self.key:
            parts = [record.get(k) for k in self.key]
            if not all(
                (type(v) is str and v != "") or (type(v) is int and -(2**63) <= v < 2**64)
                for v in parts
            ):
                return None
            key = "|".join(str(v) for v in parts)
        else:  # the landed line's text (orjson's, as the landing writes it), hashed
            key = "h:" + hashlib.md5(jsontext.dumps(record), usedforsecurity=False).hexdigest()
        return f"{experiment}|{key}" if self.per_experiment else key

    def key_from(self, values: Sequence[Any]) -> str:
        """The key of a record whose `key` fields hold `values` (None where absent)."""
        if all(isinstance(v, (str, int)) and v != "" for v in values):
            return "|".join(str(v) for v in values)
        return "h:" + _digest(dict(zip(self.key, values, strict=True)))


def _digest(value: Any) -> str:
    try:
        canonical = jsontext.dumps(value, sort_keys=True)
    except jsontext.Unencodable:  # nested beyond any encoder: hash its repr, still stable
        canonical = repr(value).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


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
