"""Bad input, generated from a fixed seed: the client, the landing and the normalizer never crash.

Three levels, each fed over real loopback HTTP or real files:
- the client's envelope parsing: arbitrary bodies and statuses, each an Envelope
  whose parts are usable, or a typed ApiError;
- a whole sync of malformed records (wrong types, missing fields, huge strings,
  deep nesting, odd unicode, integers beyond 64 bits) served by a small API
  server: every record lands, and each is then a DuckDB row or quarantined with
  its reason; pages that cannot be parsed at all (invalid UTF-8, NaN, nesting
  beyond any parser) fail their unit, reported, and nothing crashes;
- raw files as a person may leave them (any bytes per line), normalized into
  DuckDB: every line a row or a quarantined line.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from hs_sync.api.client import ApiClient, Envelope
from hs_sync.config import Config
from hs_sync.errors import HsSyncError
from hs_sync.extract.pages import _next_offset, total_of
from hs_sync.land import quarantine
from hs_sync.land.batch import BatchWriter
from hs_sync.load.transform import transform
from hs_sync.registry import BY_NAME, DATA_TYPES
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import data_files, file_bytes, make_config
from tests.warehouse_helpers import land, query

SEED = 20240917
KEY = "hst_test_" + "f" * 64
NOW = "2026-03-02T10:15:30.123Z"
BODIES = 400  # client-level cases
RECORDS = 1200  # malformed records served to a whole sync
RAW_LINES = 600  # raw lines per data type for the normalizer


# -- generators -----------------------------------------------------------------


def _deep(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def _weird_value(rng: random.Random) -> Any:
    """Any JSON value a broken server might put where something else belongs."""
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            2**63,
            10**30,
            -(10**30),
            1.5,
            1e308,
            -0.0,
            "",
            " ",
            "x" * rng.choice([1, 1000, 300_000]),
            "\u0000nul",
            "\u202e\u200b🎬 Grüße",
            "2024-13-45T99:99:99Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "1970-01-01T00:00:00",
            [],
            [1, "a", None],
            {},
            {"nested": {"deeper": [1, {"x": None}]}},
            _deep(rng.choice([10, 300, 700])),
        ]
    )


def _event(i: int, exp: str) -> dict[str, Any]:
    return {
        "id": f"evt_{i:05d}",
        "experimentId": exp,
        "roomId": f"room_{i % 7}",
        "participantId": f"pt_{i % 13}",
        "onset": 100 * i,
        "timestamp": f"2026-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
        "category": "component",
        "eventType": "component.complete",
        "componentType": None,
        "content": {"text": "ok", "n": i},
        "stateId": "s1",
        "stateName": "Intro",
        "participantRole": "host",
        "response": None,
    }


def _malformed(rng: random.Random, record: dict[str, Any]) -> dict[str, Any]:
    """The record with one to three fields wrong, missing or added."""
    record = dict(record)
    for _ in range(rng.randint(1, 3)):
        move = rng.random()
        field = rng.choice(list(record) or ["id"])
        if move < 0.55:
            record[field] = _weird_value(rng)
        elif move < 0.8:
            record.pop(field, None)
        else:
            record[rng.choice(["zz_new", "🎬", "", "a" * 200, "_extra"])] = _weird_value(rng)
    return record


def _unparsable(rng: random.Random, good: bytes) -> bytes:
    """A body no JSON parser accepts, made from a good one."""
    choice = rng.randrange(5)
    if choice == 0:
        return good.replace(b'"ok"', b'"o\xff\xfek"', 1)  # invalid UTF-8
    if choice == 1:
        return good.replace(b'"onset":', b'"onset":NaN,"x":', 1)
    if choice == 2:
        return b'{"data":[' + b"[" * 1100 + b"]" * 1100 + b"]}"  # beyond any parser's depth
    if choice == 3:
        return good[: rng.randrange(1, max(2, len(good)))]  # truncated
    return b"<html><body>502 Bad Gateway</body></html>"


# -- a loopback server answering from a function ----------------------------------

Answer = Callable[[str, dict[str, str]], tuple[int, bytes, str]]


class _Server:
    """HTTP on 127.0.0.1: `answer(path, query) -> (status, body, content type)`."""

    def __init__(self, answer: Answer):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                outer.paths.append(url.path)
                status, body, ctype = answer(url.path, query)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.paths: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v3"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _config(base_url: str, root, **changes: Any) -> Config:
    """`make_config` for a loopback server of this module: quicker retries, two attempts."""
    server = SimpleNamespace(api_key=KEY, base_url=base_url)
    quick = dict(retry_floor_seconds=0.001, retry_max_wait_seconds=0.01, max_attempts=2)
    return make_config(server, root, timeout_seconds=10, **{**quick, **changes})


# -- 1. the client's parser ---------------------------------------------------------


def _random_body(rng: random.Random) -> tuple[int, bytes, str]:
    status = rng.choice([200] * 12 + [201, 204, 302, 400, 401, 403, 404, 418, 429, 500, 503])
    records = [_malformed(rng, _event(i, "exp_x")) for i in range(rng.randint(0, 5))]
    metadata = rng.choice(
        [
            {"timestamp": _weird_value(rng), "pagination": _weird_value(rng)},
            {
                "timestamp": NOW,
                "pagination": {k: _weird_value(rng) for k in ("total", "hasMore", "nextOffset")},
                "_warnings": _weird_value(rng),
            },
            _weird_value(rng),
        ]
    )
    payload = rng.choice(
        [
            {"data": records, "metadata": metadata},
            {"data": _weird_value(rng), "metadata": metadata},
            {"metadata": metadata},
            {"status": "error", "error": _weird_value(rng)},
            {"status": "error", "error": {"code": _weird_value(rng), "message": _weird_value(rng)}},
            records,
            _weird_value(rng),
        ]
    )
    try:
        body = orjson.dumps(payload)
    except TypeError:  # beyond orjson (deep, big integers)
        body = json.dumps(payload).encode()
    if rng.random() < 0.25:
        body = _unparsable(rng, body)
    ctype = rng.choice(["application/json", "text/html", "text/plain; charset=latin-1", ""])
    return status, body, ctype


def test_the_client_turns_any_body_into_an_envelope_or_a_typed_error(tmp_path):
    rng = random.Random(SEED)
    cases = [_random_body(rng) for _ in range(BODIES)]
    outcomes = {"envelope": 0, "typed error": 0}
    with _Server(lambda path, q: cases[int(path.rsplit("/", 1)[1])]) as server:
        config = _config(server.base_url, tmp_path / "wh", max_attempts=1)
        warehouse = Warehouse(tmp_path / "wh").create()
        with ApiClient(config) as client:
            for n in range(BODIES):
                try:
                    page = client.get(f"case/{n}", {"limit": 5})
                    _use(page, warehouse, n)
                    outcomes["envelope"] += 1
                except HsSyncError as exc:
                    assert KEY not in str(exc)
                    outcomes["typed error"] += 1
    assert outcomes["envelope"] > BODIES // 4 and outcomes["typed error"] > BODIES // 10, outcomes
    print(f"\nfuzz: {BODIES} bodies: {outcomes}")


def _use(page: Envelope, warehouse: Warehouse, n: int) -> None:
    """What the extraction does with a page: read its parts, land its records."""
    assert isinstance(page.records, list)
    assert page.pagination is None or isinstance(page.pagination, dict)
    assert all(isinstance(w, str) for w in page.warnings)
    total_of(page)
    _next_offset(page, 0)
    events = BY_NAME["events"]
    writer = BatchWriter(warehouse, events, "exp_x", f"case{n}", "experiment", "exp_x")
    records = [r for r in page.records if isinstance(r, dict)]
    writer.add(Envelope(page.path, page.params, records, page.metadata, page.server_time), NOW)
    writer.flush()
    as_sent = BatchWriter(warehouse, events, "exp_x", f"sent{n}", "experiment", "exp_x")
    as_sent.add(page, NOW)  # the page as the client made it (records unparsed, when it could)
    as_sent.flush()
    assert as_sent.rows == page.count


# -- 2. a whole sync of malformed records --------------------------------------------


def _fake_api(pages: dict[str, list[bytes]]) -> Answer:
    """check-access, health and `data/events/experiment/<id>` served page by page."""

    def answer(path: str, query: dict[str, str]) -> tuple[int, bytes, str]:
        parts = path.split("/")[3:]  # after /api/v3
        if parts == ["health"]:
            return 200, orjson.dumps({"status": "healthy", "timestamp": NOW}), "application/json"
        if parts[:2] == ["data", "check-access"]:
            body = {"data": {"canView": True, "canExport": True}, "metadata": {"timestamp": NOW}}
            return 200, orjson.dumps(body), "application/json"
        if parts[:3] == ["data", "events", "experiment"] and parts[3] in pages:
            limit = int(query.get("limit", 1000))
            index = int(query.get("offset", 0)) // limit
            bodies = pages[parts[3]]
            if index < len(bodies):
                return 200, bodies[index], "application/json"
        body = {"status": "error", "error": {"code": "NOT_FOUND", "message": "no such thing"}}
        return 404, orjson.dumps(body), "application/json"

    return answer


def _pages(records: list[dict[str, Any]], limit: int) -> list[bytes]:
    bodies = []
    for start in range(0, max(len(records), 1), limit):
        rows = records[start : start + limit]
        more = start + limit < len(records)
        pagination = {
            "total": len(records),
            "returned": len(rows),
            "limit": limit,
            "offset": start,
            "hasMore": more,
            "nextOffset": start + limit if more else None,
        }
        payload = {"data": rows, "metadata": {"timestamp": NOW, "pagination": pagination}}
        try:
            bodies.append(orjson.dumps(payload))
        except TypeError:
            bodies.append(json.dumps(payload).encode())
    return bodies


@pytest.mark.slow
def test_a_sync_of_malformed_records_quarantines_or_reports_every_one(tmp_path):
    rng = random.Random(SEED + 1)
    limit = 100
    good = [_event(i, "exp_fuzz") for i in range(RECORDS)]
    bad = [_malformed(rng, r) if rng.random() < 0.6 else r for r in good]
    poison = _pages([_event(i, "exp_poison") for i in range(3 * limit)], limit)
    poison[1] = _unparsable(random.Random(SEED), poison[1])  # the second page, every time
    pages = {"exp_fuzz": _pages(bad, limit), "exp_poison": poison}
    root = tmp_path / "wh"
    with _Server(_fake_api(pages)) as server:
        config = _config(
            server.base_url,
            root,
            page_size=limit,
            experiments=("exp_fuzz", "exp_poison"),
            types=("events",),
        )
        summary = sync(config)

    # The poisoned page failed its unit, reported; the run went on.
    assert summary.exit_code == 1
    assert set(summary.errors) == {"events/exp_poison"}, summary.errors
    assert "not JSON" in summary.errors["events/exp_poison"]
    # Every malformed record landed exactly as served ...
    events = BY_NAME["events"]
    landed = [
        line
        for path in data_files(root, events)
        if "exp_fuzz" in str(path)
        for line in file_bytes(path).splitlines()
    ]
    assert len(landed) == RECORDS
    # ... and is either a DuckDB row or a quarantined line with its reason.
    report = summary.transform["types"]["events"]
    quarantined = [
        q for q in quarantine.rows(Warehouse(root), "events") if "exp_fuzz" in q["raw_file"]
    ]
    poison_landed = sum(
        len(file_bytes(path).splitlines())
        for path in data_files(root, events)
        if "exp_poison" in str(path)
    )
    assert poison_landed in (0, limit)  # whole pages before the bad one, if any
    assert report["rows_read"] + report["quarantined"] == RECORDS + poison_landed
    assert len(quarantined) == report["quarantined"] > RECORDS // 10
    assert all(q["reason"] and q["text"] for q in quarantined)
    wh = Warehouse(root)
    (stored,) = query(wh, "SELECT count(DISTINCT _key) FROM events")[0]
    (total,) = query(wh, "SELECT count(*) FROM events")[0]
    assert stored == total == report["rows_unique"] > RECORDS // 3
    untouched = sum(1 for r in bad if r in good)
    assert untouched > 0
    (kept,) = query(
        wh,
        "SELECT count(*) FROM events WHERE id IN (SELECT unnest(?))",
        [[r["id"] for r in bad if r in good]],
    )[0]
    assert kept == untouched  # no good record was lost beside the bad ones
    print(
        f"\nfuzz: {RECORDS} records ({RECORDS - untouched} malformed) synced: "
        f"{report['rows_read']} rows, {report['quarantined']} quarantined; poisoned page reported"
    )


# -- 3. raw lines as anyone may leave them ----------------------------------------------


def _raw_line(rng: random.Random, record: dict[str, Any]) -> bytes:
    kind = rng.random()
    if kind < 0.5:
        record = _malformed(rng, record)
    try:
        line = orjson.dumps(record)
    except TypeError:
        line = json.dumps(record).encode()
    if kind > 0.85:
        line = rng.choice(
            [
                line[: len(line) // 2],
                line.replace(b'"', b"'", 2),
                line.replace(b":", b":\xff", 1),
                b"NaN",
                b"[1,2,3]",
                b'"just a string"',
                b"[" * 1030 + b"]" * 1030,
                bytes(rng.randrange(256) for _ in range(40)).replace(b"\n", b" "),
            ]
        )
    return line


@pytest.mark.slow
def test_raw_files_of_any_bytes_normalize_into_rows_or_quarantine(sim, tmp_path):
    rng = random.Random(SEED + 2)
    wh = Warehouse(tmp_path / "wh").create()
    served = {}
    for dt in DATA_TYPES:
        truth = sim.dataset.records(dt.path)[:RAW_LINES]
        lines = [_raw_line(rng, r) for r in truth]
        lines = [line for line in lines if line.strip()]
        land(wh, dt.name, lines)
        served[dt.name] = len(lines)

    report = transform(wh, DATA_TYPES)

    for dt in DATA_TYPES:
        r = report["types"][dt.name]
        assert r["rows_read"] + r["quarantined"] == served[dt.name], dt.name
        assert len(quarantine.rows(wh, dt.name)) == r["quarantined"], dt.name
        (count,) = query(wh, f'SELECT count(*) FROM "{dt.name}"')[0]
        assert count == r["rows_unique"], dt.name
    assert report["quarantined"] > 0
    print(
        f"\nfuzz: {sum(served.values())} raw lines over {len(DATA_TYPES)} types: "
        f"{report['quarantined']} quarantined, the rest typed"
    )


def test_a_number_beyond_a_double_is_kept_as_its_text_in_a_row(tmp_path):
    """A value no double holds lands as its text; its row is typed, the value NULL in
    its column and kept in `_extra`, and the page is not lost."""
    rows = [_event(i, "exp_big") for i in range(5)]
    (body,) = _pages(rows, 100)
    body = body.replace(b'"onset":200,', b'"onset":1e400,', 1)
    root = tmp_path / "wh"
    with _Server(_fake_api({"exp_big": [body]})) as server:
        config = _config(
            server.base_url, root, page_size=100, experiments=("exp_big",), types=("events",)
        )
        summary = sync(config)
    assert summary.exit_code == 0, summary.errors
    (landed,) = data_files(root, BY_NAME["events"])
    assert b'"onset":"1e400",' in file_bytes(landed)
    assert quarantine.rows(Warehouse(root), "events") == []
    got = query(Warehouse(root), "SELECT id, onset, _extra FROM events ORDER BY id")
    assert [r[0] for r in got] == [r["id"] for r in rows]
    (odd,) = [r for r in got if r[2] is not None]
    assert odd[1] is None and orjson.loads(odd[2]) == {"onset": "1e400"}
    assert summary.drift["events"]["type_changes"][0]["field"] == "onset"


def test_an_integer_beyond_64_bits_is_landed_exactly_and_kept_in_extra(tmp_path):
    rows = [_event(i, "exp_big") for i in range(3)]
    (body,) = _pages(rows, 100)
    body = body.replace(b'"onset":100,', b'"onset":18446744073709551617,', 1)
    root = tmp_path / "wh"
    with _Server(_fake_api({"exp_big": [body]})) as server:
        config = _config(
            server.base_url, root, page_size=100, experiments=("exp_big",), types=("events",)
        )
        summary = sync(config)
    assert summary.exit_code == 0, summary.errors
    (landed,) = data_files(root, BY_NAME["events"])
    assert b'"onset":18446744073709551617,' in file_bytes(landed)
    got = query(Warehouse(root), "SELECT onset, _extra FROM events WHERE _extra IS NOT NULL")
    assert [(onset, json.loads(extra)) for onset, extra in got] == [
        (None, {"onset": 18446744073709551617})
    ]
