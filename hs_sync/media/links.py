"""Signed download links: minted through a recording's `downloadPath` with the API key.

A signed URL is a credential: it is held in a `SignedUrl`, whose str and repr
never show it, and is never written anywhere. Legacy recordings carry a
`downloadUrl`/`url` instead; the landing redacts those (they are signed URLs
too). A sync hands the ones its recordings listing just carried to the media step
in memory (`ListedLinks`), which uses them while storage accepts them; otherwise,
or once one has expired, a fresh one is read from the room's recordings listing.
Every request goes through `ApiClient`, so it counts against the request budget.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from hs_sync.api.client import ApiClient
from hs_sync.api.paths import quote_id
from hs_sync.errors import ApiError, AuthError, ForbiddenError, NotFoundError
from hs_sync.media.plan import Recording
from hs_sync.scrub import REDACTED

MINT_ENDPOINT = "data/recordings/download"
LISTING_ENDPOINT = "data/recordings/room"


class SignedUrl:
    """A short-lived storage URL. Never printed: str() and repr() hide it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        """The URL itself, for the one HTTP request that needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"SignedUrl({REDACTED})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SignedUrl) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class LinkUnavailable(Exception):
    """No link for now: `status` is pending (still processing), failed or skipped."""

    def __init__(self, status: str, reason: str, *, server_failed: bool = False):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.server_failed = server_failed


class ListedLinks:
    """Legacy signed URLs that this run's recordings listing carried, by recording id.

    Held in memory only, for the media step of the same run (thread-safe).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._urls: dict[str, SignedUrl] = {}

    def note(self, records: list[Any]) -> None:
        """Keep the signed URL of every legacy recording among unscrubbed `records`."""
        found = _listed_urls(records)
        with self._lock:
            self._urls.update(found)

    def get(self, recording_id: str) -> SignedUrl | None:
        with self._lock:
            return self._urls.get(recording_id)


class Links:
    """Mints signed URLs for recordings (thread-safe); a legacy recording's listed URL
    from `listed` is used first, and replaced only once storage refuses it."""

    def __init__(self, client: ApiClient, listed: ListedLinks | None = None):
        self._client = client
        self._listed = listed or ListedLinks()
        self._lock = threading.Lock()
        self._rooms: dict[str, dict[str, SignedUrl]] = {}  # legacy links by room
        # the legacy link each recording was last given: the one storage refused when
        # it asks again (another download may have read the room since)
        self._given: dict[str, SignedUrl] = {}
        self.minted = 0
        self.listed_used = 0  # legacy links taken from the listing, no request

    def mint(self, rec: Recording, *, fresh: bool = False) -> SignedUrl:
        """A signed URL for `rec`; `fresh` after the last one expired."""
        if rec.download_path:
            return self._mint_path(rec)
        return self._legacy(rec, fresh)

    def _mint_path(self, rec: Recording) -> SignedUrl:
        path, params = _api_path(rec.download_path or "")
        if path is None:
            raise LinkUnavailable("skipped", "downloadPath is not a path of the API")
        try:
            envelope = self._client.get(path, params, endpoint=MINT_ENDPOINT, signed_urls=True)
        except AuthError:
            raise  # aborts the run
        except NotFoundError as exc:
            raise _not_available(exc) from None
        except ForbiddenError as exc:
            raise LinkUnavailable(
                "skipped", f"the key may not download recordings: {exc}"
            ) from None
        except ApiError as exc:  # 400, or retries used up
            raise LinkUnavailable("failed", f"minting a download link failed: {exc}") from None
        with self._lock:
            self.minted += 1
        url = _url_in(envelope.data)
        if url is None:
            raise LinkUnavailable("failed", "the API answered without a usable download link")
        return url

    def _legacy(self, rec: Recording, fresh: bool) -> SignedUrl:
        if not rec.room_id:
            raise LinkUnavailable("skipped", "no downloadPath, and no room to look a link up in")
        listed = self._listed.get(rec.id)
        with self._lock:
            known = self._rooms.get(rec.room_id)
            refused = self._given.get(rec.id) if fresh else None
            if not fresh and known is None and listed is not None:
                self.listed_used += 1
                self._given[rec.id] = listed
                return listed
        links = None if fresh else known
        if links is None:
            links = self._read_room(rec.room_id)
            with self._lock:
                self._rooms[rec.room_id] = links
                self.minted += 1
        if rec.id not in links:
            raise LinkUnavailable("skipped", "no downloadPath and no legacy downloadUrl/url")
        if refused is not None and refused == links[rec.id]:
            # A legacy link cannot be minted anew: the API serves the one storage refused.
            raise LinkUnavailable(
                "failed",
                "the legacy downloadUrl has expired (storage refuses it) and the API "
                "serves no newer one; a legacy recording has no downloadPath to mint a link",
            )
        with self._lock:
            self._given[rec.id] = links[rec.id]
        return links[rec.id]

    def _read_room(self, room_id: str) -> dict[str, SignedUrl]:
        path = f"data/recordings/room/{quote_id(room_id)}"
        links: dict[str, SignedUrl] = {}
        offset = 0
        while True:
            try:
                page = self._client.get(
                    path,
                    {"limit": 1000, "offset": offset},
                    endpoint=LISTING_ENDPOINT,
                    signed_urls=True,
                )
            except AuthError:
                raise
            except ForbiddenError as exc:
                raise LinkUnavailable(
                    "skipped", f"the key may not read recordings: {exc}"
                ) from None
            except ApiError as exc:
                raise LinkUnavailable(
                    "failed", f"reading the room's recordings failed: {exc}"
                ) from None
            links.update(_listed_urls(page.records))
            pagination = page.pagination or {}
            returned = page.count
            if not pagination.get("hasMore") or not returned:
                return links
            offset = int(pagination.get("nextOffset") or offset + returned)


def _api_path(value: str) -> tuple[str | None, dict[str, str]]:
    """A downloadPath as (path relative to the API base, query), or None when it is not
    a plain API path (a full URL would send the API key to another host)."""
    parts = urlsplit(value.strip())
    segments = parts.path.split("/")
    if parts.scheme or parts.netloc or "\\" in value or ".." in segments or not parts.path:
        return None, {}
    path = parts.path.lstrip("/")
    if path.startswith("api/v3/"):  # tolerate a path given from the server root
        path = path[len("api/v3/") :]
    return path, dict(parse_qsl(parts.query))


def _listed_urls(records: list[Any]) -> dict[str, SignedUrl]:
    """recording id -> the legacy signed URL a listing's record carries."""
    found = {}
    for record in records:
        if isinstance(record, dict) and record.get("recordingId") is not None:
            url = _url_in({"url": record.get("downloadUrl") or record.get("url")})
            if url is not None:
                found[str(record["recordingId"])] = url
    return found


def _url_in(data: Any) -> SignedUrl | None:
    value = None
    if isinstance(data, dict):
        value = data.get("url") or data.get("signedUrl") or data.get("downloadUrl")
    elif isinstance(data, str):
        value = data
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return SignedUrl(value)


def _not_available(exc: NotFoundError) -> LinkUnavailable:
    state = str(exc.details.get("status") or "").lower()
    if state == "failed":
        return LinkUnavailable("failed", "the recording failed on the server", server_failed=True)
    if state:
        return LinkUnavailable("pending", f"the file is not ready on the server ({state})")
    return LinkUnavailable("failed", f"the API has no file for this recording: {exc}")
