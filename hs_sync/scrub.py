"""Scrubbing: no API key and no signed URL is stored, logged or printed.

One mark, `REDACTED`, stands for whatever was cut, everywhere in the program.
Every string from the server (values and object keys, at any depth) is
scrubbed: the API key, as sent or percent-encoded, becomes `[redacted]`, and a
URL whose query carries a signature or an expiry (`X-Goog-Signature`,
`X-Amz-Signature`, `Signature=`, `Expires=`, `token=`, `sig=`, ...) has its
query and fragment replaced by `?[redacted]`. `needs_scrub` tells from a body's
bytes, cheaply, whether anything in it could need scrubbing, so clean pages are
not walked. `redact_queries` cuts every URL's query the same way (log lines
and error text about storage links); secret fields of records are landed as
`REDACTED` (`registry.DataType.redact`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

REDACTED = "[redacted]"  # the one mark of anything cut for being a secret

# Query parameters that make a URL a credential (matched case-insensitively).
SIGNING_PARAMS = (
    "x-goog-signature",
    "x-goog-credential",
    "x-goog-expires",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-amz-expires",
    "signature",
    "expires",
    "key-pair-id",
    "policy",
    "googleaccessid",
    "token",
    "access_token",
    "sig",
)
_PARAMS = "|".join(re.escape(p) for p in SIGNING_PARAMS)
_BASE = r"(?P<base>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]*)"  # scheme://host/path
# Any URL in text, its query and fragment as group `rest` (what log redaction cuts).
URL = re.compile(_BASE + r"(?P<rest>[?#][^\s\"'<>]*)?")
# A URL whose query holds one of SIGNING_PARAMS; group `base` is kept.
_SIGNED_URL = re.compile(
    _BASE + r"(?P<query>\?(?:[^\s#\"'<>]*?[&;])?(?:" + _PARAMS + r")=[^\s\"'<>]*)",
    re.IGNORECASE,
)
# In a body's bytes: a signing parameter after `?`/`&`, or printable ASCII written as a
# \u escape (which no ordinary encoder does, but would hide a `?` or the key from a byte scan).
_SIGNING = re.compile(rb"[?&;](?:" + _PARAMS.encode() + rb")=", re.IGNORECASE)
_ESCAPED = re.compile(rb"\\u00[2-7][0-9a-fA-F]")


class Scrubber:
    """Scrubs text and parsed JSON of one API key and (unless `urls=False`) of
    signed-URL queries."""

    def __init__(self, key: str | None, *, urls: bool = True):
        self._urls = urls
        forms = {key, quote(key, safe="")} if key else set()
        self._forms = sorted((f for f in forms if f), key=len, reverse=True)
        self._needles = [f.encode() for f in self._forms]

    def text(self, value: str) -> str:
        """`value` without the key and without any signed URL's query."""
        for form in self._forms:
            if form in value:
                value = value.replace(form, REDACTED)
        if self._urls and "://" in value:
            value = strip_signed_urls(value)
        return value

    def value(self, obj: Any) -> Any:
        """A copy of parsed JSON with every string (keys included) scrubbed; same shape."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {
                (self.text(k) if isinstance(k, str) else k): self.value(v) for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        return obj

    def needs_scrub(self, body: bytes) -> bool:
        """Whether `body` might hold the key or a signed URL (False: store it as sent)."""
        if any(needle in body for needle in self._needles):
            return True
        # A URL is only where `://` is, unless escapes (`\/`, `\u00..`) hide it: the
        # memchr tests for a backslash and `/` find nothing in a typical page, so the regular
        # expressions run only on a page that might match them.
        if b"\\" in body:
            return _ESCAPED.search(body) is not None or _SIGNING.search(body) is not None
        return b"/" in body and b"://" in body and _SIGNING.search(body) is not None


def strip_signed_urls(text: str) -> str:
    """`text` with the query and fragment of every URL that carries a signature redacted."""
    return _SIGNED_URL.sub(lambda m: m.group("base") + "?" + REDACTED, text)


def redact_queries(text: str, keep: Iterable[str] = ()) -> str:
    """`text` with the query and fragment of every URL redacted, but for URLs that
    start with one of `keep` (the API's own, whose queries hold no secret)."""
    keep = tuple(keep)

    def cut(match: re.Match) -> str:
        base, rest = match.group("base"), match.group("rest")
        if not rest or (keep and base.startswith(keep)):
            return match.group(0)
        return base + "?" + REDACTED

    return URL.sub(cut, text)
