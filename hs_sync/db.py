"""Reading the warehouse database: identifier quoting, SQL text with identifiers filled
in, and the read-only connection every reader (status, export, checks, report) opens.

Writing the database is hs_sync/load/duck.py's job; this module is what readers need
without it.
"""

from __future__ import annotations

import duckdb

from hs_sync.warehouse import Warehouse


def quote(name: str) -> str:
    """A quoted SQL identifier (registry names only, never API values)."""
    return '"' + name.replace('"', '""') + '"'


def sql(template: str, **parts: str) -> str:
    """SQL text with registry-derived identifiers and expressions filled in.

    Only names from the registry and our own temporary tables go in here;
    values always travel as query parameters.
    """
    return template.format_map(parts)


def connect_readonly(warehouse: Warehouse) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the live database (never blocks a sync)."""
    con = duckdb.connect(str(warehouse.db_path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con
