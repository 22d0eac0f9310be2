"""The one typing path: a SQL statement per data type, generated from the registry.

It reads the raw lines of a type's new files (`__lines`: `hs_sync/load/lines.py`)
and, in one statement, parses each line as JSON, types
every declared column, builds `_key`, `_extra` and the lineage columns, and
gives each line that cannot become a row its reason. The result is `__typed`: one row per line, `__reason` NULL for rows
(a quarantined line keeps its bytes in `__raw`).

The typing policy (docs/typing.md):
- a record is never dropped because a declared field has another JSON type;
- lossless conversions apply: a number, boolean into a text column is its JSON
  text (58 -> '58'); an integral number into an integer column; an integer up to
  2^53 into a DOUBLE column; a string that is exactly a JSON number ("1620") into
  a numeric column by the same rules; epoch milliseconds into a timestamp column;
- a value that cannot convert is NULL in its column, kept in `_extra` under the
  field's (dotted) name and counted as drift (`__bad`);
- only lines that cannot become a row get a reason: not UTF-8, not JSON, not a
  JSON object, no key (a key field missing, null, empty or not a string or an
  integer), a missing or unreadable cursor of a date-partitioned type.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from hs_sync.db import quote, sql
from hs_sync.load import lines
from hs_sync.load.lines import RawFile
from hs_sync.registry import Column, DataType

# Signed media URLs are credentials: below raw they are kept without their query.
SIGNED_URL_FIELDS = frozenset({"downloadUrl", "url", "signedUrl"})
# Bump when `_key` is built differently: stored rows are then rebuilt from raw.
KEY_SCHEME = "2"

_EXACT_INT = 2**53  # an integral DOUBLE below this is an exact integer
_JSON_TYPE_NAMES = (
    "CASE {t} WHEN 'VARCHAR' THEN 'string' WHEN 'BIGINT' THEN 'integer' "
    "WHEN 'UBIGINT' THEN 'integer' WHEN 'DOUBLE' THEN 'number' WHEN 'BOOLEAN' THEN 'boolean' "
    "WHEN 'OBJECT' THEN 'object' WHEN 'ARRAY' THEN 'array' ELSE lower({t}) END"
)
_NUMBERS = "('BIGINT', 'UBIGINT', 'DOUBLE')"
# the text of a JSON number: a number sent as a string converts when it is exactly one
_JSON_NUMBER = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"


@dataclass
class Quarantined:
    """One raw line that cannot become a row, and why."""

    line: int  # 1-based line number in the raw file
    reason: str
    text: str  # the raw line as it was landed


@dataclass
class Drift:
    """Schema drift seen in raw records: unknown fields and values that did not convert."""

    new_fields: Counter = field(default_factory=Counter)  # field -> rows carrying it
    type_changes: Counter = field(default_factory=Counter)  # (field, declared, seen) -> rows

    def update(self, other: Drift) -> None:
        self.new_fields.update(other.new_fields)
        self.type_changes.update(other.type_changes)

    def __bool__(self) -> bool:
        return bool(self.new_fields or self.type_changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "new_fields": dict(sorted(self.new_fields.items())),
            "type_changes": [
                {"field": f, "declared": d, "seen": s, "rows": n}
                for (f, d, s), n in sorted(self.type_changes.items())
            ],
        }


def _literal(text: str) -> str:
    """A SQL string literal for a registry-derived text (never an API value)."""
    return "'" + text.replace("'", "''") + "'"


def _json_path(path: tuple[str, ...]) -> str:
    return _literal("$" + "".join("." + '"' + p.replace('"', '\\"') + '"' for p in path))


def declared_type(column: Column) -> str:
    """The declared type as drift reports it."""
    return "json" if column.json else str(column.type)


def _number_text(v: str, t: str) -> str:
    """SQL: the JSON text of a number, or of a string whose text is exactly a JSON number
    (`"1620"`, a number sent as text); NULL for anything else."""
    text = f"json_extract_string({v}, '$')"
    return (
        f"CASE WHEN {t} IN {_NUMBERS} THEN {v}::VARCHAR "
        f"WHEN {t} = 'VARCHAR' AND regexp_full_match({text}, {_literal(_JSON_NUMBER)}) "
        f"THEN {text} END"
    )


def _numeric(kind: pa.DataType, n: str) -> str:
    """SQL typing the number text `n` as an integer or floating column; NULL where it
    cannot convert losslessly."""
    integral = f"regexp_full_match({n}, '-?[0-9]+')"
    if pa.types.is_integer(kind):
        # an integer in range; a number with no fraction that a DOUBLE holds exactly
        d = f"TRY_CAST({n} AS DOUBLE)"
        return (
            f"CASE WHEN {integral} THEN TRY_CAST({n} AS BIGINT) "
            f"ELSE TRY(CASE WHEN isfinite({d}) AND {d} = trunc({d}) "
            f"AND abs({d}) < {_EXACT_INT} THEN {d}::BIGINT END) END"
        )
    # an integer literal converts only when the DOUBLE holds it exactly; a number
    # beyond a double's range ("1e400") never (only NaN and Infinity literals are not finite)
    lossy = (
        f"(({integral} AND NOT coalesce(TRY_CAST({n} AS HUGEINT) "
        f"= TRY_CAST(TRY_CAST({n} AS DOUBLE) AS HUGEINT), false)) "
        f"OR (regexp_full_match({n}, {_literal(_JSON_NUMBER)}) "
        f"AND NOT coalesce(isfinite(TRY_CAST({n} AS DOUBLE)), false)))"
    )
    return f"CASE WHEN NOT {lossy} THEN TRY_CAST({n} AS DOUBLE) END"


def _typed(column: Column, v: str, t: str) -> str:
    """SQL typing the JSON value `v` (JSON type `t`) as the column's type; NULL where
    it cannot convert."""
    kind = column.type
    if column.json:
        return f"CASE WHEN {t} <> 'NULL' THEN {v} END"
    if pa.types.is_string(kind):
        text = (
            f"CASE WHEN {t} = 'VARCHAR' THEN json_extract_string({v}, '$') "
            f"WHEN {t} IN {_NUMBERS} OR {t} = 'BOOLEAN' THEN {v}::VARCHAR END"
        )
        if column.path[-1] in SIGNED_URL_FIELDS:
            text = f"split_part(split_part({text}, '?', 1), '#', 1)"
        return text
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return _numeric(kind, _number_text(v, t))
    if pa.types.is_boolean(kind):
        return f"CASE WHEN {t} = 'BOOLEAN' THEN {v}::BOOLEAN END"
    if pa.types.is_timestamp(kind):
        # the range check (years 1 to 9999, UTC) follows in `typing_sql`
        return (
            f"CASE WHEN {t} = 'VARCHAR' THEN TRY_CAST(json_extract_string({v}, '$') AS TIMESTAMPTZ) "
            f"WHEN {t} IN {_NUMBERS} THEN "
            f"TRY(make_timestamp(CAST(round(TRY_CAST({v}::VARCHAR AS DOUBLE) * 1000) AS BIGINT))"
            f"::TIMESTAMPTZ) END"
        )
    if pa.types.is_list(kind) and pa.types.is_string(kind.value_type):
        return (
            f"CASE WHEN {t} = 'ARRAY' AND list_bool_and(list_transform("
            f"json_extract({v}, '$[*]'), lambda x: json_type(x) = 'VARCHAR')) IS NOT false "
            f"THEN json_extract_string({v}, '$[*]') END"
        )
    raise TypeError(f"no typing rule for {kind}")


def _value_type(v: str) -> str:
    """SQL: `json_type` of an extracted JSON value, told by its first character where that
    is enough (extracted values are minified): a number still asks `json_type`, which
    says whether it is an integer."""
    return (
        f"CASE left({v}::VARCHAR, 1) WHEN '\"' THEN 'VARCHAR' WHEN '{{' THEN 'OBJECT' "
        f"WHEN '[' THEN 'ARRAY' WHEN 't' THEN 'BOOLEAN' WHEN 'f' THEN 'BOOLEAN' "
        f"WHEN 'n' THEN 'NULL' ELSE json_type({v}) END"
    )


def _key_part(v: str, t: str) -> str:
    return (
        f"CASE WHEN {t} = 'VARCHAR' THEN nullif(json_extract_string({v}, '$'), '') "
        f"WHEN {t} IN ('BIGINT', 'UBIGINT') THEN {v}::VARCHAR END"
    )


@functools.cache
def typing_sql(dt: DataType) -> str:
    """The query typing `__lines` for one type: a row per line."""
    cols = dt.columns
    names = [c.name for c in cols]
    # one parse per line: every declared path (then the key fields) extracted at once
    key_at = {k: len(cols) + j for j, k in enumerate(dt.key)}
    paths = [_json_path(c.path) for c in cols] + [_json_path((k,)) for k in dt.key]
    # where each declared top-level field is extracted (a field read only through its
    # nested columns is extracted whole as well)
    top = {c.path[0]: i for i, c in reversed(list(enumerate(cols))) if len(c.path) == 1}
    for name in sorted(dt.declared_names - set(top)):
        top[name] = len(paths)
        paths.append(_json_path((name,)))
    values = ",\n  ".join(f"__vs[{i + 1}] AS __v{i}" for i in range(len(paths)))
    types = ",\n  ".join(f"{_value_type(f'__v{i}')} AS __t{i}" for i in range(len(cols)))
    typed = ",\n  ".join(f"{_typed(c, f'__v{i}', f'__t{i}')} AS __c{i}" for i, c in enumerate(cols))
    bad = [
        f"CASE WHEN __v{i} IS NOT NULL AND __t{i} <> 'NULL' AND __c{i} IS NULL THEN "
        f"{{'f': {_literal(c.source or c.name)}, 'declared': {_literal(declared_type(c))}, "
        f"'seen': {_JSON_TYPE_NAMES.format(t=f'__t{i}')}, 'v': __v{i}}} END"
        for i, c in enumerate(cols)
    ]
    # readers turn years 1 to 9999 (UTC) into datetimes; beyond that a time does not convert
    ranged = ", ".join(
        f"CASE WHEN __c{i} >= TIMESTAMPTZ '0001-01-01 00:00:00+00' "
        f"AND __c{i} < TIMESTAMPTZ '10000-01-01 00:00:00+00' THEN __c{i} END AS __c{i}"
        for i, c in enumerate(cols)
        if pa.types.is_timestamp(c.type)
    )
    ranged = (
        sql("SELECT * REPLACE ({r}) FROM converted", r=ranged)
        if ranged
        else "SELECT * FROM converted"
    )
    # the list is built only for the rare row with a value that did not convert
    failed = " OR ".join(
        f"(__v{i} IS NOT NULL AND __t{i} <> 'NULL' AND __c{i} IS NULL)" for i in range(len(cols))
    )
    bad_list = (
        f"CASE WHEN {failed} THEN list_filter([{', '.join(bad)}], lambda b: b IS NOT NULL) END"
    )
    declared = sorted(dt.declared_names)
    patch = "{" + ",".join(f'"{n}":null' for n in declared) + "}"
    # Key parts: the declared key fields (a string or an integer each).
    if dt.key:
        parts = []
        for k in dt.key:
            parts.append(_key_part(f"__v{key_at[k]}", _value_type(f"__v{key_at[k]}")))
        key_parts = f"[{', '.join(parts)}]"
        key = "array_to_string(__kp, '|')"
        no_key = " OR ".join(f"__kp[{j + 1}] IS NULL" for j in range(len(dt.key)))
    else:
        key_parts = "[]::VARCHAR[]"
        key = "'h:' || md5(__text)"  # the line as landed (registry.DataType.row_key)
        no_key = "false"
    if dt.per_experiment:
        key = f"__exp || '|' || {key}"
    cursor_check = "false"
    if dt.cursor and dt.date_partitioned and dt.cursor in names:
        cursor_check = f"__c{names.index(dt.cursor)} IS NULL"
    out_cols = ",\n  ".join(f"__c{i} AS {quote(n)}" for i, n in enumerate(names))
    return sql(
        """
