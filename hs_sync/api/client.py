"""The HyperStudy v3 API client: one GET with auth, budget, retries and typed errors.

Every request goes through `ApiClient.get`, which counts against the request
budget, retries what is worth retrying (429 honouring Retry-After with a floor,
5xx, timeouts, resets, truncated or non-JSON bodies) with exponential backoff
and jitter, never retries 400/401/403/404, and parses the envelope tolerantly.
The API key lives only in a request header. Everything the server sends is
scrubbed (`hs_sync/scrub.py`) before anything else sees it: no key, no signed
URL's query. A body is read against an overall deadline and a size cap, and
the numbers that steer the run (Retry-After, pagination) are clamped.

Every wait is bounded. A body still arriving after `request_deadline_seconds`
stops the run (ServerTooSlow): retrying it would wait as long again. With
`max_run_seconds`, no request starts, no body is read and no retry waits past
the run's end, and a Retry-After beyond it stops the run with the time to
resume (RunOutOfTime); both keep what the run landed.
"""

from __future__ import annotations

import json
import math
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from hs_sync import __version__, interrupt
from hs_sync.api.budget import RequestBudget
from hs_sync.config import Config
from hs_sync.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    BudgetExhausted,
    ForbiddenError,
    NotFoundError,
    RetryableError,
    ServerTooSlow,
    ServerUnreachable,
    WrongBaseUrl,
)
from hs_sync.scrub import Scrubber
from hs_sync.timeutil import parse_time

_BY_STATUS = {400: BadRequestError, 401: AuthError, 403: ForbiddenError, 404: NotFoundError}
MAX_RETRY_AFTER = 86_400.0  # a Retry-After beyond a day is read as a day
MAX_COUNT = 2**53 - 1  # a pagination number beyond this (or below 0) is ignored
_COUNTS = ("total", "offset", "limit", "nextOffset", "returned")
# 19 digits in a row (maybe an integer beyond 64 bits): found by mapping every digit to
# `0` and searching for the run, which is an order of magnitude quicker than a regex.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19
_RATE_HEADERS = ("x-ratelimit-", "ratelimit-", "x-rate-limit-", "retry-after")


@dataclass
class Envelope:
    """One parsed response: `data` as sent, plus the metadata the sync reads."""

    path: str
    params: dict[str, Any]
    data: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    server_time: str | None = None
    size: int = 0  # body bytes

    @property
    def records(self) -> list[dict[str, Any]]:
        """`data` as a list of records (a single object becomes a list of one)."""
        if self.data is None:
            return []
        if isinstance(self.data, list):
            return self.data
        return [self.data]

    @property
    def count(self) -> int:
        """How many records the page holds."""
        return len(self.records)

    @property
    def pagination(self) -> dict[str, Any] | None:
        """`metadata.pagination`, its counts outside 0..2^53 (or not integers) as None."""
        value = self.metadata.get("pagination")
        if not isinstance(value, dict):
            return None
        return {k: (_count(v) if k in _COUNTS else v) for k, v in value.items()}

    @property
    def warnings(self) -> list[str]:
        value = self.metadata.get("_warnings") or []
        return [str(w) for w in value] if isinstance(value, list) else [str(value)]


