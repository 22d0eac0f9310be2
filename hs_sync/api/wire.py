"""A page's records as the bytes the API sent, read without building Python objects.

Parsing every record of a page into dicts, only to write each back out as an
NDJSON line, was most of a sync's download CPU. A body whose `data` is an
array is instead split into one JSON text per record (checked as JSON while
split), and only the few fields the landing needs (cursor, key) are read out
of it. Anything unusual (another shape, an error status, a newline inside a
record, bytes that are not UTF-8) gets None: the caller parses it whole, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson
from msgspec import Raw

from hs_sync.errors import ApiError


class _Body(msgspec.Struct):
    data: Raw = None  # type: ignore[assignment]  (None: the field is absent)
    metadata: Any = None
    status: Any = None


_BODY = msgspec.json.Decoder(_Body)
_ITEMS = msgspec.json.Decoder(list[Raw])
_ERRORS = (msgspec.DecodeError, RecursionError)  # ValidationError is a DecodeError


@functools.cache
def _picker(names: tuple[str, ...]) -> msgspec.json.Decoder:
    fields = [(f"f{i}", Any, None) for i in range(len(names))]
    rename = {f"f{i}": name for i, name in enumerate(names)}
    # Untracked by the cycle collector (the values cannot refer back): 1,000 per page
    # would otherwise trigger collections (pick: 0.35 -> 0.32 s per 1M records).
    struct = msgspec.defstruct("Picked", fields, rename=rename, gc=False)
    return msgspec.json.Decoder(list[struct])


def split(body: bytes) -> tuple[Any, Raw, list[Raw]] | None:
    """(metadata, the `data` array's text, one JSON text per record) of an envelope
    whose `data` is an array; None for any other body."""
    # NDJSON lines cannot hold a newline; msgspec does not check the UTF-8 of what it skips.
    if b"\n" in body or not _utf8(body):
        return None
    try:
        envelope = _BODY.decode(body)
        if envelope.status == "error" or envelope.data is None:
            return None
        if bytes(memoryview(envelope.data)[:1]) != b"[":
            return None
        return envelope.metadata, envelope.data, _ITEMS.decode(envelope.data)
    except _ERRORS:
        return None


def pick(array: Raw, names: Sequence[str]) -> list[tuple[Any, ...]] | None:
    """The values of `names` in each record of a JSON array (None where a name is
    absent); None when a record is not an object or a value is out of range."""
    try:
        picked = _picker(tuple(names)).decode(array)
    except _ERRORS:
        return None
    return [msgspec.structs.astuple(p) for p in picked]


def lacks_names(array: Raw, names: Sequence[str]) -> bool:
    """Whether no record of a JSON array can hold any of `names`, at any depth: the
    text has none of them in quotes and no `\\u` escape (which could spell one)."""
    text = memoryview(array).tobytes()
    if b"\\u" in text:
        return False
    return not any(orjson.dumps(name) in text for name in names)


def parse(text: Raw) -> Any:
    """One JSON text `split` cut out, parsed; ApiError (the unit fails, reported) for
    what msgspec lets through and orjson refuses, such as a number beyond a double."""
    try:
        return orjson.loads(memoryview(text))
    except orjson.JSONDecodeError as exc:
        raise ApiError(f"a record the API sent is not valid JSON ({exc})") from None


def _utf8(body: bytes) -> bool:
    if body.isascii():
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
