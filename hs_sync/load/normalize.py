"""Raw NDJSON records to typed Arrow tables, one raw file at a time.

Records are typed a slice at a time, each declared column for the whole slice
at once; only when a column refuses its values does the slice fall back to
typing row by row, so that the rows that cannot be typed go to quarantine with
the reason while the rest of the file is kept. Fields the registry does not
know are kept as JSON in `_extra` and reported as drift, with values of a
declared field whose JSON type differs from the declared one.

A fast path tries each slice first and returns the same table when every line
is a JSON object and every record types. It takes the text, boolean and
timestamp columns from the parsed records in one pass of pyarrow's C++
converter and hashes whole-record keys inline; for types whose rows need
nothing but top-level scalar and list columns and a documented key, Arrow's C++
JSON reader types the slice without parsed records at all. That reader takes
what orjson refuses (NaN, a byte order mark, invalid UTF-8, two objects on a
line), so it runs only behind checks for those, with unknown fields as errors.
On any doubt (a line that is not an object, an integer a double cannot hold
exactly, -0, a null list item, an epoch timestamp, a missing cursor, a key to
be hashed) the slice is left to the code that follows, as before.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from hs_sync import jsontext
from hs_sync.land import rawfile
from hs_sync.registry import Column, DataType
from hs_sync.timeutil import parse_time

SLICE_ROWS = 1_000  # records parsed at once (faster and leaner than 5,000 at 1M events)
# Signed media URLs are credentials (DESIGN.md invariant 7): below raw they are kept
# without their query string, which carries the signature and expiry.
SIGNED_URL_FIELDS = frozenset({"downloadUrl", "url", "signedUrl"})
_BATCH_STAMP = re.compile(r"^(\d{8}T\d{12})Z")

_FAST_PATH = True  # tests turn this off to compare the fast path with the code it skips
# Slices the fast path typed from Arrow alone ("arrow") or with parsed records ("records"),
# or left to `_normalize_slice` ("fallback").
_FAST_COUNTS: Counter = Counter()


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


def read_slices(path: Path) -> Iterator[list[bytes]]:
    """The non-blank lines of a raw data file, SLICE_ROWS at a time."""
    rows = SLICE_ROWS
    pending: list[bytes] = []
    for block in rawfile.line_blocks(path):
        pending += block
        while len(pending) >= rows:
            yield pending[:rows]
            del pending[:rows]
    for start in range(0, len(pending), rows):
        yield pending[start : start + rows]


def synced_at_of(raw_file: Path) -> datetime:
    """When a raw file was landed: its batch folder's UTC stamp (stable, so rebuilds
    reproduce it), else the file's modification time."""
    match = _BATCH_STAMP.match(raw_file.parent.name)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(raw_file.stat().st_mtime, tz=timezone.utc)


def normalize_file(dt: DataType, path: Path, raw_file: str, synced_at: datetime) -> Normalized:
    """Type every record of one raw file; `raw_file` is the lineage name stored per row."""
    return _collect(dt, iter_normalized(dt, read_slices(path), raw_file, synced_at))


def normalize_lines(
    dt: DataType, lines: list[bytes], raw_file: str, synced_at: datetime
) -> Normalized:
    """Type the records of one raw file's lines."""
    slices = (lines[i : i + SLICE_ROWS] for i in range(0, len(lines), SLICE_ROWS))
    return _collect(dt, iter_normalized(dt, slices, raw_file, synced_at))


def iter_normalized(
    dt: DataType, slices: Iterable[list[bytes]], raw_file: str, synced_at: datetime
) -> Iterator[Normalized]:
    """Type one raw file's lines a slice at a time (parsed dicts are the memory-hungry
    part, typed Arrow columns are compact); quarantined line numbers count from the
    file's first non-blank line."""
    start = 0
    for chunk in slices:
        with _gc_paused():  # the records hold no cycles: collecting while they pile up is waste
            part = _fast_slice(dt, chunk, raw_file, synced_at) if _FAST_PATH and chunk else None
            if part is None:
                part = _normalize_slice(dt, chunk, raw_file, synced_at)
        if start:
            part.quarantined = [
                Quarantined(q.line + start, q.reason, q.text) for q in part.quarantined
            ]
        start += len(chunk)
        yield part


def _collect(dt: DataType, parts: Iterable[Normalized]) -> Normalized:
    tables, quarantined, drift = [], [], Drift()
    for part in parts:
        tables.append(part.table)
        quarantined += part.quarantined
        drift.update(part.drift)
    if not tables:
        return Normalized(dt.arrow_schema.empty_table(), quarantined, drift)
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


# The fast path -------------------------------------------------------------------------

_NONE = type(None)
_READ_AS_IS = frozenset({pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.list_(pa.string())})
_EXACT_INT = 2**53  # from here on a double may not equal the integer literal it was read from
_NEG_ZERO = -(2**63)  # the bits of -0.0 read as int64
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS  # as registry._digest
_MIN_BLOCK = 1 << 20
_ARROW_MIN_ROWS = 1_000  # below this the JSON reader's setup costs more than it saves


