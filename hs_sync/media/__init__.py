"""Recording media: verified, resumable downloads into `media/` and the `media_files` manifest.

`download_media(config) -> MediaSummary` is the one entry point (the `media`
command, the sync and the Dagster asset call it). Modules: `plan` (metadata
and paths), `links` (signed URLs), `fetch` (one file), `manifest` (SQLite
source of truth, DuckDB copy), `redact` (no signed URL in logs), `run`.
"""

from __future__ import annotations

from hs_sync.media.run import MediaSummary, download_media

__all__ = ["MediaSummary", "download_media"]