WITH src AS (
  SELECT __fid, __line, __bytes, __raw_file, __exp, __synced_at,
         TRY(decode(__bytes)) AS __text
  FROM __lines
  WHERE NOT __blank
), parsed AS (
  SELECT *, TRY_CAST(__text AS JSON) AS __j FROM src
), objects AS (
  SELECT *, CASE WHEN __j IS NULL THEN NULL
                 WHEN left(ltrim(__text, {space}), 1) = '{{' THEN 'OBJECT'
                 ELSE json_type(__j) END AS __jt
  FROM parsed
), extracted AS (
  SELECT *,
  {values}
  FROM (SELECT *, json_extract(__j, [{paths}]) AS __vs FROM objects)
), typed AS (
  SELECT *,
  {types}
  FROM extracted
), converted AS (
  SELECT *,
  {typed},
  {key_parts} AS __kp,
  CASE WHEN len(json_keys(__j)) = {present} THEN '{{}}'::JSON
       ELSE json_merge_patch(__j, {patch}) END AS __unknown
  FROM typed
), ranged AS (
  {ranged}
), checked AS (
  SELECT *, {bad_list} AS __bad FROM ranged
), rows AS (
  SELECT __fid, __line, __bytes,
  CASE WHEN __text IS NULL THEN 'not UTF-8 text'
       WHEN __j IS NULL THEN 'not JSON'
       WHEN __jt <> 'OBJECT' THEN 'not a JSON object: ' || lower(__jt)
       WHEN {no_key} THEN 'no key: ' || {key_names} || ' missing, empty or not a string'
       WHEN {cursor_check} THEN {cursor_reason}
  END AS __reason,
  {out_cols},
  {key} AS _key,
  CASE WHEN __bad IS NULL AND __unknown::VARCHAR = '{{}}' THEN NULL
       WHEN __bad IS NULL THEN __unknown
       ELSE coalesce(TRY(to_json(map_concat(
           CASE WHEN __unknown::VARCHAR = '{{}}' THEN MAP {{}}::MAP(VARCHAR, JSON)
                ELSE __unknown::MAP(VARCHAR, JSON) END,
           map_from_entries(list_transform(__bad, lambda b: {{'k': b.f, 'v': b.v}}))))), __unknown)
  END AS _extra,
  __synced_at AS _synced_at,
  __raw_file AS _raw_file,
  __exp,
  __fid * 4294967296 + __line AS __seq,
  list_transform(__bad, lambda b: {{'f': b.f, 'declared': b.declared, 'seen': b.seen}}) AS __bad,
  CASE WHEN __unknown::VARCHAR <> '{{}}' THEN json_keys(__unknown) END AS __new
  FROM checked
)
SELECT * EXCLUDE (__bytes), CASE WHEN __reason IS NOT NULL THEN __bytes END AS __raw FROM rows
""",
        values=values,
        space="' ' || chr(9) || chr(10) || chr(13)",  # JSON's whitespace
        paths=", ".join(paths),
        types=types,
        typed=typed,
        key_parts=key_parts,
        patch=_literal(patch),
        # as many keys as declared fields present: no other field (the common case)
        present=" + ".join(f"(__v{i} IS NOT NULL)::INTEGER" for i in sorted(top.values())),
        bad_list=bad_list,
        ranged=ranged,
        no_key=no_key,
        key_names=_literal(", ".join(dt.key)),
        cursor_check=cursor_check,
        cursor_reason=_literal(
            f"{dt.cursor}: missing or unreadable (needed for the date partition)"
        ),
        out_cols=out_cols,
        key=key,
    )


@dataclass
class TypedFile:
    rows: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)


def type_files(
    con: duckdb.DuckDBPyConnection, dt: DataType, files: Sequence[RawFile]
) -> tuple[dict[int, RawFile], list[tuple[RawFile, str]]]:
    """Fill `__typed` (every line, quarantined ones with their bytes) and `__stage` (the
    rows) from the raw files in one statement over their lines (`lines.Lines`);
    returns (file id -> file, for the files read; [(file, reason)] for those that do not
    read, which add no lines)."""
    stream = lines.Lines(files)
    con.register("__lines", stream.reader())
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE __typed AS " + typing_sql(dt))
    finally:
        con.unregister("__lines")
    if not stream.finished:  # every file must have been read, or one would be recorded unread
        raise RuntimeError(f"{dt.name}: DuckDB stopped reading the raw lines before their end")
    # JSON columns as text, as Parquet stores them
    columns = ", ".join(
        quote(c.name) + ("::VARCHAR AS " + quote(c.name) if c.json else "") for c in dt.columns
    )
    con.execute(
        sql(
            "CREATE OR REPLACE TEMP VIEW __stage AS SELECT {c}, _key, _extra::VARCHAR AS _extra, "
            "_synced_at, "
            "_raw_file, __exp, __seq FROM __typed WHERE __reason IS NULL",
            c=columns,
        )
    )
    return stream.loaded, stream.damaged


def per_file(con: duckdb.DuckDBPyConnection) -> dict[int, TypedFile]:
    """Rows and quarantined lines (with their text) of each file in `__typed`."""
    out: dict[int, TypedFile] = {}
    for fid, rows in con.execute(
        "SELECT __fid, count(*) FROM __typed WHERE __reason IS NULL GROUP BY __fid"
    ).fetchall():
        out.setdefault(fid, TypedFile()).rows = rows
    found = con.execute(
        "SELECT __fid, __line, __reason, __raw FROM __typed WHERE __reason IS NOT NULL "
        "ORDER BY __fid, __line"
    ).fetchall()
    for fid, line, reason, text in found:
        text = bytes(text).decode("utf-8", "replace")
        out.setdefault(fid, TypedFile()).quarantined.append(Quarantined(line, reason, text))
    return out


def drift(con: duckdb.DuckDBPyConnection) -> Drift:
    """Unknown fields and values that did not convert, over the rows of `__typed`."""
    seen = Drift()
    for name, rows in con.execute(
        "SELECT f, count(*) FROM (SELECT unnest(__new) AS f FROM __typed "
        "WHERE __reason IS NULL AND __new IS NOT NULL) GROUP BY f"
    ).fetchall():
        seen.new_fields[name] = rows
    for fld, declared, kind, rows in con.execute(
        "SELECT b.f, b.declared, b.seen, count(*) FROM (SELECT unnest(__bad) AS b "
        "FROM __typed WHERE __reason IS NULL AND len(__bad) > 0) GROUP BY ALL"
    ).fetchall():
        seen.type_changes[(fld, declared, kind)] = rows
    return seen
