"""Records planted into a dataset for tests: shapes and cases the generator does not make.

Fields of a served entity record can be replaced or removed (`ABSENT`), e.g.
recordings without `roomId`/`experimentId` as the SDK's fixtures have them,
rooms with `startTime`/`duration`; whole rows can be added to entity types (a
participant who rejoins in a second room) and to time-series types (a
questionnaire event carrying an `answers` list). Planted rows are served and
are part of the ground truth like generated ones.
"""

from __future__ import annotations

from typing import Any

import orjson

from .timeutil import parse_iso

ABSENT: Any = object()  # a planted field value that removes the field from the record

ID_FIELD = {"rooms": "id", "participants": "id", "recordings": "recordingId"}
# Indexed columns a planted entity row is filtered by, besides its own scalar fields.
ALIASES = {"rooms": {"roomId": "id"}, "participants": {"participantId": "id"}}


class Planted:
    """What is planted into one dataset (guarded by the dataset's lock)."""

    def __init__(self) -> None:
        self.fields: dict[str, dict[str, dict[str, Any]]] = {}  # type -> id -> fields
        self.rows: dict[str, list[tuple[str, int, dict, dict]]] = {}  # type -> rows

    def entity_rows(self, data_type: str, experiment_id: str | None, rows: list) -> list:
        """`rows` ((time, record, columns) triples) with the planted fields and rows."""
        fields = self.fields.get(data_type)
        extra = self.rows.get(data_type, ())
        if not fields and not extra:
            return rows
        out = []
        for ts, record, cols in rows:
            changed = fields.get(str(record.get(ID_FIELD[data_type]))) if fields else None
            if changed:
                merged = {**record, **changed}
                record = {k: v for k, v in merged.items() if v is not ABSENT}
            out.append((ts, record, cols))
        out += [(ts, r, c) for exp, ts, r, c in extra if experiment_id in (None, exp)]
        return out


def row_columns(data_type: str, record: dict, columns: dict | None = None) -> dict:
    """The indexed columns of a planted record: its scalar fields, aliases, `columns`."""
    cols = {k: v for k, v in record.items() if not isinstance(v, (dict, list))}
    for alias, name in ALIASES.get(data_type, {}).items():
        cols.setdefault(alias, record.get(name))
    return {**cols, **(columns or {})}


def series_items(table_cols, records: list[dict], time_field: str) -> list[tuple]:
    """(time, JSON, column values) items of time-series records for `Table.insert`."""
    return [
        (parse_iso(r[time_field]), orjson.dumps(r), {name: r.get(name) for name in table_cols})
        for r in records
    ]


def entity_row(data_type: str, record: dict, time_field: str, columns: dict | None = None):
    """(time, record, columns) of a planted entity record."""
    return parse_iso(record[time_field]), record, row_columns(data_type, record, columns)
