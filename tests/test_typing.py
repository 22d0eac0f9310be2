"""The typing policy, rule by rule: raw lines in real files typed by the SQL in real DuckDB."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone

import duckdb
import orjson
import pyarrow as pa
import pytest

from hs_sync import jsontext, registry
from hs_sync.land import rawfile
from hs_sync.load import typing_sql
from hs_sync.load.lines import RawFile, synced_at_of
from hs_sync.warehouse import Warehouse
from tests.warehouse_helpers import EXP, event, land

BATCH = "20240501T120000000000Z-w"
SYNCED = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


class Typed:
    """What the typing SQL made of one raw file: rows, quarantined lines, drift."""

    def __init__(self, dt, rows, quarantined, drift, schema):
        self.dt, self.rows, self.quarantined, self.drift, self.schema = (
            dt,
            rows,
            quarantined,
            drift,
            schema,
        )


def type_file(wh: Warehouse, dt: registry.DataType, path) -> Typed:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        exp = path.parent.parent.name.split("=", 1)[1]
        name = path.relative_to(wh.root).as_posix()
        files = [RawFile(path, name, exp, path.stat().st_size)]
        loaded, damaged = typing_sql.type_files(con, dt, files)
        assert not damaged
        table = con.sql("SELECT * EXCLUDE (__exp, __seq) FROM __stage ORDER BY __seq")
        arrow = table.to_arrow_table()
        files = typing_sql.per_file(con)
        quarantined = files[0].quarantined if 0 in files else []
        return Typed(dt, arrow.to_pylist(), quarantined, typing_sql.drift(con), arrow.schema)
    finally:
        con.close()


def type_records(tmp_path, type_name: str, *records, experiment: str = EXP) -> Typed:
    wh = Warehouse(tmp_path / "wh").create()
    texts = [r if isinstance(r, bytes) else jsontext.dumps(r) for r in records]
    path = land(wh, type_name, texts, batch=BATCH, experiment=experiment)
    return type_file(wh, registry.get(type_name), path)


def test_events_are_typed_with_utc_timestamps_negative_onsets_unicode_and_json(tmp_path):
    rec = event(
        1,
        onset=-12345,
        timestamp="2024-05-01T12:30:00.250+02:00",
        content={"text": "naïve café ☕", "list": [1, None, "x"]},
        response="just a string",
        stateName="",
    )
    out = type_records(tmp_path, "events", rec)
    assert out.quarantined == []
    assert out.schema == registry.get("events").arrow_schema
    (row,) = out.rows
    assert row["onset"] == -12345
    assert row["timestamp"] == datetime(2024, 5, 1, 10, 30, 0, 250000, tzinfo=timezone.utc)
    assert orjson.loads(row["content"]) == rec["content"]
    assert orjson.loads(row["response"]) == "just a string"
    assert row["componentType"] is None
    assert row["stateName"] == ""
    assert row["_key"] == f"{EXP}|evt_0001" == out.dt.row_key(EXP, rec)
    assert row["_extra"] is None
    assert row["_synced_at"] == SYNCED
    assert row["_raw_file"].startswith("raw/events/experiment_id=exp_test/")


def test_nested_fields_are_flattened_and_kept_whole(tmp_path):
    rec = {
        "ratingId": "rat_1",
        "participantId": "pt_1",
        "timestamp": "2024-05-01T10:00:00.000Z",
        "onset": 5000,
        "value": 7,
        "rawValue": "7",
        "scale": {"min": 1, "max": 9},
        "metadata": {"question": "Wie intensiv?", "dimension": "intensity", "sampleIndex": 0},
        "sparseRatingData": {"mediaPaused": True, "pauseDurationMs": 1200},
        "stateStartTime": "2024-05-01T09:59:00Z",
        "confidence": None,
    }
    (row,) = type_records(tmp_path, "ratings_sparse", rec).rows
    assert (row["scaleMin"], row["scaleMax"]) == (1.0, 9.0)
    assert row["question"] == "Wie intensiv?"
    assert row["dimension"] == "intensity"
    assert row["value"] == 7.0 and isinstance(row["value"], float)
    assert row["rawValue"] == "7"
    assert orjson.loads(row["scale"]) == {"min": 1, "max": 9}
    assert orjson.loads(row["sparseRatingData"]) == rec["sparseRatingData"]
    assert row["stateStartTime"] == datetime(2024, 5, 1, 9, 59, tzinfo=timezone.utc)
    assert row["confidence"] is None and row["stimulusId"] is None


def test_a_sparse_rating_whose_raw_value_is_a_number_keeps_its_json_text(tmp_path):
    """The SDK's fixtures send `"rawValue": 58`: a row, with '58' in the text column."""
    base = {"participantId": "p", "timestamp": "2024-05-01T10:00:00.000Z", "value": 58}
    out = type_records(
        tmp_path,
        "ratings_sparse",
        {**base, "ratingId": "r1", "rawValue": 58},
        {**base, "ratingId": "r2", "rawValue": 0.25},
        {**base, "ratingId": "r3", "rawValue": True},
        {**base, "ratingId": "r4", "rawValue": "58"},
    )
    assert out.quarantined == [] and not out.drift
    assert [r["rawValue"] for r in out.rows] == ["58", "0.25", "true", "58"]


