"""Recording media: deterministic bytes, signed short-lived URLs, HTTP Range parsing."""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass

from .plan import Recording

_MAGIC = {
    "mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    "webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01webm",
}


def media_bytes(seed: int, rec: Recording) -> bytes:
    """The file behind a recording: a container signature then seeded noise, `rec.size` long."""
    head = _MAGIC[rec.fmt]
    body = random.Random(f"{seed}:media:{rec.id}").randbytes(rec.size - len(head))
    return head + body


class Signer:
    """HMAC signatures for media URLs (the secret is per simulator, derived from the seed)."""

    def __init__(self, seed: int) -> None:
        self._secret = hashlib.sha256(f"media-secret:{seed}".encode()).digest()

    def sign(self, recording_id: str, expires: int) -> str:
        msg = f"{recording_id}:{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def valid(self, recording_id: str, expires: int, sig: str) -> bool:
        return hmac.compare_digest(self.sign(recording_id, expires), sig)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """`bytes=a-b` -> (first, last) inclusive; None = serve the whole file;
    "unsatisfiable" when the range lies outside the file. Multi-ranges are ignored
    (the whole file is served, which RFC 9110 allows)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    spec = header[len("bytes=") :].strip()
    first_s, _, last_s = spec.partition("-")
    try:
        if first_s == "":
            n = int(last_s)
            if n <= 0:
                return "unsatisfiable"
            return max(0, size - n), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError:
        return None
    if first >= size or last < first:
        return "unsatisfiable"
    return first, min(last, size - 1)


@dataclass
class MediaFault:
    """A scripted fault on one recording's file, for the next `times` GETs that serve bytes.

    `drop`: send the headers and half the body, wait `delay` seconds, close the
    connection. `resize`: serve the file `delta` bytes longer or shorter (with a
    matching Content-Length), as a storage object that does not match its metadata.
    """

    kind: str  # drop | resize
    times: int = 1
    delay: float = 0.0
    delta: int = -1000
