"""Every table and view hs-sync publishes, described: what `hs-sync schema` prints and
docs/data-dictionary.md holds.

Built in memory from the registry, the media manifest and sql/, with the data
dictionary's descriptions (hs_sync/dictionary.py), so it needs no warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from hs_sync import registry
from hs_sync.db import quote, sql
from hs_sync.descriptions import Doc
from hs_sync.dictionary import describe, table_description
from hs_sync.load import duck
from hs_sync.media import manifest


@dataclass(frozen=True)
class Relation:
    """A table or view of the published database, with its columns described."""

    name: str
    kind: str  # "table" or "view"
    description: str
    columns: tuple[tuple[str, str, Doc | None], ...]  # (name, DuckDB type, doc)


def catalog() -> list[Relation]:
    """Every table and view hs-sync publishes, built in memory from the registry and sql/.

    Registry types first (in registry order), then hs-sync's own tables, then the views.
    """
    con = duckdb.connect()
    try:
        duck.ensure_tables(con)
        con.register("__media", manifest.arrow_table([]))
        con.execute(sql("CREATE TABLE {t} AS FROM __media", t=quote(manifest.TABLE)))
        con.unregister("__media")
        duck.create_views(con)  # 90_open_issues.sql creates the check tables too
        rows = con.execute(
            "SELECT c.table_name, CASE WHEN v.view_name IS NULL THEN 'table' ELSE 'view' END, "
            "c.column_name, c.data_type FROM duckdb_columns() c "
            "LEFT JOIN duckdb_views() v ON v.view_name = c.table_name AND NOT v.internal "
            "WHERE c.schema_name = 'main' AND NOT c.internal "
            "ORDER BY c.table_name, c.column_index"
        ).fetchall()
    finally:
        con.close()
    grouped: dict[str, tuple[str, list]] = {}
    for table, kind, column, type_ in rows:
        grouped.setdefault(table, (kind, []))[1].append((column, type_, describe(table, column)))
    order = {dt.name: i for i, dt in enumerate(registry.DATA_TYPES)}

    def rank(name: str) -> tuple:
        kind = grouped[name][0]
        return (name not in order, kind == "view", order.get(name, 0), name)

    return [
        Relation(name, grouped[name][0], table_description(name) or "", tuple(grouped[name][1]))
        for name in sorted(grouped, key=rank)
    ]


def markdown(relations: list[Relation]) -> str:
    """docs/data-dictionary.md: every table and view with its columns."""
    lines = [
        "# Data dictionary",
        "",
        "Every table and view of `hyperstudy.duckdb`. Generated from `hs_sync/descriptions.py`",
        "by `hs-sync schema --markdown > docs/data-dictionary.md`; do not edit by hand.",
        "The same text is in the database as column comments (`duckdb_columns().comment`)",
        "and in Dagster as column descriptions. Times are UTC; onsets are milliseconds from",
        "the start of the experiment in the room.",
        "",
    ]
    for kind, title in (("table", "Tables"), ("view", "Views")):
        lines += [f"## {title}", ""]
        for r in (r for r in relations if r.kind == kind):
            lines += [f"### `{r.name}`", "", r.description + ".", ""]
            lines += ["| column | type | unit | description |", "| --- | --- | --- | --- |"]
            for name, type_, doc in r.columns:
                unit = doc.unit if doc and doc.unit else ""
                text = doc.description if doc else ""
                lines.append(f"| `{name}` | {type_} | {unit} | {text.replace('|', '/')} |")
            lines.append("")
    return "\n".join(lines)
