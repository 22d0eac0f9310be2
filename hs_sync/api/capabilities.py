"""What the API at a base URL honours of its documented promises, checked with a few requests.

The docs promise that `order=desc` serves the newest rows first, that `startTime`
and `endTime` bound a window inclusively, that `pagination.total` counts the rows
a window serves and that a page holds up to `limit` rows. A server may break any
of them. `check` tests each on one experiment's rows of the registry's first
time-windowed type and answers, per behaviour, honored / missing / unknown with
the evidence. The answers are kept per base URL in the state file (table
`api_capabilities`); `needs_check` says when they are due again (daily, or never
checked) and `ensure_checked` checks only then. `api_report` adds the server's time source and rate-limit headers for
`hs-sync doctor --api`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from hs_sync import registry, statestore
from hs_sync.api.client import ApiClient, Envelope
from hs_sync.api.paths import endpoint, quote_id
from hs_sync.errors import ApiError
from hs_sync.timeutil import parse_time, to_iso
from hs_sync.warehouse import Warehouse

Status = Literal["honored", "missing", "unknown"]
ORDER = "order"  # order=desc serves the newest rows first
BOUNDS = "inclusive_bounds"  # startTime and endTime both include rows at the bound
TOTAL = "total"  # pagination.total equals the rows a window serves
LIMIT = "limit"  # a page holds the rows `limit` asks for, when there are that many
BEHAVIORS = {
    ORDER: "order=desc",
    BOUNDS: "inclusive time bounds",
    TOTAL: "pagination.total",
    LIMIT: "limit",
}
CHECK_EVERY = timedelta(hours=24)
ORDER_ROWS = 5  # rows asked for newest first
WINDOW_ROWS = 5  # about this many rows in the window whose total is checked
MAX_WINDOW_PAGES = 4  # pages followed to count that window's rows


@dataclass(frozen=True)
class Finding:
    status: Status
    evidence: str


@dataclass(frozen=True)
class Capabilities:
    """The answers for one base URL, as of `checked_at` (the server's time)."""

    base_url: str
    checked_at: str
    findings: dict[str, Finding]
    requests: int = 0  # spent on the check (0 when read back from the state)

    def honored(self, behavior: str) -> bool | None:
        """True/False when the check could tell, None when it could not."""
        found = self.findings.get(behavior)
        if found is None or found.status == "unknown":
            return None
        return found.status == "honored"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_type() -> registry.DataType:
    """The data type the checks read: the first default type with time windows."""
    return next(
        dt
        for dt in registry.DEFAULT_TYPES
        if dt.mode is registry.Mode.TIME and dt.data_endpoint and dt.cursor and dt.paged
    )


def check(client: ApiClient, experiment_id: str, *, page_size: int = 1000) -> Capabilities:
    """Check each behaviour against `experiment_id`'s rows (about five requests).

    A request that fails makes the behaviours it was for unknown; BudgetExhausted
    (and the run's other clean stops) propagate."""
    dt = probe_type()
    before = client.attempts
    probe = _Probe(client, dt, dt.url_path("experiment", quote_id(experiment_id)))
    findings: dict[str, Finding] = {}
    try:
        first = probe.get(limit=page_size, order="asc")
    except ApiError as exc:
        why = f"{dt.name} of {experiment_id} did not read: {exc}"
        findings = {name: Finding("unknown", why) for name in BEHAVIORS}
    else:
        findings[LIMIT] = _limit(first, page_size)
        rows = sorted(probe.timed(first), key=lambda r: r[0])
        if len({t for t, _ in rows}) < 2:
            why = f"{experiment_id} has too few {dt.name} rows at distinct times to test with"
            findings.update({n: Finding("unknown", why) for n in (ORDER, BOUNDS, TOTAL)})
        else:
            findings[ORDER] = _guard(lambda: probe.order(rows))
            findings[BOUNDS] = _guard(lambda: probe.bounds(rows))
            findings[TOTAL] = _guard(lambda: probe.total(rows))
    checked_at, _ = client.server_now()
    return Capabilities(
        _base(client.base_url), checked_at, findings, requests=client.attempts - before
    )


def _guard(run) -> Finding:
    try:
        return run()
    except ApiError as exc:
        return Finding("unknown", f"the request failed: {exc}")


def _limit(page: Envelope, asked: int) -> Finding:
    served = page.count
    pagination = page.pagination or {}
    total, more = pagination.get("total"), pagination.get("hasMore")
    if served > asked:
        return Finding("missing", f"limit={asked} served {served} rows, more than asked")
    if served == asked:
        return Finding("honored", f"limit={asked} served {served} rows")
    if more is True or (more is None and total is not None and total > served):
        of = f" of {total}" if total is not None else ""
        return Finding("missing", f"limit={asked} served {served} rows{of}, with more to come")
    return Finding("honored", f"limit={asked} served all {served} rows there were")


class _Probe:
    """The requests of one check: one data type's path in one experiment."""

    def __init__(self, client: ApiClient, dt: registry.DataType, path: str):
        self.client, self.dt, self.path = client, dt, path

    def get(self, **params: Any) -> Envelope:
        # The budget's per-minute bucket is the route without the id, as the units' reads.
        query = {"sort": self.dt.sort, **params}
        return self.client.get(self.path, query, endpoint=endpoint(self.dt, "experiment"))

    def timed(self, page: Envelope) -> list[tuple[datetime, str]]:
        """(time, its text as served) of each row of `page` that has a readable time."""
        out = []
        for row in page.records:
            text = row.get(self.dt.cursor) if isinstance(row, dict) else None
            moment = parse_time(text)
            if moment is not None and isinstance(text, str):
                out.append((moment, text))
        return out

    def order(self, rows: list[tuple[datetime, str]]) -> Finding:
        page = self.get(limit=ORDER_ROWS, order="desc")
        query = page.metadata.get("query")
        echoed = query.get("order") if isinstance(query, dict) else None
        echoed = echoed.lower() if isinstance(echoed, str) else echoed
        times = [t for t, _ in self.timed(page)]
        oldest = min(t for t, _ in rows)
        if echoed not in (None, "desc"):
            return Finding("missing", f"asked order=desc; metadata.query.order says {echoed!r}")
        if len(times) < 2:
            return Finding("unknown", f"order=desc served {len(times)} row(s) with a time")
        if times != sorted(times, reverse=True) or times[0] <= oldest:
            return Finding(
                "missing", f"order=desc served the oldest rows first ({to_iso(times[0])} first)"
            )
        return Finding("honored", f"order=desc served the newest first ({to_iso(times[0])})")

    def bounds(self, rows: list[tuple[datetime, str]]) -> Finding:
        moment, text = _inner_time(rows)
        at = sum(1 for t, _ in rows if t == moment)
        got = len([r for r in self.timed(self.get(startTime=text, endTime=text, limit=at + 1))])
        if got == at:
            return Finding("honored", f"startTime=endTime={text} served the {at} row(s) at it")
        if got:
            return Finding("missing", f"startTime=endTime={text} served {got} of {at} row(s)")
        after = self.timed(self.get(startTime=text, limit=1))
        if after and after[0][0] == moment:
            return Finding("missing", f"endTime is exclusive: endTime={text} left out its rows")
        return Finding("missing", f"startTime is exclusive: startTime={text} left out its rows")

    def total(self, rows: list[tuple[datetime, str]]) -> Finding:
        start = rows[0][1]
        end = _inner_time(rows[: WINDOW_ROWS + 1])[1]
        params: dict[str, Any] = {"startTime": start, "endTime": end, "order": "asc"}
        page = self.get(**params, limit=WINDOW_ROWS * 2)
        total = (page.pagination or {}).get("total")
        if total is None:
            return Finding("unknown", "the answer carries no pagination.total")
        served = page.count
        for _ in range(MAX_WINDOW_PAGES - 1):
            more = page.pagination or {}
            if not more.get("hasMore") or not page.count:
                break
            offset = more.get("nextOffset")
            if offset is None:
                offset = (more.get("offset") or 0) + page.count
            page = self.get(**params, limit=WINDOW_ROWS * 2, offset=offset)
            served += page.count
        else:
            if (page.pagination or {}).get("hasMore"):
                return Finding("unknown", f"the window {start}..{end} did not end in a few pages")
        window = f"the window {start}..{end}"
        if served == total:
            return Finding("honored", f"{window}: total {total}, {served} rows served")
        return Finding("missing", f"{window}: total says {total}, {served} rows served")


def _inner_time(rows: list[tuple[datetime, str]]) -> tuple[datetime, str]:
    """The latest time of `rows` all of whose rows `rows` holds: one a later row follows."""
    last = rows[-1][0]
    inner = [(t, text) for t, text in rows if t < last]
    return max(inner, key=lambda r: r[0]) if inner else rows[0]


def _base(url: str) -> str:
    return url.rstrip("/")


# -- kept per base URL in the state file ---------------------------------------


def save(warehouse: Warehouse, found: Capabilities) -> None:
    """Replace the answers kept for `found.base_url` with `found`'s."""
    db = statestore.connect(warehouse)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM api_capabilities WHERE base_url = ?", [found.base_url])
        db.executemany(
            "INSERT INTO api_capabilities (base_url, behavior, status, evidence, checked_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (found.base_url, name, f.status, f.evidence, found.checked_at)
                for name, f in found.findings.items()
            ],
        )
        db.execute("COMMIT")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()


