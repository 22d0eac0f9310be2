"""Indexed, pre-encoded rows for one (data type, experiment), and the query over them.

A `Table` keeps its rows sorted by the type's time field (ties keep insertion
order). Each row's JSON is encoded once, when the dataset is generated, and
stored with a trailing comma in blocks of `BLOCK` consecutive rows; each block
is zlib-compressed (level 1), which keeps a 1M-event dataset to a few hundred
MB, and a small cache holds recently used blocks decompressed. An ascending
page is a few block slices joined; a filtered page gathers rows by position.
Time filters are bisections on the sorted time column. Filters on other
columns use a per-column group index (value -> positions), built lazily in one
pass and kept until rows are inserted. No request loops over a whole table
once the indexes for its filter columns exist.
"""

from __future__ import annotations

import threading
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

NO_BOUND_LO = -(2**62)
NO_BOUND_HI = 2**62
BLOCK = 256  # rows per compressed block
_CACHE_BLOCKS = 48


class TableBuilder:
    """Appends rows in time order (each `data` ends with a comma) and compresses full blocks."""

    def __init__(self, columns: Iterable[str], numeric: Iterable[str] = ()) -> None:
        numeric = set(numeric)
        self.ts = array("q")
        self.offsets = array("q", [0])
        self.blocks: list[bytes] = []
        self.cols: dict[str, Any] = {c: array("d") if c in numeric else [] for c in columns}
        self._current = bytearray()
        self._size = 0

    def append(self, ts: int, data: bytes, values: Sequence[Any]) -> None:
        if self.ts and ts < self.ts[-1]:
            raise ValueError("rows must be appended in time order")
        self.ts.append(ts)
        self._current += data
        self._size += len(data)
        self.offsets.append(self._size)
        for column, value in zip(self.cols.values(), values, strict=True):
            column.append(value)
        if len(self.ts) % BLOCK == 0:
            self.blocks.append(zlib.compress(self._current, 1))
            self._current = bytearray()

    def extend(self, rows: Sequence[tuple[int, bytes, Sequence[Any]]]) -> None:
        """Append many (time, data, values) rows, already in time order."""
        if not rows:
            return
        if self.ts and rows[0][0] < self.ts[-1]:
            raise ValueError("rows must be appended in time order")
        columns = list(self.cols.values())
        offsets_append = self.offsets.append
        i = 0
        while i < len(rows):
            room = BLOCK - len(self.ts) % BLOCK
            chunk = rows[i : i + room]
            self.ts.extend([r[0] for r in chunk])
            size = self._size
            for r in chunk:
                size += len(r[1])
                offsets_append(size)
            self._size = size
            self._current += b"".join([r[1] for r in chunk])
            for j, column in enumerate(columns):
                column.extend([r[2][j] for r in chunk])
            if len(self.ts) % BLOCK == 0:
                self.blocks.append(zlib.compress(self._current, 1))
                self._current = bytearray()
            i += room

    def build(self) -> Table:
        if self._current:
            self.blocks.append(zlib.compress(self._current, 1))
            self._current = bytearray()
        return Table(self.ts, self.blocks, self.offsets, self.cols)


