"""Exports at every level and format, read back and checked against the simulator's data.

Exports work offline: the simulator sees no request while they run.
"""

from __future__ import annotations

import csv
import io
import re
import stat
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from click.testing import CliRunner

from hs_sync import registry
from hs_sync.cli import main
from hs_sync.export import (
    METADATA_FILE,
    ExportError,
    ExportUsageError,
    export,
    time_column,
    types_at,
)
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import served_rows

BOM = b"\xef\xbb\xbf"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = ("participant", "room", "deployment", "experiment")


class World:
    """A synced warehouse and, per data type, the distinct records the API served."""

    def __init__(self, wh: Warehouse, records: dict[str, list[dict[str, Any]]]):
        self.wh = wh
        self.records = records
        events = Counter(r["participantId"] for r in records["events"])
        senders = {r["senderId"] for r in records["chat"]}
        # the participant with the most events among those who also chatted
        self.participant = max((p for p in events if p in senders), key=events.__getitem__)
        person = next(r for r in records["participants"] if r["id"] == self.participant)
        self.room = person["roomId"]
        self.experiment = person["experimentId"]
        room = next(r for r in records["rooms"] if r["id"] == self.room)
        self.deployment = room["deploymentId"]

    def id_of(self, level: str) -> str:
        return getattr(self, level)

    def expected(
        self,
        level: str,
        id_: str,
        type_name: str,
        categories: tuple[str, ...] = (),
        since: str | None = None,
        until: str | None = None,
    ) -> list[dict[str, Any]]:
        """The records an export should hold, chosen by hand from the served data."""
        dt = registry.get(type_name)
        rooms = {r["id"] for r in self.records["rooms"] if r["deploymentId"] == id_}
        own = {"participant": "participants", "room": "rooms"}
        own.update(deployment="deployments", experiment="experiments")

        def at_level(r: dict[str, Any]) -> bool:
            if own[level] == type_name:
                return r["id"] == id_
            if level == "participant":
                return r.get("senderId" if type_name == "chat" else "participantId") == id_
            if level == "deployment":
                if "deploymentId" in dt.declared_names:
                    return r.get("deploymentId") == id_
                return r.get("roomId") in rooms
            return r.get(f"{level}Id") == id_

        tcol = time_column(dt)
        lo, hi = parse_time(since), parse_time(until)
        out = []
        for r in self.records[type_name]:
            if not at_level(r):
                continue
            if categories and r.get("category") not in categories:
                continue
            moment = parse_time(r.get(tcol)) if tcol else None
            if tcol and lo and not (moment and moment >= lo):
                continue
            if tcol and hi and not (moment and moment < hi):
                continue
            out.append(r)
        return out


@pytest.fixture(scope="module")
def served(shared_sim) -> dict[str, list[dict[str, Any]]]:
    """Per data type, the distinct records the session simulator serves (redacted)."""
    return {dt.name: served_rows(shared_sim, dt) for dt in registry.DATA_TYPES}


@pytest.fixture
def world(synced_world, served) -> Iterator[World]:
    """The warehouse synced once per run (read only); no export asks the API anything."""
    yield World(Warehouse(synced_world.root), served)
    assert not synced_world.sim.requests, "an export made an API request"


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(BOM), "CSV must start with a UTF-8 BOM"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def read_back(out: Path, fmt: str) -> tuple[dict[str, list[dict]], dict | None]:
    """Every exported file as rows per type, and the metadata file if there is one."""
    if fmt == "zip":
        with zipfile.ZipFile(out) as zf:
            names = zf.namelist()
            assert METADATA_FILE in names
            meta = orjson.loads(zf.read(METADATA_FILE))
            rows = {n[:-4]: read_csv(zf.read(n)) for n in names if n.endswith(".csv")}
            assert len(rows) == len(names) - 1, names
            return rows, meta
    files = [p for p in out.iterdir() if p.suffix == f".{fmt}" and p.name != METADATA_FILE]
    reader = read_csv if fmt == "csv" else orjson.loads
    meta = orjson.loads((out / METADATA_FILE).read_bytes())
    return {p.stem: reader(p.read_bytes()) for p in files}, meta


