"""The data dictionary: every column described, shown by `hs-sync schema`, and in docs/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import orjson

from hs_sync import dictionary, schema
from hs_sync.load.transform import transform
from hs_sync.registry import DATA_TYPES, LINEAGE_COLUMNS
from hs_sync.warehouse import Warehouse
from tests.warehouse_helpers import event, land

DOC = Path(__file__).parent.parent / "docs" / "data-dictionary.md"


def hs_sync(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hs_sync", *args], capture_output=True, text=True, timeout=60
    )


def test_every_registry_column_is_described():
    """A data type added to the registry must add its columns' descriptions."""
    for dt in DATA_TYPES:
        assert dt.description, dt.name
        for column in dt.columns + LINEAGE_COLUMNS:
            doc = dt.describe(column.name)  # KeyError names the column that lacks one
            assert len(doc.description) > 5, (dt.name, column.name)


def test_every_table_and_view_column_is_described():
    relations = schema.catalog()
    names = {r.name for r in relations}
    assert {dt.name for dt in DATA_TYPES} | {
        "media_files",
        "check_results",
        "sync_quality",
    } <= names
    assert [r.name for r in relations if not r.description] == []
    assert [f"{r.name}.{c}" for r in relations for c, _, doc in r.columns if doc is None] == []


def test_a_shared_name_is_described_once_and_overridden_per_type():
    assert dictionary.describe("events", "roomId") == dictionary.describe("sync", "roomId")
    assert dictionary.describe("events", "id") != dictionary.describe("rooms", "id")
    onset = dictionary.describe("ratings_sparse", "rawOnset")
    assert onset.unit == "ms" and onset.text.endswith("(unit: ms)")


def test_docs_data_dictionary_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == schema.markdown(schema.catalog()), (
        "regenerate: hs-sync schema --markdown > docs/data-dictionary.md"
    )


def test_schema_command_lists_tables_and_describes_one():
    listing = hs_sync("schema")
    assert listing.returncode == 0, listing.stderr
    assert "ratings_sparse" in listing.stdout and "deployment_summary" in listing.stdout
    one = hs_sync("schema", "ratings_sparse", "--json")
    assert one.returncode == 0, one.stderr
    [relation] = orjson.loads(one.stdout)
    columns = {c["name"]: c for c in relation["columns"]}
    assert columns["clockOffsetApplied"]["unit"] == "ms"
    assert "rawOnset" in columns["clockOffsetApplied"]["description"]
    assert hs_sync("schema", "--markdown").stdout == DOC.read_text(encoding="utf-8")


def test_schema_of_an_unknown_name_is_one_line_with_exit_2():
    done = hs_sync("schema", "nope")
    assert done.returncode == 2
    assert done.stderr.startswith("hs-sync schema: no table or view 'nope'; known: events")
    assert len(done.stderr.strip().splitlines()) == 1


def _comment(wh, table: str, column: str) -> str | None:
    con = duckdb.connect(str(wh.db_path), read_only=True)
    try:
        return con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = ? AND column_name = ?",
            [table, column],
        ).fetchone()[0]
    finally:
        con.close()


def _synced_then_edited(tmp_path) -> Warehouse:
    """A warehouse whose published database has one comment changed by hand."""
    wh = Warehouse(tmp_path / "wh").create()
    land(wh, "events", [event(i) for i in range(3)])
    transform(wh, DATA_TYPES)
    assert _comment(wh, "events", "onset") == dictionary.describe("events", "onset").text
    con = duckdb.connect(str(wh.db_path))
    con.execute("COMMENT ON COLUMN events.onset IS 'edited by hand'")
    con.close()
    land(wh, "events", [event(i) for i in range(3, 6)], batch="20240501T110000000000Z-w")
    return wh


def test_a_sync_without_a_schema_change_does_not_write_the_comments_again(tmp_path):
    wh = _synced_then_edited(tmp_path)
    summary = transform(wh, DATA_TYPES)
    assert summary["published"] and summary["rows"]["events"] == 3
    assert _comment(wh, "events", "onset") == "edited by hand"
    assert _comment(wh, "sync_quality", "quality_class")  # the views are kept with theirs


def test_a_changed_dictionary_writes_the_comments_again(tmp_path, monkeypatch):
    wh = _synced_then_edited(tmp_path)
    monkeypatch.setitem(dictionary.COLUMNS, "onset", dictionary.Doc("Changed text", "ms"))
    transform(wh, DATA_TYPES)
    assert _comment(wh, "events", "onset") == "Changed text (unit: ms)"
