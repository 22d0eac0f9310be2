"""A time-mode type added by a registry entry and the simulator's data alone syncs end to end.

The type below exists nowhere in hs_sync: it is added with `registry.extended`
(the registry's own way to add types) and served by a simulator given its
endpoint and field kinds as data. It needs no SQL file: its table and Parquet
come from its columns. Nothing of hs_sync is patched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pytest
from click.testing import CliRunner

from hs_simulator import Series, Simulator
from hs_sync import registry
from hs_sync.cli import main
from hs_sync.descriptions import Doc
from hs_sync.land.state import ExtractState
from hs_sync.registry import FLOAT, STR, TS, DataType, Mode, col
from hs_sync.report import charts as report_charts
from hs_sync.report import queries as report_queries
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import assert_landed_equals_simulator, landed, make_config
from tests.warehouse_helpers import parquet_table

HEART_RATE = DataType(
    name="heart_rate",
    path="heart-rate",
    mode=Mode.TIME,
    api_scope="read:events",
    cursor="startTime",
    date_partitioned=True,
    count_names=("heartrate",),
    doc="Heart-rate samples of each participant",
    columns=(
        col("experimentId", STR),
        col("roomId", STR),
        col("participantId", STR),
        col("startTime", TS, doc=Doc("When the sample was taken", "UTC timestamp")),
        col("bpm", FLOAT, doc=Doc("Heart rate", "beats/min")),
        col("device", STR, doc=Doc("Sensor that measured it")),
    ),
)
HEART_RATE_DATA = Series(
    path="heart-rate",
    fields={"bpm": "number", "device": "string"},
    time_field="startTime",
    scope="read:events",
    count_name="heartrate",
)
DUCK_TYPES = {
    "experimentId": "VARCHAR",
    "roomId": "VARCHAR",
    "participantId": "VARCHAR",
    "startTime": "TIMESTAMP WITH TIME ZONE",
    "bpm": "DOUBLE",
    "device": "VARCHAR",
}
GHOST = "pt_not_in_the_room"


@pytest.fixture
def fixture_registry() -> Iterator[None]:
    assert "heart_rate" not in registry.BY_NAME
    before = registry.DATA_TYPES
    with registry.extended(HEART_RATE):
        assert registry.get("heart_rate") is HEART_RATE and HEART_RATE in registry.DEFAULT_TYPES
        yield
    assert registry.DATA_TYPES is before and "heart_rate" not in registry.BY_NAME


@pytest.fixture
def heart_sim(sim_factory) -> Simulator:
    """A live simulator serving the heart-rate series, with one sample of a participant
    its room does not list (for the orphans check)."""
    sim = sim_factory(live=True, scale=0.1, series=[HEART_RATE_DATA])
    row = sim.dataset.records("heart-rate")[-1]
    ghost = {**row, "participantId": GHOST, "bpm": 61.5}
    sim.plant_rows("heart-rate", row["experimentId"], [ghost])
    return sim


def cli(*argv: str, key: str = ""):
    env = {"HYPERSTUDY_API_KEY": key}
    return CliRunner().invoke(main, list(argv), env=env, catch_exceptions=False)


def check(config, *args: str):
    where = ("--warehouse", str(config.warehouse), "--base-url", config.base_url)
    result = cli("check", "--json", *where, *args, key=config.api_key)
    report = orjson.loads(result.stdout)
    return {c["name"]: c for c in report["checks"]}


def keys(records: list[dict]) -> set[str]:
    return {HEART_RATE.key_of(r) for r in records}


def test_a_type_added_to_the_registry_syncs_types_checks_and_is_described(
    fixture_registry, heart_sim, tmp_path
):
    sim = heart_sim
    root = tmp_path / "wh"
    config = make_config(sim, root, lookback_seconds=0)
    first = sync(config)
    assert first.exit_code == 0, first.errors
    served = sim.dataset.records("heart-rate")
    assert len(served) > 100

    # raw NDJSON: exactly what the API serves, per experiment
    assert assert_landed_equals_simulator(sim, root, types=(HEART_RATE,)) == len(served)
    raw = list((root / "raw" / "heart_rate").glob("experiment_id=*/*/*.ndjson*"))
    assert raw

    # typed into DuckDB and Parquet with the declared types
    _assert_typed(Warehouse(root), served)

    # a second sync after new samples arrive reads from the watermark, lands only them
    sim.advance(1800)
    grown = sim.dataset.records("heart-rate")
    new = keys(grown) - keys(served)
    assert new and keys(served) <= keys(grown)
    sim.reset_requests()
    second = sync(config)
    assert second.exit_code == 0, second.errors
    assert sum(second.rows["heart_rate"].values()) == len(new)
    landed_now = {k for rows in landed(root, HEART_RATE).values() for k in rows}
    assert landed_now == keys(grown)
    reads = [r for r in sim.requests if "/data/heart-rate/" in r["path"]]
    assert reads and all(r["params"].get("startTime") for r in reads)
    with ExtractState(Warehouse(root)) as state:
        marks = {e: m for (name, e), m in state.watermarks().items() if name == "heart_rate"}
        windows = [w for w in state.ledger("heart_rate") if w["run_id"] == second.run_id]
    assert set(marks) == set(sim.dataset.experiment_ids)
    assert set(marks.values()) == {second.window_end}
    assert windows and all(w["start_time"] is not None for w in windows)
    _assert_typed(Warehouse(root), grown)

    # the data dictionary: `hs-sync schema` and the database's comments
    listing = cli("schema")
    assert listing.exit_code == 0 and "heart_rate" in listing.output
    assert "Heart-rate samples of each participant" in listing.output
    columns = cli("schema", "heart_rate")
    assert columns.exit_code == 0
    assert "beats/min" in columns.output and "Sensor that measured it" in columns.output
    with duckdb.connect(str(Warehouse(root).db_path), read_only=True) as con:
        comments = dict(
            con.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ?",
                ["heart_rate"],
            ).fetchall()
        )
    assert comments["bpm"] == "Heart rate (unit: beats/min)"
    assert comments["startTime"] == "When the sample was taken (unit: UTC timestamp)"

    # `hs-sync check` runs over it: totals reconciled, the planted sample found
    checks = check(config)
    totals = checks["count_reconciliation"]["details"]["totals"]["heart_rate"]
    assert totals and all(t["api"] == t["warehouse"] for t in totals.values())
    orphans = [i for i in _issues(root, "orphans") if i[0] == GHOST]
    assert orphans and "heart_rate row(s)" in orphans[0][1]
    for name in ("duplicate_keys", "count_reconciliation"):
        assert checks[name]["status"] == "passed", checks[name]

    # `hs-sync check --room`: the API's per-participant counts map to the type
    room = next(r for r in grown if r["participantId"] != GHOST)["roomId"]
    counts = check(config, "--room", room)["participant_counts"]
    assert counts["status"] == "passed", counts
    held = counts["details"]["warehouse_rows"][room]
    assert held and all(person["heart_rate"] > 0 for person in held.values())
    assert "heartrate" not in counts["details"].get("unknown_count_names", [])

    # the dashboard's per-participant data types include the added type
    with duckdb.connect(str(Warehouse(root).db_path), read_only=True) as con:
        listed = con.execute(
            "SELECT data_types FROM dashboard_participants WHERE room_id = ? "
            "AND list_contains(data_types, 'heart_rate')",
            [room],
        ).fetchall()
    assert len(listed) == len(held)

    # ... and so do its per-type count columns, and the report's completeness chart
    with duckdb.connect(str(Warehouse(root).db_path), read_only=True) as con:
        per_participant = dict(
            con.execute(
                "SELECT participant_id, heart_rate FROM dashboard_participants WHERE room_id = ?",
                [room],
            ).fetchall()
        )
        participants = report_queries.completeness(con)
    assert {p: n for p, n in per_participant.items() if n} == {
        p: counts["heart_rate"] for p, counts in held.items()
    }
    heat = report_charts.completeness(participants, set()).data[0]
    assert "heart rate" in heat.x
    column = list(heat.x).index("heart rate")
    shown = {
        (p["room_id"], p["participant_id"]): row[column][0]
        for p, row in zip(participants, heat.customdata, strict=True)
    }
    assert all(shown[(room, p)] == n for p, n in per_participant.items())


def _assert_typed(wh: Warehouse, served: list[dict]) -> None:
    with duckdb.connect(str(wh.db_path), read_only=True) as con:
        described = dict(
            con.execute("SELECT column_name, column_type FROM (DESCRIBE heart_rate)").fetchall()
        )
        rows = con.execute(
            "SELECT _key, participantId, startTime, bpm, device FROM heart_rate"
        ).fetchall()
    assert {n: described[n] for n in DUCK_TYPES} == DUCK_TYPES
    by_key = {HEART_RATE.row_key(r["experimentId"], r): r for r in served}
    assert {r[0] for r in rows} == set(by_key)
    for key, participant, start, bpm, device in rows:
        want = by_key[key]
        assert (participant, bpm, device) == (want["participantId"], want["bpm"], want["device"])
        assert start.isoformat(timespec="milliseconds").replace("+00:00", "Z") == want["startTime"]
    table = parquet_table(wh, HEART_RATE)
    assert table.schema.remove_metadata() == HEART_RATE.arrow_schema
    assert table.num_rows == len(served)
    assert table.schema.field("startTime").type == pa.timestamp("us", tz="UTC")


def _issues(root: Path, check: str) -> list[tuple[str, str]]:
    with duckdb.connect(str(Warehouse(root).db_path), read_only=True) as con:
        return con.execute(
            "SELECT id, detail FROM check_issues WHERE check_name = ?", [check]
        ).fetchall()
