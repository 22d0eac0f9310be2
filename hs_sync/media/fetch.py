"""One recording's file: streamed to `.part`, resumed with Range, verified, renamed.

The body goes to `<file>.part` as the network delivers it (reads of at most
64 KiB: memory stays flat whatever the size) while sha256 is computed. A broken connection resumes from the
bytes already on disk with `Range: bytes=<n>-` (a `.part` left by an earlier
run is resumed too). A link the storage refuses (400/401/403/410: expired
or altered) is replaced by a freshly minted one and the download continues.
The total announced by Content-Length / Content-Range must equal the
metadata's `fileSize`, and the bytes received must equal both; only then is
the file fsynced and renamed to its final name. The storage client is a plain
httpx client that never carries the API key.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from hs_sync import __version__
from hs_sync.config import Config
from hs_sync.media.links import SignedUrl
from hs_sync.media.plan import Recording
from hs_sync.scrub import redact_queries
from hs_sync.warehouse import fsync_path

CHUNK = 256 * 1024
MAX_LINKS = 4  # signed links used for one file in one run (the first plus re-mints)
_REFUSED = (400, 401, 403, 410)  # how storage answers an expired or altered signed URL
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")

Mint = Callable[[bool], SignedUrl]  # mint(fresh) -> a signed URL
Progress = Callable[..., None]


@dataclass
class Result:
    """What one file's download came to."""

    status: str  # downloaded | failed | pending | skipped
    bytes: int | None = None
    sha256: str | None = None
    reason: str | None = None
    transferred: int = 0  # bytes received this run
    storage_requests: int = 0
    resumes: int = 0  # requests that continued a file with Range
    remints: int = 0
    server_failed: bool = False


class _Broken(Exception):
    """The transfer stopped early (connection, timeout, 5xx): resume it."""


class _Refused(Exception):
    """Storage refused the link (expired or altered): mint another."""


class _Fatal(Exception):
    """The file cannot be downloaded this run."""

    def __init__(self, reason: str, drop_part: bool = False):
        super().__init__(reason)
        self.drop_part = drop_part


class _Part:
    """The `.part` file being written and the sha256 of its bytes."""

    def __init__(self, path: Path, expected: int | None):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.offset = os.fstat(self.fd).st_size
        if expected is not None and self.offset > expected:
            self.restart()
        self.hasher = hashlib.sha256()
        done = 0
        while done < self.offset:  # an earlier run's bytes: hash them before appending
            block = os.pread(self.fd, min(CHUNK, self.offset - done), done)
            if not block:
                break
            self.hasher.update(block)
            done += len(block)

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view) :]
        self.hasher.update(chunk)
        self.offset += len(chunk)

    def restart(self) -> None:
        os.ftruncate(self.fd, 0)
        self.hasher = hashlib.sha256()
        self.offset = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def finish(self, dest: Path) -> None:
        os.fsync(self.fd)
        self.close()
        os.replace(self.path, dest)
        fsync_path(dest.parent)


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


