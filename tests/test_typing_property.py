"""Property: whatever values the declared fields hold, every line is a row or (only when
it cannot be keyed, is not a JSON object, or lacks its cursor) quarantined, and
nothing raises. Real files, real DuckDB."""

from __future__ import annotations

import json
import math

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hs_sync import jsontext, registry
from hs_sync.load import typing_sql
from hs_sync.load.lines import RawFile
from hs_sync.warehouse import Warehouse
from tests.warehouse_helpers import EXP, land

TRICKY_TEXT = [
    "",
    "NaN",
    "Infinity",
    "-0",
    "2024-05-01T10:00:00.000Z",
    "2024-05-01",
    "0000-01-01T00:00:00Z",
    "שלום עולם",  # right to left
    "a\u2028b\u2029c",  # line and paragraph separators
    "zero\u200bwidth\ufeff",
    "cafe\u0301",  # decomposed accent
    "\x00\x01\x1f",
    '"quoted" \\ back',
    "?sig=abc&expires=1",
]
HUGE = [2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64 + 1, -(2**63), -(2**63) - 1, 10**30]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(HUGE),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, -0.0, 5570.5, 1e300, 1e-300]),
    st.text(max_size=20),
    st.sampled_from(TRICKY_TEXT),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=5), inner, max_size=3),
    ),
    max_leaves=6,
)
TIMES = st.sampled_from(
    ["2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00+02:00", "2024-05-01T10:00:00.123456789Z"]
)
GARBAGE = [b"{not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe\xfd", b'{"a":1}{"b":2}']


def _set(record: dict, path: tuple[str, ...], value) -> None:
    for part in path[:-1]:
        nxt = record.get(part)
        if not isinstance(nxt, dict):
            nxt = record[part] = {}
        record = nxt
    record[path[-1]] = value


@st.composite
def records(draw, dt: registry.DataType):
    record: dict = {}
    for column in dt.columns:
        if draw(st.booleans()):
            _set(record, column.path, draw(values))
    if dt.cursor and draw(st.booleans()):
        record[dt.cursor] = draw(TIMES)
    for k in dt.key:
        if draw(st.integers(0, 3)):  # mostly a usable key
            record[k] = draw(st.one_of(st.text(min_size=1, max_size=8), st.integers(0, 10**6)))
    if draw(st.booleans()):
        record[draw(st.text(min_size=1, max_size=6))] = draw(values)
    return record


def _keyable(dt: registry.DataType, record: dict) -> bool:
    return dt.row_key(EXP, record) is not None


def _json_equal(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, (int, float)):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@pytest.mark.parametrize("dt", registry.DATA_TYPES, ids=lambda dt: dt.name)
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_line_is_a_row_or_an_unkeyable_quarantined_line(tmp_path_factory, dt, data):
    recs = data.draw(st.lists(records(dt), min_size=1, max_size=20))
    garbage = data.draw(st.lists(st.sampled_from(GARBAGE), max_size=2))
    texts = [jsontext.dumps(r) for r in recs] + garbage
    wh = Warehouse(tmp_path_factory.mktemp("prop")).create()
    path = land(wh, dt.name, texts)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        name = path.relative_to(wh.root).as_posix()
        typing_sql.type_files(con, dt, [RawFile(path, name, EXP, path.stat().st_size)])
        rows = con.sql("SELECT * FROM __stage ORDER BY __seq").fetchall()
        columns = [d[0] for d in con.sql("SELECT * FROM __stage LIMIT 0").description]
        typed = typing_sql.per_file(con).get(0, typing_sql.TypedFile())
        typing_sql.drift(con)
    finally:
        con.close()
    # rows in = rows out + quarantined
    assert len(rows) + len(typed.quarantined) == len(texts)
    assert typed.rows == len(rows)
    by_line = {q.line: q.reason for q in typed.quarantined}
    for line in range(len(recs) + 1, len(texts) + 1):  # the garbage lines
        assert by_line[line].startswith(("not JSON", "not a JSON object", "not UTF-8"))
    kept = iter(rows)
    for line, record in enumerate(recs, 1):
        reason = by_line.get(line)
        if not _keyable(dt, record):
            assert reason and reason.startswith("no key"), (record, reason)
            continue
        if reason is not None:  # only the date partition's cursor may keep a keyed line out
            assert dt.date_partitioned and reason.startswith(dt.cursor), (record, reason)
            continue
        row = dict(zip(columns, next(kept), strict=True))
        assert row["_key"] == dt.row_key(EXP, record)
        extra = json.loads(row["_extra"]) if row["_extra"] is not None else {}
        for column in dt.columns:
            original = record
            for part in column.path:
                original = original.get(part) if isinstance(original, dict) else None
            if original is not None and row[column.name] is None:
                # did not convert: kept whole in _extra under the field's name
                assert _json_equal(extra[column.source or column.name], original), column.name
