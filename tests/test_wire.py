"""Pages read as the bytes the API sent: split exactly, and landed as parsed pages are."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from hs_sync.api.client import ApiClient, Envelope
from hs_sync.api.wire import lacks_names, pick, split
from hs_sync.config import Config
from hs_sync.land.batch import BatchWriter
from hs_sync.registry import BY_NAME, REDACTED
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import data_files, file_bytes

RECORDS = [
    {"id": "a", "timestamp": "2026-03-01T10:00:00.000Z", "text": "caf\u00e9 \u2603"},
    {"id": 7, "timestamp": "2026-03-01T10:00:01.000Z", "nested": {"x": [1, 2.5, None]}},
    {"timestamp": "2026-03-01T10:00:02.000Z", "big": 123456789012345678901234567890},
]


def test_a_page_splits_into_each_records_text_as_sent():
    texts = [b'{"id":"a" , "x":"\\u00e9"}', b"[1,2]", b'"text"', b"null"]
    body = b'{"status":"success","data":[' + b" ,".join(texts) + b'],"metadata":{"n":1}}'
    metadata, array, lines = split(body)
    assert metadata == {"n": 1}
    assert [bytes(line) for line in lines] == texts
    assert orjson.loads(memoryview(array)) == [orjson.loads(t) for t in texts]


@pytest.mark.parametrize(
    "body",
    [
        b'{"status":"success","data":[{"id":\n"a"}]}',  # a newline inside a record
        b'{"status":"success","data":[{"id":"\xff"}]}',  # not UTF-8
        b'{"status":"error","data":[],"error":{"code":"X"}}',
        b'{"status":"success","data":{"id":"a"}}',  # one object, not an array
        b'{"status":"success","data":null}',
        b'{"status":"success","metadata":{}}',
        b'[{"id":"a"}]',  # no envelope
        b'{"status":"success","data":[{"id":NaN}]}',
        b'{"status":"success","data":[{"id":"a"}]',  # truncated
        b'{"status":"success","data":[' + b"[" * 3000 + b"]" * 3000 + b"]}",
        b"<html>502</html>",
    ],
)
def test_other_bodies_are_left_to_the_whole_parse(body):
    assert split(body) is None


def test_pick_reads_named_fields_or_gives_up():
    array = b'[{"id":"a","t":"x","z":1},{"\\u0069d":2},{"t":{"deep":[1]}}]'
    assert pick(array, ("id", "t")) == [("a", "x"), (2, None), (None, {"deep": [1]})]
    assert pick(b'[{"id":"a"},"not an object"]', ("id",)) is None
    assert pick(b'[{"id":1e400}]', ("id",)) is None


def test_lacks_names_sees_a_name_at_any_depth_or_spelled_with_escapes():
    assert lacks_names(b'[{"downloadPath":"/a"},{"m":{"x":1}}]', ("url", "downloadUrl"))
    assert not lacks_names(b'[{"m":{"url":"https://x"}}]', ("url",))
    assert not lacks_names(b'[{"\\u0075rl":"https://x"}]', ("url",))
    assert not lacks_names(b'[{"a":"url"}]', ("url",))  # a value: parsed, to be safe


def _config(sim, root) -> Config:
    return Config(api_key=sim.api_key, base_url=sim.base_url, warehouse=root)


def _land(warehouse, dt, exp, label, page, **kw) -> tuple[BatchWriter, list[dict]]:
    writer = BatchWriter(warehouse, dt, exp, label, "experiment", exp, **kw)
    writer.add(page, "2026-03-01T00:00:00.000Z")
    writer.flush()
    writer.close()
    rows = [orjson.loads(line) for f in writer.files for line in file_bytes(f.path).splitlines()]
    return writer, rows


@pytest.mark.parametrize("type_name", ["events", "ratings_continuous"])  # keyed, keyless
def test_a_page_lands_as_sent_exactly_as_its_parsed_records_do(sim, tmp_path, type_name):
    dt = BY_NAME[type_name]
    warehouse = Warehouse(tmp_path / "wh").create()
    exp = sim.dataset.experiment_ids[0]
    with ApiClient(_config(sim, tmp_path / "wh")) as client:
        page = client.get(
            dt.url_path("experiment", exp), {"limit": 300, "sort": dt.cursor, "order": "asc"}
        )
    assert page.lines is not None and page.count == 300
    parsed = Envelope(page.path, page.params, list(page.records), page.metadata)
    records = page.records
    tail_from = parse_time(records[200][dt.cursor])
    skip = frozenset(dt.key_of(r) for r in records[10:40])
    kw = {"skip_keys": skip, "tail_from": tail_from - timedelta(milliseconds=1)}
    fast, fast_rows = _land(warehouse, dt, exp, "sent", page, **kw)
    slow, slow_rows = _land(warehouse, dt, exp, "parsed", parsed, **kw)
    assert fast_rows == slow_rows == records[:10] + records[40:]
    assert (fast.skipped, fast.tail, fast._max_cursor) == (
        slow.skipped,
        slow.tail,
        slow._max_cursor,
    )
    assert fast.skipped == 30 and len(fast.tail) >= 100
    # The page as sent is landed byte for byte.
    (sent_file,) = [f for f in data_files(tmp_path / "wh", dt) if "-sent" in str(f.parent)]
    kept = [bytes(line) for line in page.lines[:10] + page.lines[40:]]
    assert file_bytes(sent_file) == b"\n".join(kept) + b"\n"


def test_records_the_client_did_not_parse_are_parsed_when_asked(sim, tmp_path):
    with ApiClient(_config(sim, tmp_path / "wh")) as client:
        exp = sim.dataset.experiment_ids[0]
        page = client.get(BY_NAME["chat"].url_path("experiment", exp), {"limit": 50})
    assert page.lines is not None
    assert page.records == [orjson.loads(memoryview(line)) for line in page.lines]
    assert page.count == len(page.records) == len(page.lines)


def test_recordings_land_as_sent_unless_a_record_carries_a_signed_url(sim, tmp_path):
    dt = BY_NAME["recordings"]
    warehouse = Warehouse(tmp_path / "wh").create()
    plain = signed = None
    with ApiClient(_config(sim, tmp_path / "wh")) as client:
        for exp in sim.dataset.experiment_ids:
            for offset in range(0, 400, 10):
                page = client.get(dt.url_path("experiment", exp), {"limit": 10, "offset": offset})
                if not page.count:
                    break
                legacy = b"downloadUrl" in bytes(memoryview(page.array))
                if legacy and signed is None:
                    signed = (exp, page)
                elif not legacy and plain is None:
                    plain = (exp, page)
    assert plain and signed, "the simulator serves both kinds of recordings"
    exp, page = plain
    writer, rows = _land(warehouse, dt, exp, "plain", page, track_cursor=False)
    (file,) = writer.files
    assert page.data is None  # never parsed
    assert file_bytes(file.path) == b"\n".join(bytes(line) for line in page.lines) + b"\n"
    exp, page = signed
    writer, rows = _land(warehouse, dt, exp, "signed", page, track_cursor=False)
    assert rows == dt.redact(page.records)
    assert any(r.get("downloadUrl") == REDACTED or r.get("url") == REDACTED for r in rows)
    landed = b"".join(file_bytes(f.path) for f in writer.files)
    urls = [r.get("downloadUrl") or r.get("url") for r in page.records]
    assert all(url.encode() not in landed for url in urls if url)
    assert b"sig=" not in landed
