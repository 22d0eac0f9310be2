"""API paths: an id made into one URL path segment, and a request's rate-limit route."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from hs_sync.registry import DataType


def quote_id(value: object) -> str:
    """An API id as exactly one URL path segment (it can never add a segment)."""
    segment = quote(str(value), safe="")
    # `.` and `..` are dot segments: an HTTP client resolves them and the request
    # would go to another path, so they are percent-encoded too.
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def endpoint(dt: DataType, scope: str) -> str:
    """The rate-limit bucket of a request: the route, without the scope id."""
    return f"data/{dt.path}/{scope}" if dt.data_endpoint else dt.path
