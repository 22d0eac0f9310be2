"""JSON text for any value the API can send: orjson, with the stdlib for what orjson refuses.

orjson parses up to 1024 levels of nesting but writes only 254, and refuses
integers beyond 64 bits; a record like that must still be landed, keyed and
quarantined rather than crash a run. `dumps` falls back to the stdlib encoder
(about 990 levels) and raises `Unencodable` (a ValueError) beyond that.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class Unencodable(ValueError):
    """A value no JSON encoder here can write (nested too deeply)."""


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON for `value` (keys sorted when asked, non-string keys as text)."""
    option = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS if sort_keys else 0
    try:
        return orjson.dumps(value, option=option)
    except TypeError:  # orjson.JSONEncodeError: too deep, or an integer beyond 64 bits
        pass
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, separators=(",", ":"))
    except (RecursionError, TypeError, ValueError) as exc:
        raise Unencodable(f"cannot be written as JSON ({type(exc).__name__}: {exc})") from None
    return text.encode("utf-8", "surrogatepass")
