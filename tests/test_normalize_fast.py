"""The fast path of normalize gives exactly what the code it skips gives, for any input."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import orjson
import pyarrow as pa
import pytest

from hs_simulator import Simulator
from hs_simulator.dataset import Dataset
from hs_sync import registry
from hs_sync.load import normalize
from hs_sync.load.normalize import Normalized, normalize_file, normalize_lines, synced_at_of
from hs_sync.load.transform import raw_files
from hs_sync.registry import BOOL, FLOAT, INT, LIST_STR, STR, TS, Column, DataType, Mode, col
from hs_sync.sync import sync
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import make_config
from tests.warehouse_helpers import event, land

SYNCED = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
RAW = "raw/x/experiment_id=e/b/00000.ndjson"
# Types typed by Arrow's JSON reader alone when clean; the others parse records.
ARROW_ONLY = {"chat", "participants", "rooms", "deployments", "experiments"}


def assert_same(fast: Normalized, slow: Normalized) -> None:
    assert fast.table.schema == slow.table.schema
    assert fast.table.equals(slow.table)
    for name in fast.table.column_names:  # equals() takes -0.0 for 0.0: compare the bits
        if pa.types.is_floating(fast.table.schema.field(name).type):
            a = fast.table.column(name).combine_chunks()
            b = slow.table.column(name).combine_chunks()
            assert a.is_valid().equals(b.is_valid())
            bits = [
                a.view(pa.int64()).filter(a.is_valid()),
                b.view(pa.int64()).filter(b.is_valid()),
            ]
            assert bits[0].equals(bits[1]), name
    assert fast.quarantined == slow.quarantined
    assert fast.drift.as_dict() == slow.drift.as_dict()


def both_ways(monkeypatch, typed) -> Normalized:
    """`typed()` with the fast path on, then off; asserts both give the same."""
    fast = typed()
    monkeypatch.setattr(normalize, "_FAST_PATH", False)
    slow = typed()
    monkeypatch.setattr(normalize, "_FAST_PATH", True)
    assert_same(fast, slow)
    return fast


@pytest.fixture
def short_slices_to_arrow(monkeypatch):
    """Arrow's reader for slices of any length, in blocks of a few lines (its thresholds
    are tuning, not behaviour: short inputs then cover every path and block edge)."""
    monkeypatch.setattr(normalize, "_ARROW_MIN_ROWS", 1)
    monkeypatch.setattr(normalize, "_MIN_BLOCK", 2_048)


@pytest.fixture
def counts():
    normalize._FAST_COUNTS.clear()
    yield normalize._FAST_COUNTS
    normalize._FAST_COUNTS.clear()


# -- (a) what the simulator serves ---------------------------------------------------------


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """A warehouse synced from a small simulator (landed raw files, untransformed too)."""
    wh = Warehouse(tmp_path_factory.mktemp("fast") / "wh")
    with Simulator(seed=2, scale=0.3) as sim:
        sync(make_config(sim, wh.root, media=False))
    return wh


@pytest.mark.parametrize("dt", registry.DATA_TYPES, ids=lambda dt: dt.name)
def test_landed_simulator_files_type_the_same_and_take_the_fast_path(
    landed, dt, monkeypatch, counts
):
    files = raw_files(landed, dt)
    assert files, f"nothing landed for {dt.name}"
    for raw in files:
        out = both_ways(
            monkeypatch,
            lambda raw=raw: normalize_file(dt, raw.path, raw.name, synced_at_of(raw.path)),
        )
        assert out.quarantined == [] and out.table.num_rows > 0
    assert counts["fallback"] == 0 and counts["records"] + counts["arrow"] > 0


@pytest.mark.parametrize("dt", registry.DATA_TYPES, ids=lambda dt: dt.name)
def test_simulator_records_in_big_files_type_the_same(tmp_path, dt, monkeypatch, counts):
    """Files long enough for Arrow's reader and for several slices, with the API's records
    as served (signed URLs included) repeated to 12,000 lines."""
    records = Dataset(seed=4, scale=0.3).records(dt.path)
    lines = [orjson.dumps(r) for r in records]
    lines = (lines * (12_000 // len(lines) + 1))[:12_000]
    wh = Warehouse(tmp_path).create()
    path = land(wh, dt.name, lines)
    out = both_ways(monkeypatch, lambda: normalize_file(dt, path, "r", SYNCED))
    assert out.table.num_rows == 12_000 and out.quarantined == []
    expected = "arrow" if dt.name in ARROW_ONLY else "records"
    slices = -(-12_000 // normalize.SLICE_ROWS)  # several slices
    assert slices > 2 and counts == Counter({expected: slices}), counts
    if dt.name == "recordings":
        urls = [u for u in out.table.column("downloadUrl").to_pylist() if u]
        assert urls and not any("?" in u for u in urls)


def test_keys_hashed_inline_equal_the_registry():
    dt = registry.get("eyetracking")
    records = Dataset(seed=4, scale=0.3).records(dt.path)[:500]
    records.append({"x": 2**70, "nested": [[[]]]})  # beyond orjson: key_of decides
    keys = normalize._hash_keys(dt, records).to_pylist()
    assert keys == [dt.key_of(r) for r in records]


# -- (b) hostile input -----------------------------------------------------------------------

# A type Arrow's reader types alone, with a column of every kind it reads.
FLAT = DataType(
    name="flat",
    path="flat",
    mode=Mode.TIME,
    api_scope=None,
    key=("id",),
    date_partitioned=True,
    columns=(col("id", STR), col("n", INT), col("v", FLOAT), col("ok", BOOL),
             col("tags", LIST_STR), col("timestamp", TS), col("note", STR)),
)  # fmt: skip
BASES = {
    "flat": {"id": "a", "n": 1, "v": 0.5, "ok": True, "tags": ["x"],
             "timestamp": "2024-05-01T10:00:00.000Z", "note": "n"},
    "chat": {"messageId": "m", "experimentId": "e", "roomId": "r", "senderId": "s",
             "content": "hi", "timestamp": "2024-05-01T10:00:00.000Z",
             "recipientIds": ["a", "b"], "senderRole": "host", "stateId": "st"},
    "ratings_continuous": {"experimentId": "e", "roomId": "r", "participantId": "p",
                           "componentId": "c", "timestamp": "2024-05-01T10:00:00.000Z",
                           "onset": 5, "value": 50.5},
    "events": event(1),
    "recordings": Dataset(seed=4, scale=0.3).records("recordings")[0],
}  # fmt: skip
DEEP = b"[" * 600 + b"]" * 600  # orjson reads it but writes 254 levels at most

# Whole lines; {R} is a clean record of the type.
LINES = [b"{not json", b"{R", b"}", b"nul", b"{'a':1}", b'{"a":1,}', b"null", b"[]", b"5",
         b'"text"', b"true", b"NaN", b"\xef\xbb\xbf{R}", b"{R}{R}", b"{R} {R}", b"{R} null",
         b"{R}\r{R}", b"{R}\x00", b"{R}x", b" {R}\r", b"\t{R} ", b"{}", b'{"x":' + DEEP + b"}",
         b'{"\\u0075rl":"a?b"}', b'{"":1}']  # fmt: skip
# Value texts put in place of each field's value.
VALUES = [b"null", b"true", b"false", b"0", b"-0", b"-0.0", b"2", b"1.0", b"1.5", b"1e2",
          b"9007199254740992", b"9007199254740993", b"9223372036854775807",
          b"9223372036854775808", b"-9223372036854775809", b"123456789012345678901234567890",
          b"1e400", b"1e-400", b"NaN", b"Infinity", b"-Infinity", b"01", b'""', b'"x"',
          b'"\xff"', b'"\xed\xa0\x80"', b'"\\ud800"', b'"\\u0000"', b'"a\tb"',
          b'"\\ud83d\\ude00 caf\xc3\xa9 \\/ \\t"', b'"https://m/x?sig=1#f"', b'"a#b?c"',
          b'"2024-05-01T10:00:00"', b'"2024-05-01T10:00:00.123456789Z"', b'"yesterday"',
          b'"0001-01-01T00:00:00+01:00"', b"1714557600000", b"[]", b'["a"]', b'["a",null]',
          b"[1]", b'[["a"]]', b'"ab"', b"{}", b'{"min":1,"type":null}', DEEP]  # fmt: skip


def spliced(base: dict, name: str, raw: bytes) -> bytes:
    """A clean record with `raw` as the text of field `name`."""
    return orjson.dumps({**base, name: "\x01"}).replace(b'"\\u0001"', raw)


def hostile(dt: DataType) -> list[bytes]:
    base = BASES[dt.name]
    record = orjson.dumps(base)
    out = [line.replace(b"{R}", record) for line in LINES]
    for name in sorted(dt.declared_names | {"x", "url"}):
        out += [spliced(base, name, raw) for raw in VALUES]
    out.append(record[:-1] + b',"' + sorted(base)[0].encode() + b'":"again"}')  # said twice
    return out


@pytest.mark.parametrize("type_name", list(BASES))
def test_hostile_lines_among_clean_ones_type_the_same(
    type_name, monkeypatch, short_slices_to_arrow, counts
):
    dt = FLAT if type_name == "flat" else registry.get(type_name)
    base = BASES[type_name]
    clean = [orjson.dumps({**base, "onset": i} if "onset" in base else base) for i in range(30)]
    for i, line in enumerate(hostile(dt)):
        at = (0, 15, 30)[i % 3]  # first line, middle, last; blocks hold a few lines
        lines = clean[:at] + [line] + clean[at:]
        both_ways(monkeypatch, lambda lines=lines: normalize_lines(dt, lines, RAW, SYNCED))
    # values that type are typed by the fast path, not only handed on
    assert counts["arrow" if type_name in ("flat", "chat") else "records"] > 25, counts


@pytest.mark.parametrize(
    "columns, record",
    [
        ((col("id", STR), col("url", STR)), {"id": "a", "url": "https://m/x?sig=1"}),
        ((col("id", STR, "ident"), col("n", INT)), {"ident": "a", "id": "b", "n": 1}),
        ((col("id", STR, "ident"), col("n", INT)), {"ident": "a", "n": 1}),
    ],
    ids=["signed url column", "key read elsewhere", "key missing"],
)
def test_flat_types_whose_rows_need_the_records(
    columns, record, monkeypatch, short_slices_to_arrow, counts
):
    dt = DataType(name="t", path="t", mode=Mode.MERGE, api_scope=None, key=("id",),
                  cursor=None, columns=columns)  # fmt: skip
    lines = [orjson.dumps(record)] * 40
    out = both_ways(monkeypatch, lambda: normalize_lines(dt, lines, RAW, SYNCED))
    assert out.table.num_rows == 40 and counts["arrow"] == 0


def test_a_first_line_that_is_only_null_never_reaches_arrow(monkeypatch):
    dt = registry.get("chat")
    lines = [b"null"] + [orjson.dumps(BASES["chat"])] * 1_500
    out = both_ways(monkeypatch, lambda: normalize_lines(dt, lines, RAW, SYNCED))
    assert [q.line for q in out.quarantined] == [1]


def test_two_objects_on_a_line_are_not_taken_for_two_rows(monkeypatch):
    dt = registry.get("chat")
    # Arrow reads a byte order mark line as no row and `{}{}` as two: the counts agree.
    lines = [b"\xef\xbb\xbf", b"{}{}"] + [orjson.dumps(BASES["chat"])] * 1_500
    out = both_ways(monkeypatch, lambda: normalize_lines(dt, lines, RAW, SYNCED))
    assert [q.line for q in out.quarantined] == [1, 2]


def test_missing_cursor_of_a_date_partitioned_type(monkeypatch):
    for dt, base in (
        (registry.get("chat"), BASES["chat"]),
        (registry.get("ratings_continuous"), BASES["ratings_continuous"]),
    ):
        lines = [orjson.dumps(base)] * 1_200 + [orjson.dumps({**base, "timestamp": None})]
        out = both_ways(
            monkeypatch, lambda dt=dt, lines=lines: normalize_lines(dt, lines, RAW, SYNCED)
        )
        assert out.table.num_rows == 1_200 and "timestamp" in out.quarantined[0].reason


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_files_with_blank_lines_and_crlf(tmp_path, monkeypatch, compression):
    wh = Warehouse(tmp_path).create()
    for name, base in (
        ("chat", BASES["chat"]),
        ("ratings_continuous", BASES["ratings_continuous"]),
    ):
        dt = registry.get(name)
        lines = [orjson.dumps(base) + b"\r"] * 1_100 + [b"", b"   ", b"\t\r"] + [b"{bad"]
        lines += [orjson.dumps({**base, "extra": 1})] * 10
        path = land(wh, name, lines, compression=compression)
        out = both_ways(monkeypatch, lambda dt=dt, path=path: normalize_file(dt, path, "r", SYNCED))
        assert out.table.num_rows == 1_110 and [q.line for q in out.quarantined] == [1_101]
        assert out.drift.as_dict()["new_fields"] == {"extra": 10}


def test_unknown_fields_and_type_changes_are_drift_either_way(monkeypatch, counts):
    dt = registry.get("chat")
    lines = [orjson.dumps({**BASES["chat"], "messageId": f"m{i}"}) for i in range(2_000)]
    lines[10] = orjson.dumps({**BASES["chat"], "reactions": ["+1"]})
    out = both_ways(monkeypatch, lambda: normalize_lines(dt, lines, RAW, SYNCED))
    assert out.drift.as_dict()["new_fields"] == {"reactions": 1}
    lines[11] = orjson.dumps({**BASES["chat"], "recipientIds": "all"})
    out = both_ways(monkeypatch, lambda: normalize_lines(dt, lines, RAW, SYNCED))
    assert out.quarantined[0].line == 12
    assert out.drift.as_dict()["type_changes"][0]["seen"] == "string"


# -- (c) a key said twice in one object ------------------------------------------------------

# A value of each declared type other than the one a record holds: what a row would get
# if the first of two values were kept.
FIRST = {STR: "first", TS: "2001-02-03T04:05:06.789Z", INT: 7, FLOAT: 7.5, LIST_STR: ["first"]}


def said_twice(obj: dict, path: tuple[str, ...], first: Any) -> bytes:
    """`obj` as one JSON line in which the key at `path` is said twice: `first`, then
    the value `obj` holds there."""
    name = path[0]
    if len(path) > 1:
        inner = said_twice(obj[name], path[1:], first)
        return orjson.dumps({**obj, name: "\x01"}).replace(b'"\\u0001"', inner)
    head = orjson.dumps({**obj, name: first})[:-1]
    return head + b"," + orjson.dumps(name) + b":" + orjson.dumps(obj[name]) + b"}"


def first_value(column: Column, last: Any) -> Any:
    if column.json:
        return {"first": [1]}
    if column.type == BOOL:
        return not last if type(last) is bool else True
    return FIRST[column.type]


def keys_said_twice(dt: DataType, records: list[dict]) -> list[tuple[dict, bytes]]:
    """(the record the last values make, its line with one key said twice): each declared
    column, inside each nested JSON column, an unknown field and inside an unknown field."""
    places: list[tuple[dict, tuple[str, ...], Any]] = []
    for i, column in enumerate(dt.columns):
        record = dict(records[i % len(records)])
        name = column.path[0]
        if len(column.path) == 2:  # a field read out of a nested object
            inner = record.get(name) if type(record.get(name)) is dict else {}
            record[name] = {**inner, column.path[1]: inner.get(column.path[1])}
        else:
            record[name] = record.get(name)  # absent: said twice, first a value, then null
        last = _dig(record, column.path)
        places.append((record, column.path, first_value(column, last)))
        if column.json:
            inner = record.get(name) if type(record.get(name)) is dict else {}
            places.append(({**record, name: {**inner, "said": "kept"}}, (name, "said"), "first"))
    record = records[-1]
    places.append(({**record, "extraField": "kept"}, ("extraField",), 1))
    nested = {"said": "kept", "other": 1}
    places.append(({**record, "extraNested": nested}, ("extraNested", "said"), "first"))
    return [(obj, said_twice(obj, path, first)) for obj, path, first in places]


def _dig(record: dict, path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        value = value.get(part) if type(value) is dict else None
    return value


@pytest.mark.parametrize("dt", registry.DATA_TYPES, ids=lambda dt: dt.name)
def test_a_key_said_twice_keeps_its_last_value_either_way(
    dt, monkeypatch, short_slices_to_arrow, counts
):
    records = Dataset(seed=4, scale=0.3).records(dt.path)[:30]
    clean = [orjson.dumps(r) for r in records]
    for i, (record, line) in enumerate(keys_said_twice(dt, records)):
        # the premise: both JSON parsers keep the last value
        assert orjson.loads(line) == json.loads(line) == record
        at = (0, 15, 30)[i % 3]
        said = both_ways(
            monkeypatch,
            lambda line=line, at=at: normalize_lines(
                dt, clean[:at] + [line] + clean[at:], RAW, SYNCED
            ),
        )
        meant = normalize_lines(dt, clean[:at] + [orjson.dumps(record)] + clean[at:], RAW, SYNCED)
        assert_same(said, meant)
        assert said.quarantined == []
    assert counts["fallback"] == 0, counts  # typed by the fast path, not only handed on


def test_randomly_damaged_lines_type_the_same(monkeypatch):
    """Bytes flipped, dropped and inserted at random in clean records of every type."""
    rng = random.Random(7)
    junk = [b"{", b"}", b"[", b"]", b'"', b"\\", b",", b":", b" ", b"\r", b"\x00", b"\xff",
            b"null", b"NaN", b"-0", b"1e999", b"\\u", b"\xef\xbb\xbf", b"}{"]  # fmt: skip
    data = Dataset(seed=4, scale=0.3)
    for dt in registry.DATA_TYPES:
        clean = [orjson.dumps(r) for r in data.records(dt.path)]
        clean = (clean * (1_200 // len(clean) + 1))[:1_200]
        for _ in range(4):
            lines = list(clean)
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(lines))
                line = bytearray(lines[i])
                at = rng.randrange(len(line) + 1)
                if rng.random() < 0.5:
                    line[at:at] = rng.choice(junk)
                else:
                    del line[at : at + rng.randint(1, 5)]
                lines[i] = bytes(line)
            lines = [line for line in lines if line.strip()]
            both_ways(
                monkeypatch, lambda dt=dt, lines=lines: normalize_lines(dt, lines, RAW, SYNCED)
            )
