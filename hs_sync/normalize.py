"""Raw NDJSON records to typed Arrow tables, one raw file at a time.

Each declared column is built for the whole file at once (a vectorised fast
path); only when a column refuses its values does the file fall back to typing
row by row, so that the rows that cannot be typed go to quarantine with the
reason while the rest of the file is kept. Fields the registry does not know
are kept as JSON in `_extra` and reported as drift, with values of a declared
field whose JSON type differs from the declared one.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from hs_sync import jsontext
from hs_sync.registry import Column, DataType
from hs_sync.timeutil import parse_time

SLICE_ROWS = 5_000  # records parsed at once
# Signed media URLs are credentials (DESIGN.md invariant 7): below raw they are kept
# without their query string, which carries the signature and expiry.
SIGNED_URL_FIELDS = frozenset({"downloadUrl", "url", "signedUrl"})
_BATCH_STAMP = re.compile(r"^(\d{8}T\d{12})Z")


@dataclass
class Quarantined:
    """One raw line that could not be typed, and why."""

    line: int  # 1-based line number in the raw file
    reason: str
    text: str  # the raw line as it was landed


@dataclass
class Drift:
    """Schema drift seen in raw records: unknown fields and changed value types."""

    new_fields: Counter = field(default_factory=Counter)  # field -> rows carrying it
    type_changes: Counter = field(default_factory=Counter)  # (field, declared, seen) -> rows

    def update(self, other: Drift) -> None:
        self.new_fields.update(other.new_fields)
        self.type_changes.update(other.type_changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "new_fields": dict(sorted(self.new_fields.items())),
            "type_changes": [
                {"field": f, "declared": d, "seen": s, "rows": n}
                for (f, d, s), n in sorted(self.type_changes.items())
            ],
        }


@dataclass
class Normalized:
    """The typed rows of one raw file, plus what could not be typed."""

    table: pa.Table  # dt.arrow_schema, in file order
    quarantined: list[Quarantined]
    drift: Drift


class _Untypable(ValueError):
    pass


def read_lines(path: Path) -> list[bytes]:
    """The non-blank lines of an `.ndjson` or `.ndjson.gz` file."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [line for line in data.split(b"\n") if line.strip()]


def synced_at_of(raw_file: Path) -> datetime:
    """When a raw file was landed: its batch folder's UTC stamp (stable, so rebuilds
    reproduce it), else the file's modification time."""
    match = _BATCH_STAMP.match(raw_file.parent.name)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(raw_file.stat().st_mtime, tz=timezone.utc)


def normalize_file(dt: DataType, path: Path, raw_file: str, synced_at: datetime) -> Normalized:
    """Type every record of one raw file; `raw_file` is the lineage name stored per row."""
    return normalize_lines(dt, read_lines(path), raw_file, synced_at)


def normalize_lines(
    dt: DataType, lines: list[bytes], raw_file: str, synced_at: datetime
) -> Normalized:
    """Type the records of one raw file, a slice at a time (parsed dicts are the
    memory-hungry part, typed Arrow columns are compact)."""
    tables, quarantined, drift = [], [], Drift()
    for start in range(0, max(len(lines), 1), SLICE_ROWS):
        part = _normalize_slice(dt, lines[start : start + SLICE_ROWS], raw_file, synced_at)
        tables.append(part.table)
        quarantined += [Quarantined(q.line + start, q.reason, q.text) for q in part.quarantined]
        drift.update(part.drift)
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables).combine_chunks()
    return Normalized(table, quarantined, drift)


def _normalize_slice(
    dt: DataType, lines: list[bytes], raw_file: str, synced_at: datetime
) -> Normalized:
    quarantined: list[Quarantined] = []
    records: list[dict[str, Any]] = []
    line_nos: list[int] = []
    try:
        parsed = [orjson.loads(line) for line in lines]
    except orjson.JSONDecodeError:
        parsed = None
    if parsed is not None and all(type(r) is dict for r in parsed):
        records, line_nos = parsed, list(range(1, len(lines) + 1))
        _unsign(records)
    else:
        for number, line in enumerate(lines, 1):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                quarantined.append(Quarantined(number, f"not JSON: {exc}", _text(line)))
                continue
            if type(record) is not dict:
                reason = f"not a JSON object: {type(record).__name__}"
                quarantined.append(Quarantined(number, reason, _text(line)))
                continue
            records.append(record)
            line_nos.append(number)
        _unsign(records)

    drift = Drift()
    try:
        table = _build(dt, records, raw_file, synced_at, drift)
    except _Untypable:
        # Slow path: find the rows that cannot be typed, keep the others.
        drift = Drift()
        good: list[dict[str, Any]] = []
        for number, record in zip(line_nos, records, strict=True):
            reason = _row_problem(dt, record, drift)
            if reason is None:
                good.append(record)
            else:
                quarantined.append(Quarantined(number, reason, _text(lines[number - 1])))
        table = _build(dt, good, raw_file, synced_at, Drift())
        _note_new_fields(dt, good, drift)
    quarantined.sort(key=lambda q: q.line)
    return Normalized(table, quarantined, drift)


