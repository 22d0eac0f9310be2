"""Media safety: hostile ids stay inside media/ without collisions; no signed URL or key
is left in the warehouse, the logs or the output; the `media` command."""

from __future__ import annotations

import logging

import duckdb
import orjson
import pyarrow.parquet as pq
from click.testing import CliRunner

from hs_sync.cli import main
from hs_sync.media import download_media
from hs_sync.scrub import REDACTED
from tests.extract_helpers import file_bytes
from tests.media_helpers import manifest, pick, sha256, synced

HOSTILE = [
    {
        "recordingId": "../../../../etc/passwd",
        "roomId": "../..",
        "participantId": "/etc",
        "experimentId": "../../outside",
    },
    {"recordingId": "/absolute/path", "roomId": ".", "participantId": ".."},
    {"recordingId": "nul\x00byte", "roomId": "room\x00x", "participantId": "p\x00"},
    {"recordingId": "r" * 400, "roomId": "R" * 300, "participantId": "é" * 200},
    {"recordingId": "CaseOnly", "roomId": "same-room", "participantId": "same-pt"},
    {"recordingId": "caseonly", "roomId": "same-room", "participantId": "same-pt"},
    {"recordingId": "CASEONLY", "roomId": "SAME-ROOM", "participantId": "same-pt"},
    {"recordingId": "a/b\\c:d*e?f", "roomId": "~", "participantId": "con", "format": "../mp4"},
]


def test_hostile_ids_and_names_stay_inside_the_media_folder_and_never_collide(
    sim_factory, tmp_path
):
    sim = sim_factory()  # its data changes
    sources = pick(sim, len(HOSTILE))
    for src, fields in zip(sources, HOSTILE, strict=True):
        sim.override_recording(src["recordingId"], **fields)
    config = synced(sim, tmp_path, experiments=(sources[0]["experimentId"],))
    outside_before = _files(tmp_path, config)
    summary = download_media(config)
    assert summary.errors == {}

    rows = manifest(config)
    media = (config.warehouse / "media").resolve()
    paths = []
    for src, fields in zip(sources, HOSTILE, strict=True):
        row = rows[fields["recordingId"]]
        assert row["status"] == "downloaded"
        path = config.warehouse / row["path"]
        assert path.resolve().is_relative_to(media)
        assert ".." not in row["path"].split("/") and "\x00" not in row["path"]
        assert all(len(part.encode()) <= 255 for part in path.parts)
        data = sim.dataset.media_bytes(src["recordingId"])
        assert path.read_bytes() == data and row["sha256"] == sha256(data)
        paths.append(row["path"])
    assert len({p.lower() for p in paths}) == len(HOSTILE)  # distinct, even ignoring case
    assert rows["a/b\\c:d*e?f"]["path"].endswith(".mp4")  # a hostile format falls back
    # Nothing was written anywhere but the warehouse's own folders.
    assert _files(tmp_path, config) == outside_before
    on_disk = {p.relative_to(config.warehouse).as_posix() for p in media.rglob("*") if p.is_file()}
    assert on_disk == {r["path"] for r in rows.values() if r["status"] == "downloaded"}


def _files(tmp_path, config):
    """Files under tmp_path outside the warehouse's raw/parquet/state/media/db."""
    keep = {"raw", "parquet", "state", "media", "quarantine"}
    out = set()
    for p in tmp_path.rglob("*"):
        rel = p.relative_to(config.warehouse) if p.is_relative_to(config.warehouse) else None
        if rel is not None and (
            rel.parts[:1] and rel.parts[0] in keep or rel.name.startswith("hyper")
        ):
            continue
        if p.is_file():
            out.add(p)
    return out


