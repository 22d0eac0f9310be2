"""A hostile server (tests/hostile_server.py) against the client and whole syncs.

Each test makes the proxy in front of the simulator misbehave one way: echo the key
in error codes, details and warnings; hide signed URLs in nested fields; never end
`hasMore`; trickle a body; send nonsense numbers; a gzip bomb.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import orjson
import pytest
from click.testing import CliRunner

from hs_sync.api.client import ApiClient
from hs_sync.cli import main
from hs_sync.config import Config
from hs_sync.errors import ApiError, BudgetExhausted, ServerTooSlow
from hs_sync.run import sync
from hs_sync.scrub import REDACTED
from tests.extract_helpers import file_bytes, make_config
from tests.hostile_server import HostileServer, Reply, gzip_bomb

KEY = "hst_test_" + "Hk7" * 20 + "q"
SIGNED = "https://storage.example.com/b/clip.mp4?X-Goog-Signature=deadbeef42&X-Goog-Expires=900"
SIGNED_AMZ = "https://s3.example.com/o.webm?X-Amz-Credential=c&X-Amz-Signature=cafe0101"
PLAIN = "https://docs.example.com/page?section=2"


@pytest.fixture
def hostile():
    """A hostile server with no upstream: each test's `rewrite` answers everything."""
    server = HostileServer().start()
    try:
        yield server
    finally:
        server.stop()


def _client(server: HostileServer, tmp_path: Path, **changes) -> ApiClient:
    values = dict(api_key=KEY, base_url=server.base_url, warehouse=tmp_path / "wh")
    values.update(retry_floor_seconds=0.01, retry_max_wait_seconds=1.0, max_attempts=2)
    return ApiClient(Config(**{**values, **changes}))


def _page(reply: Reply, data, **pagination) -> Reply:
    reply.status = 200
    reply.json = {"status": "success", "data": data, "metadata": {"pagination": pagination}}
    return reply


# -- scrubbing ---------------------------------------------------------------


def test_key_echoed_in_error_code_details_and_warnings_is_scrubbed(hostile, tmp_path):
    def rewrite(reply: Reply) -> Reply:
        if reply.path == "forbidden":
            reply.status = 403
            reply.json = {
                "status": "error",
                "error": {
                    "code": f"NO_SCOPE_{KEY}",
                    "message": f"key {KEY} lacks a scope",
                    "details": {"required": KEY, "deep": [{"k": f"x{KEY}y"}]},
                },
            }
            return reply
        reply = _page(reply, [{"id": "a", "note": f"sent by {KEY}"}], total=1)
        reply.json = {**reply.json, "metadata": {"_warnings": [f"key {KEY} is old"]}}
        return reply

    hostile.rewrite = rewrite
    with _client(hostile, tmp_path) as client:
        page = client.get("items")
        with pytest.raises(ApiError) as caught:
            client.get("forbidden")
    err = caught.value
    seen = orjson.dumps([page.records, page.metadata, str(err), err.code, err.details])
    assert KEY.encode() not in seen
    assert REDACTED.encode() in seen and err.code == f"NO_SCOPE_{REDACTED}"
    assert err.details == {"required": REDACTED, "deep": [{"k": f"x{REDACTED}y"}]}


def test_signed_urls_at_any_depth_lose_their_query_plain_urls_keep_it(hostile, tmp_path):
    record = {
        "id": "r1",
        "signedUrl": SIGNED,
        "metadata": {"downloadUrl": SIGNED_AMZ, "more": [{"u": f"see {SIGNED} now"}]},
        "docs": PLAIN,
        SIGNED: "a key that is a signed URL",
    }
    hostile.rewrite = lambda reply: _page(reply, [record], total=1)
    with _client(hostile, tmp_path) as client:
        got = client.get("items").records[0]
        kept = client.get("items", signed_urls=True).records[0]
    text = orjson.dumps(got).decode()
    assert "Signature" not in text and "Expires" not in text and "Credential" not in text
    assert got["signedUrl"] == f"https://storage.example.com/b/clip.mp4?{REDACTED}"
    assert got["metadata"]["downloadUrl"] == f"https://s3.example.com/o.webm?{REDACTED}"
    assert got["metadata"]["more"][0]["u"] == f"see {got['signedUrl']} now"
    assert got["docs"] == PLAIN
    assert kept["signedUrl"] == SIGNED  # the media step downloads through these


