"""The C library, loaded once, for the one call Python's standard library lacks:
`renameat2` (swap two folders atomically)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any


@functools.cache
def _library() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def function(name: str) -> Any | None:
    """The C library's function `name`, or None where the system has none by that name."""
    library = _library()
    return getattr(library, name, None) if library is not None else None