class ApiClient:
    """A thread-safe client for one base URL and key (use as a context manager)."""

    def __init__(
        self,
        config: Config,
        budget: RequestBudget | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ):
        if not config.api_key:
            raise AuthError("no API key: set HYPERSTUDY_API_KEY")
        self._key = config.api_key
        self._config = config
        self.scrubber = Scrubber(config.api_key)
        self._key_scrubber = Scrubber(config.api_key, urls=False)
        self.budget = budget or RequestBudget(
            config.budget_per_hour, config.budget_per_minute, max_seconds=config.max_run_seconds
        )
        headers = {"X-API-Key": config.api_key, "User-Agent": f"hs-sync/{__version__}"}
        if config.org_id:
            headers["X-Organization-Id"] = config.org_id
        limits = httpx.Limits(max_connections=config.concurrency * 2 + 2)
        # no single read may outlast the whole response's deadline
        read = min(config.timeout_seconds, config.request_deadline_seconds)
        self._http = httpx.Client(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(read, connect=min(read, 10)),
            limits=limits,
            transport=transport,
            follow_redirects=False,
        )
        self._lock = threading.Lock()
        self.attempts = 0  # HTTP requests sent, retries included
        self.retries = 0
        self.bytes_received = 0
        self.server_time: str | None = None  # newest server clock reading seen in a body
        self.http_date: str | None = None  # the newest Date header (second resolution)
        self.rate_limit_headers: dict[str, str] = {}  # the last answer's rate-limit headers

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        endpoint: str | None = None,
        signed_urls: bool = False,
    ) -> Envelope:
        """GET `path` (relative to the base URL) with retries; raise a typed ApiError.

        The page comes back scrubbed; `signed_urls=True` keeps signed URLs whole
        (only for the media step, which downloads through them and stores none).
        """
        params = {k: v for k, v in (params or {}).items() if v is not None}
        retrying = Retrying(
            retry=retry_if_exception_type(RetryableError),
            stop=stop_after_attempt(self._config.max_attempts),
            wait=self._wait,
            before_sleep=self._count_retry,
            sleep=interrupt.sleep,
            reraise=True,
        )
        return retrying(self._attempt, path, params, endpoint or path, signed_urls)

    def server_now(self) -> tuple[str, str]:
        """The server's current time and where it came from.

        Time windows end at the server's clock, never ours. A response body seen
        earlier in the run is used when there is one; otherwise `GET /health`
        (no key scope needed); the Date header and the local clock are last resorts.
        """
        if self.server_time is None:
            try:
                self.get("health", endpoint="health")
            except (RetryableError, BadRequestError, NotFoundError, ForbiddenError):
                pass
        if self.server_time is not None:
            return self.server_time, "server"
        if self.http_date is not None:
            return self.http_date, "date-header"
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        return now, "local-clock"

    # -- one attempt -------------------------------------------------------

    def _attempt(
        self, path: str, params: dict[str, Any], endpoint: str, signed_urls: bool = False
    ) -> Envelope:
        try:
            request = self._http.build_request("GET", path, params=params)
        except httpx.InvalidURL as exc:  # e.g. a control character in an id from the API
            raise BadRequestError(
                f"GET {self._scrub(repr(path))}: not a valid URL ({self._scrub(str(exc))})",
                path=path,
            ) from None
        interrupt.check()
        self.budget.check_time()
        token = self.budget.acquire(endpoint)
        with self._lock:
            self.attempts += 1
            first = self.attempts == 1
        try:
            response, body = self._read(request, path)
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"GET {path}: timed out ({type(exc).__name__})", path=path
            ) from None
        except httpx.ConnectError as exc:
            # nothing listens there, or no such host: retrying only delays the answer
            if _caused_by(exc, ConnectionRefusedError):
                raise ServerUnreachable(self._config.base_url) from None
            if _caused_by(exc, socket.gaierror):
                reason = "the host name does not resolve"
                raise ServerUnreachable(self._config.base_url, reason) from None
            raise RetryableError(
                f"GET {path}: connection failed ({type(exc).__name__}: {self._scrub(str(exc))})",
                path=path,
            ) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            interrupt.check()  # the connection was closed to stop the run
            raise RetryableError(
                f"GET {path}: connection failed ({type(exc).__name__}: {self._scrub(str(exc))})",
                path=path,
            ) from None
        finally:
            self.budget.settle(token)
        with self._lock:
            self.bytes_received += len(body)
            self.rate_limit_headers = {
                k: v for k, v in response.headers.items() if k.lower().startswith(_RATE_HEADERS)
            }
        status = response.status_code
        scrub = self.scrubber.needs_scrub(body)
        payload = _loads(body)
        if scrub:
            payload = (self._key_scrubber if signed_urls else self.scrubber).value(payload)
        if status >= 400 or (isinstance(payload, dict) and payload.get("status") == "error"):
            if status == 404 and (first or endpoint == "experiments") and _not_v3(self._config):
                raise WrongBaseUrl(self._config.base_url, path)  # configuration, not data
            raise self._error(path, status, payload, response)
        if not isinstance(payload, (dict, list)):
            raise RetryableError(
                f"GET {path}: HTTP {status} with a body that is not JSON "
                f"({len(body)} bytes; truncated or an HTML page)",
                status=status,
                path=path,
            )
        data, metadata, bare_time = _unwrap(payload)
        return self._envelope(path, params, data, metadata, response, len(body), bare_time)

    def _read(self, request: httpx.Request, path: str) -> tuple[httpx.Response, bytes]:
        """Send and read the body, decompressed chunk by chunk, within the overall
        deadline (httpx's timeout is per read), the run's time and the body size cap."""
        allowed = self._config.request_deadline_seconds
        run_left = self.budget.seconds_left()
        limit = allowed if run_left is None else min(allowed, max(run_left, 0.0))
        deadline = time.monotonic() + limit
        cap = self._config.max_body_bytes
        response = self._http.send(request, stream=True)
        try:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                interrupt.check()
                size += len(chunk)
                if size > cap:
                    raise ApiError(
                        f"GET {path}: the response body exceeds {cap:,} bytes "
                        "(max_body_bytes); the page is refused",
                        status=response.status_code,
                        path=path,
                    )
                if time.monotonic() > deadline:
                    self.budget.check_time()  # the run's time ran out first
                    slow = ServerTooSlow(
                        _now_iso(),
                        f"GET {path}: the response was still arriving after {allowed:g} s "
                        "(request_deadline_seconds): the server answers too slowly; progress "
                        "is saved, run again later",
                    )
                    self.budget.stop(slow)  # the run's later requests would wait as long
                    raise slow
                chunks.append(chunk)
        finally:
            response.close()
        return response, b"".join(chunks)

    def _envelope(
        self,
        path: str,
        params: dict,
        data: Any,
        metadata: Any,
        response: httpx.Response,
        size: int,
        bare_time: Any = None,
    ) -> Envelope:
        """The page, noting the newest server time seen (metadata's, else `bare_time`)."""
        metadata = metadata if isinstance(metadata, dict) else {}
        server_time = metadata.get("timestamp")
        if server_time is None:
            server_time = bare_time
        with self._lock:
            if isinstance(server_time, str) and parse_time(server_time) is not None:
                if self.server_time is None or parse_time(server_time) > parse_time(
                    self.server_time
                ):
                    self.server_time = server_time
            else:
                server_time = None
            self.http_date = _http_date(response.headers.get("date")) or self.http_date
        return Envelope(path, params, data, metadata, server_time, size)

    def _error(self, path: str, status: int, payload: Any, response: httpx.Response) -> ApiError:
        err = payload.get("error") if isinstance(payload, dict) else None
        err = err if isinstance(err, dict) else {}
        code = err.get("code") if isinstance(err.get("code"), str) else None
        details = err.get("details") if isinstance(err.get("details"), dict) else {}
        message = self.scrubber.text(str(err.get("message") or response.reason_phrase or "error"))
        text = f"GET {path}: HTTP {status}" + (f" {code}" if code else "") + f": {message}"
        if status == 401:
            text = f"the API rejected the key ({text}); check HYPERSTUDY_API_KEY"
        if status == 403 and details.get("required"):
            text += f" (needs scope {details['required']})"
        kw = {"status": status, "code": code, "details": details, "path": path}
        if status == 429:
            retry_after = _retry_after(response.headers.get("retry-after"))
            if retry_after is not None and retry_after > self._config.retry_max_wait_seconds:
                # The server's hourly limit: waiting would stall the run; stop cleanly.
                resume = datetime.now(timezone.utc) + timedelta(seconds=retry_after)
                raise BudgetExhausted(resume.replace(microsecond=0).isoformat())
            if retry_after is not None:
                self.budget.check_time(retry_after, "the API (Retry-After)")
            return RetryableError(text, retry_after=retry_after, **kw)
        if status >= 500 or status == 408:
            return RetryableError(text, **kw)
        if status in _BY_STATUS:
            return _BY_STATUS[status](text, **kw)
        if status < 400:  # an error envelope with a success status
            return RetryableError(text, **kw)
        return ApiError(text, **kw)

    # -- retry policy ------------------------------------------------------

    def _wait(self, retry_state: Any) -> float:
        floor = self._config.retry_floor_seconds
        cap = self._config.retry_max_wait_seconds
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        jitter = random.uniform(0, floor)
        if retry_after is not None:
            wait = min(max(retry_after, floor) + jitter, cap)
        else:
            wait = min(floor * 2 ** (retry_state.attempt_number - 1) + jitter, cap)
        self.budget.check_time(wait, "a retry")
        return wait

    def _count_retry(self, retry_state: Any) -> None:
        with self._lock:
            self.retries += 1

    def _scrub(self, text: str) -> str:
        return self.scrubber.text(text)