@dataclass(frozen=True)
class _Plan:
    """How the fast path types a data type's columns."""

    declared: frozenset[str]
    # Columns pyarrow's converter takes from the records in one pass, as `_typed_array`
    # would (its per-value checks are for numbers and lists only); timestamps as text.
    convert: tuple[int, ...]
    struct: pa.StructType
    # Arrow's JSON reader schema, for types whose rows need no parsed records at all:
    # top-level scalar or list columns and a documented key.
    schema: pa.Schema | None


@functools.cache
def _plan(dt: DataType) -> _Plan:
    names = [c.name for c in dt.columns]
    tops = Counter(c.path[0] for c in dt.columns)
    top = [not c.json and len(c.path) == 1 and tops[c.path[0]] == 1 for c in dt.columns]
    read = [pa.string() if pa.types.is_timestamp(c.type) else c.type for c in dt.columns]
    convert = tuple(
        i
        for i, c in enumerate(dt.columns)
        if top[i] and (read[i] == pa.string() or read[i] == pa.bool_())
    )
    flat = (
        all(top)
        and all(kind in _READ_AS_IS for kind in read)
        and SIGNED_URL_FIELDS.isdisjoint(c.path[0] for c in dt.columns)
        and bool(dt.key)
        and all(k in names for k in dt.key)
    )
    return _Plan(
        declared=dt.declared_names,
        convert=convert,
        struct=pa.struct([pa.field(dt.columns[i].path[0], read[i]) for i in convert]),
        schema=pa.schema([(c.path[0], kind) for c, kind in zip(dt.columns, read, strict=True)])
        if flat
        else None,
    )


def _fast_slice(
    dt: DataType, lines: list[bytes], raw_file: str, synced_at: datetime
) -> Normalized | None:
    """What `_normalize_slice` returns when every line is a JSON object and every
    record types; None otherwise (or when that cannot be vouched for)."""
    plan = _plan(dt)
    drift = Drift()
    table = _guarded(_arrow_table, dt, plan, lines, raw_file, synced_at)
    path = "arrow"
    if table is None:
        path = "records"
        try:
            records = [orjson.loads(line) for line in lines]
        except orjson.JSONDecodeError:
            records = []
        if records and set(map(type, records)) == {dict}:
            table = _guarded(_records_table, dt, plan, records, raw_file, synced_at, drift)
        del records
    _FAST_COUNTS[path if table is not None else "fallback"] += 1
    return None if table is None else Normalized(table, [], drift)


def _guarded(build: Any, *args: Any) -> pa.Table | None:
    try:
        return build(*args)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None  # a value the fast path refuses (or _Untypable): the row path decides