def load(warehouse: Warehouse, base_url: str) -> Capabilities | None:
    """The answers kept for `base_url`, or None when it was never checked."""
    with statestore.StateReader(warehouse) as reader:
        # the reader's own query helper: read-only, empty when the table is not there yet
        rows = reader._rows(
            "extract",
            "SELECT behavior, status, evidence, checked_at FROM api_capabilities "
            "WHERE base_url = ? ORDER BY behavior",
            (_base(base_url),),
        )
    if not rows:
        return None
    findings = {b: Finding(s, e) for b, s, e, _ in rows}  # type: ignore[arg-type]
    return Capabilities(_base(base_url), min(r[3] for r in rows), findings)


def needs_check(warehouse: Warehouse, base_url: str, now: str | None = None) -> bool:
    """Whether the API at `base_url` is due a check: never checked, a behaviour missing
    from the answers kept, or checked `CHECK_EVERY` ago. `now` is the run's server time
    (ISO 8601; default the local clock)."""
    kept = load(warehouse, base_url)
    if kept is None or set(kept.findings) != set(BEHAVIORS):
        return True
    checked = parse_time(kept.checked_at)
    moment = parse_time(now) if now else datetime.now(timezone.utc)
    return checked is None or moment is None or moment - checked >= CHECK_EVERY


