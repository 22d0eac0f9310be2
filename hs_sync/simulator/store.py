"""Indexed, pre-encoded rows for one (data type, experiment), and the query over them.

A `Table` keeps its rows sorted by the type's time field (ties keep insertion
order). Each row's JSON is encoded once, at build time, into one contiguous
buffer with a comma after every row, so an unfiltered ascending page is a single
slice of that buffer. Time filters are bisections on the sorted time column.
Filters on other columns use a per-column group index (value -> positions),
built lazily in one pass and kept until rows are inserted. No request loops
over a whole table once the indexes for its filter columns exist.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

NO_BOUND_LO = -(2**62)
NO_BOUND_HI = 2**62


class Table:
    """Rows of one (data type, experiment), sorted by time, each pre-encoded as JSON."""

    def __init__(
        self,
        ts: array,
        buf: bytes | bytearray,
        offsets: array,
        cols: dict[str, Sequence[Any]],
    ) -> None:
        self.ts = ts  # array('q'): time field, epoch ms, ascending
        self.buf = buf  # every row's JSON followed by b"," (bytes or bytearray)
        self.offsets = offsets  # array('q'), len(ts) + 1
        self.cols = cols  # column name -> per-row value (list, or array('q') for numbers)
        self._groups: dict[str, dict[Any, array]] = {}
        self._sorted: OrderedDict[tuple, list[int]] = OrderedDict()
        self._combos: OrderedDict[tuple, array] = OrderedDict()
        self._lock = threading.Lock()

    # -- building -----------------------------------------------------------

    @classmethod
    def build(
        cls,
        ts: Sequence[int],
        buf: bytes | bytearray,
        offsets: Sequence[int],
        cols: dict[str, Sequence[Any]],
        numeric: Iterable[str] = (),
    ) -> Table:
        """Build from rows in any order: row i is `buf[offsets[i]:offsets[i+1]]`, each
        ending with a comma. A stable sort by time is applied (no copy if already sorted).
        """
        n = len(ts)
        order: Sequence[int] = sorted(range(n), key=ts.__getitem__)
        in_order = all(order[i] == i for i in range(n))
        if in_order:
            out_buf, out_offsets, order = buf, array("q", offsets), range(n)
        else:
            view = memoryview(buf)
            out = bytearray()
            out_offsets = array("q", [0])
            for i in order:
                out += view[offsets[i] : offsets[i + 1]]
                out_offsets.append(len(out))
            view.release()
            out_buf = out
        numeric = set(numeric)
        out_cols: dict[str, Sequence[Any]] = {}
        for name, values in cols.items():
            picked = values if in_order else [values[i] for i in order]
            out_cols[name] = array("q", picked) if name in numeric else list(picked)
        return cls(array("q", [ts[i] for i in order]), out_buf, out_offsets, out_cols)

    @classmethod
    def from_rows(
        cls,
        ts: Sequence[int],
        rows: Sequence[bytes],
        cols: dict[str, Sequence[Any]],
        numeric: Iterable[str] = (),
    ) -> Table:
        buf = bytearray()
        offsets = array("q", [0])
        for row in rows:
            buf += row
            buf += b","
            offsets.append(len(buf))
        return cls.build(ts, buf, offsets, cols, numeric)

    def __len__(self) -> int:
        return len(self.ts)

    def row(self, pos: int) -> bytes:
        return self.buf[self.offsets[pos] : self.offsets[pos + 1] - 1]

    def insert(self, items: list[tuple[int, bytes, dict[str, Any]]]) -> None:
        """Insert rows (time, json, column values) in time order, after equal times."""
        if not items:
            return
        n = len(self.ts)
        ts = list(self.ts)
        rows = [self.row(i) for i in range(n)]
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
            self.ts, self.buf, self.offsets, self.cols = (
                fresh.ts,
                fresh.buf,
                fresh.offsets,
                fresh.cols,
            )
            self._groups = {}
            self._sorted.clear()
            self._combos.clear()

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
        missing = [name for name in filters if name not in self.cols]
        if missing:
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
        with self._lock:
            ts, offsets, buf = self.ts, self.offsets, self.buf
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
            return total, bytes(buf[offsets[page.start] : offsets[page.stop] - 1]), n
        return total, sep.join([buf[offsets[p] : offsets[p + 1] - 1] for p in page]), n

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