def test_signed_urls_behind_json_escapes_are_scrubbed_too(hostile, tmp_path):
    # Encoders such as PHP's write `/` as `\/`: the body's bytes then hold no `://`.
    escaped = SIGNED.replace("/", "\\/")
    hidden = SIGNED_AMZ.replace(":", "\\u003a")
    body = f'{{"status":"success","data":[{{"id":"r1","a":"{escaped}","b":"{hidden}"}}]}}'

    def rewrite(reply: Reply) -> Reply:
        reply.status, reply.body = 200, body.encode()
        return reply

    hostile.rewrite = rewrite
    with _client(hostile, tmp_path) as client:
        got = client.get("items").records[0]
    assert got["a"] == f"https://storage.example.com/b/clip.mp4?{REDACTED}"
    assert got["b"] == f"https://s3.example.com/o.webm?{REDACTED}"


def _all_text(root: Path) -> str:
    """Every file's bytes under root (raw decompressed), plus every Parquet and DuckDB
    row as text (their own storage compresses strings)."""
    parts = []
    for path in root.rglob("*"):
        if path.is_file():
            parts.append(file_bytes(path).decode("utf-8", "replace"))
    con = duckdb.connect()
    for path in root.rglob("*.parquet"):
        parts.append(str(con.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall()))
    db = root / "hyperstudy.duckdb"
    if db.exists():
        con.execute("ATTACH ? AS wh (READ_ONLY)", [str(db)])
        for schema, table in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'wh'"
        ).fetchall():
            parts.append(str(con.execute(f'SELECT * FROM wh."{schema}"."{table}"').fetchall()))
    con.close()
    return "\n".join(parts)


def test_a_sync_stores_no_echoed_key_and_no_signed_query_anywhere(sim, tmp_path):
    """The key echoed in warnings and a 403's details, signed URLs nested in events:
    none reaches raw, Parquet, DuckDB, the state, meta.json or the --json summary."""

    def rewrite(reply: Reply) -> Reply:
        if reply.status != 200 or not reply.body.startswith(b"{"):
            return reply
        body = reply.json
        if reply.path.startswith("data/ratings/sparse"):
            reply.status = 403
            reply.json = {
                "status": "error",
                "error": {
                    "code": f"SCOPE_{sim.api_key}",
                    "message": "missing scope",
                    "details": {"required": f"data:read {sim.api_key}"},
                },
            }
            return reply
        if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
            body["metadata"]["_warnings"] = [f"deprecated key {sim.api_key}"]
        if reply.path.startswith("data/events") and isinstance(body.get("data"), list):
            for row in body["data"]:
                row["signedUrl"] = SIGNED
                row["metadata"] = {"downloadUrl": SIGNED_AMZ, "plain": PLAIN}
        reply.json = body
        return reply

    with HostileServer(sim.base_url, rewrite) as proxy:
        root = tmp_path / "wh"
        env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": proxy.base_url}
        result = CliRunner().invoke(
            main,
            ["sync", "--json", "--no-media", "--warehouse", str(root)]
            + ["--type", "events", "--type", "ratings_sparse", "--type", "experiments"],
            env=env,
        )
    assert result.exit_code in (0, 1), result.output
    summary = orjson.loads(result.stdout)
    assert "ratings_sparse" in summary["skipped_types"]
    assert any(f"deprecated key {REDACTED}" in w for w in summary["warnings"])
    stored = _all_text(root)
    assert "storage.example.com/b/clip.mp4" in stored and PLAIN in stored
    for secret in (sim.api_key, "deadbeef42", "cafe0101", "X-Goog", "X-Amz"):
        assert secret not in result.output, secret
        assert secret not in stored, secret


# -- bounds ------------------------------------------------------------------


def test_endless_has_more_ends_the_unit_with_an_error(sim, tmp_path):
    """A server that answers `hasMore: true` for ever stops at the first total plus a
    margin; the unit fails with one line, the run goes on."""

    def rewrite(reply: Reply) -> Reply:
        if reply.path.startswith("data/events/experiment") and reply.status == 200:
            body = reply.json
            body["metadata"]["pagination"].update(hasMore=True, total=50)
            body["metadata"]["pagination"].pop("nextOffset", None)
            reply.json = body
        return reply

    with HostileServer(sim.base_url, rewrite) as proxy:
        config = make_config(sim, tmp_path / "wh", base_url=proxy.base_url, page_size=50)
        config = config.replace(types=("events",))
        summary = sync(config, transform=False)
        event_pages = [r for r in proxy.requests if r.path.startswith("data/events/experiment")]
    assert summary.errors, summary
    assert all("beyond pagination.total" in e for e in summary.errors.values()), summary.errors
    # total 50 + a margin of 2 pages, per experiment (and each re-read of a window)
    assert len(event_pages) <= len(summary.experiments) * 4 * 3


