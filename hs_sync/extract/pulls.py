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

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from hs_sync.api.client import ApiClient, Envelope
from hs_sync.config import Config
from hs_sync.errors import NotFoundError
from hs_sync.land.batch import BatchWriter
from hs_sync.land.state import ExtractState
from hs_sync.registry import DataType, Mode
from hs_sync.timeutil import parse_time, to_iso
from hs_sync.warehouse import Warehouse, safe_part

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

    def merge(self, other: PullResult) -> None:
        self.rows += other.rows
        self.requests += other.requests
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
    ):
        self.client = client
        self.warehouse = warehouse
        self.state = state
        self.config = config
        self.run_id = run_id
        self.window_end = window_end
        self.progress = progress or (lambda *a, **k: None)
        self.pages_per_file = pages_per_file

    # -- the one pagination loop ------------------------------------------

    def pages(
        self, path: str, params: dict[str, Any], *, endpoint: str, paged: bool = True
    ) -> Iterator[tuple[Envelope, str]]:
        """Yield (page, fetched_at) following `nextOffset`, fetching one page ahead.

        The next page is requested while the caller lands the current one, so
        the wire stays busy; the window parameters never change mid-scan.
        """
        base = dict(params)
        if paged:
            base["limit"] = self.config.page_size

        def fetch(offset: int) -> tuple[Envelope, str]:
            query = {**base, "offset": offset} if (paged or offset) else base
            return self.client.get(path, query, endpoint=endpoint), now_iso()

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hs-page") as ahead:
            offset = 0
            pending = ahead.submit(fetch, offset)
            while pending is not None:
                page, fetched_at = pending.result()
                nxt = _next_offset(page, offset)
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
        """Pull the window [watermark - lookback, run's server time] at experiment scope."""
        result = PullResult(dt.name, exp)
        mark = None if self.config.full_refresh else self.state.watermark(dt.name, exp)
        start_at = parse_time(mark)
        lookback = timedelta(seconds=self.config.lookback_seconds)
        start = to_iso(start_at - lookback) if start_at is not None else None
        # Rows of the overlap that the previous window already landed are not landed again.
        known = self.state.tail_keys(dt.name, exp) if start_at is not None else set()
        end = self.window_end
        end_at = parse_time(end)
        params: dict[str, Any] = {"startTime": start, "endTime": end, **dict(dt.extra_params)}
        if dt.cursor:
            params["sort"] = dt.sort or dt.cursor
            params["order"] = "asc"
        path = dt.url_path("experiment", quote_id(exp))
        for attempt in range(MAX_REREADS + 1):
            window = {"startTime": start, "endTime": end, "pass": attempt + 1}
            writer = self._writer(
                dt,
                exp,
                "w",
                "experiment",
                exp,
                window=window,
                skip_keys=known,
                tail_from=(end_at - lookback) if end_at is not None else None,
            )
            fetched, totals, requests = 0, [], 0
            try:
                for page, fetched_at in self.pages(
                    path, params, endpoint=_endpoint(dt, "experiment")
                ):
                    requests += 1
                    fetched += page.count
                    totals.append(_total(page))
                    writer.add(page, fetched_at)
                    self._checkpoint(dt, exp, writer)
                    self.progress("page", data_type=dt.name, experiment=exp, rows=page.count)
                writer.flush()
                self._checkpoint(dt, exp, writer)
            finally:
                writer.close()
            result.requests += requests
            result.rows += writer.rows
            result.files += len(writer.files)
            result.warnings += [w for w in _page_warnings(writer) if w not in result.warnings]
            total = totals[-1] if totals else None
            consistent = _reconciled(fetched, totals)
            result.windows.append(
                {
                    "data_type": dt.name,
                    "experiment_id": exp,
                    "scope": "experiment",
                    "scope_id": exp,
                    "start": start,
                    "end": end,
                    "fetched": fetched,
                    "rows": writer.rows,
                    "already_landed": writer.skipped,
                    "total": total,
                    "requests": requests,
                    "files": len(writer.files),
                }
            )
            if consistent:
                self.state.complete_window(
                    self.run_id,
                    dt.name,
                    exp,
                    scope="experiment",
                    scope_id=exp,
                    start=start,
                    end=end,
                    rows=writer.rows,
                    total=total,
                    requests=requests,
                    batch=writer.folder.name if writer.files else None,
                    watermark=end,
                    tail=writer.tail,
                )
                return result
            result.warnings.append(
                f"fetched {fetched} rows but the API reported total "
                f"{'/'.join(str(t) for t in totals)}; re-reading the window"
            )
        result.errors.append(
            f"row count still disagrees with pagination.total after {MAX_REREADS + 1} passes; "
            "the watermark was not moved to the window end"
        )
        return result

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
        known = (
            {} if (force or self.config.full_refresh) else self.state.room_versions(dt.name, exp)
        )
        due = {room: v for room, v in rooms.items() if not v or known.get(room) != v}
        if not force and len(due) > 1 and self._experiment_read_pays(dt, exp, len(due), result):
            running = frozenset(room for room, version in due.items() if not version)
            if self._pull_scope(dt, exp, "experiment", exp, "rooms", result, running):
                self._remember_rooms(dt, exp, due)
            return result
        for room_id, version in due.items():
            try:
                if self._pull_scope(dt, exp, "room", room_id, f"room-{safe_part(room_id)}", result):
                    self._remember_rooms(dt, exp, {room_id: version})
            except NotFoundError as exc:
                result.warnings.append(f"{dt.name}/{exp}: room {room_id} not found ({exc})")
        return result

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
            try:
                for page, fetched_at in self.pages(path, params, endpoint=_endpoint(dt, scope)):
                    requests += 1
                    fetched += page.count
                    totals.append(_total(page))
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
                    self.state.set_room_digest(dt.name, exp, room_id, digest)
                self.progress("room", data_type=dt.name, experiment=exp, rows=fetched)
                return True
        what = f"room {scope_id}" if scope == "room" else "experiment-scope read"
        result.errors.append(f"{dt.name}/{exp}: {what}: row count disagrees with pagination.total")
        return False

    # -- merge and snapshot --------------------------------------------------

    def pull_whole(self, dt: DataType, exp: str) -> PullResult:
        """Re-read a whole table (recordings, rooms, participants, deployments)."""
        if dt.data_endpoint:
            path, params = dt.url_path("experiment", quote_id(exp)), dict(dt.extra_params)
            paged = True
            endpoint = _endpoint(dt, "experiment")
        else:
            path, params, paged = dt.path, {"experimentId": exp, **dict(dt.extra_params)}, False
            endpoint = dt.path
        return self.land_whole(dt, exp, self.pages(path, params, endpoint=endpoint, paged=paged))

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