@contextmanager
def _gc_paused() -> Iterator[None]:
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _records_table(
    dt: DataType,
    plan: _Plan,
    records: list[dict[str, Any]],
    raw_file: str,
    synced_at: datetime,
    drift: Drift,
) -> pa.Table | None:
    """`_build(dt, records, ...)` where it does not raise; None where it would."""
    seen = set().union(*records)  # every field name of the slice
    if not seen.isdisjoint(SIGNED_URL_FIELDS):
        _unsign(records)
    arrays: list[pa.Array | None] = [None] * len(dt.columns)
    try:
        converted = zip(plan.convert, pa.array(records, plan.struct).flatten(), strict=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        converted = zip(())  # e.g. epoch timestamps: typed column by column below
    for i, array in converted:
        kind = dt.columns[i].type
        arrays[i] = _timestamps(array, kind) if pa.types.is_timestamp(kind) else array
    for i, column in enumerate(dt.columns):
        if arrays[i] is not None:
            continue
        if len(column.path) == 1:
            values = list(map(dict.get, records, repeat(column.path[0])))
        else:
            values = [_dig(r, column.path) for r in records]
        arrays[i] = _json_array(column, values) if column.json else _fast_typed(column, values)
    if _cursor_missing(dt, arrays):
        return None
    extras: list[str | None] = [None] * len(records)
    if not seen <= plan.declared:
        declared = plan.declared
        for i, record in enumerate(records):
            if not record.keys() <= declared:
                extra = {k: v for k, v in record.items() if k not in declared}
                extras[i] = _json_text(extra)
                drift.new_fields.update(extra.keys())
    key = _keys(dt, records, arrays) if dt.key else _hash_keys(dt, records)
    return _with_lineage(dt, arrays, key, pa.array(extras, pa.string()), raw_file, synced_at)


def _fast_typed(column: Column, values: list[Any]) -> pa.Array:
    """`_typed_array(column, values)`, skipping its per-value checks where the value
    types make them pass."""
    kind = column.type
    types = set(map(type, values)) - {_NONE}
    if pa.types.is_integer(kind) and types <= {int}:
        return pa.array(values, kind)
    if pa.types.is_floating(kind) and types <= {int, float}:
        return pa.array(values, kind)
    return _typed_array(column, values)


def _json_array(column: Column, values: list[Any]) -> pa.Array:
    """`_typed_array` for a JSON column, without a decode per value."""
    dumps = orjson.dumps
    try:
        texts = [None if v is None else dumps(v) for v in values]
    except TypeError:  # beyond orjson: jsontext's stdlib fallback decides, value by value
        return _typed_array(column, values)
    return pa.array(texts, pa.binary()).cast(pa.string())


def _hash_keys(dt: DataType, records: list[dict[str, Any]]) -> pa.Array:
    """`dt.key_of` for a type keyed by the whole record, hashing inline."""
    dumps, blake2b = orjson.dumps, hashlib.blake2b
    try:
        keys = [
            "h:" + blake2b(dumps(r, option=_SORTED), digest_size=16).hexdigest() for r in records
        ]
    except TypeError:
        keys = [dt.key_of(r) for r in records]
    return pa.array(keys, pa.string())


def _cursor_missing(dt: DataType, arrays: list[pa.Array]) -> bool:
    if not (dt.cursor and dt.date_partitioned):
        return False
    return arrays[[c.name for c in dt.columns].index(dt.cursor)].null_count > 0


def _with_lineage(
    dt: DataType,
    arrays: list[pa.Array],
    key: pa.Array,
    extras: pa.Array,
    raw_file: str,
    synced_at: datetime,
) -> pa.Table:
    n = len(key)
    synced = pa.array([synced_at], pa.timestamp("us", tz="UTC"))[0]
    lineage = [key, extras, pa.repeat(synced, n), pa.repeat(pa.scalar(raw_file, pa.string()), n)]
    return pa.Table.from_arrays(arrays + lineage, schema=dt.arrow_schema)


def _arrow_table(
    dt: DataType, plan: _Plan, lines: list[bytes], raw_file: str, synced_at: datetime
) -> pa.Table | None:
    """The slice typed by Arrow's JSON reader alone, for a type whose plan has a schema;
    None where it might differ from `_build` on orjson's records."""
    if plan.schema is None or len(lines) < _ARROW_MIN_ROWS:
        return None
    # Arrow's reader takes what orjson refuses: bytes that are not UTF-8, a byte order
    # mark before the first line, a line holding more than one value (a row each), and
    # it crashes on a first line that is only `null`. So: every line opens an object,
    # and each gives one row.
    if not all(line[0] == 0x7B for line in lines):  # "{"
        return None
    buf = b"\n".join(lines)
    if not buf.isascii():
        buf.decode()  # UnicodeDecodeError is a ValueError: not for the fast path
    read = pa_json.read_json(
        pa.py_buffer(buf),
        read_options=pa_json.ReadOptions(block_size=max(_MIN_BLOCK, 2 * max(map(len, lines)))),
        parse_options=pa_json.ParseOptions(
            explicit_schema=plan.schema, unexpected_field_behavior="error"
        ),
    )
    if read.num_rows != len(lines):
        return None
    arrays = []
    for column, array in zip(dt.columns, read.columns, strict=True):
        array = _wire_array(column, array.combine_chunks())
        if array is None:
            return None
        arrays.append(array)
    if _cursor_missing(dt, arrays):
        return None
    key = _plain_key(dt, arrays)
    if key is None:
        return None
    return _with_lineage(dt, arrays, key, pa.nulls(len(key), pa.string()), raw_file, synced_at)


def _wire_array(column: Column, array: pa.Array) -> pa.Array | None:
    """A column as Arrow read it, typed as `_typed_array` would type orjson's values;
    None where that is not certain."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        return _timestamps(array, kind)
    if pa.types.is_floating(kind) and array.null_count < len(array):
        # Arrow takes NaN and Infinity; orjson reads an integer literal as int, which
        # _typed_array refuses beyond 2**53 (Arrow rounds it) and types -0 as 0.0.
        if pc.any(pc.is_nan(array)).as_py() or pc.max(pc.abs(array)).as_py() >= _EXACT_INT:
            return None
        if pc.any(pc.equal(array.view(pa.int64()), _NEG_ZERO)).as_py():
            return None
    if pa.types.is_list(kind) and pc.list_flatten(array).null_count:
        return None  # _typed_array refuses null items
    return array


def _timestamps(text: pa.Array, kind: pa.DataType) -> pa.Array:
    """`_typed_array` for a timestamp column whose values are all text or null."""
    try:
        return _in_range(pc.cast(text, kind))
    except pa.ArrowInvalid:
        return pa.array([_timestamp(v) for v in text.to_pylist()], kind)


def _plain_key(dt: DataType, arrays: list[pa.Array]) -> pa.Array | None:
    """`_keys` where it needs no records: key columns of non-empty strings."""
    names = [c.name for c in dt.columns]
    if any(dt.columns[names.index(k)].source is not None for k in dt.key):
        return None
    parts = [arrays[names.index(k)] for k in dt.key]
    for part in parts:
        if not pa.types.is_string(part.type) or part.null_count:
            return None
        if pc.any(pc.equal(part, "")).as_py():
            return None
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "|")
