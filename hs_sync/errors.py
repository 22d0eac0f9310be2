"""Typed errors: each names what went wrong in words a user can act on."""

from __future__ import annotations


class HsSyncError(Exception):
    """Base of every error hs-sync raises on purpose."""

    exit_code = 1


class ConfigError(HsSyncError):
    """A setting is wrong; the message names it."""

    exit_code = 2

    def __init__(self, setting: str, message: str):
        # "config" names the settings file itself: said once, not "config: config:"
        super().__init__(
            f"config: {message}" if setting == "config" else f"config: {setting}: {message}"
        )
        self.setting = setting


class ServerUnreachable(ConfigError):
    """Nothing answers at the base URL (connection refused, or a host name that does not
    resolve): a wrong URL or a server down. Retrying would only delay the answer."""

    def __init__(self, base_url: str, reason: str = "connection refused"):
        super().__init__(
            "base_url",
            f"nothing answers at {base_url} ({reason}): "
            "check the URL (HYPERSTUDY_BASE_URL, --base-url) and that the server is up",
        )


class WrongBaseUrl(ConfigError):
    """The experiments listing or the first request answered 404 at a base URL without
    `/api/v3`: the URL does not point at the API."""

    def __init__(self, base_url: str, path: str):
        super().__init__(
            "base_url",
            f"GET {path} answered 404 at {base_url}, which does not end in /api/v3: did you "
            f"mean {base_url.rstrip('/')}/api/v3? (HYPERSTUDY_BASE_URL, --base-url)",
        )


class ApiError(HsSyncError):
    """The API answered with an error envelope or an unusable body."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: dict | None = None,
        path: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details or {}
        self.path = path


class AuthError(ApiError):
    """401: the key is missing, wrong or expired. Aborts the run."""

    exit_code = 2


class ForbiddenError(ApiError):
    """403: the key lacks the scope a data type needs. That type is skipped."""


class NotFoundError(ApiError):
    """404: unknown experiment, room or participant. Reported; the rest goes on."""


class BadRequestError(ApiError):
    """400: a query parameter the API rejects. Never retried."""


class RetryableError(ApiError):
    """429, 5xx, resets, timeouts, truncated or non-JSON bodies: worth another try."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class BudgetExhausted(HsSyncError):
    """A budget the run may spend is spent: stop cleanly, progress saved.

    This class is the hourly request budget; its subclasses are the run's time
    (`RunOutOfTime`) and its patience with a server that answers too slowly
    (`ServerTooSlow`). `kind` names which, `resume_at` when to run again.
    """

    kind = "budget"

    def __init__(self, resume_at: str, message: str | None = None):
        super().__init__(
            message or f"hourly request budget spent; progress is saved, resume after {resume_at}"
        )
        self.resume_at = resume_at


class RunOutOfTime(BudgetExhausted):
    """The run reached `max_run_seconds`, or the API asks it to wait beyond them."""

    kind = "deadline"


class ServerTooSlow(BudgetExhausted):
    """A response took longer than `request_deadline_seconds` to arrive whole: the
    server is failing, and waiting as long again for each retry would stall the run."""

    kind = "server"


class WarehouseLocked(HsSyncError):
    """Another sync holds the warehouse lock."""

    exit_code = 2


class WarehouseNotWritable(HsSyncError):
    """The warehouse folder cannot be written (read-only disk, another user's folder)."""

    exit_code = 2

    def __init__(self, root: object, detail: str):
        super().__init__(
            f"cannot write to the warehouse {root}: {detail}; read it with hs-sync "
            "sql/status/check --no-api, or sync into a folder you can write"
        )
