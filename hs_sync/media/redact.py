"""Keep signed URLs out of logs: httpx logs every request's full URL at INFO.

`install(api_base)` adds a filter to the `httpx` logger that
replaces the query string of any URL outside the API base (storage links
carry their signature there) with `?[redacted]` (`hs_sync/scrub.py`). Idempotent.
"""

from __future__ import annotations

import logging
import threading

from hs_sync.scrub import redact_queries

_lock = threading.Lock()


class RedactSignedUrls(logging.Filter):
    """Rewrites log records so no storage URL keeps its query string."""

    def __init__(self) -> None:
        super().__init__()
        self.api_bases: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error path
            return True
        clean = redact_queries(message, keep=self.api_bases)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_FILTER = RedactSignedUrls()


def install(api_base: str) -> RedactSignedUrls:
    """Redact storage URLs in httpx log records (API URLs are kept whole)."""
    with _lock:
        _FILTER.api_bases.add(api_base.rstrip("/") + "/")
        for name in ("httpx",):
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
    return _FILTER