def test_a_trickled_body_hits_the_overall_deadline(hostile, tmp_path):
    def rewrite(reply: Reply) -> Reply:
        reply = _page(reply, [{"id": "x" * 200}], total=1)
        reply.trickle_seconds = 0.05  # 20 bytes/s: each read is quick, the whole is not
        return reply

    hostile.rewrite = rewrite
    started = time.monotonic()
    with _client(
        hostile, tmp_path, timeout_seconds=5, request_deadline_seconds=1, max_attempts=1
    ) as c:
        with pytest.raises(ServerTooSlow, match="request_deadline_seconds"):
            c.get("items")
    took = time.monotonic() - started
    assert took < 3
    print(f"\na 20 bytes/s body stopped after {took:.2f} s (deadline 1 s, read timeout 5 s)")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300", "-5", "soon"])
def test_nonsense_retry_after_is_clamped_never_a_crash(hostile, tmp_path, value):
    calls = []

    def rewrite(reply: Reply) -> Reply:
        calls.append(1)
        if len(calls) == 1:
            reply.status = 429
            reply.headers["retry-after"] = value
            reply.json = {"status": "error", "error": {"code": "RATE_LIMITED", "message": "slow"}}
            return reply
        return _page(reply, [{"id": "a"}], total=1)

    hostile.rewrite = rewrite
    with _client(hostile, tmp_path) as client:
        if value == "1e300":  # a day at most: beyond the longest wait, the run stops cleanly
            with pytest.raises(BudgetExhausted):
                client.get("items")
        else:
            assert client.get("items").records == [{"id": "a"}]


def test_huge_and_nonsense_pagination_numbers_are_ignored(hostile, tmp_path):
    hostile.rewrite = lambda reply: _page(
        reply, [{"id": "a"}], total=10**30, offset=-3, nextOffset=2.5, hasMore=False
    )
    with _client(hostile, tmp_path) as client:
        page = client.get("items")
    assert page.pagination["total"] is None and page.pagination["offset"] is None
    assert page.metadata["pagination"]["total"] == 10**30  # as sent, for the record


def test_huge_total_in_a_sync_is_no_crash(sim, tmp_path):
    def rewrite(reply: Reply) -> Reply:
        if reply.path.startswith("data/events/experiment") and reply.status == 200:
            body = reply.json
            body["metadata"]["pagination"]["total"] = 10**30
            reply.json = body
        return reply

    with HostileServer(sim.base_url, rewrite) as proxy:
        config = make_config(sim, tmp_path / "wh", base_url=proxy.base_url)
        summary = sync(config.replace(types=("events",)), transform=False)
    assert summary.total_rows > 0 and not summary.errors, summary.errors


def test_a_gzip_bomb_is_refused_without_inflating_it(hostile, tmp_path):
    bomb = gzip_bomb(200 * 1024 * 1024)
    assert len(bomb) < 300_000

    def rewrite(reply: Reply) -> Reply:
        reply.status, reply.body = 200, bomb
        reply.headers = {"content-type": "application/json", "content-encoding": "gzip"}
        return reply

    hostile.rewrite = rewrite
    with _client(hostile, tmp_path, max_body_bytes=8 * 1024 * 1024) as client:
        with pytest.raises(ApiError, match="exceeds 8,388,608 bytes"):
            client.get("items")
    assert len(hostile.requests) == 1  # refused, not retried
    print(f"\na {len(bomb):,}-byte gzip body inflating to 200 MiB refused at the 8 MiB cap")


# -- printing ----------------------------------------------------------------

FORGED = "evil\nsynced 999 experiment(s) in 0.0 s: forged\x00\x1b[2J\u202e"
LONG_ID = "L" * 10_000


def test_human_output_escapes_control_characters_and_shortens_long_ids(sim, tmp_path):
    """Ids with a newline, NUL, ESC or 10,000 characters: escaped and shortened in the
    human summary; exact in --json."""

    def rewrite(reply: Reply) -> Reply:
        if reply.path == "experiments" and reply.status == 200:
            body = reply.json
            body["data"] += [{"id": FORGED}, {"id": LONG_ID}]
            reply.json = body
        return reply

    with HostileServer(sim.base_url, rewrite) as proxy:
        env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": proxy.base_url}
        args = ["sync", "--no-media", "--type", "experiments"]
        runner = CliRunner()
        human = runner.invoke(main, [*args, "--warehouse", str(tmp_path / "a")], env=env)
        exact = runner.invoke(main, [*args, "--json", "--warehouse", str(tmp_path / "b")], env=env)
    assert human.exit_code == 0, human.output
    out = human.output
    assert not any(line.startswith("synced 999") for line in out.splitlines())
    assert "\x00" not in out and "\x1b" not in out and "\u202e" not in out
    assert "evil\\nsynced 999" in out and "\\x00\\x1b[2J" in out
    assert max(len(line) for line in out.splitlines() if "experiment " in line) < 200
    assert "L" * 60 + "…" in out and "L" * 61 not in out
    skipped = orjson.loads(exact.stdout)["skipped_experiments"]
    assert FORGED in skipped and LONG_ID in skipped
