"""What a data type is: its replication mode, typed columns and key.

`hs_sync/registry.py` declares the data types themselves with these classes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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