def test_a_fractional_onset_is_kept(tmp_path):
    out = type_records(
        tmp_path,
        "events",
        event(1, onset=5570.5),
        event(2, onset=12),
    )
    assert out.quarantined == [] and not out.drift
    assert [r["onset"] for r in out.rows] == [5570.5, 12.0]


def test_a_value_that_cannot_convert_is_null_and_kept_in_extra_as_drift(tmp_path):
    out = type_records(
        tmp_path,
        "events",
        event(1, onset="soon", stateName={"nested": [1, None]}, extraField=1),
        event(2, timestamp="2024-05-01T10:00:00Z", eventType=["a"]),
        event(3, category=2**70),  # beyond 64 bits: its JSON text
    )
    assert out.quarantined == []
    first, second, third = out.rows
    assert first["onset"] is None and first["stateName"] is None
    assert orjson.loads(first["_extra"]) == {
        "extraField": 1,
        "onset": "soon",
        "stateName": {"nested": [1, None]},
    }
    assert second["eventType"] is None
    assert orjson.loads(second["_extra"]) == {"eventType": ["a"]}
    assert third["category"] == str(2**70) and third["_extra"] is None
    assert out.drift.as_dict() == {
        "new_fields": {"extraField": 1},
        "type_changes": [
            {"field": "eventType", "declared": "string", "seen": "array", "rows": 1},
            {"field": "onset", "declared": "double", "seen": "string", "rows": 1},
            {"field": "stateName", "declared": "string", "seen": "object", "rows": 1},
        ],
    }


def test_integer_and_double_columns_convert_only_without_loss(tmp_path):
    base = {"ratingId": "r", "timestamp": "2024-05-01T10:00:00Z"}
    out = type_records(
        tmp_path,
        "ratings_sparse",
        {**base, "ratingId": "a", "stateDuration": 4.0, "value": 2**53},
        {**base, "ratingId": "b", "stateDuration": 4.5, "value": 2**53 + 1},
        {**base, "ratingId": "c", "stateDuration": 2**63, "value": 2**64 + 1},
        {**base, "ratingId": "d", "stateDuration": True, "value": "1.5"},
        # numbers sent as text convert by the same rules when the text is exactly a number
        {**base, "ratingId": "e", "stateDuration": "4.0", "value": "-2e3"},
        {**base, "ratingId": "f", "stateDuration": "4.5", "value": str(2**53 + 1)},
        {**base, "ratingId": "g", "stateDuration": " 12", "value": "NaN"},
        {**base, "ratingId": "h", "stateDuration": "12", "value": "1,5"},
    )
    assert out.quarantined == []
    got = [(r["stateDuration"], r["value"]) for r in out.rows]
    assert got == [
        (4, float(2**53)),
        (None, None),
        (None, None),
        (None, 1.5),
        (4, -2000.0),
        (None, None),
        (None, None),
        (12, None),
    ]
    extras = [json.loads(r["_extra"]) if r["_extra"] else None for r in out.rows]
    assert extras == [
        None,
        {"stateDuration": 4.5, "value": 2**53 + 1},
        {"stateDuration": 2**63, "value": 2**64 + 1},
        {"stateDuration": True},
        None,
        {"stateDuration": "4.5", "value": str(2**53 + 1)},
        {"stateDuration": " 12", "value": "NaN"},
        {"value": "1,5"},
    ]