class Table:
    """Rows of one (data type, experiment), sorted by time, each pre-encoded as JSON."""

    def __init__(self, ts: array, blocks: list[bytes], offsets: array, cols: dict[str, Any]):
        self.ts = ts  # array('q'): time field, epoch ms, ascending
        self.blocks = blocks  # zlib-compressed JSON rows, BLOCK rows per block, comma after each
        self.offsets = offsets  # array('q'), len(ts) + 1: uncompressed offsets over all blocks
        self.cols = cols  # column name -> per-row value (list, or array('q') for numbers)
        self._groups: dict[str, dict[Any, array]] = {}
        self._sorted: OrderedDict[tuple, list[int]] = OrderedDict()
        self._combos: OrderedDict[tuple, array] = OrderedDict()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_rows(
        cls,
        ts: Sequence[int],
        rows: Sequence[bytes],
        cols: dict[str, Sequence[Any]],
        numeric: Iterable[str] = (),
    ) -> Table:
        """Build from unsorted rows (JSON without the trailing comma); stable sort by time."""
        order = sorted(range(len(ts)), key=ts.__getitem__)
        builder = TableBuilder(cols, numeric)
        values = list(cols.values())
        for i in order:
            builder.append(ts[i], rows[i] + b",", [column[i] for column in values])
        return builder.build()

    def __len__(self) -> int:
        return len(self.ts)

    # -- reading rows -------------------------------------------------------

    def _block(self, b: int) -> bytes:
        with self._lock:
            data = self._cache.get(b)
            if data is not None:
                self._cache.move_to_end(b)
                return data
            blocks = self.blocks
        data = zlib.decompress(blocks[b])
        with self._lock:
            self._cache[b] = data
            while len(self._cache) > _CACHE_BLOCKS:
                self._cache.popitem(last=False)
        return data

    def row(self, pos: int) -> bytes:
        b = pos // BLOCK
        base = self.offsets[b * BLOCK]
        return self._block(b)[self.offsets[pos] - base : self.offsets[pos + 1] - base - 1]

    def range_bytes(self, lo: int, hi: int) -> bytes:
        """Rows lo..hi-1 joined by commas (one slice per block)."""
        if hi <= lo:
            return b""
        offsets = self.offsets
        pieces = []
        for b in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
            base = offsets[b * BLOCK]
            start = offsets[max(lo, b * BLOCK)] - base
            end = offsets[min(hi, (b + 1) * BLOCK)] - base
            pieces.append(self._block(b)[start:end])
        out = b"".join(pieces)
        return out[:-1]

    def gather(self, positions: Iterable[int], sep: bytes = b",") -> bytes:
        return sep.join([self.row(p) for p in positions])

    def all_rows(self) -> list[bytes]:
        return [self.row(p) for p in range(len(self.ts))]

    def insert(self, items: list[tuple[int, bytes, dict[str, Any]]]) -> None:
        """Insert rows (time, json, column values) in time order, after equal times."""
        if not items:
            return
        ts = list(self.ts)
        rows = self.all_rows()
        cols = {k: list(v) for k, v in self.cols.items()}
        for t, data, values in sorted(items, key=lambda it: it[0]):
            at = bisect_right(ts, t)
            ts.insert(at, t)
            rows.insert(at, data)
            for name, column in cols.items():
                column.insert(at, values.get(name))
        numeric = {k for k, v in self.cols.items() if isinstance(v, array)}
        fresh = Table.from_rows(ts, rows, cols, numeric)
        with self._lock:
            self.ts, self.blocks, self.offsets, self.cols = (
                fresh.ts,
                fresh.blocks,
                fresh.offsets,
                fresh.cols,
            )
            self._groups = {}
            self._sorted.clear()
            self._combos.clear()
            self._cache.clear()

    # -- indexes ------------------------------------------------------------

    def group(self, name: str) -> dict[Any, array]:
        with self._lock:
            index = self._groups.get(name)
            if index is None:
                index = {}
                for pos, value in enumerate(self.cols[name]):
                    bucket = index.get(value)
                    if bucket is None:
                        bucket = index[value] = array("q")
                    bucket.append(pos)
                self._groups[name] = index
            return index

    def candidates(self, filters: dict[str, Any]) -> Sequence[int] | None:
        """Positions matching every filter, ascending (None = every row)."""
        if not filters:
            return None
        if any(name not in self.cols for name in filters):
            return array("q")
        buckets = []
        for name, value in filters.items():
            bucket = self.group(name).get(value)
            if bucket is None:
                return array("q")
            buckets.append((len(bucket), name, bucket))
        buckets.sort(key=lambda b: b[0])
        _, _, base = buckets[0]
        if len(buckets) == 1:
            return base
        key = tuple(sorted(filters.items(), key=lambda kv: kv[0]))
        with self._lock:
            cached = self._combos.get(key)
        if cached is not None:
            return cached
        for _, name, _bucket in buckets[1:]:
            column = self.cols[name]
            value = filters[name]
            base = array("q", [p for p in base if column[p] == value])
        with self._lock:
            self._combos[key] = base
            while len(self._combos) > 64:
                self._combos.popitem(last=False)
        return base

    # -- the query ----------------------------------------------------------

    def query(
        self,
        filters: dict[str, Any],
        start: int = NO_BOUND_LO,
        end: int = NO_BOUND_HI,
        sort: str | None = None,
        descending: bool = False,
        offset: int = 0,
        limit: int = 1000,
        sep: bytes = b",",
    ) -> tuple[int, bytes, int]:
        """-> (total matching, page rows joined by `sep`, rows in the page).

        `start`/`end` are inclusive bounds on the time field; `sort` None means by
        time. Ties are broken by position, so the order is deterministic.
        """
        ts = self.ts
        base = self.candidates(filters)
        if base is None:
            lo = bisect_left(ts, start)
            hi = bisect_right(ts, end)
            positions: Sequence[int] = range(lo, hi)
        else:
            lo = bisect_left(base, start, key=ts.__getitem__)
            hi = bisect_right(base, end, key=ts.__getitem__)
            positions = base[lo:hi]
        total = len(positions)
        if sort is not None:
            positions = self._sorted_view(filters, sort, start, end, positions)
        if descending:
            positions = positions[::-1]
        page = positions[offset : offset + limit]
        n = len(page)
        if n == 0:
            return total, b"", 0
        if isinstance(page, range) and page.step == 1 and sep == b",":
            return total, self.range_bytes(page.start, page.stop), n
        return total, self.gather(page, sep), n

    def _sorted_view(
        self, filters: dict[str, Any], sort: str, start: int, end: int, positions: Sequence[int]
    ) -> list[int]:
        key = (tuple(sorted(filters.items(), key=lambda kv: kv[0])), sort, start, end)
        with self._lock:
            cached = self._sorted.get(key)
            if cached is not None and len(cached) == len(positions):
                self._sorted.move_to_end(key)
                return cached
        column = self.cols[sort]

        def sort_key(p: int) -> tuple:
            value = column[p]
            return (value is None, value if value is not None else 0, p)

        view = sorted(positions, key=sort_key)
        with self._lock:
            self._sorted[key] = view
            while len(self._sorted) > 16:
                self._sorted.popitem(last=False)
        return view
