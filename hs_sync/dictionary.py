"""The data dictionary: what each table, view and column of the warehouse holds.

The text is hs_sync/descriptions.py's; a registry entry's own `doc` wins over it.
The registry reads it through `DataType.describe`; the published database carries
it as `COMMENT ON` (`write_comments`), Dagster as column descriptions,
`hs-sync schema` prints it (hs_sync/schema.py) and `docs/data-dictionary.md` is
generated from it.
"""

from __future__ import annotations

import hashlib

import duckdb

from hs_sync import registry
from hs_sync.db import quote
from hs_sync.descriptions import COLUMNS, OVERRIDES, TABLES, Doc, named

# The text's names are this module's too: `from hs_sync.dictionary import Doc` describes a column.
__all__ = [
    "COLUMNS",
    "OVERRIDES",
    "TABLES",
    "Doc",
    "describe",
    "table_description",
    "write_comments",
]


_PER_TYPE_COUNTS = ("dashboard_participants", "participant_counts")


def describe(table: str, column: str) -> Doc | None:
    """The description of `table.column` (None when the dictionary has none): the
    registry entry's own, else the table's override, else the name's."""
    dt = registry.BY_NAME.get(table)
    declared = next((c.doc for c in dt.columns if c.name == column), None) if dt else None
    counted = registry.BY_NAME.get(column) if table in _PER_TYPE_COUNTS else None
    if counted is not None:  # a column per data type, built from the registry
        declared = Doc(f"Rows of {column} held for the participant ({counted.description})")
    return declared or named(table, column)


def table_description(table: str) -> str | None:
    dt = registry.BY_NAME.get(table)
    return (dt.doc if dt else None) or TABLES.get(table)


def digest() -> str:
    """A hash of what the comments are made of: the dictionary's texts and the registry's
    tables, columns and their own docs. While it (and the views) stay the same, a
    published database keeps its comments and the transform does not write them again."""
    declared = [
        (dt.name, dt.doc, [(c.name, str(c.type), c.json, c.doc) for c in dt.columns])
        for dt in registry.DATA_TYPES
    ]
    lineage = [(c.name, str(c.type), c.doc) for c in registry.LINEAGE_COLUMNS]
    text = repr((COLUMNS, OVERRIDES, TABLES, declared, lineage))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def write_comments(con: duckdb.DuckDBPyConnection) -> int:
    """Set the dictionary's comments on every table, view and column that differs.

    Returns the number of comments written.
    """
    relations = con.execute(
        "SELECT table_name, comment, 'TABLE' FROM duckdb_tables() "
        "WHERE schema_name = 'main' AND database_name = current_database() "
        "UNION ALL SELECT view_name, comment, 'VIEW' FROM duckdb_views() "
        "WHERE NOT internal AND schema_name = 'main' AND database_name = current_database()"
    ).fetchall()
    kinds = {name: kind for name, _, kind in relations}
    statements: list[str] = []
    for name, comment, kind in relations:
        text = table_description(name)
        if text and text != comment:
            statements.append(f"COMMENT ON {kind} {quote(name)} IS {_literal(text)}")
    columns = con.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND database_name = current_database()"
    ).fetchall()
    for table, column, comment in columns:
        doc = describe(table, column) if table in kinds else None
        if doc and doc.text != comment:
            target = f"{quote(table)}.{quote(column)}"
            statements.append(f"COMMENT ON COLUMN {target} IS {_literal(doc.text)}")
    for statement in statements:
        con.execute(statement)
    return len(statements)


def _literal(text: str) -> str:
    """A SQL string literal of the dictionary's own text (COMMENT ON takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"