def test_no_signed_url_or_key_in_the_warehouse_logs_or_output(sim, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    rec = pick(sim)[0]
    sim.media_url_ttl = 1.5
    sim.media_fault(rec["recordingId"], "drop", delay=2.0)  # a resume and a re-mint too
    config = synced(sim, tmp_path)
    summary = download_media(config)
    assert summary.errors == {} and summary.reminted >= 1
    result = CliRunner().invoke(
        main,
        ["media", "--warehouse", str(config.warehouse), "--base-url", sim.base_url, "--json"],
        env={"HYPERSTUDY_API_KEY": sim.api_key},
    )
    assert result.exit_code == 0, result.output

    # Every signature the storage saw (minted links and legacy links alike).
    sigs = {r["params"]["sig"] for r in sim.requests if r["path"].startswith("/media/")}
    assert len(sigs) > summary.downloaded / 2
    secrets = [*sigs, sim.api_key, "sig=", "expires="]
    texts = [caplog.text, result.output, orjson.dumps(summary.to_dict()).decode()]
    texts += _warehouse_texts(config.warehouse)
    for text in texts:
        for secret in secrets:
            assert secret not in text
    # the storage requests were logged by httpx, with their query strings redacted
    assert "HTTP Request: GET" in caplog.text
    assert "/media/" in caplog.text and f"?{REDACTED}" in caplog.text


def _warehouse_texts(root):
    """Every readable text of the warehouse, decompressed: Parquet and DuckDB by value."""
    out = []
    for path in root.rglob("*"):
        if not path.is_file() or path.is_relative_to(root / "media"):
            continue
        if path.suffix == ".parquet":
            out.append(str(pq.read_table(path).to_pylist()))
        elif path.suffix == ".duckdb":
            con = duckdb.connect(str(path), read_only=True)
            try:
                for (table,) in con.execute(
                    "SELECT table_name FROM information_schema.tables"
                ).fetchall():
                    out.append(str(con.execute(f'SELECT * FROM "{table}"').fetchall()))  # noqa: S608
            finally:
                con.close()
        else:
            out.append(file_bytes(path).decode("utf-8", "replace"))
    assert any(REDACTED in t for t in out)  # legacy links were landed redacted
    return out


def test_media_command_prints_a_summary_and_exits_by_outcome(sim, tmp_path):
    rec = pick(sim)[0]
    config = synced(sim, tmp_path, experiments=(rec["experimentId"],))
    sim.media_fault(rec["recordingId"], "resize", times=100)
    args = ["media", "--warehouse", str(config.warehouse), "--base-url", sim.base_url]
    args += ["--experiment", rec["experimentId"]]
    env = {"HYPERSTUDY_API_KEY": sim.api_key}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1  # one file failed verification
    assert "downloaded" in result.output and "size mismatch" in result.output
    assert f"error: {rec['recordingId']}" in result.output

    result = CliRunner().invoke(main, [*args, "--json"], env=env)
    out = orjson.loads(result.output)
    assert out["exit_code"] == result.exit_code == 1
    assert out["up_to_date"] > 0 and out["downloaded"] == 0

    refused = CliRunner().invoke(main, args, env={"HYPERSTUDY_API_KEY": "hst_test_" + "x" * 64})
    assert refused.exit_code == 2 and "x" * 64 not in refused.output


def test_a_download_path_that_is_a_full_url_never_gets_the_api_key(sim_factory, tmp_path):
    sim = sim_factory()  # its data changes
    hostile, normal = pick(sim, 2)
    rid = hostile["recordingId"]
    # An absolute URL (here: back to the simulator) would carry the key to that host.
    sim.override_recording(rid, downloadPath=sim.base_url + hostile["downloadPath"])
    config = synced(sim, tmp_path, experiments=(hostile["experimentId"],))
    sim.reset_requests()
    summary = download_media(config)
    row = manifest(config)[rid]
    assert row["status"] == "skipped" and "not a path of the API" in row["reason"]
    assert not [r for r in sim.requests if r["path"].endswith(f"/{rid}")]
    assert manifest(config)[normal["recordingId"]]["status"] == "downloaded"
    assert summary.skipped == 1 and summary.errors == {}
