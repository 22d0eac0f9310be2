"""Normalize: raw records become the registry's typed columns, value for value."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone

import orjson
import pyarrow as pa
import pytest

from hs_sync import registry
from hs_sync.land import rawfile
from hs_sync.load.normalize import normalize_file, normalize_lines, synced_at_of
from hs_sync.warehouse import Warehouse
from tests.warehouse_helpers import event, land

SYNCED = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def lines(*records) -> list[bytes]:
    return [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]


def test_events_are_typed_with_utc_timestamps_negative_onsets_unicode_and_json():
    dt = registry.get("events")
    rec = event(
        1,
        onset=-12345,
        timestamp="2024-05-01T12:30:00.250+02:00",
        content={"text": "naïve café ☕", "list": [1, None, "x"]},
        response="just a string",
        stateName="",
    )
    out = normalize_lines(dt, lines(rec), "raw/events/x.ndjson", SYNCED)
    assert out.quarantined == []
    assert out.table.schema == dt.arrow_schema
    row = out.table.to_pylist()[0]
    assert row["onset"] == -12345
    assert row["timestamp"] == datetime(2024, 5, 1, 10, 30, 0, 250000, tzinfo=timezone.utc)
    assert orjson.loads(row["content"]) == rec["content"]
    assert orjson.loads(row["response"]) == "just a string"
    assert row["componentType"] is None
    assert row["stateName"] == ""
    assert row["_key"] == dt.key_of(rec) == "evt_0001"
    assert row["_extra"] is None
    assert row["_synced_at"] == SYNCED
    assert row["_raw_file"] == "raw/events/x.ndjson"


def test_nested_fields_are_flattened_and_kept_whole():
    dt = registry.get("ratings_sparse")
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
    row = normalize_lines(dt, lines(rec), "f", SYNCED).table.to_pylist()[0]
    assert (row["scaleMin"], row["scaleMax"]) == (1.0, 9.0)
    assert row["question"] == "Wie intensiv?"
    assert row["dimension"] == "intensity"
    assert row["value"] == 7.0 and isinstance(row["value"], float)
    assert row["rawValue"] == "7"
    assert orjson.loads(row["scale"]) == {"min": 1, "max": 9}
    assert orjson.loads(row["sparseRatingData"]) == rec["sparseRatingData"]
    assert row["stateStartTime"] == datetime(2024, 5, 1, 9, 59, tzinfo=timezone.utc)
    assert row["confidence"] is None and row["stimulusId"] is None


def test_lists_and_booleans():
    chat = registry.get("chat")
    rec = {"messageId": "m1", "senderId": "a", "content": "hi 👋", "recipientIds": ["b", "c"],
           "timestamp": "2024-05-01T10:00:00Z"}  # fmt: skip
    table = normalize_lines(
        chat, lines(rec, {**rec, "messageId": "m2", "recipientIds": []}), "f", SYNCED
    ).table
    assert table.schema.field("recipientIds").type == pa.list_(pa.string())
    assert table.column("recipientIds").to_pylist() == [["b", "c"], []]
    comps = registry.get("components")
    out = normalize_lines(
        comps,
        lines({"componentId": "c1", "completed": False, "config": {"a": [1]}, "timestamp": None}),
        "f",
        SYNCED,
    )
    assert out.table.column("completed").to_pylist() == [False]
    assert out.table.column("timestamp").to_pylist() == [None]


def test_derived_keys_follow_the_registry():
    dt = registry.get("ratings_continuous")
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
    table = normalize_lines(dt, lines(*recs), "f", SYNCED).table
    assert table.column("_key").to_pylist() == [dt.key_of(r) for r in recs]
    parts = registry.get("participants")
    rec = {"id": "pt_1", "roomId": "room_1", "role": "host"}
    assert normalize_lines(parts, lines(rec), "f", SYNCED).table["_key"][0].as_py() == "pt_1|room_1"


def test_unknown_fields_go_to_extra_and_are_reported_as_drift():
    dt = registry.get("events")
    out = normalize_lines(dt, lines(event(1, newField={"a": 1}, other=2), event(2)), "f", SYNCED)
    assert out.quarantined == []
    extras = out.table.column("_extra").to_pylist()
    assert orjson.loads(extras[0]) == {"newField": {"a": 1}, "other": 2}
    assert extras[1] is None
    assert out.drift.as_dict()["new_fields"] == {"newField": 1, "other": 1}


def test_rows_that_cannot_be_typed_are_quarantined_with_the_reason():
    dt = registry.get("events")
    raw = lines(
        event(1),
        event(2, onset="soon"),  # changed type
        b"{not json",
        b'["an", "array"]',
        event(3, timestamp="yesterday"),
        event(4, onset=1.5),
        event(5),
    )
    out = normalize_lines(dt, raw, "f", SYNCED)
    assert out.table.column("id").to_pylist() == ["evt_0001", "evt_0005"]
    reasons = {q.line: q.reason for q in out.quarantined}
    assert sorted(reasons) == [2, 3, 4, 5, 6]
    assert "onset" in reasons[2] and "string" in reasons[2]
    assert "not JSON" in reasons[3]
    assert "not a JSON object" in reasons[4]
    assert "timestamp" in reasons[5]
    assert "onset" in reasons[6]
    assert out.quarantined[1].text == "{not json"
    changes = {(c["field"], c["seen"]) for c in out.drift.as_dict()["type_changes"]}
    assert changes == {("onset", "string"), ("timestamp", "string"), ("onset", "number")}


def test_time_series_rows_without_a_timestamp_are_quarantined():
    dt = registry.get("events")
    out = normalize_lines(dt, lines(event(1), event(2, timestamp=None)), "f", SYNCED)
    assert out.table.num_rows == 1
    assert "timestamp" in out.quarantined[0].reason


def test_timestamps_in_other_iso_forms_and_epoch_milliseconds():
    dt = registry.get("events")
    out = normalize_lines(
        dt,
        lines(
            event(1, timestamp="2024-05-01T10:00:00"),  # no zone: UTC
            event(2, timestamp="2024-05-01T10:00:00.123456789Z"),
            event(3, timestamp=1714557600000),
        ),
        "f",
        SYNCED,
    )
    assert out.quarantined == []
    assert out.table.column("timestamp").to_pylist() == [
        datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc),
        datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=timezone.utc),
        datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc),
    ]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_compressed_raw_files_and_the_landing_time(tmp_path, compression):
    wh = Warehouse(tmp_path).create()
    batch = "20240502T030405123456Z-w1"
    path = land(wh, "events", [event(1), event(2)], batch=batch, compression=compression)
    out = normalize_file(registry.get("events"), path, "r", synced_at_of(path))
    assert out.table.num_rows == 2
    assert synced_at_of(path) == datetime(2024, 5, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


def test_signed_urls_lose_their_signature_below_raw():
    dt = registry.get("recordings")
    rec = {"recordingId": "rec_1", "downloadUrl": "https://media.example/rec_1.mp4?expires=9&sig=abc",
           "status": "complete"}  # fmt: skip
    row = normalize_lines(dt, lines(rec), "f", SYNCED).table.to_pylist()[0]
    assert row["downloadUrl"] == "https://media.example/rec_1.mp4"
    assert "sig=" not in str(row)


def test_a_big_file_is_read_in_slices_with_its_line_numbers_kept(tmp_path):
    # Several read blocks and slices, blank lines between, no newline at the end.
    dt = registry.get("events")
    good = [orjson.dumps(event(i, content={"pad": "x" * 300})) for i in range(12_000)]
    bad = {2: b"{not json", 6_999: b"[1, 2]", 11_998: b'{"id": "e_bad", "onset": "soon"}'}
    body = [bad.get(i, line) for i, line in enumerate(good)]
    text = b"\n\n".join(body[:100]) + b"\n" + b"\n".join(body[100:])
    for name, data in [
        ("x.ndjson", text),
        ("x.ndjson.gz", gzip.compress(text)),
        ("x.ndjson.zst", rawfile.encode(text, "zstd")),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        out = normalize_file(dt, path, name, SYNCED)
        assert [q.line for q in out.quarantined] == [3, 7_000, 11_999]
        assert [q.text for q in out.quarantined] == [b.decode() for b in bad.values()]
        kept = [orjson.loads(line)["id"] for i, line in enumerate(good) if i not in bad]
        assert out.table["id"].to_pylist() == kept
        whole = normalize_lines(dt, [line for line in text.split(b"\n") if line], name, SYNCED)
        assert out.table.equals(whole.table)
