"""Recordings complete on the server but not safely on disk.

Reads the media downloader's manifest table `media_files` (one row per
recording: its local path, bytes, sha256, status and reason). Every complete
recording must have a `downloaded` file whose size equals the manifest and the
API's `fileSize` and whose sha256 equals the manifest's. Skipped, not failed,
while the warehouse has no `media_files` table (media not downloaded yet).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hs_sync import db
from hs_sync.checks.context import CheckContext, check_sql
from hs_sync.checks.model import Issue

MEDIA_TABLE = "media_files"
# manifest column -> names accepted for it (first match wins)
COLUMNS = {
    "recording": ("recording_id", "recordingId"),
    "path": ("local_path", "path", "localPath"),
    "bytes": ("bytes", "size", "size_bytes"),
    "sha256": ("sha256",),
    "status": ("status",),
    "reason": ("reason",),
}
DOWNLOADED = "downloaded"
CHUNK = 1 << 20


class NoManifest(Exception):
    """The media manifest is absent or lacks a column the check needs."""


def manifest_columns(ctx: CheckContext) -> dict[str, str | None]:
    if not ctx.table_exists(MEDIA_TABLE):
        raise NoManifest(f"no {MEDIA_TABLE} table yet (media not downloaded: `hs-sync media`)")
    have = set(ctx.columns(MEDIA_TABLE))
    found: dict[str, str | None] = {}
    for role, names in COLUMNS.items():
        found[role] = next((n for n in names if n in have), None)
        if found[role] is None and role != "reason":
            raise NoManifest(f"{MEDIA_TABLE} has no {role} column (tried {', '.join(names)})")
    return found


def recordings_on_disk(ctx: CheckContext) -> list[Issue]:
    cols = manifest_columns(ctx)
    ids = {role: db.quote(name) for role, name in cols.items() if name}
    text = check_sql(
        "recordings_on_disk",
        media=db.quote(MEDIA_TABLE),
        reason="m." + ids["reason"] if "reason" in ids else "NULL::VARCHAR",
        **{k: v for k, v in ids.items() if k != "reason"},
    )
    out = []
    for rec_id, exp, room, pt, api_size, path, size, sha, status, reason in ctx.con.execute(
        text
    ).fetchall():
        problem = _problem(ctx, path, api_size, size, sha, status, reason)
        if problem:
            out.append(Issue("recording", rec_id, exp, room, pt, problem))
    return out


def _problem(ctx, path, api_size, size, sha, status, reason) -> str | None:
    if status is None:
        return "complete on the server, not downloaded"
    if status != DOWNLOADED:
        return f"complete on the server, download {status}" + (f": {reason}" if reason else "")
    if not path:
        return "downloaded but the manifest has no path"
    file = Path(path)
    if not file.is_absolute():
        file = ctx.warehouse.root / file
    if not file.is_file():
        return f"missing on disk: {path}"
    on_disk = file.stat().st_size
    if size is not None and on_disk != size:
        return f"size mismatch: {on_disk} bytes on disk, {size} in the manifest"
    if api_size is not None and on_disk != api_size:
        return f"size mismatch: {on_disk} bytes on disk, fileSize {api_size} on the server"
    if sha and _sha256(file) != sha.lower():
        return "checksum mismatch: sha256 of the file differs from the manifest"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