def test_lists_and_booleans(tmp_path):
    rec = {"messageId": "m1", "senderId": "a", "content": "hi 👋", "recipientIds": ["b", "c"],
           "timestamp": "2024-05-01T10:00:00Z"}  # fmt: skip
    out = type_records(tmp_path / "c", "chat", rec, {**rec, "messageId": "m2", "recipientIds": []})
    assert out.schema.field("recipientIds").type == pa.list_(pa.string())
    assert [r["recipientIds"] for r in out.rows] == [["b", "c"], []]
    comps = type_records(
        tmp_path / "k",
        "components",
        {"componentId": "c1", "completed": False, "config": {"a": [1]}, "timestamp": None},
    )
    assert [(r["completed"], r["timestamp"]) for r in comps.rows] == [(False, None)]


def test_keys_include_the_experiment_or_hash_the_whole_line(tmp_path):
    recs = [
        {
            "participantId": "p",
            "roomId": "r",
            "componentId": "c",
            "timestamp": "2024-05-01T10:00:00Z",
            "onset": i * 100,
            "value": 50.5,
        }  # fmt: skip
        for i in range(3)
    ]
    out = type_records(tmp_path / "a", "ratings_continuous", *recs)
    dt = registry.get("ratings_continuous")
    assert [r["_key"] for r in out.rows] == [dt.row_key(EXP, r) for r in recs]
    assert len({r["_key"] for r in out.rows}) == 3
    rec = {"id": "pt_1", "roomId": "room_1", "role": "host"}
    (row,) = type_records(tmp_path / "b", "participants", rec).rows
    assert row["_key"] == f"{EXP}|pt_1|room_1"
    (row,) = type_records(tmp_path / "c", "experiments", {"id": 42, "name": "n"}).rows
    assert row["_key"] == "42" and row["id"] == "42"  # experiments are global


def test_only_lines_that_cannot_become_a_row_are_quarantined(tmp_path):
    out = type_records(
        tmp_path,
        "events",
        event(1),
        event(2, onset="soon"),  # a row: onset NULL, kept in _extra
        b"{not json",
        b'["an", "array"]',
        event(3, timestamp="yesterday"),  # the date partition needs the cursor
        event(4, id=""),
        {k: v for k, v in event(5).items() if k != "id"},
        b"\xff\xfe{}",
        event(6, id=None),
        event(7),
    )
    assert [r["id"] for r in out.rows] == ["evt_0001", "evt_0002", "evt_0007"]
    reasons = {q.line: q.reason for q in out.quarantined}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9]
    assert reasons[3] == "not JSON"
    assert reasons[4] == "not a JSON object: array"
    assert "timestamp" in reasons[5]
    assert all(reasons[n].startswith("no key") for n in (6, 7, 9))
    assert reasons[8] == "not UTF-8 text"
    assert out.quarantined[0].text == "{not json"


def test_timestamps_in_other_iso_forms_and_epoch_milliseconds(tmp_path):
    out = type_records(
        tmp_path,
        "events",
        event(1, timestamp="2024-05-01T10:00:00"),  # no zone: UTC
        event(2, timestamp="2024-05-01T10:00:00.123456789Z"),
        event(3, timestamp=1714557600000),
    )
    assert out.quarantined == []
    assert [r["timestamp"] for r in out.rows] == [
        datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc),
        datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=timezone.utc),
        datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc),
    ]