def ensure_checked(
    client: ApiClient,
    warehouse: Warehouse,
    experiment_id: str,
    *,
    now: str | None = None,
    page_size: int = 1000,
) -> Capabilities:
    """The answers for the client's base URL: those kept, or, when `needs_check` says
    they are due, checked now on `experiment_id` and kept."""
    if not needs_check(warehouse, client.base_url, now):
        kept = load(warehouse, client.base_url)
        if kept is not None:
            return kept
    found = check(client, experiment_id, page_size=page_size)
    save(warehouse, found)
    return found


# -- hs-sync doctor --api -------------------------------------------------------


@dataclass(frozen=True)
class ApiReport:
    """What `hs-sync doctor --api` shows."""

    base_url: str
    experiment_id: str | None
    capabilities: Capabilities | None
    server_time: str
    time_source: str  # "server" (a body's timestamp), "date-header" or "local-clock"
    clock_offset_seconds: float | None  # server time minus the local clock
    rate_limit_headers: dict[str, str] = field(default_factory=dict)
    requests: int = 0

    @property
    def missing(self) -> list[str]:
        found = self.capabilities.findings if self.capabilities else {}
        return [name for name, f in found.items() if f.status == "missing"]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "missing": self.missing}


def api_report(client: ApiClient, experiments: tuple[str, ...] = (), page_size: int = 1000):
    """Check the API behind `client` on the first of `experiments` (else the first
    listed one with participants) and read its time source and rate-limit headers."""
    experiment = experiments[0] if experiments else _busiest(client)
    caps = check(client, experiment, page_size=page_size) if experiment else None
    headers = dict(client.rate_limit_headers)
    server_time, source = client.server_now()
    moment = parse_time(server_time)
    offset = (moment - datetime.now(timezone.utc)).total_seconds() if moment else None
    return ApiReport(
        _base(client.base_url),
        experiment,
        caps,
        server_time,
        source,
        None if source == "local-clock" or offset is None else round(offset, 1),
        headers,
        client.attempts,
    )


def report_lines(report: ApiReport) -> list[str]:
    """`hs-sync doctor --api`'s report, one line per finding."""
    where = f" (experiment {report.experiment_id})" if report.experiment_id else ""
    out = [f"API {report.base_url}{where}: {report.requests} request(s)"]
    if report.capabilities is None:
        out.append("  no experiment to check the data endpoints with")
    else:
        for name, label in BEHAVIORS.items():
            found = report.capabilities.findings[name]
            out.append(f"  {label:<22} {found.status.upper():<8} {found.evidence}")
    offset = report.clock_offset_seconds
    drift = f"; {offset:+.1f} s from the local clock" if offset is not None else ""
    out.append(f"  {'server time':<22} {report.server_time} from {report.time_source}{drift}")
    headers = ", ".join(f"{k}: {v}" for k, v in sorted(report.rate_limit_headers.items()))
    out.append(f"  {'rate-limit headers':<22} {headers or 'none sent'}")
    if report.missing:
        broken = ", ".join(BEHAVIORS[name] for name in report.missing)
        out.append(f'  not kept: {broken} (docs/requests.md, "What the API honours")')
    return out


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _busiest(client: ApiClient) -> str | None:
    """The first listed experiment with participants (else the first listed one)."""
    listed = [r for r in client.get("experiments", endpoint="experiments").records]
    listed = [r for r in listed if isinstance(r, dict) and r.get("id")]
    with_people = [r for r in listed if _positive(r.get("participantCount"))]
    chosen = (with_people or listed)[:1]
    return str(chosen[0]["id"]) if chosen else None
