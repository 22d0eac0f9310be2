"""The one pagination loop every pull reads through, and what a pull reports.

`PullContext` holds what the pulls of one run share (client, warehouse, state,
the run's window end) and pages through an endpoint following `nextOffset`,
one page ahead; `PullResult` is what one pull of one (data type, experiment)
did.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, cast

import orjson

from hs_sync.api.client import ApiClient, Envelope
from hs_sync.config import Config
from hs_sync.errors import ApiError
from hs_sync.extract.promises import REPORTED_TOTAL, Promises, TrustedClient
from hs_sync.land.batch import BatchWriter
from hs_sync.land.state import ExtractState
from hs_sync.registry import DataType
from hs_sync.warehouse import Warehouse

MAX_REREADS = 2  # extra passes over a read whose row count disagrees with `total`

Progress = Callable[..., None]
# Sees a page's records with their signed URLs before they are scrubbed.
KeepRecords = Callable[[list[Any]], None]


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
    rooms: dict[str, str] | None = None  # rooms listing: room id -> version
    # requests by purpose (data, probes, verification); the rest of `requests` is data
    purposes: dict[str, int] = field(default_factory=dict)
    verified: bool = False  # the unit's whole history was found to agree with the API

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


class PullContext:
    """What the pulls of one run share; thread-safe across units."""

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
        keep: KeepRecords | None = None,
        listing: Envelope | None = None,
        promises: Promises | None = None,
    ):
        self.promises = promises or Promises()
        # a total the API misreports is dropped from every answer the pulls read
        self.client: ApiClient = (
            client if self.promises.total else cast(ApiClient, TrustedClient(client, self.promises))
        )
        self.warehouse = warehouse
        self.state = state
        self.config = config
        self.run_id = run_id
        self.window_end = window_end
        self.progress = progress or (lambda *a, **k: None)
        self.pages_per_file = pages_per_file
        self.keep = keep  # legacy recording links, for this run's media step
        self._lock = threading.Lock()
        self.verify_spent = 0  # requests spent on bisection and re-reads this run
        self._listing = listing  # the run's experiments listing (None: not read yet)
        # each experiment's rooms (room id -> version) as this run's rooms listing read
        # them; None: the listing could not be read
        self.rooms: dict[str, dict[str, str] | None] = {}

    def experiments_listing(self) -> Envelope:
        """The run's one GET /experiments, shared by the experiment units."""
        with self._lock:
            if self._listing is None:
                self._listing = self.client.get("experiments", endpoint="experiments")
            return self._listing

    def spend_verification(self) -> bool:
        """Take one request of the run's verification budget (False: none left)."""
        with self._lock:
            if self.verify_spent >= self.config.verify_budget:
                return False
            self.verify_spent += 1
            return True

    def pages(
        self,
        path: str,
        params: dict[str, Any],
        *,
        endpoint: str,
        paged: bool = True,
        start: int = 0,
        keep: KeepRecords | None = None,
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

        # The first page is fetched here: a one-page read (a room, mostly) starts no thread.
        offset = start
        page, fetched_at = fetch(offset)
        ahead: ThreadPoolExecutor | None = None
        try:
            first_total, rows = None, 0
            while True:
                first_total = bound_of(page) if first_total is None else first_total
                rows += page.count
                nxt = _next_offset(page, offset, trust_next=self.promises.limit)
                if nxt is not None and first_total is not None:
                    _check_bound(path, rows, first_total, self.config.page_size)
                pending = None
                if nxt is not None:
                    if ahead is None:
                        ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hs-page")
                    pending = ahead.submit(fetch, nxt)
                try:
                    yield page, fetched_at
                except GeneratorExit:
                    if pending is not None:
                        pending.cancel()
                    raise
                if pending is None:
                    return
                offset = nxt
                page, fetched_at = pending.result()
        finally:
            if ahead is not None:
                ahead.shutdown(wait=True)

    def writer(
        self, dt: DataType, exp: str, label: str, scope: str, scope_id: str, **kw: Any
    ) -> BatchWriter:
        """A BatchWriter for one read, with the run's file size and compression."""
        if self.pages_per_file:
            kw["pages_per_file"] = self.pages_per_file
        kw["compression"] = self.config.raw_compression
        return BatchWriter(self.warehouse, dt, exp, label, scope, scope_id, **kw)


class Pull:
    """What every mode's class is built on: the run's context and the one data type it
    replicates. `pull(experiment)` pulls one unit (see hs_sync/extract/modes.py)."""

    def __init__(self, ctx: PullContext, dt: DataType):
        self.ctx = ctx
        self.dt = dt
        self.state = ctx.state
        self.config = ctx.config
        self.client = ctx.client

    def pull(self, exp: str) -> PullResult:
        raise NotImplementedError


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def reconciled(fetched: int, totals: list[int | None]) -> bool:
    """Whether a read agrees with `pagination.total`: the same total on every page, all
    of it fetched (no total at all: nothing to reconcile against)."""
    total = totals[-1] if totals else None
    return total is None or (fetched == total and all(t == total for t in totals))


def total_of(page: Envelope) -> int | None:
    """A page's `pagination.total`, when it is an integer."""
    pagination = page.pagination
    if not pagination:
        return None
    total = pagination.get("total")
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def bound_of(page: Envelope) -> int | None:
    """The total a scan is bounded by: `pagination.total`, or the one the API reported
    where the run does not trust it (hs_sync/extract/promises.py)."""
    total = total_of(page)
    if total is not None:
        return total
    reported = (page.pagination or {}).get(REPORTED_TOTAL)
    return reported if isinstance(reported, int) and not isinstance(reported, bool) else None


def _check_bound(path: str, rows: int, total: int, page_size: int) -> None:
    """Raise when a scan has gone past its first page's `total` by more than a margin
    (rows added while it runs): a server whose `hasMore` never ends must not hold the run."""
    limit = total + max(2 * page_size, total // 10)
    if rows > limit:
        raise ApiError(
            f"GET {path}: the API kept sending pages beyond pagination.total ({total:,}): "
            f"{rows:,} rows; the read is stopped"
        )


def _next_offset(page: Envelope, offset: int, *, trust_next: bool = True) -> int | None:
    """The offset of the next page, or None when this was the last one. When the API does
    not keep `limit` (`trust_next` False), never past the rows actually served: a
    `nextOffset` counted from the `limit` asked would skip rows."""
    pagination = page.pagination
    if not pagination or not pagination.get("hasMore"):
        return None
    returned = page.count
    nxt = pagination.get("nextOffset")
    if not isinstance(nxt, int) or isinstance(nxt, bool):
        nxt = offset + returned
    elif not trust_next:
        nxt = min(nxt, offset + returned)
    if returned == 0 or nxt <= offset:
        return None  # a server that says "more" but makes no progress: stop, don't loop
    return nxt


def row_hash(record: Any) -> str:
    """A row's identity: what a probe's first row or a room's last landed row is
    compared by."""
    return hashlib.blake2b(
        orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


def add_warnings(result: PullResult, writer: BatchWriter) -> None:
    """Report a writer's warnings on the pull, each once."""
    result.warnings += [w for w in writer.all_warnings if w not in result.warnings]
