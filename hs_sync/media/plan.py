"""Which recordings there are, read from the warehouse, and where each one's file goes.

Metadata comes from the DuckDB `recordings` table (read-only connection), or,
when the database has none yet, from the newest raw records (a later landing
of a recording wins). Paths are `media/<experiment>/<room>/<participant>/
<recordingId>.<ext>`, every part built with `safe_part`, so no API value can
escape the media folder or collide with another (also on case-insensitive disks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import orjson

from hs_sync import db
from hs_sync.land import rawfile
from hs_sync.load.context import PARTICIPANTS
from hs_sync.registry import media_type
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse, safe_part

# Extension when `format` is missing or not a plain token, by the recording's media type.
EXT_BY_MEDIA_TYPE = {"video": "mp4", "audio": "ogg"}
_EXT = re.compile(r"[a-z0-9]{1,10}")


@dataclass(frozen=True)
class Recording:
    """The fields of one recording that the downloader needs."""

    id: str
    experiment_id: str | None
    room_id: str | None
    participant_id: str | None
    status: str | None
    file_size: int | None
    format: str | None
    media_type: str | None
    download_path: str | None
    pulled_under: str | None = None  # the raw folder's experiment (safe_part of the id synced)

    def in_experiments(self, wanted: set[str]) -> bool:
        """Whether the recording belongs to one of `wanted` (by its own field or by the
        experiment the sync pulled it under, which also covers a missing or odd field)."""
        if not wanted or self.experiment_id in wanted:
            return True
        return self.pulled_under is not None and self.pulled_under in {safe_part(w) for w in wanted}


def read_recordings(warehouse: Warehouse, experiments: Iterable[str] = ()) -> list[Recording]:
    """Every recording the warehouse knows (of `experiments`, when given), by id."""
    wanted = set(experiments)
    found = _from_duckdb(warehouse)
    if not found:
        found = _from_raw(warehouse)
    out = [r for r in found if r.in_experiments(wanted)]
    return sorted(out, key=lambda r: r.id)


def extension(rec: Recording) -> str:
    """`format` when it is a plain token (mp4, webm), else by media type, else `bin`."""
    fmt = (rec.format or "").strip().lower().lstrip(".")
    if _EXT.fullmatch(fmt):
        return fmt
    return EXT_BY_MEDIA_TYPE.get((rec.media_type or "").strip().lower(), "bin")


def media_file(warehouse: Warehouse, rec: Recording) -> Path:
    """The recording's file, always inside `<warehouse>/media`."""
    folder = warehouse.media_path(rec.experiment_id, rec.room_id, rec.participant_id, "_").parent
    path = folder / f"{safe_part(rec.id)}.{extension(rec)}"
    media_root = (warehouse.root / "media").resolve()
    if not path.resolve().is_relative_to(media_root):  # safe_part makes this unreachable
        raise ValueError(f"media path of recording {rec.id!r} escapes the media folder")
    return path


def relative(warehouse: Warehouse, path: Path) -> str:
    """A path as stored in the manifest: relative to the warehouse root, with `/`."""
    return path.relative_to(warehouse.root).as_posix()


# -- sources ----------------------------------------------------------------


def _from_duckdb(warehouse: Warehouse) -> list[Recording]:
    if not warehouse.db_path.exists():
        return []
    try:
        con = db.connect_readonly(warehouse)
    except duckdb.Error:
        return []
    try:
        have = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_name = 'recordings'"
        ).fetchone()[0]
        if not have:
            return []
        rows = con.execute(
            """
            SELECT recordingId,
                   coalesce(experimentId, json_extract_string(metadata, '$.experimentId')),
                   roomId, participantId, status, fileSize, format,
                   coalesce(mediaType, json_extract_string(metadata, '$.type')), downloadPath,
                   regexp_extract(_raw_file, '/experiment_id=([^/]*)/', 1)
            FROM recordings WHERE recordingId IS NOT NULL
            """
        ).fetchall()
    finally:
        con.close()
    return [
        Recording(*(_text(v) for v in r[:5]), _size(r[5]), *(_text(v) for v in r[6:])) for r in rows
    ]


def _from_raw(warehouse: Warehouse) -> list[Recording]:
    joined = _participant_rooms(warehouse.root / "raw" / PARTICIPANTS)
    latest: dict[str, Recording] = {}
    for experiment, record in _raw_records(warehouse.root / "raw" / media_type().name):
        rec = _from_record(record, experiment)
        if rec is None:
            continue
        if rec.room_id is None and rec.participant_id is not None:
            # SDK-shaped records carry no room: the participant's, as the transform does
            room = _room_at(joined.get((experiment, rec.participant_id), []), record)
            rec = replace(rec, room_id=room)
        latest[rec.id] = rec
    return list(latest.values())


def _participant_rooms(root: Path) -> dict[tuple[str, str], list[tuple[Any, str]]]:
    """(experiment folder, participant id) -> [(joinedAt, room id)] from raw participants."""
    out: dict[tuple[str, str], list[tuple[Any, str]]] = {}
    for experiment, record in _raw_records(root):
        pid, room = _text(record.get("id")), _text(record.get("roomId"))
        if pid and room:
            pair = (parse_time(record.get("joinedAt")), room)
            rooms = out.setdefault((experiment, pid), [])
            if pair not in rooms:
                rooms.append(pair)
    return out


def _room_at(rooms: list[tuple[Any, str]], record: dict[str, Any]) -> str | None:
    """The room joined last at or before the recording's start, else the first joined
    (the rule of `hs_sync.load.context.fill_rooms`)."""
    if not rooms:
        return None
    start = parse_time(record.get("startTime"))
    known = sorted((t, r) for t, r in rooms if t is not None)
    before = [r for t, r in known if start is not None and t <= start]
    if before:
        return before[-1]
    return known[0][1] if known else min(r for _, r in rooms)


def _raw_records(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Raw recording records in landing order (batch folders sort by landing time)."""
    if not root.is_dir():
        return
    for exp_dir in sorted(root.glob("experiment_id=*")):
        experiment = exp_dir.name.split("=", 1)[1]
        for file in sorted(exp_dir.glob("*/*.ndjson*")):
            if not rawfile.is_data_file(file.name):
                continue
            for line in rawfile.lines(file):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # the normalizer quarantines it; nothing to download
                if isinstance(record, dict):
                    yield experiment, record


def _from_record(record: dict[str, Any], experiment: str) -> Recording | None:
    rid = _text(record.get("recordingId"))
    if not rid:
        return None
    meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    return Recording(
        id=rid,
        experiment_id=_text(record.get("experimentId") or meta.get("experimentId")) or experiment,
        room_id=_text(record.get("roomId")),
        participant_id=_text(record.get("participantId")),
        status=_text(record.get("status")),
        file_size=_size(record.get("fileSize")),
        format=_text(record.get("format")),
        media_type=_text(meta.get("type")),
        download_path=_text(record.get("downloadPath")),
        pulled_under=experiment,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _size(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        return None
    return size if size >= 0 else None