def test_signed_urls_lose_their_signature_below_raw(tmp_path):
    rec = {"recordingId": "rec_1", "downloadUrl": "https://media.example/rec_1.mp4?expires=9&sig=abc",
           "status": "complete"}  # fmt: skip
    (row,) = type_records(tmp_path, "recordings", rec).rows
    assert row["downloadUrl"] == "https://media.example/rec_1.mp4"
    assert "sig=" not in str(row)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_compressed_raw_files_and_the_landing_time(tmp_path, compression):
    wh = Warehouse(tmp_path).create()
    batch = "20240502T030405123456Z-w1"
    path = land(wh, "events", [event(1), event(2)], batch=batch, compression=compression)
    assert len(type_file(wh, registry.get("events"), path).rows) == 2
    assert synced_at_of(path) == datetime(2024, 5, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


def test_a_big_file_keeps_its_line_numbers(tmp_path):
    # Several read blocks, blank lines between, no newline at the end.
    dt = registry.get("events")
    good = [orjson.dumps(event(i, content={"pad": "x" * 300})) for i in range(12_000)]
    bad = {2: b"{not json", 6_999: b"[1, 2]", 11_998: b'{"onset": "soon"}'}
    body = [bad.get(i, line) for i, line in enumerate(good)]
    text = b"\n\n".join(body[:100]) + b"\n" + b"\n".join(body[100:])
    wh = Warehouse(tmp_path).create()
    folder = wh.raw_dir("events", EXP) / BATCH
    folder.mkdir(parents=True)
    kept = [orjson.loads(line)["id"] for i, line in enumerate(good) if i not in bad]
    for name, data in [
        ("00000.ndjson", text),
        ("00001.ndjson.gz", gzip.compress(text)),
        ("00002.ndjson.zst", rawfile.encode(text, "zstd")),
    ]:
        path = folder / name
        path.write_bytes(data)
        out = type_file(wh, dt, path)
        # physical line numbers: index 2 sits after two blank lines
        assert [q.line for q in out.quarantined] == [5, 7_000 + 99, 11_999 + 99]
        assert [q.text for q in out.quarantined] == [b.decode() for b in bad.values()]
        assert [r["id"] for r in out.rows] == kept


# Records with the field names and JSON types of the official SDK's test fixtures
# (values of our own): every one is typed, none quarantined.
SDK_SHAPED = {
    "events": [
        {"id": "e_1", "experimentId": "x_1", "roomId": "r_1", "participantId": "u_1",
         "onset": 2100, "timestamp": "2024-07-01T09:00:02.100Z", "category": "component",
         "componentType": "TextInput", "content": "some text", "stateId": "s_1"},
        {"id": "e_2", "experimentId": "x_1", "roomId": "r_1", "participantId": "u_2",
         "onset": 5570.5, "timestamp": "2024-07-01T09:00:05.570Z", "category": "system",
         "componentType": None, "content": "state_transition", "stateId": "s_2"},
    ],
    "ratings_sparse": [
        {"ratingId": "q_1", "participantId": "u_1", "timestamp": "2024-07-01T09:01:00.000Z",
         "onset": 9100, "rawOnset": 9115, "clockOffsetApplied": 15, "value": 61.25,
         "rawValue": 49, "scale": {"min": 0, "max": 80}, "type": "sparse", "stateId": "s_3",
         "stimulusId": "clip_1", "stimulusTime": 4000, "responseTime": 1900, "confidence": None,
         "metadata": {"question": "How calm?", "dimension": "calm", "componentType": "vas",
                      "sampleIndex": 0},
         "ratingEndOnset": 11000,
         "sparseRatingData": {"videoId": "clip_1", "pauseIndex": 0, "videoRelativeTime": 4000,
                              "pauseTimestamp": 1719824460000, "componentType": "vas",
                              "componentData": {"value": 49}, "previousRatings": None,
                              "mediaPauseOnset": 8800, "mediaResumeOnset": 11200,
                              "actualPauseDuration": 2400},
         "stateStartTime": "2024-07-01T09:00:00.000Z", "stateDuration": 45000},
    ],
    "recordings": [
        {"recordingId": "EG_1", "egressId": "EG_1", "participantId": "u_1",
         "participantName": "Bea", "startTime": "2024-07-01T09:00:05.000Z",
         "endTime": "2024-07-01T09:03:05.000Z", "duration": 180000, "videoOffset": 250,
         "url": "https://storage.example/rec/1.mp4",
         "downloadUrl": "https://storage.example/rec/1.mp4?X-Goog-Signature=zz",
         "fileSize": 2048, "format": "mp4", "status": "complete",
         "metadata": {"type": "video", "recordingType": "individual", "roomName": "r_1",
                      "experimentId": "x_1"}},
    ],
    "experiments": [
        {"id": "x_1", "name": "Calm Study", "description": "clips", "ownerEmail": "a@b.example",
         "roomCount": 3, "participantCount": 9, "createdAt": "2024-06-01T10:00:00.000Z",
         "updatedAt": "2024-06-02T10:00:00.000Z"},
    ],
    "deployments": [
        {"id": "d_1", "experimentId": "x_1", "name": "Pilot", "status": "active",
         "ownerId": "o_1", "ownerName": "Owner", "createdAt": "2024-06-01T10:00:00.000Z"},
    ],
}  # fmt: skip


@pytest.mark.parametrize("type_name", sorted(SDK_SHAPED))
def test_records_shaped_like_the_sdk_fixtures_are_all_typed(tmp_path, type_name):
    records = SDK_SHAPED[type_name]
    out = type_records(tmp_path, type_name, *records)
    assert out.quarantined == []
    assert len(out.rows) == len(records)
    assert not out.drift.type_changes  # every declared field converted
    if type_name == "ratings_sparse":
        assert out.rows[0]["rawValue"] == "49"
        assert out.rows[0]["rawOnset"] == 9115.0
    if type_name == "events":
        assert [r["onset"] for r in out.rows] == [2100.0, 5570.5]
