"""Raw data files: how they are named, compressed and read back, in one place.

A data file is NDJSON, written zstd-compressed (`NNNNN.ndjson.zst`, level 1,
the default) or plain (`NNNNN.ndjson`); `.ndjson.gz` files are read too. At
1M events zstd makes the raw files 13x smaller at about the same full-sync
time: quicker to land (less to write), slower to read back
(benchmarks/bench_raw_compression.py). DuckDB (`read_ndjson`) and `zstdcat`
read the compressed files as they are.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

SUFFIXES = {"zstd": ".ndjson.zst", "none": ".ndjson"}  # what a sync writes, by setting
_READ = (".ndjson.zst", ".ndjson.gz", ".ndjson")  # what every reader accepts
_ZSTD_LEVEL = 1
_BLOCK_BYTES = 1 << 20  # bytes read at once


class RawFileError(OSError):
    """A raw data file that cannot be read back (a corrupt or truncated compressed file)."""


def is_data_file(name: str) -> bool:
    """Whether a file name is a visible raw data file (dot names are temporaries)."""
    return not name.startswith(".") and name.endswith(_READ)


def stem(name: str) -> str:
    """A data file's name without its data suffix: `00001.ndjson.zst` -> `00001`."""
    for suffix in _READ:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise ValueError(f"not a raw data file name: {name!r}")


def encode(data: bytes, compression: str) -> bytes:
    """The bytes of a data file holding the NDJSON `data`."""
    if compression == "none":
        return data
    return pa.Codec("zstd", compression_level=_ZSTD_LEVEL).compress(data, asbytes=True)


def _open(path: Path) -> BinaryIO:
    if path.name.endswith(".zst"):
        return pa.CompressedInputStream(pa.OSFile(str(path)), "zstd")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def blocks(path: Path) -> Iterator[bytes]:
    """A data file's NDJSON bytes, decompressed, a block at a time."""
    try:
        with _open(path) as f:
            while block := f.read(_BLOCK_BYTES):
                yield block
    except FileNotFoundError:
        raise
    except (OSError, EOFError, pa.ArrowException) as exc:
        raise RawFileError(f"cannot read raw file {path}: {exc}") from None


def line_blocks(path: Path) -> Iterator[list[bytes]]:
    """A data file's non-blank lines (without their line ends), a block's worth at a
    time: a big file is never held whole, nor all its lines at once."""
    tail = b""
    for block in blocks(path):
        parts = (tail + block).split(b"\n")
        tail = parts.pop()
        yield [line for line in parts if line.strip()]
    if tail.strip():
        yield [tail]


def lines(path: Path) -> Iterator[bytes]:
    """A data file's non-blank lines, one by one."""
    for block in line_blocks(path):
        yield from block