class Fetcher:
    """Downloads files from signed URLs; one instance serves all worker threads."""

    def __init__(self, config: Config, progress: Progress | None = None):
        self.config = config
        self.progress = progress or (lambda *a, **k: None)
        self.http = httpx.Client(
            headers={"User-Agent": f"hs-sync/{__version__}", "Accept-Encoding": "identity"},
            timeout=httpx.Timeout(config.timeout_seconds, connect=min(config.timeout_seconds, 10)),
            limits=httpx.Limits(max_connections=config.media_concurrency + 2),
            follow_redirects=True,
        )

    def close(self) -> None:
        self.http.close()

    def fetch(self, rec: Recording, dest: Path, mint: Mint) -> Result:
        """Download `rec` to `dest`; LinkUnavailable from `mint` propagates."""
        url = mint(False)
        result = Result("failed")
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        part = _Part(part_path(dest), rec.file_size)
        self.progress("media_start", recording=rec.id, size=rec.file_size, offset=part.offset)
        links, failures = 1, 0
        try:
            while True:
                if rec.file_size is not None and part.offset == rec.file_size:
                    total = rec.file_size  # every byte is here (an earlier run's .part)
                    break
                before = part.offset
                try:
                    total = self._request(url, part, rec, result)
                except _Refused as exc:
                    if links >= MAX_LINKS:
                        raise _Fatal(
                            f"storage refused {links} fresh download links ({exc})"
                        ) from None
                    url = mint(True)
                    links += 1
                    result.remints += 1
                    continue
                except _Broken as exc:
                    failures += 1
                    if failures >= self.config.max_attempts:
                        raise _Fatal(
                            f"the transfer broke off {failures} times ({exc}); "
                            f"{part.offset} bytes kept for the next run"
                        ) from None
                    time.sleep(self._backoff(failures))
                    continue
                if total is None or part.offset >= total:
                    break
                if part.offset == before:  # a response that brought nothing: count it
                    failures += 1
                    if failures >= self.config.max_attempts:
                        raise _Fatal("storage keeps sending empty responses")
            self._verify(part, rec, total)
            part.finish(dest)
            result.status = "downloaded"
            result.bytes = part.offset
            result.sha256 = part.hasher.hexdigest()
            return result
        except _Fatal as exc:
            result.status, result.reason = "failed", str(exc)
            if exc.drop_part:
                part.close()
                part.path.unlink(missing_ok=True)
            return result
        finally:
            part.close()

    def _request(self, url: SignedUrl, part: _Part, rec: Recording, result: Result) -> int | None:
        """One GET from `part.offset`; returns the file's total size when announced."""
        expected = rec.file_size
        headers = {"Range": f"bytes={part.offset}-"} if part.offset else {}
        result.storage_requests += 1
        if part.offset:
            result.resumes += 1
        try:
            with self.http.stream("GET", url.reveal(), headers=headers) as response:
                total = self._check(response, part, expected)
                # as the network delivers (at most 64 KiB a read): with a chunk size httpx
                # would hold back bytes it already has when the connection breaks
                for chunk in response.iter_raw():
                    part.write(chunk)
                    result.transferred += len(chunk)
                    if expected is not None and part.offset > expected:
                        raise _Fatal(
                            f"storage sent more bytes than the metadata's fileSize ({expected})",
                            drop_part=True,
                        )
                    self.progress("media_bytes", recording=rec.id, n=len(chunk))
                return total
        except httpx.TransportError as exc:
            raise _Broken(f"{type(exc).__name__}: {redact_queries(str(exc))}") from None
        except httpx.HTTPError as exc:
            raise _Fatal(f"download failed: {type(exc).__name__}") from None
        except httpx.InvalidURL:
            raise _Fatal("the download link is not a valid URL") from None

    def _check(self, response: httpx.Response, part: _Part, expected: int | None) -> int | None:
        """Act on the status and size headers before any body byte is written."""
        code = response.status_code
        if code in _REFUSED:
            raise _Refused(f"HTTP {code}")
        if code == 404:
            raise _Fatal("storage has no file behind the link (HTTP 404)")
        if code == 416:  # the range starts at or past the end
            total = _content_range(response.headers.get("content-range"))[2]
            if total is not None and part.offset == total:
                return total
            part.restart()
            raise _Broken("HTTP 416 for a resume; starting the file again")
        if code == 429 or code >= 500:
            raise _Broken(f"HTTP {code} from storage")
        length = _int(response.headers.get("content-length"))
        if code == 200:
            if part.offset:
                part.restart()  # Range was ignored: the whole file follows
            total = length
        elif code == 206:
            first, last, total = _content_range(response.headers.get("content-range"))
            if first != part.offset:
                part.restart()
                raise _Broken("storage answered another range than asked; starting again")
            if length is not None and last is not None and length != last - first + 1:
                raise _Fatal("storage's Content-Length disagrees with its Content-Range")
        else:
            raise _Fatal(f"unexpected HTTP {code} from storage")
        if expected is not None and total is not None and total != expected:
            raise _Fatal(
                f"size mismatch: storage serves {total} bytes, the metadata's fileSize is "
                f"{expected}",
                drop_part=True,
            )
        return total

    @staticmethod
    def _verify(part: _Part, rec: Recording, total: int | None) -> None:
        if total is not None and part.offset != total:
            raise _Fatal(f"received {part.offset} bytes, storage announced {total}", True)
        if rec.file_size is not None and part.offset != rec.file_size:
            raise _Fatal(
                f"size mismatch: received {part.offset} bytes, the metadata's fileSize is "
                f"{rec.file_size}",
                drop_part=True,
            )

    def _backoff(self, failures: int) -> float:
        floor = self.config.retry_floor_seconds
        return min(floor * 2 ** (failures - 1), self.config.retry_max_wait_seconds)


def _content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not match:
        star = re.fullmatch(r"bytes\s+\*/(\d+)", (value or "").strip())
        return None, None, int(star.group(1)) if star else None
    first, last, total = match.groups()
    return int(first), int(last), None if total == "*" else int(total)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