def _loads(body: bytes) -> Any:
    """The body parsed; the stdlib takes what orjson refuses (NaN) or reads inexactly
    (orjson makes an integer beyond 64 bits a float), so such a record is still
    landed exactly and typed; a number no double holds (`1e400`, `NaN`) is kept as
    its text. None when the body is not JSON."""
    if _LONG_RUN not in body.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(body, parse_float=_float, parse_constant=str)
    except (ValueError, RecursionError):
        return None


def _float(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text


def _not_v3(config: Config) -> bool:
    return not config.base_url.rstrip("/").endswith("/api/v3")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether a connection error came from `kind` (a refusal, a name that does not resolve)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait, within 0..MAX_RETRY_AFTER; None when absent or not a number."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
            seconds = (moment - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _count(value: Any) -> int | None:
    """A pagination count the run can use: an integer in 0..MAX_COUNT, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    return None


def _unwrap(payload: Any) -> tuple[Any, Any, Any]:
    """(data, metadata, a bare body's own timestamp) of a parsed response body."""
    # Bodies such as /health carry their time at the top level, with no `data`.
    bare_time = (
        payload.get("timestamp") if isinstance(payload, dict) and "data" not in payload else None
    )
    if isinstance(payload, dict) and ("data" in payload or "metadata" in payload):
        return payload.get("data"), payload.get("metadata"), bare_time
    return payload, {}, bare_time  # a bare list or object: tolerate an envelope-less body


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _http_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value).astimezone(timezone.utc)
    except (TypeError, ValueError):
        return None
    return moment.isoformat().replace("+00:00", "Z")
