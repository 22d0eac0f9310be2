"""Helpers for the media tests: a synced warehouse, the simulator's view of recordings."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from hs_sync.config import Config, load_config
from hs_sync.run import sync

TYPES = ("recordings", "rooms", "participants")


def media_config(sim, tmp_path: Path, **overrides) -> Config:
    overrides.setdefault("retry_floor_seconds", 0.05)
    return load_config(
        env={},
        api_key=sim.api_key,
        base_url=sim.base_url,
        warehouse=tmp_path / "wh",
        types=TYPES,
        **overrides,
    )


def synced(sim, tmp_path: Path, **overrides) -> Config:
    """Sync the recordings metadata into a fresh warehouse; return its config."""
    config = media_config(sim, tmp_path, **overrides)
    summary = sync(config.replace(media=False))  # the tests download themselves
    assert not summary.errors, summary.errors
    return config


def served(sim, experiment: str | None = None) -> dict[str, dict]:
    """The recordings the simulator serves now, by id, with the experiment and room the
    client gives them (the API's records carry neither; the simulator's ground truth
    knows both). Values a record has (e.g. overridden ones) are kept, as the client does."""
    out = {}
    for exp in sim.dataset.experiment_ids:
        if experiment not in (None, exp):
            continue
        rows = sim.dataset.records("recordings", exp)
        rooms = sim.dataset.room_ids("recordings", exp)
        for row, room in zip(rows, rooms, strict=True):
            filled = dict(row)
            for key, value in (("experimentId", exp), ("roomId", room)):
                if filled.get(key) is None:
                    filled[key] = value
            out[filled["recordingId"]] = filled
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(config: Config) -> dict[str, dict]:
    """The `media_files` table of the live DuckDB database, by recording id."""
    con = duckdb.connect(str(config.warehouse / "hyperstudy.duckdb"), read_only=True)
    try:
        cur = con.execute("SELECT * FROM media_files")
        names = [d[0] for d in cur.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    finally:
        con.close()


def media_requests(sim, recording_id: str) -> list[dict]:
    return [r for r in sim.requests if r["path"] == f"/media/{recording_id}"]


def mint_requests(sim, recording_id: str) -> list[dict]:
    return [
        r
        for r in sim.requests
        if r["path"].startswith("/api/v3/data/recordings/download/")
        and r["path"].endswith(f"/{recording_id}")
    ]


def pick(sim, n: int = 1, *, kind: str | None = None) -> list[dict]:
    """`n` complete recordings with a downloadPath (largest first), from one experiment."""
    rows = [r for r in served(sim).values() if r["status"] == "complete" and r.get("downloadPath")]
    if kind:
        rows = [r for r in rows if r["metadata"]["type"] == kind]
    exp = rows[0]["experimentId"]
    rows = sorted((r for r in rows if r["experimentId"] == exp), key=lambda r: -r["fileSize"])
    assert len(rows) >= n
    return rows[:n]
