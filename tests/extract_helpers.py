"""Helpers for the extraction tests: read what the sync landed, and what the simulator holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from hs_simulator import extras
from hs_sync.config import Config
from hs_sync.land import rawfile
from hs_sync.registry import DATA_TYPES, DEFAULT_TYPES, DataType, Mode
from hs_sync.warehouse import Warehouse, safe_part


def make_config(sim: Any, warehouse: Path, **changes: Any) -> Config:
    """A Config for a test against `sim`: fast retries, everything else default."""
    values = dict(
        api_key=sim.api_key,
        base_url=sim.base_url,
        warehouse=warehouse,
        retry_floor_seconds=0.01,
        retry_max_wait_seconds=2.0,
        budget_per_hour=100_000,
        budget_per_minute=100_000,
        lock_timeout_seconds=1.0,
        media=False,  # media downloads have their own tests
    )
    values.update(changes)
    return Config(**values)


def file_bytes(path: Path) -> bytes:
    """A file's bytes as a reader sees them: raw data files decompressed."""
    return b"".join(rawfile.blocks(path)) if rawfile.is_data_file(path.name) else path.read_bytes()


def data_files(root: Path, dt: DataType) -> list[Path]:
    """Every visible data file of a type, in landing order (batch name, then sequence)."""
    base = Warehouse(root).root / "raw" / dt.name
    files = [p for p in base.glob("experiment_id=*/*/*") if rawfile.is_data_file(p.name)]
    return sorted(files, key=lambda p: (p.parent.name, p.name))


def landed(root: Path, dt: DataType) -> dict[str, dict[str, dict]]:
    """experiment folder -> key -> record, later files winning (as the normalizer reads)."""
    out: dict[str, dict[str, dict]] = {}
    for path in data_files(root, dt):
        exp = path.parent.parent.name.split("=", 1)[1]
        rows = out.setdefault(exp, {})
        for line in rawfile.lines(path):
            record = orjson.loads(line)
            rows[dt.key_of(record)] = record
    return out


def landed_lines(root: Path, dt: DataType) -> int:
    return sum(len(list(rawfile.lines(p))) for p in data_files(root, dt))


def expected(sim: Any, dt: DataType, exp: str) -> dict[str, dict]:
    """The simulator's ground truth for one experiment, by key, secrets redacted as landed."""
    if dt.name == "experiments":
        records = [r for r in sim.dataset.records(dt.path) if r.get("id") == exp]
    else:
        records = sim.dataset.records(dt.path, experiment_id=exp)
    return {dt.key_of(r): r for r in dt.redact(records)}


def assert_landed_equals_simulator(sim: Any, root: Path, types=DEFAULT_TYPES) -> int:
    """Every type, every experiment: the landed rows (by key) equal the simulator's."""
    compared = 0
    for dt in types:
        got = landed(root, dt)
        for exp in sim.dataset.experiment_ids:
            want = expected(sim, dt, exp)
            have = got.get(exp, {})
            missing = set(want) - set(have)
            extra = set(have) - set(want)
            assert not missing, f"{dt.name}/{exp}: {len(missing)} rows missing"
            assert not extra, f"{dt.name}/{exp}: {len(extra)} unexpected rows"
            for key, record in want.items():
                assert have[key] == record, f"{dt.name}/{exp}/{key} differs"
            compared += len(want)
    return compared


def files_under(root: Path) -> list[Path]:
    return [p for p in Path(root).rglob("*") if p.is_file()]


def collecting_rooms(sim) -> dict[str, str]:
    """Rooms whose data can still grow (not completed), by id, with their experiment."""
    return {
        r["id"]: r["experimentId"]
        for r in sim.dataset.records("rooms")
        if r["status"] != "completed"
    }


def assert_only_collecting_rooms_read(sim, collecting: dict[str, str]) -> None:
    for dt in (t for t in DATA_TYPES if t.mode is Mode.ROOM):
        requests = [r for r in sim.requests if f"/data/{dt.path}/" in r["path"]]
        read_rooms = {r["path"].rsplit("/", 1)[1] for r in requests if "/room/" in r["path"]}
        read_experiments = {
            r["path"].rsplit("/", 1)[1]
            for r in requests
            if "/experiment/" in r["path"] and r["params"].get("limit") != "1"
        }
        assert read_rooms <= set(collecting)  # never a completed, unchanged room
        for room, exp in collecting.items():
            assert room in read_rooms or exp in read_experiments  # a running session is re-read


def served_rows(sim: Any, dt: DataType) -> list[dict]:
    """What the API serves of `dt` now, one record per key, with the experiment and room
    of records that lack them (sparse ratings, recordings) from the simulator's ground
    truth: the warehouse must fill them in (registry `experiment_from_pull`, `room_from`);
    [] for a type a default sync does not pull."""
    return list(served_by_key(sim, dt).values())


def served_by_key(sim: Any, dt: DataType) -> dict[str, dict]:
    """`served_rows` by the key of each record as served."""
    if not dt.default:
        return {}
    rows: dict[str, dict] = {}
    for exp in sim.dataset.experiment_ids:
        if dt.data_endpoint and "experiment" not in dt.scopes:  # served per room only
            pairs = [
                (r, room["id"])
                for room in sim.dataset.records("rooms", exp)
                for r in extras.records(sim.dataset, dt.path, exp, room["id"])
            ]
        elif dt.name == "experiments":
            pairs = [(r, None) for r in sim.dataset.records(dt.path) if r.get("id") == exp]
        else:
            records = sim.dataset.records(dt.path, experiment_id=exp)
            rooms: list = [None] * len(records)
            if "roomId" in dt.declared_names and any(r.get("roomId") is None for r in records):
                rooms = sim.dataset.room_ids(dt.path, exp)  # the simulator's ground truth
            pairs = list(zip(records, rooms, strict=True))
        redacted = dt.redact([r for r, _ in pairs])
        for record, (_, room) in zip(redacted, pairs, strict=True):
            filled = dict(record)
            if "experimentId" in dt.declared_names and filled.get("experimentId") is None:
                filled["experimentId"] = exp
            if room is not None and "roomId" in dt.declared_names and filled.get("roomId") is None:
                filled["roomId"] = room
            rows[dt.row_key(safe_part(exp), record)] = filled
    return rows
