"""`write_report`: gather the warehouse's data and the checks' findings into one HTML file.

Reads `hyperstudy.duckdb` read-only and runs the offline checks (no API, no
request budget), so a report never blocks or waits for a running sync.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from hs_sync.checks import CHECKS_BY_NAME, CheckResult, Issue, run_checks
from hs_sync.checks.warehouse_checks import RATING_GAP_MS
from hs_sync.config import Config
from hs_sync.db import connect_readonly
from hs_sync.errors import HsSyncError
from hs_sync.report import charts, page, queries
from hs_sync.warehouse import Warehouse, atomic_write

REPORT_FILE = "report.html"
MISSING_SESSIONS = "missing_sessions"  # the check whose findings the charts highlight


class ReportError(HsSyncError):
    """No warehouse or no data yet, an unknown room, an unwritable output (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    bytes: int
    participants: int
    sessions: int
    findings: int  # issues of failed checks
    room: str | None  # the room whose ratings are drawn


def default_path(config: Config) -> Path:
    return Path(config.warehouse) / REPORT_FILE


def write_report(config: Config, out: Path | None = None, room: str | None = None) -> ReportSummary:
    """Write the report for `config.warehouse` to `out` (default <warehouse>/report.html).

    `room`: whose continuous ratings to draw (default: the room with the most samples).
    Raises ReportError with one line a user can act on.
    """
    wh = Warehouse(config.warehouse)
    out = Path(out) if out is not None else default_path(config)
    if not wh.db_path.exists():
        raise ReportError(f"no warehouse database at {wh.db_path}; run `hs-sync sync` first")
    try:
        con = connect_readonly(wh)
    except duckdb.Error as exc:
        raise ReportError(f"cannot open {wh.db_path}: {_first_line(exc)}") from None
    try:
        try:
            data = _gather(con, wh, room)
        finally:
            con.close()
        results = run_checks(config, use_api=False)
    except duckdb.Error as exc:
        raise ReportError(
            f"cannot read {wh.db_path}: {_first_line(exc)}; `hs-sync rebuild` recreates it"
        ) from None
    html = _page(wh, data, results).encode("utf-8")
    try:
        atomic_write(out, html)
    except OSError as exc:
        raise ReportError(f"cannot write {out}: {exc.strerror or exc}") from None
    return ReportSummary(
        path=out,
        bytes=len(html),
        participants=len(data["participants"]),
        sessions=len(data["sessions"]),
        findings=sum(r.count for r in results if r.status == "failed"),
        room=data["room"],
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _gather(con: duckdb.DuckDBPyConnection, wh: Warehouse, room: str | None) -> dict:
    totals = queries.totals(con)
    if not totals["rooms"] and not totals["participants"]:
        raise ReportError(
            f"the warehouse at {wh.root} holds no rooms or participants yet; run `hs-sync sync`"
        )
    if room is None:
        room = queries.busiest_rating_room(con)
    samples = queries.ratings(con, room) if room is not None else []
    if room is not None and not samples:
        busiest = queries.busiest_rating_room(con)
        also = f"; e.g. --room {busiest}" if busiest else "; this warehouse has none"
        raise ReportError(f"room {room!r} has no continuous ratings{also}")
    return {
        "totals": totals,
        "participants": queries.completeness(con),
        "sessions": queries.sessions(con),
        "sync": queries.sync_quality(con),
        "room": room,
        "room_info": queries.room_info(con, room) if room is not None else None,
        "samples": samples,
    }


def _page(wh: Warehouse, data: dict, results: list[CheckResult]) -> str:
    missing = next((r for r in results if r.name == MISSING_SESSIONS), None)
    by_room: dict[str, list[Issue]] = defaultdict(list)
    for issue in missing.issues if missing else []:
        if issue.room_id:
            by_room[issue.room_id].append(issue)
    flagged = {(i.room_id, i.participant_id) for issues in by_room.values() for i in issues}
    flagged |= {
        (p["room_id"], p["participant_id"])
        for p in data["participants"]
        if any(i.entity == "room" for i in by_room.get(p["room_id"], []))
    }
    t = data["totals"]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    synced = t["synced_at"].strftime("%Y-%m-%d %H:%M UTC") if t["synced_at"] else "never"
    meta = [
        f"Warehouse {wh.root} · report written {now} · newest participants synced {synced}",
        f"{t['experiments']} experiment(s), {t['deployments']} deployment(s), "
        f"{t['rooms']} session(s), {t['participants']} participant(s); findings from the "
        "offline checks run now (`hs-sync check` also compares counts with the API)",
    ]
    hint = CHECKS_BY_NAME[MISSING_SESSIONS].hint
    return page.document(
        "HyperStudy warehouse report",
        meta,
        [
            page.Section(
                "completeness",
                "Completeness",
                "Rows each participant has of each data type, as a share of the typical "
                "(median) count among the participants of the same experiment and role who "
                "have that type: green at or above typical, red none; grey: no one of that "
                "experiment and role has the type. ⚠ marks participants the missing-sessions check names.",
                charts.completeness(data["participants"], flagged)
                if data["participants"]
                else None,
                empty="No participants in this warehouse.",
            ),
            page.Section(
                "sessions",
                "Sessions over time",
                "Each session (room) at its start time, one lane per experiment and "
                "deployment, coloured by status. A red cross marks a missing session; "
                "hover over it for what is missing and what to do.",
                charts.sessions(data["sessions"], by_room, hint) if data["sessions"] else None,
                empty="No sessions in this warehouse.",
            ),
            page.Section(
                "findings",
                "Findings",
                "What the offline checks found, each with what to do about it.",
                body=page.findings(results),
            ),
            page.Section(
                "sync",
                "Sync quality",
                "Media sync per participant session, classed by the median absolute drift "
                "from the host: good under 100 ms, acceptable 100-500 ms, poor above.",
                charts.sync_quality(data["sync"]) if data["sync"] else None,
                empty="No media sync samples in this warehouse.",
            ),
            page.Section(
                "ratings",
                "Continuous ratings",
                f"Every continuous-rating sample of one session over its onset; a pause longer "
                f"than {RATING_GAP_MS} ms breaks the line. Another session: --room ROOM.",
                charts.ratings(data["samples"], _room_title(data), RATING_GAP_MS)
                if data["samples"]
                else None,
                empty="No continuous ratings in this warehouse.",
            ),
        ],
    )


def _room_title(data: dict) -> str:
    info = data["room_info"] or {}
    where = " / ".join(
        charts.esc(info[k]) for k in ("experiment_name", "deployment_name") if info.get(k)
    )
    return f"Continuous ratings of room {charts.esc(data['room'])}" + (
        f" ({where})" if where else ""
    )