def _unsign(records: list[dict[str, Any]]) -> None:
    for record in records:
        if not SIGNED_URL_FIELDS.isdisjoint(record):
            for name in SIGNED_URL_FIELDS.intersection(record):
                value = record[name]
                if isinstance(value, str):
                    record[name] = value.split("?", 1)[0].split("#", 1)[0]


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def _build(
    dt: DataType, records: list[dict[str, Any]], raw_file: str, synced_at: datetime, drift: Drift
) -> pa.Table:
    """Columns for all records at once; raises _Untypable if any value does not fit."""
    n = len(records)
    arrays: list[pa.Array] = []
    for column in dt.columns:
        values = _values(column, records)
        arrays.append(_typed_array(column, values))
    if dt.cursor and dt.date_partitioned:
        cursor = next(c for c in dt.columns if c.name == dt.cursor)
        if arrays[dt.columns.index(cursor)].null_count:
            raise _Untypable(f"missing {dt.cursor}")
    declared = dt.declared_names
    extras: list[str | None] = [None] * n
    for i, record in enumerate(records):
        if not record.keys() <= declared:
            extra = {k: v for k, v in record.items() if k not in declared}
            extras[i] = _json_text(extra)
            drift.new_fields.update(extra.keys())
    arrays.append(_keys(dt, records, arrays))
    arrays.append(pa.array(extras, pa.string()))
    arrays.append(pa.array([synced_at] * n, pa.timestamp("us", tz="UTC")))
    arrays.append(pa.array([raw_file] * n, pa.string()))
    return pa.Table.from_arrays(arrays, schema=dt.arrow_schema)


def _values(column: Column, records: list[dict[str, Any]]) -> list[Any]:
    path = column.path
    if len(path) == 1:
        name = path[0]
        return [r.get(name) for r in records]
    return [_dig(r, path) for r in records]


def _dig(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        if type(value) is not dict:
            return None
        value = value.get(part)
    return value


def _typed_array(column: Column, values: list[Any]) -> pa.Array:
    kind = column.type
    if column.json:
        return pa.array([None if v is None else _json_text(v) for v in values], pa.string())
    try:
        if pa.types.is_timestamp(kind):
            if all(v is None or type(v) is str for v in values):
                try:
                    return _in_range(pc.cast(pa.array(values, pa.string()), kind))
                except pa.ArrowInvalid:
                    pass  # other ISO forms (no zone, nanoseconds): parse one by one
            return pa.array([_timestamp(v) for v in values], kind)
        if pa.types.is_string(kind):
            return pa.array(values, kind)
        if pa.types.is_floating(kind):
            if any(type(v) is bool for v in values):
                raise _Untypable("bool")
            return pa.array(values, kind)
        if pa.types.is_integer(kind):
            if any(type(v) is bool or (type(v) is float and not v.is_integer()) for v in values):
                raise _Untypable("not an integer")
            return pa.array(values, kind)
        if pa.types.is_list(kind):
            if not all(
                v is None or (type(v) is list and all(type(x) is str for x in v)) for v in values
            ):
                raise _Untypable("not a list of strings")
            return pa.array(values, kind)
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise _Untypable(str(exc)) from None


def _json_text(value: Any) -> str:
    try:
        return jsontext.dumps(value).decode("utf-8", "surrogatepass")
    except jsontext.Unencodable as exc:
        raise _Untypable(str(exc)) from None


# Timestamps every reader can turn into a datetime: UTC years 1 to 9999 (as parse_time).
_MIN_US, _MAX_US = -62_135_596_800_000_000, 253_402_300_799_999_999


def _in_range(array: pa.Array) -> pa.Array:
    micros = pc.min_max(array.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()))
    low, high = micros["min"].as_py(), micros["max"].as_py()
    if low is not None and (low < _MIN_US or high > _MAX_US):
        raise _Untypable("timestamp outside the years 1 to 9999 (UTC)")
    return array


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if type(value) is bool or not isinstance(value, (str, int, float)):
        raise _Untypable("not a timestamp")
    moment = parse_time(value)
    if moment is None:
        raise _Untypable(f"unreadable timestamp {value!r}")
    return moment


def _keys(dt: DataType, records: list[dict[str, Any]], arrays: list[pa.Array]) -> pa.Array:
    """`dt.key_of(record)` for every record, vectorised for plain string keys."""
    names = [c.name for c in dt.columns]
    if dt.key and all(k in names for k in dt.key):
        parts = [arrays[names.index(k)] for k in dt.key]
        plain = all(
            pa.types.is_string(p.type) and p.null_count == 0 and not pc.any(pc.equal(p, "")).as_py()
            for p in parts
        )
        if plain and all(dt.columns[names.index(k)].source is None for k in dt.key):
            if len(parts) == 1:
                return parts[0]
            return pc.binary_join_element_wise(*parts, "|")
    return pa.array([dt.key_of(r) for r in records], pa.string())


def _row_problem(dt: DataType, record: dict[str, Any], drift: Drift) -> str | None:
    """Why one record cannot be typed (None if it can); type changes noted as drift."""
    problems = []
    for column in dt.columns:
        values = _values(column, [record])
        try:
            _typed_array(column, values)
        except _Untypable as exc:
            seen = _json_type(values[0])
            drift.type_changes[(column.source or column.name, str(column.type), seen)] += 1
            problems.append(
                f"{column.source or column.name}: expected {column.type}, got {seen} ({exc})"
            )
    extra = {k: v for k, v in record.items() if k not in dt.declared_names}
    if extra:
        try:
            _json_text(extra)
        except _Untypable as exc:
            problems.append(f"_extra: {exc}")
    if not problems and dt.cursor and dt.date_partitioned and record.get(dt.cursor) is None:
        problems.append(f"{dt.cursor}: missing (needed for the date partition)")
    return "; ".join(problems) or None


def _note_new_fields(dt: DataType, records: list[dict[str, Any]], drift: Drift) -> None:
    declared = dt.declared_names
    for record in records:
        if not record.keys() <= declared:
            drift.new_fields.update(k for k in record if k not in declared)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}.get(
        type(value), "object"
    )
