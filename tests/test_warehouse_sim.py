"""End to end against the simulator: every table equals what the API served."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest

from hs_sync import registry
from hs_sync.load.duck import duck_type
from hs_sync.load.transform import rebuild
from hs_sync.registry import DataType
from hs_sync.run import sync
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import make_config, served_by_key
from tests.warehouse_helpers import db_rows, parquet_table, query

SPELLED_TZ = "TIMESTAMP WITH TIME ZONE"  # how information_schema spells TIMESTAMPTZ


def expected_row(dt: DataType, record: dict[str, Any]) -> dict[str, Any]:
    """A record typed by hand from the registry, the way a reader expects to see it."""
    row: dict[str, Any] = {}
    for column in dt.columns:
        value: Any = record
        for part in column.path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            row[column.name] = None
        elif column.json:
            row[column.name] = ("json", value)
        elif pa.types.is_timestamp(column.type):
            row[column.name] = parse_time(value)
        elif pa.types.is_floating(column.type):
            row[column.name] = float(value)  # a number sent as text ("1620") converts too
        elif pa.types.is_integer(column.type):
            row[column.name] = int(value)
        elif pa.types.is_string(column.type) and not isinstance(value, str):
            # a number or boolean in a text column: its exact JSON text (u64 digits too)
            row[column.name] = orjson.dumps(value).decode()
        else:
            row[column.name] = value
    if row.get("downloadUrl") is not None:  # a signed URL: checked apart, see below
        row["downloadUrl"] = "<signed>"
    extra = {k: v for k, v in record.items() if k not in dt.declared_names}
    row["_extra"] = ("json", extra) if extra else None
    return row


def comparable(dt: DataType, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    if row.get("downloadUrl") is not None:
        assert "sig=" not in row["downloadUrl"] and "expires=" not in row["downloadUrl"]
        row = {**row, "downloadUrl": "<signed>"}
    for name in [c.name for c in dt.columns] + ["_extra"]:
        value = row[name]
        json_col = name == "_extra" or next(c for c in dt.columns if c.name == name).json
        out[name] = ("json", orjson.loads(value)) if json_col and value is not None else value
    return out


def truth(sim, dt: DataType) -> dict[str, dict[str, Any]]:
    return {key: expected_row(dt, r) for key, r in served_by_key(sim, dt).items()}


@pytest.fixture
def synced(synced_world):
    """The run's synced warehouse (read only), its simulator and the sync's summary."""
    return synced_world.sim, Warehouse(synced_world.root), synced_world.summary


def test_the_sync_summary_reports_the_transform(synced):
    _, _, summary = synced
    report = summary.transform
    assert report["quarantined"] == 0
    assert report["drift"] == {}  # the registry declares every field the API serves
    assert report["rows"]["events"] > 1000


@pytest.mark.parametrize("dt", registry.DEFAULT_TYPES, ids=lambda dt: dt.name)
def test_duckdb_and_parquet_equal_the_api_row_for_row(synced, dt):
    sim, wh, _ = synced
    expected = truth(sim, dt)
    assert expected, f"the simulator serves no {dt.name}"
    stored = {r["_key"]: comparable(dt, r) for r in db_rows(wh, dt.name)}
    assert stored.keys() == expected.keys()
    for key, row in expected.items():
        assert stored[key] == row, key
    table = parquet_table(wh, dt)
    assert table.schema.equals(dt.arrow_schema)
    from_parquet = {r["_key"]: comparable(dt, r) for r in table.to_pylist()}
    assert from_parquet == stored
    # the declared types, in DuckDB too
    types = dict(query(wh, "SELECT column_name, data_type FROM information_schema.columns "
                           "WHERE table_name = ?", [dt.name]))  # fmt: skip
    for column in dt.columns:
        declared = duck_type(column.type, column.json).replace("TIMESTAMPTZ", SPELLED_TZ)
        assert types[column.name] == declared, column.name


def test_the_data_has_what_the_tests_claim_to_cover(synced):
    _, wh, _ = synced
    (negative,) = query(wh, "SELECT count(*) FROM events WHERE onset < 0")[0]
    (non_ascii,) = query(
        wh, "SELECT count(*) FROM experiments WHERE regexp_matches(ownerEmail, '[^\\x00-\\x7F]')"
    )[0]
    (nulls,) = query(wh, "SELECT count(*) FROM events WHERE componentType IS NULL")[0]
    (nested,) = query(wh, "SELECT count(*) FROM ratings_sparse WHERE sparseRatingData IS NOT NULL")[
        0
    ]
    assert negative > 0 and non_ascii > 0 and nulls > 0 and nested > 0


def test_incremental_syncs_with_late_rows_equal_one_full_sync_and_a_rebuild(sim_factory, tmp_path):
    sim = sim_factory(seed=5, live=True)
    step = Warehouse(tmp_path / "step")
    config = make_config(sim, step.root, media=False, lookback_seconds=60)
    sync(config)
    for seconds in (600, 1800):
        sim.advance(seconds)
        sim.dataset.add_late_rows("events", 25)
        sync(config)
    full = Warehouse(tmp_path / "full")
    sync(make_config(sim, full.root, media=False))
    for dt in registry.DATA_TYPES:
        (dups,) = query(step, f'SELECT count(*) - count(DISTINCT _key) FROM "{dt.name}"')[0]
        assert dups == 0, dt.name
        a = {r["_key"]: comparable(dt, r) for r in db_rows(step, dt.name)}
        b = {r["_key"]: comparable(dt, r) for r in db_rows(full, dt.name)}
        for key in a.keys() | b.keys():
            assert a.get(key) == b.get(key), (dt.name, key)
        assert a == truth(sim, dt), dt.name
    before = {dt.name: (db_rows(step, dt.name), parquet_table(step, dt))
              for dt in registry.DATA_TYPES}  # fmt: skip
    rebuild(step, registry.DATA_TYPES)
    for dt in registry.DATA_TYPES:
        assert db_rows(step, dt.name) == before[dt.name][0], dt.name
        assert parquet_table(step, dt).equals(before[dt.name][1]), dt.name


def test_hs_sync_sql_prints_a_view(synced):
    from click.testing import CliRunner

    from hs_sync.cli import main

    _, wh, _ = synced
    runner = CliRunner()
    result = runner.invoke(main, ["sql", "SELECT deployment_name, rooms FROM deployment_summary "
                                  "ORDER BY 1, 2", "--warehouse", str(wh.root), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = orjson.loads(result.output)
    assert {r["deployment_name"] for r in rows} == {"pilot", "main"}
    assert sum(r["rooms"] for r in rows) == query(wh, "SELECT count(*) FROM rooms")[0][0]
    csv = runner.invoke(main, ["sql", "SELECT 1 AS one", "--warehouse", str(wh.root), "--csv"])
    assert csv.output == "one\n1\n"
    table = runner.invoke(main, ["sql", "SELECT count(*) AS n FROM events", "--warehouse",
                                 str(wh.root)])  # fmt: skip
    assert table.exit_code == 0 and "1 row" in table.output
    bad = runner.invoke(main, ["sql", "SELECT * FROM nowhere", "--warehouse", str(wh.root)])
    assert bad.exit_code == 1


def test_hs_sync_rebuild_command(synced, tmp_path):
    import shutil

    from click.testing import CliRunner

    from hs_sync.cli import main

    _, wh, _ = synced
    copy = tmp_path / "copy"
    shutil.copytree(wh.root / "raw", copy / "raw")
    result = CliRunner().invoke(main, ["rebuild", "--warehouse", str(copy), "--json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["rows"]["events"] == len(db_rows(wh, "events"))
    assert db_rows(Warehouse(copy), "rooms") == db_rows(wh, "rooms")
