"""Per-mode pulls (time, room, merge, snapshot) over one generic pagination loop.

Each pull reads the registry entry of its data type, pages through one
endpoint, lands the pages with a BatchWriter and checkpoints the state only
after the file behind a checkpoint is durable:

- `time`: experiment scope, `startTime = watermark - lookback`, `endTime`
  fixed (server time at the start of the run) for the whole pagination; the
  rows fetched are reconciled with `pagination.total`, a mismatch re-reads the
  window; the ledger records the window and the watermark moves to its end.
- `room`: one pull per room that is new, changed or still collecting since it was last pulled.
- `merge` / `snapshot`: the whole table re-read; landed only when it changed.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from hs_sync import registry
from hs_sync.api.client import ApiClient, Envelope
from hs_sync.config import Config
from hs_sync.errors import ApiError, NotFoundError
from hs_sync.land.batch import BatchWriter
from hs_sync.land.state import ExtractState
from hs_sync.registry import DataType, Mode
from hs_sync.timeutil import parse_time, to_iso
from hs_sync.warehouse import Warehouse, safe_part

if TYPE_CHECKING:
    from hs_sync.media.links import ListedLinks

MAX_REREADS = 2  # extra passes over a window whose row count disagrees with `total`

Progress = Callable[..., None]


@dataclass
class PullResult:
    """What one pull of one (data type, experiment) did."""

    data_type: str
    experiment_id: str
    rows: int = 0
    requests: int = 0
    windows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: int = 0
    errors: list[str] = field(default_factory=list)
    rooms: dict[str, str] | None = None  # rooms snapshot: room id -> version
    # requests by purpose (data, probes, verification); the rest of `requests` is data
    purposes: dict[str, int] = field(default_factory=dict)

    def count(self, purpose: str) -> None:
        """Count one request made for `purpose`."""
        self.requests += 1
        self.purposes[purpose] = self.purposes.get(purpose, 0) + 1

    def by_purpose(self) -> dict[str, int]:
        """Every request of the pull by purpose, those not counted otherwise as data."""
        out = dict(self.purposes)
        out["data"] = out.get("data", 0) + self.requests - sum(self.purposes.values())
        return {k: v for k, v in out.items() if v}

    def merge(self, other: PullResult) -> None:
        self.rows += other.rows
        self.requests += other.requests
        for k, v in other.purposes.items():
            self.purposes[k] = self.purposes.get(k, 0) + v
        self.windows += other.windows
        self.files += other.files
        self.errors += other.errors
        self.warnings += [w for w in other.warnings if w not in self.warnings]


# Room statuses after which a room's data no longer grows (compared case-insensitively).
FINAL_ROOM_STATUSES = frozenset(
    {
        "completed",
        "complete",
        "finished",
        "ended",
        "closed",
        "abandoned",
        "failed",
        "timeout",
        "timed_out",
        "cancelled",
        "canceled",
        "expired",
    }
)


def room_version(room: dict[str, Any]) -> str:
    """What makes a room 'changed' since the last pull: its updatedAt and status.

    A room still collecting data has no stable version (""): its rows can grow
    while neither field changes, so it is pulled on every sync until it is final.
    """
    status = str(room.get("status") or "")
    if status.lower() not in FINAL_ROOM_STATUSES:
        return ""
    return f"{room.get('updatedAt')}|{status}"


def quote_id(value: object) -> str:
    """An API id as exactly one URL path segment (it can never add a segment)."""
    segment = quote(str(value), safe="")
    # `.` and `..` are dot segments: an HTTP client resolves them and the request
    # would go to another path, so they are percent-encoded too.
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class Extractor:
    """Runs pulls for one sync run; thread-safe across units."""

    def __init__(
        self,
        client: ApiClient,
        warehouse: Warehouse,
        state: ExtractState,
        config: Config,
        *,
        run_id: str,
        window_end: str,
        progress: Progress | None = None,
        pages_per_file: int | None = None,
        listed: ListedLinks | None = None,
    ):
        self.client = client
        self.listed = listed  # legacy recording links for this run's media step
        self.warehouse = warehouse
        self.state = state
        self.config = config
        self.run_id = run_id
        self.window_end = window_end
        self.progress = progress or (lambda *a, **k: None)
        self.pages_per_file = pages_per_file
        self._lock = threading.Lock()
        self.verify_spent = 0  # requests spent on bisection and re-reads this run
        self.verified_full: set[tuple[str, str]] = set()  # units whose whole history agreed

    # -- the one pagination loop ------------------------------------------

    def pages(
        self,
        path: str,
        params: dict[str, Any],
        *,
        endpoint: str,
        paged: bool = True,
        start: int = 0,
        keep: Callable[[list[Any]], None] | None = None,
    ) -> Iterator[tuple[Envelope, str]]:
        """Yield (page, fetched_at) following `nextOffset`, fetching one page ahead.

        The next page is requested while the caller lands the current one, so
        the wire stays busy; the window parameters never change mid-scan.
        `keep` sees each page's records with their signed URLs before they are
        scrubbed (the recordings' legacy links, for this run's media step).
        """
        base = dict(params)
        if paged:
            base["limit"] = self.config.page_size

        def fetch(offset: int) -> tuple[Envelope, str]:
            query = {**base, "offset": offset} if (paged or offset) else base
            if keep is None:
                return self.client.get(path, query, endpoint=endpoint), now_iso()
            page = self.client.get(path, query, endpoint=endpoint, signed_urls=True)
            keep(page.records)
            return replace(page, data=self.client.scrubber.value(page.data)), now_iso()

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hs-page") as ahead:
            offset = start
            pending = ahead.submit(fetch, offset)
            first_total, rows = None, 0
            while pending is not None:
                page, fetched_at = pending.result()
                first_total = _total(page) if first_total is None else first_total
                rows += page.count
                nxt = _next_offset(page, offset)
                if nxt is not None and first_total is not None:
                    _check_bound(path, rows, first_total, self.config.page_size)
                pending = ahead.submit(fetch, nxt) if nxt is not None else None
                try:
                    yield page, fetched_at
                except GeneratorExit:
                    if pending is not None:
                        pending.cancel()
                    raise
                offset = nxt if nxt is not None else offset

    def _writer(self, dt: DataType, exp: str, label: str, scope: str, scope_id: str, **kw):
        if self.pages_per_file:
            kw["pages_per_file"] = self.pages_per_file
        kw["compression"] = self.config.raw_compression
        return BatchWriter(self.warehouse, dt, exp, label, scope, scope_id, **kw)

    # -- time mode -----------------------------------------------------------

    def pull_time(self, dt: DataType, exp: str) -> PullResult:
        """Land what is new in a time type, verifying history by totals (docs/requests.md).

        First sync (or --full-refresh): one ascending read of everything up to the
        run's server time. After that: one `head` request, newest rows first over
        the verified range (the last `verify_recent_hours`, or all history when it
        is due), whose `pagination.total` is compared with the rows landed for
        that range. Equal: nothing to read. Otherwise the open region (from the
        watermark's bucket, less the lookback) is landed, from the head page
        itself when it holds all of it, and a remainder that still disagrees is
        bisected down to the sub-windows that differ, which are re-read.
        """
        result = PullResult(dt.name, exp)
        mark = None if self.config.full_refresh else self.state.watermark(dt.name, exp)
        mark_at = parse_time(mark)
        end_at = parse_time(self.window_end)
        if mark_at is None or end_at is None or not dt.cursor:
            self._read_open(dt, exp, None, result, purpose="data")
            if not result.errors:
                self._verified(dt, exp, full=True)
            return result
        lookback = timedelta(seconds=self.config.lookback_seconds)
        open_from = self.bucket(min(mark_at - lookback, end_at))
        poll = self.state.poll(dt.name, exp) or {}
        verified_at = parse_time(poll.get("verified_at"))
        full = verified_at is None or end_at - verified_at >= timedelta(
            hours=self.config.verify_all_hours
        )
        recent = self.bucket(end_at - timedelta(hours=self.config.verify_recent_hours))
        vstart = None if full else min(open_from, recent)
        lively = poll.get("unchanged", 0) == 0 and poll.get("polled_at") is not None
        limit = self.config.page_size if lively else 1
        head = self._get(dt, exp, vstart, None, result, "probe", limit=limit, order="desc")
        total = _total(head)
        known = self._known(dt, exp, vstart, None)
        if total is not None and total == known:
            self.state.complete_window(
                self.run_id, dt.name, exp, scope="experiment", scope_id=exp,
                start=_iso_s(vstart), end=self.window_end, rows=0, total=total, requests=1,
                batch=None, watermark=self.window_end, keep_tail=True,
            )  # fmt: skip
            self._verified(dt, exp, full=full)
            result.windows.append(self._window_entry(dt, exp, vstart, None, 0, 0, total, 1, 0))
            return result
        opened = self._open_from_head(dt, exp, head, open_from, result)
        exact = opened is not None  # the remainder comes from the same response
        if opened is None:
            opened = self._read_open(dt, exp, open_from, result, purpose="data")
        if opened is None or total is None:
            return result  # an inconsistent read: reported; the watermark stayed
        remainder = total - opened
        if remainder != self._known(dt, exp, vstart, open_from):
            # rows arriving between the head and the read make a separate read's
            # remainder inexact: the closed region is then probed by itself
            done = self._reconcile(dt, exp, vstart, open_from, remainder if exact else None, result)
        else:
            done = True
        if done:
            self._verified(dt, exp, full=full)
        else:
            result.warnings.append(
                "history differs from the rows landed beyond this run's verification budget; "
                "the next sync goes on"
            )
        return result

    def bucket(self, moment: datetime) -> int:
        """The start (epoch seconds) of the time bucket holding `moment`."""
        width = self.config.bucket_seconds
        return int(moment.timestamp()) // width * width

    def _known(self, dt: DataType, exp: str, lo: int | None, hi: int | None) -> int:
        return sum(n for _, n in self.state.bucket_rows(dt.name, exp, lo, hi))

    def _verified(self, dt: DataType, exp: str, *, full: bool) -> None:
        if full:
            with self._lock:
                self.verified_full.add((dt.name, exp))

    def _get(
        self,
        dt: DataType,
        exp: str,
        lo: int | None,
        hi: int | None,
        result: PullResult,
        purpose: str,
        *,
        limit: int = 1,
        order: str = "asc",
    ) -> Envelope:
        """One request for [lo, hi) (bucket bounds, None: open) of a time type."""
        params = {**self._time_params(dt, lo, hi), "limit": limit, "offset": 0, "order": order}
        page = self.client.get(
            dt.url_path("experiment", quote_id(exp)), params, endpoint=_endpoint(dt, "experiment")
        )
        result.count(purpose)
        return page

    def _time_params(self, dt: DataType, lo: int | None, hi: int | None) -> dict[str, Any]:
        end = self.window_end if hi is None else _iso_ms(hi * 1000 - 1)
        params: dict[str, Any] = {"startTime": _iso_s(lo), "endTime": end}
        params.update(dict(dt.extra_params))
        params["sort"] = dt.sort or dt.cursor
        params["order"] = "asc"
        return params

    def _open_from_head(
        self, dt: DataType, exp: str, head: Envelope, open_from: int, result: PullResult
    ) -> int | None:
        """Land the open region from the head page (newest first) when the page reaches
        below it; the rows of the open region, or None when the page did not cover it."""
        records = head.records
        if len(records) < 2 and (head.pagination or {}).get("hasMore"):
            return None
        cursors = [r.get(dt.cursor) if isinstance(r, dict) else None for r in records]
        counts = _bucket_counts(cursors, self.config.bucket_seconds)
        covered = not (head.pagination or {}).get("hasMore") or any(b < open_from for b in counts)
        if not covered or None in counts:
            return None
        width = self.config.bucket_seconds
        keep = [
            r for r, c in zip(records, cursors, strict=True) if _bucket_of(c, width) >= open_from
        ]
        keep.reverse()  # landed oldest first, as an ascending read would
        page = Envelope(head.path, head.params, keep, head.metadata, head.server_time)
        opened = {b: n for b, n in counts.items() if b >= open_from}
        self._land_read(dt, exp, open_from, None, [(page, now_iso())], result, opened, None)
        return len(keep)

    def _read_open(
        self, dt: DataType, exp: str, lo: int | None, result: PullResult, *, purpose: str
    ) -> int | None:
        """Read [lo, run end] ascending and land it; its rows, or None if never consistent."""
        for _attempt in range(MAX_REREADS + 1):
            got = self._read(dt, exp, lo, None, result, purpose)
            if got is not None:
                return got
            result.warnings.append("the rows fetched disagree with pagination.total; re-reading")
        result.errors.append(
            f"row count still disagrees with pagination.total after {MAX_REREADS + 1} passes; "
            "the watermark was not moved to the window end"
        )
        return None

    def _read(
        self, dt: DataType, exp: str, lo: int | None, hi: int | None, result: PullResult,
        purpose: str,
    ) -> int | None:  # fmt: skip
        """One ascending read of [lo, hi) landed as one batch; its rows if consistent."""
        pages = self.pages(
            dt.url_path("experiment", quote_id(exp)),
            self._time_params(dt, lo, hi),
            endpoint=_endpoint(dt, "experiment"),
        )
        return self._land_read(dt, exp, lo, hi, pages, result, None, purpose)

    def _land_read(
        self,
        dt: DataType,
        exp: str,
        lo: int | None,
        hi: int | None,
        pages,
        result: PullResult,
        counts: dict[int, int] | None,
        purpose: str | None,
    ) -> int | None:
        """Land pages of [lo, hi); record the window, its bucket counts and (open
        windows) the watermark in one transaction once its files are durable."""
        opening = hi is None
        end_at = parse_time(self.window_end)
        lookback = timedelta(seconds=self.config.lookback_seconds)
        known = self.state.tail_keys(dt.name, exp) if opening and lo is not None else set()
        start, end = _iso_s(lo), (self.window_end if opening else _iso_ms(hi * 1000 - 1))
        writer = self._writer(
            dt, exp, "w" if opening else "v", "experiment", exp,
            window={"startTime": start, "endTime": end},
            skip_keys=known,
            tail_from=(
                datetime.fromtimestamp(self.bucket(end_at - lookback), timezone.utc)
                if opening and end_at is not None
                else None
            ),
        )  # fmt: skip
        fetched, totals, requests = 0, [], 0
        tally = counts is None
        counts = {} if counts is None else counts
        try:
            for page, fetched_at in pages:
                if purpose is not None:
                    requests += 1
                    result.count(purpose)
                fetched += page.count
                totals.append(_total(page))
                if tally:
                    for b, n in _bucket_counts(
                        _cursors(dt, page), self.config.bucket_seconds
                    ).items():
                        counts[b] = counts.get(b, 0) + n
                writer.add(page, fetched_at)
                if opening:
                    self._checkpoint(dt, exp, writer)
                self.progress("page", data_type=dt.name, experiment=exp, rows=page.count)
            writer.flush()
            if opening:
                self._checkpoint(dt, exp, writer)
        finally:
            writer.close()
        result.rows += writer.rows
        result.files += len(writer.files)
        result.warnings += [w for w in _page_warnings(writer) if w not in result.warnings]
        total = totals[-1] if totals else None
        result.windows.append(
            self._window_entry(dt, exp, lo, hi, fetched, writer.rows, total, requests,
                               len(writer.files), already=writer.skipped)
        )  # fmt: skip
        if tally and not _reconciled(fetched, totals):
            return None
        counts.pop(None, None)  # rows without a readable time: not in any bucket
        self.state.complete_window(
            self.run_id, dt.name, exp, scope="experiment", scope_id=exp, start=start, end=end,
            rows=writer.rows, total=total, requests=requests,
            batch=writer.folder.name if writer.files else None,
            watermark=self.window_end if opening else None,
            tail=writer.tail, keep_tail=not opening,
            buckets=(lo, hi, counts),
        )  # fmt: skip
        return fetched

    def _reconcile(
        self, dt: DataType, exp: str, lo: int | None, hi: int, total: int | None,
        result: PullResult,
    ) -> bool:  # fmt: skip
        """Bisect [lo, hi) until each part's API total matches its landed rows or fits
        in one page, which is then re-read; False when the run's budget ran out."""
        if total is None:
            if not self._spend():
                return False
            total = _total(self._get(dt, exp, lo, hi, result, "verification"))
            if total is None:
                return False
        rows = self.state.bucket_rows(dt.name, exp, lo, hi)
        known = sum(n for _, n in rows)
        if total == known:
            return True
        mid = _split(rows, known, lo, hi, self.config.bucket_seconds)
        if not self._spend():
            return False
        if total <= self.config.page_size or mid is None:
            return self._read(dt, exp, lo, hi, result, "verification") is not None
        left = _total(self._get(dt, exp, lo, mid, result, "verification"))
        if left is None:
            return False
        return self._reconcile(dt, exp, lo, mid, left, result) and self._reconcile(
            dt, exp, mid, hi, total - left, result
        )

    def _spend(self) -> bool:
        """Take one request of the run's verification budget (False: none left)."""
        with self._lock:
            if self.verify_spent >= self.config.verify_budget:
                return False
            self.verify_spent += 1
            return True

    def _window_entry(
        self, dt, exp, lo, hi, fetched, rows, total, requests, files, already=0
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "data_type": dt.name,
            "experiment_id": exp,
            "scope": "experiment",
            "scope_id": exp,
            "start": _iso_s(lo),
            "end": self.window_end if hi is None else _iso_ms(hi * 1000 - 1),
            "fetched": fetched,
            "rows": rows,
            "already_landed": already,
            "total": total,
            "requests": requests,
            "files": files,
        }

    def _checkpoint(self, dt: DataType, exp: str, writer: BatchWriter) -> None:
        """After durable files: move the watermark to their newest row, if rows came sorted.

        A crash mid-window then resumes near where it stopped instead of from the
        window start; rows older than that are covered by the lookback.
        """
        files = writer.take_landed()
        if not files:
            return
        landed = files[-1]  # max_cursor is cumulative over the batch
        self.progress("file", data_type=dt.name, experiment=exp, rows=sum(f.rows for f in files))
        if writer.ordered and landed.max_cursor is not None:
            end = parse_time(self.window_end)
            mark = landed.max_cursor if end is None else min(landed.max_cursor, end)
            self.state.advance_watermark(dt.name, exp, to_iso(mark))

    # -- room mode -----------------------------------------------------------

    def pull_rooms(
        self, dt: DataType, exp: str, rooms: dict[str, str], *, force: bool = False
    ) -> PullResult:
        """Pull each room that is new, changed or still collecting (all of them if `force`).

        When that many rooms are due that one experiment-scope read needs fewer
        requests (a first sync), the rooms are read that way instead: one probe
        request learns the row count; the overlap with unchanged rooms de-duplicates
        by key downstream.
        """
        result = PullResult(dt.name, exp)
        fresh_start = force or self.config.full_refresh
        known = {} if fresh_start else self.state.room_versions(dt.name, exp)
        due = {room: v for room, v in rooms.items() if not v or known.get(room) != v}
        whole = "experiment" in dt.scopes  # the type can be read for a whole experiment
        offsets = {} if fresh_start else self._room_offsets(dt, exp, due)
        if (
            not force
            and whole
            and not offsets
            and len(due) > 1
            and self._experiment_read_pays(dt, exp, len(due), result)
        ):
            running = frozenset(room for room, version in due.items() if not version)
            if self._pull_scope(dt, exp, "experiment", exp, "rooms", result, running):
                self._remember_rooms(dt, exp, due)
            return result
        for room_id, version in due.items():
            try:
                offset = offsets.get(room_id)
                if offset is not None and self._continue_room(dt, exp, room_id, offset, result):
                    if version:
                        self._remember_rooms(dt, exp, {room_id: version})
                    continue
                running = frozenset() if version else frozenset({room_id})
                label = f"room-{safe_part(room_id)}"
                if self._pull_scope(dt, exp, "room", room_id, label, result, running):
                    self._remember_rooms(dt, exp, {room_id: version})
            except NotFoundError as exc:
                result.warnings.append(f"{dt.name}/{exp}: room {room_id} not found ({exc})")
        return result

    def _room_offsets(
        self, dt: DataType, exp: str, due: dict[str, str]
    ) -> dict[str, tuple[int, str]]:
        """The landed offsets of the due rooms that have one (none for an unpaged endpoint,
        which answers a room whole)."""
        out: dict[str, tuple[int, str]] = {}
        for room in due if dt.paged else ():
            offset = self.state.room_offset(dt.name, exp, room)
            if offset is not None and offset[0] > 0:
                out[room] = offset
        return out

    def _continue_room(
        self, dt: DataType, exp: str, room_id: str, offset: tuple[int, str], result: PullResult
    ) -> bool:
        """Read a room from its landed offset, re-reading its last landed row to verify the
        order; land what follows. False (nothing landed) when that row differs or the
        read disagrees with `pagination.total`: the caller re-reads the room whole."""
        rows, last = offset
        path = dt.url_path("room", quote_id(room_id))
        writer = self._writer(
            dt, exp, f"room-{safe_part(room_id)}", "room", room_id, track_cursor=False,
            staged=True,
        )  # fmt: skip
        fetched, totals, requests, newest = 0, [], 0, last
        try:
            for page, fetched_at in self.pages(
                path, dict(dt.extra_params), endpoint=_endpoint(dt, "room"), start=rows - 1
            ):
                requests += 1
                result.count("data")
                records = page.records
                if requests == 1:
                    if not records or _row_hash(records[0]) != last:
                        writer.discard()
                        result.warnings.append(
                            f"room {room_id}: its rows moved since the last read; re-read whole"
                        )
                        return False
                    records = records[1:]
                totals.append(_total(page))
                fetched += len(records)
                if records:
                    newest = _row_hash(records[-1])
                    writer.add(
                        Envelope(page.path, page.params, records, page.metadata, page.server_time),
                        fetched_at,
                    )
            total = totals[-1] if totals else None
            if total is not None and (rows + fetched != total or any(t != total for t in totals)):
                writer.discard()
                return False
            writer.publish()
        finally:
            writer.close()
        result.rows += fetched
        result.files += len(writer.files)
        result.windows.append(
            {
                "data_type": dt.name, "experiment_id": exp, "scope": "room",
                "scope_id": room_id, "rows": fetched, "total": total, "from_offset": rows - 1,
                "requests": requests, "files": len(writer.files),
            }
        )  # fmt: skip
        self.state.complete_window(
            self.run_id, dt.name, exp, scope="room", scope_id=room_id, start=None, end=None,
            rows=fetched, total=total, requests=requests,
            batch=writer.folder.name if writer.files else None, keep_tail=True,
        )  # fmt: skip
        self.state.set_room_offset(dt.name, exp, room_id, rows + fetched, newest)
        return True

    def _remember_rooms(self, dt: DataType, exp: str, versions: dict[str, str]) -> None:
        # a room still collecting ("" version) is not remembered: it is pulled again
        self.state.set_room_versions(dt.name, exp, {r: v for r, v in versions.items() if v})

    def _experiment_read_pays(self, dt: DataType, exp: str, due: int, result: PullResult) -> bool:
        """Whether reading the whole experiment takes fewer requests than `due` room reads."""
        path = dt.url_path("experiment", quote_id(exp))
        probe = self.client.get(
            path,
            {**dict(dt.extra_params), "limit": 1, "offset": 0},
            endpoint=_endpoint(dt, "experiment"),
        )
        result.requests += 1
        total = _total(probe)
        return total is not None and -(-total // self.config.page_size) < due

    def _pull_scope(
        self,
        dt: DataType,
        exp: str,
        scope: str,
        scope_id: str,
        label: str,
        result: PullResult,
        running: frozenset[str] = frozenset(),
    ) -> bool:
        """Read one room (or, for room types, a whole experiment); True once consistent.

        A room read identical to the room's last landed read (a room still
        collecting that nothing happened in) is not landed again; an experiment
        read records that of each of its `running` rooms.
        """
        path = dt.url_path(scope, quote_id(scope_id))
        params = dict(dt.extra_params)
        room = scope == "room"
        for _pass in range(MAX_REREADS + 1):
            writer = self._writer(
                dt,
                exp,
                label,
                scope,
                scope_id,
                track_cursor=False,
                digest=room,
                staged=room,
                room_digests=running,
            )
            fetched, totals, requests = 0, [], 0
            unchanged = False
            tally: dict[str, list] = {}  # running room -> [rows, last row]: its offset
            try:
                pages = self.pages(path, params, endpoint=_endpoint(dt, scope), paged=dt.paged)
                for page, fetched_at in pages:
                    requests += 1
                    fetched += page.count
                    totals.append(_total(page))
                    if running:
                        _tally_rooms(page.records, running, scope_id if room else None, tally)
                    writer.add(page, fetched_at)
                if room:
                    # A room last read within an experiment-scope read has the digest
                    # that read recorded; where the two reads order its rows differently,
                    # it is landed once more and de-duplicated by key downstream.
                    unchanged = (
                        not self.config.full_refresh
                        and _reconciled(fetched, totals)
                        and writer.content_digest == self.state.room_digest(dt.name, exp, scope_id)
                    )
                    if unchanged:
                        writer.discard()
                    else:
                        writer.publish()
                else:
                    writer.flush()
            finally:
                writer.close()
            result.requests += requests
            result.rows += 0 if unchanged else fetched
            result.files += len(writer.files)
            result.warnings += [w for w in _page_warnings(writer) if w not in result.warnings]
            total = totals[-1] if totals else None
            result.windows.append(
                {
                    "data_type": dt.name,
                    "experiment_id": exp,
                    "scope": scope,
                    "scope_id": scope_id,
                    "rows": fetched,
                    "total": total,
                    "unchanged": unchanged,
                    "requests": requests,
                    "files": len(writer.files),
                }
            )
            if _reconciled(fetched, totals):
                self.state.complete_window(
                    self.run_id,
                    dt.name,
                    exp,
                    scope=scope,
                    scope_id=scope_id,
                    start=None,
                    end=None,
                    rows=fetched,
                    total=total,
                    requests=requests,
                    batch=writer.folder.name if writer.files else None,
                )
                if room and not unchanged:
                    self.state.set_room_digest(dt.name, exp, scope_id, writer.content_digest)
                for room_id, digest in writer.room_content_digests.items():
                    if not room:  # a room read's own digest is the whole read's (its
                        # records may not name the room: room-scope-only types)
                        self.state.set_room_digest(dt.name, exp, room_id, digest)
                for room_id, (n, last) in tally.items():
                    self.state.set_room_offset(dt.name, exp, room_id, n, _row_hash(last))
                self.progress("room", data_type=dt.name, experiment=exp, rows=fetched)
                return True
        what = f"room {scope_id}" if scope == "room" else "experiment-scope read"
        result.errors.append(f"{dt.name}/{exp}: {what}: row count disagrees with pagination.total")
        return False

    # -- merge and snapshot --------------------------------------------------

    def pull_whole(self, dt: DataType, exp: str) -> PullResult:
        """Re-read a whole table (recordings, rooms, participants, deployments).

        A table whose last read took more than one page is first probed (one row,
        newest `change_sort` first): the same total and first row as the last
        probe saw means no re-read, until `poll_max_interval_seconds` since the
        last read.
        """
        probe, seen = self._probe_snapshot(dt, exp)
        if probe is not None and seen is None:
            return probe  # nothing changed
        result = self._read_whole(dt, exp)
        if probe is not None:
            result.merge(probe)
        if dt.change_sort and dt.data_endpoint and not result.errors:
            pages = result.requests - (probe.requests if probe else 0)
            self.state.set_signal(
                f"snapshot:{dt.name}:{exp}", orjson.dumps([pages, seen]).decode(), self.window_end
            )
        return result

    def _probe_snapshot(self, dt: DataType, exp: str) -> tuple[PullResult | None, list | None]:
        """(the probe's result, what it saw), what it saw being None when it is what the
        last probe saw; (None, None) when no probe is made."""
        if not (dt.change_sort and dt.data_endpoint) or self.config.full_refresh:
            return None, None
        remembered = self.state.signal(f"snapshot:{dt.name}:{exp}")
        now = parse_time(self.window_end)
        if remembered is None or now is None:
            return None, None
        pages, last = orjson.loads(remembered[0])
        read_at = parse_time(remembered[1])
        fresh = read_at is not None and (now - read_at).total_seconds() < (
            self.config.poll_max_interval_seconds
        )
        if pages <= 1 or not fresh:
            return None, None
        result = PullResult(dt.name, exp)
        page = self.client.get(
            dt.url_path("experiment", quote_id(exp)),
            {**dict(dt.extra_params), "limit": 1, "offset": 0, "sort": dt.change_sort,
             "order": "desc"},
            endpoint=_endpoint(dt, "experiment"),
        )  # fmt: skip
        result.count("probe")
        first = page.records[0] if page.records else None
        seen = [_total(page), _row_hash(first)]
        if seen == last:
            result.windows.append(
                {"data_type": dt.name, "experiment_id": exp, "scope": "experiment",
                 "scope_id": exp, "rows": 0, "requests": 1, "unchanged": True, "probe": True}
            )  # fmt: skip
            return result, None
        return result, seen

    def _read_whole(self, dt: DataType, exp: str) -> PullResult:
        return self.land_whole(dt, exp, self._whole_pages(dt, exp))

    def _whole_pages(self, dt: DataType, exp: str) -> Iterator[tuple[Envelope, str]]:
        if dt.data_endpoint:
            path, params = dt.url_path("experiment", quote_id(exp)), dict(dt.extra_params)
            keep = self.listed.note if dt.triggers_media and self.listed is not None else None
            return self.pages(
                path, params, endpoint=_endpoint(dt, "experiment"), paged=dt.paged, keep=keep
            )
        params = {"experimentId": exp, **dict(dt.extra_params)}
        return self.pages(dt.path, params, endpoint=dt.path, paged=False)

    def pull_children(self, dt: DataType, exp: str) -> PullResult:
        """Re-read a type served per record of its `parent` type (the experiment's
        deployments' sessions): the parent list, then each parent's records."""
        parent = registry.BY_NAME[dt.parent or ""]
        parents = self._whole_pages(parent, exp)
        ids = [
            str(record["id"])
            for page, _ in parents
            for record in page.records
            if isinstance(record, dict) and record.get("id") is not None
        ]

        def children() -> Iterator[tuple[Envelope, str]]:
            for parent_id in ids:
                path = dt.url_path("", "", parent_id=quote_id(parent_id))
                params = dict(dt.extra_params)
                yield from self.pages(path, params, endpoint=dt.path, paged=dt.paged)

        result = self.land_whole(dt, exp, children())
        result.requests += 1  # the parent list
        return result

    def land_whole(
        self, dt: DataType, exp: str, pages: Iterator[tuple[Envelope, str]] | list
    ) -> PullResult:
        """Land a whole-table read, skipping it when identical to the last one landed."""
        result = PullResult(dt.name, exp)
        label = "merge" if dt.mode is Mode.MERGE else "snap"
        writer = self._writer(
            dt, exp, label, "experiment", exp, track_cursor=False, digest=True, staged=True
        )
        rooms: dict[str, str] | None = {} if dt.lists == "room" else None
        requests = 0
        try:
            for page, fetched_at in pages:
                requests += 1
                if rooms is not None:
                    for room in page.records:
                        if isinstance(room, dict) and room.get("id") is not None:
                            rooms[str(room["id"])] = room_version(room)
                writer.add(page, fetched_at)
            previous = (
                None if self.config.full_refresh else self.state.snapshot_digest(dt.name, exp)
            )
            unchanged = writer.content_digest == previous
            if unchanged:
                writer.discard()
            else:
                writer.publish()
        finally:
            writer.close()
        result.requests = requests
        result.rows = 0 if unchanged else writer.rows  # rows landed
        result.files = len(writer.files)
        result.rooms = rooms
        result.warnings = _page_warnings(writer)
        result.windows.append(
            {
                "data_type": dt.name,
                "experiment_id": exp,
                "scope": "experiment",
                "scope_id": exp,
                "fetched": writer.rows,
                "rows": result.rows,
                "requests": requests,
                "files": len(writer.files),
                "unchanged": unchanged,
            }
        )
        self.state.complete_window(
            self.run_id,
            dt.name,
            exp,
            scope="experiment",
            scope_id=exp,
            start=None,
            end=None,
            rows=writer.rows,
            total=None,
            requests=requests,
            batch=writer.folder.name if writer.files else None,
        )
        if not unchanged:
            self.state.set_snapshot_digest(dt.name, exp, writer.content_digest)

        self.progress("snapshot", data_type=dt.name, experiment=exp, rows=writer.rows)
        return result


def _endpoint(dt: DataType, scope: str) -> str:
    """The rate-limit bucket of a request: the route, without the scope id."""
    return f"data/{dt.path}/{scope}" if dt.data_endpoint else dt.path


def _reconciled(fetched: int, totals: list[int | None]) -> bool:
    """Whether a read agrees with `pagination.total`: the same total on every page, all
    of it fetched (no total at all: nothing to reconcile against)."""
    total = totals[-1] if totals else None
    return total is None or (fetched == total and all(t == total for t in totals))


def _total(page: Envelope) -> int | None:
    pagination = page.pagination
    if not pagination:
        return None
    total = pagination.get("total")
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def _check_bound(path: str, rows: int, total: int, page_size: int) -> None:
    """Raise when a scan has gone past its first page's `total` by more than a margin
    (rows added while it runs): a server whose `hasMore` never ends must not hold the run."""
    limit = total + max(2 * page_size, total // 10)
    if rows > limit:
        raise ApiError(
            f"GET {path}: the API kept sending pages beyond pagination.total ({total:,}): "
            f"{rows:,} rows; the read is stopped"
        )


def _next_offset(page: Envelope, offset: int) -> int | None:
    """The offset of the next page, or None when this was the last one."""
    pagination = page.pagination
    if not pagination or not pagination.get("hasMore"):
        return None
    returned = page.count
    nxt = pagination.get("nextOffset")
    if not isinstance(nxt, int) or isinstance(nxt, bool):
        nxt = offset + returned
    if returned == 0 or nxt <= offset:
        return None  # a server that says "more" but makes no progress: stop, don't loop
    return nxt


def _page_warnings(writer: BatchWriter) -> list[str]:
    return list(writer.all_warnings)


def _iso_s(seconds: int | None) -> str | None:
    return None if seconds is None else _iso_ms(seconds * 1000)


def _iso_ms(ms: int) -> str:
    return to_iso(datetime.fromtimestamp(ms / 1000, timezone.utc))


def _cursors(dt: DataType, page: Envelope) -> list[Any]:
    """The cursor value of each record of a page."""
    return [r.get(dt.cursor) if isinstance(r, dict) else None for r in page.records]


def _bucket_of(value: Any, width: int, cache: dict | None = None) -> int | None:
    """The bucket (epoch seconds) of a cursor value; None when it is no time."""
    if type(value) is str and len(value) == 24 and value[-1] == "Z" and width % 60 == 0:
        minute = value[:16]  # canonical text: buckets of whole minutes share the prefix
        if cache is not None and minute in cache:
            return cache[minute]
        moment = parse_time(minute + ":00Z")
        found = None if moment is None else int(moment.timestamp()) // width * width
        if cache is not None:
            cache[minute] = found
        return found
    moment = parse_time(value)
    return None if moment is None else int(moment.timestamp()) // width * width


def _bucket_counts(values: list[Any], width: int) -> dict[int | None, int]:
    """Rows per bucket (None: rows without a readable time)."""
    out: dict[int | None, int] = {}
    cache: dict[str, int | None] = {}
    for value in values:
        b = _bucket_of(value, width, cache)
        out[b] = out.get(b, 0) + 1
    return out


def _split(
    rows: list[tuple[int, int]], known: int, lo: int | None, hi: int, width: int
) -> int | None:
    """A bucket boundary inside (lo, hi) that halves the landed rows (or the time, when
    none are landed); None when the range is one bucket."""
    if known:
        seen = 0
        for bucket, n in rows:
            seen += n
            if seen * 2 >= known:
                mid = bucket + width
                break
        else:
            mid = hi
        if mid >= hi:  # the heaviest bucket is the last: split before it instead
            mid = rows[-1][0]
    elif lo is not None:
        mid = (lo + (hi - lo) // 2) // width * width
    else:
        return None
    if (lo is not None and mid <= lo) or mid >= hi:
        return None
    return mid


def _row_hash(record: Any) -> str:
    """A row's identity for the overlap check of a room continued from its offset."""
    return hashlib.blake2b(
        orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


def _tally_rooms(
    records: list, running: frozenset[str], room: str | None, tally: dict[str, list]
) -> None:
    """Count the rows of each running room and note its last one (`room`: all are its)."""
    for record in records:
        if room is not None:
            rid = room
        elif isinstance(record, dict):
            rid = str(record.get("roomId"))
        else:
            continue
        if rid in running:
            entry = tally.setdefault(rid, [0, None])
            entry[0] += 1
            entry[1] = record