def db_count(wh: Warehouse, query: str, params: list) -> int:
    con = duckdb.connect(str(wh.db_path), read_only=True)
    try:
        return con.execute(query, params).fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("fmt", ["csv", "json", "zip"])
@pytest.mark.parametrize("level", LEVELS)
def test_all_data_at_each_level_and_format(world, tmp_path, level, fmt):
    id_ = world.id_of(level)
    out = tmp_path / ("export.zip" if fmt == "zip" else "export")
    summary = export(world.wh, level=level, id=id_, fmt=fmt, out=out)

    rows, meta = read_back(out, fmt)
    expected = {t: len(world.expected(level, id_, t)) for t in types_at(level)}
    assert {t: n for t, n in expected.items() if n} == {t: len(r) for t, r in rows.items()}
    assert summary.rows == expected
    assert {t: m["rows"] for t, m in meta["types"].items()} == expected
    assert (meta["level"], meta["id"], meta["format"]) == (level, id_, fmt)
    assert sum(expected.values()) > 0
    if level != "participant":
        assert len(rows["participants"]) > 1 and len(rows["events"]) > len(
            world.expected("participant", world.participant, "events")
        )


def test_one_type_for_a_participant_as_csv(world, tmp_path):
    out = tmp_path / "events.csv"
    summary = export(
        world.wh, level="participant", id=world.participant, types=["events"], fmt="csv", out=out
    )
    assert summary.files == [out] and summary.rows == {"events": summary.total_rows}
    data = out.read_bytes()
    rows = read_csv(data)
    truth = {r["id"]: r for r in world.expected("participant", world.participant, "events")}
    assert [r["id"] for r in rows] == sorted(truth, key=lambda k: (truth[k]["timestamp"], k))
    for row in rows:
        record = truth[row["id"]]
        assert ISO_MS.match(row["timestamp"])
        assert parse_time(row["timestamp"]) == parse_time(record["timestamp"])
        assert float(row["onset"]) == record["onset"]  # milliseconds, as the API gives them
        assert row["participantId"] == world.participant
        assert set(row) == {c.name for c in registry.get("events").columns} | {"_extra"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # participant data stays private


def test_json_round_trips_nested_values_and_lists(world, tmp_path):
    out = tmp_path / "room"
    export(world.wh, level="room", id=world.room, fmt="json", out=out)
    rows, meta = read_back(out, "json")
    assert set(meta["types"]) == set(types_at("room"))

    events = registry.get("events")
    truth = {r["id"]: r for r in world.expected("room", world.room, "events")}
    assert len(rows["events"]) == len(truth)
    nested_seen = 0
    for row in rows["events"]:
        record = truth[row["id"]]
        for column in events.columns:
            value = record.get(column.name)
            if column.name == "timestamp":
                assert parse_time(row["timestamp"]) == parse_time(value)
            else:
                assert row[column.name] == value, column.name
        nested_seen += isinstance(row["content"], (dict, list))
        nested_seen += isinstance(row["response"], (dict, list))
        extra = {k: v for k, v in record.items() if k not in events.declared_names}
        assert row["_extra"] == (extra or None)
    assert nested_seen > 0, "the room's events carry no nested JSON to check"

    chat = {r["messageId"]: r for r in world.expected("room", world.room, "chat")}
    assert chat and {r["messageId"]: r["recipientIds"] for r in rows["chat"]} == {
        k: r["recipientIds"] for k, r in chat.items()
    }


def test_json_keeps_sparse_rating_objects(world, tmp_path):
    exp = next(r["experimentId"] for r in world.records["ratings_sparse"])
    out = tmp_path / "sparse.json"
    export(world.wh, level="experiment", id=exp, types=["ratings_sparse"], fmt="json", out=out)
    exported = {r["ratingId"]: r for r in orjson.loads(out.read_bytes())}
    truth = {r["ratingId"]: r for r in world.expected("experiment", exp, "ratings_sparse")}
    assert exported.keys() == truth.keys()
    for key, record in truth.items():
        for name in ("scale", "metadata", "sparseRatingData", "onset", "value"):
            assert exported[key][name] == record.get(name), name
        # rawValue is text (registry): a number sent keeps its JSON text, text stays text
        raw = record.get("rawValue")
        assert exported[key]["rawValue"] == (
            raw if raw is None or isinstance(raw, str) else orjson.dumps(raw).decode()
        )


def test_zip_has_metadata_and_a_bom_csv_per_type(world, tmp_path):
    out = tmp_path / "dep.zip"
    summary = export(world.wh, level="deployment", id=world.deployment, fmt="zip", out=out)
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        meta = orjson.loads(zf.read(METADATA_FILE))
        for name in names:
            if name.endswith(".csv"):
                assert zf.read(name).startswith(BOM)
    assert sorted(names) == sorted(summary.members)
    assert sorted(names) == sorted(
        [f"{t}.csv" for t, n in summary.rows.items() if n] + [METADATA_FILE]
    )
    assert meta["hs_sync_version"] and parse_time(meta["exported_at"]) is not None
    assert meta["filters"] == {"category": None, "since": None, "until": None}
    assert meta["types"]["events"]["time_column"] == "timestamp"
    assert meta["types"]["recordings"]["time_column"] == "startTime"
    assert meta["types"]["participants"]["time_column"] is None
    assert meta["types"]["events"]["file"] == "events.csv"


def test_category_filter_exports_only_those_events(world, tmp_path):
    exp = world.experiment
    out = tmp_path / "q.csv"
    summary = export(
        world.wh, level="experiment", id=exp, category="questionnaire", fmt="csv", out=out
    )
    rows = read_csv(out.read_bytes())
    expected = world.expected("experiment", exp, "events", categories=("questionnaire",))
    assert summary.rows == {"events": len(expected)} and len(rows) == len(expected) > 0
    assert {r["category"] for r in rows} == {"questionnaire"}
    assert len(rows) == db_count(
        world.wh,
        "SELECT count(*) FROM events WHERE experimentId = ? AND category = ?",
        [exp, "questionnaire"],
    )


def test_several_categories_and_a_participant(world, tmp_path):
    cats = ("communication", "component")
    out = tmp_path / "p.zip"
    export(world.wh, level="participant", id=world.participant, category=cats, fmt="zip", out=out)
    rows, meta = read_back(out, "zip")
    expected = world.expected("participant", world.participant, "events", categories=cats)
    assert set(rows) == {"events"} and len(rows["events"]) == len(expected) > 0
    assert {r["category"] for r in rows["events"]} <= set(cats)
    assert meta["filters"]["category"] == list(cats)


def test_time_range_filters_each_type_on_its_time_column(world, tmp_path):
    exp = world.experiment
    stamps = sorted(r["timestamp"] for r in world.expected("experiment", exp, "events"))
    since, until = stamps[len(stamps) // 4], stamps[3 * len(stamps) // 4]  # real row times
    out = tmp_path / "window"
    summary = export(
        world.wh, level="experiment", id=exp, since=since, until=until, fmt="csv", out=out
    )
    rows, meta = read_back(out, "csv")
    assert meta["filters"]["since"] == since and meta["filters"]["until"] == until
    for type_name in types_at("experiment"):
        expected = world.expected("experiment", exp, type_name, since=since, until=until)
        assert summary.rows[type_name] == len(expected), type_name
        tcol = time_column(registry.get(type_name))
        for row in rows.get(type_name, []):
            if tcol and row[tcol]:
                assert since <= row[tcol] < until  # same ISO form sorts as time
    # since is inclusive, until exclusive
    events = {r["timestamp"] for r in rows["events"]}
    assert since in events and until not in events
    assert summary.rows["events"] == db_count(
        world.wh,
        "SELECT count(*) FROM events WHERE experimentId = ? AND timestamp >= ? AND timestamp < ?",
        [exp, parse_time(since), parse_time(until)],
    )
    # types without a time column (the hierarchy) are exported whole
    assert summary.rows["participants"] == len(world.expected("experiment", exp, "participants"))


def test_one_type_into_an_existing_folder_and_several_into_a_file(world, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    summary = export(world.wh, level="room", id=world.room, types=["chat"], fmt="json", out=folder)
    assert summary.files == [folder / "chat.json"]
    assert len(orjson.loads((folder / "chat.json").read_bytes())) == summary.rows["chat"] > 0

    file = tmp_path / "taken.csv"
    file.write_text("keep me")
    with pytest.raises(ExportUsageError) as err:
        export(world.wh, level="room", id=world.room, fmt="csv", out=file)
    assert err.value.option == "--out" and err.value.exit_code == 2
    assert file.read_text() == "keep me"


def test_unknown_id_or_no_matching_rows_is_exit_1_and_writes_nothing(world, tmp_path):
    out = tmp_path / "none.zip"
    with pytest.raises(ExportError, match="no participant 'pt_nobody'") as err:
        export(world.wh, level="participant", id="pt_nobody", fmt="zip", out=out)
    assert err.value.exit_code == 1
    with pytest.raises(ExportError, match="its event categories: .*questionnaire"):
        export(world.wh, level="room", id=world.room, category="questionaire", fmt="zip", out=out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_arguments_are_checked_before_anything_is_read(world, tmp_path):
    cases = [
        (dict(level="planet"), "--level"),
        (dict(fmt="xml"), "--format"),
        (dict(id=" "), "--id"),
        (dict(types=["nope"]), "--type"),
        (dict(level="participant", types=["rooms"]), "--type"),
        (dict(types=["chat"], category="media"), "--category"),
        (dict(since="last tuesday"), "--since"),
        (dict(since="2024-05-02", until="2024-05-01"), "--until"),
    ]
    for changes, option in cases:
        args = dict(level="room", id=world.room, fmt="csv", out=tmp_path / "x")
        args.update(changes)
        with pytest.raises(ExportUsageError) as err:
            export(world.wh, **args)
        assert err.value.option == option, changes
    with pytest.raises(ExportUsageError, match="no database"):
        export(tmp_path / "empty", level="room", id="r", fmt="csv", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_the_export_command_writes_and_reports(world, tmp_path):
    out = tmp_path / "p.zip"
    result = CliRunner().invoke(
        main,
        [
            "export",
            "--level",
            "participant",
            "--id",
            world.participant,
            "--type",
            "events",
            "--type",
            "chat",
            "--format",
            "zip",
            "--out",
            str(out),
            "--warehouse",
            str(world.wh.root),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    rows, _ = read_back(out, "zip")
    assert report["rows"] == {t: len(r) for t, r in rows.items()}
    assert set(rows) == {"events", "chat"}

    missing = CliRunner().invoke(
        main,
        ["export", "--level", "room", "--id", "room_nope", "--format", "csv"]
        + ["--out", str(tmp_path / "r"), "--warehouse", str(world.wh.root)],
    )
    assert missing.exit_code == 1
    assert missing.stderr.strip().splitlines() == [
        "hs-sync export: nothing to export: no room 'room_nope' in the warehouse"
    ]


def test_an_out_inside_the_warehouse_is_refused_and_nothing_changes(world, tmp_path):
    db = world.wh.db_path
    before = db.stat().st_mtime_ns, db.stat().st_size
    dotted = f"{world.wh.root}/parquet/../{db.name}"
    for out in (db, world.wh.root / "parquet" / "extra.csv", world.wh.root, dotted):
        with pytest.raises(ExportUsageError, match="inside the warehouse") as err:
            export(world.wh, level="room", id=world.room, types=["chat"], fmt="csv", out=out)
        assert err.value.option == "--out"
    assert (db.stat().st_mtime_ns, db.stat().st_size) == before
    assert not (world.wh.root / "parquet" / "extra.csv").exists()


@pytest.mark.parametrize("fmt", ["zip", "csv"])
def test_a_trailing_slash_means_a_folder(world, tmp_path, fmt):
    out = tmp_path / "newdir"
    args = ["export", "--level", "room", "--id", world.room, "--format", fmt]
    result = CliRunner().invoke(
        main, [*args, "--out", f"{out}/", "--warehouse", str(world.wh.root)]
    )
    assert result.exit_code == 0, result.output
    assert out.is_dir() and any(out.iterdir())
    if fmt == "zip":
        assert [p.suffix for p in out.iterdir()] == [".zip"]
