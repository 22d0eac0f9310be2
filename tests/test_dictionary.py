"""The data dictionary: every column described, shown by `hs-sync schema`, and in docs/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from hs_sync import dictionary, schema
from hs_sync.registry import DATA_TYPES, LINEAGE_COLUMNS

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
