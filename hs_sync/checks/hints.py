"""The 'what to do about it' line of each check, with the command to run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from hs_sync.checks.model import Issue

MAX_ROOMS_IN_HINT = 5
DEFAULT_WAREHOUSE = Path("warehouse")
# a command in backticks, and a parenthesis closing it (" (and 3 more room(s), ...)")
_COMMAND = re.compile(r"`(hs-sync [^`]*?)( \([^`]*\))?`")


def with_warehouse(hint: str, warehouse: Path) -> str:
    """The hint with `--warehouse PATH` ending each command, unless it is the default folder."""
    if Path(warehouse) == DEFAULT_WAREHOUSE:
        return hint
    flag = f"--warehouse {shlex.quote(str(warehouse))}"
    return _COMMAND.sub(lambda m: f"`{m.group(1)} {flag}{m.group(2) or ''}`", hint)


def budget_spent(resume_at: str) -> str:
    return (
        f"the hourly request budget is spent (the sync used it): run `hs-sync check` again "
        f"after {resume_at}, or `hs-sync check --no-api` now for the offline checks"
    )


def room_flags(issues: list[Issue]) -> str:
    """`--room A --room B ...` for the first few rooms the issues name."""
    rooms = list(dict.fromkeys(i.room_id for i in issues if i.room_id))
    if not rooms:
        return "--room ROOM_ID"
    flags = " ".join(f"--room {r}" for r in rooms[:MAX_ROOMS_IN_HINT])
    more = len(rooms) - MAX_ROOMS_IN_HINT
    return flags + (f" (and {more} more room(s), see the open_issues view)" if more > 0 else "")


def missing_sessions(issues: list[Issue]) -> str:
    return (
        f"re-pull the rooms at room scope: `hs-sync sync {room_flags(issues)}`; if a room is "
        "still empty afterwards (count_reconciliation agrees), the data never reached the "
        "server: exclude the session"
    )


def orphans(issues: list[Issue]) -> str:
    return (
        "the rooms/participants snapshot is older than the data (or the experiment has more "
        f"than 5,000 rooms): run `hs-sync sync`, then `hs-sync sync {room_flags(issues)}`"
    )


def duplicate_keys(issues: list[Issue]) -> str:
    types = sorted({i.id.split(":", 1)[0] for i in issues})
    flags = " ".join(f"--type {t}" for t in types)
    return f"rebuild the tables from raw: `hs-sync rebuild {flags}` (and report it as a bug)"


def rating_gaps(issues: list[Issue]) -> str:
    return (
        f"re-pull the rooms to rule out a sync gap: `hs-sync sync {room_flags(issues)}`; a gap "
        "that stays is real (the client stopped sampling): treat it as missing, do not "
        "interpolate across it"
    )


def missing_sync(issues: list[Issue]) -> str:
    return (
        f"re-pull the rooms: `hs-sync sync {room_flags(issues)}`; if still missing, media drift "
        "was not measured in these rooms: analyse them without sync quality or exclude them"
    )


def failed_recordings(issues: list[Issue]) -> str:
    return (
        "these recordings failed on the server, nothing can be downloaded: note them in the "
        "analysis, or ask HyperStudy support whether the egress can be recovered"
    )


def disconnected(issues: list[Issue]) -> str:
    return (
        "these sessions stop at a connection loss: decide whether to exclude them, e.g. "
        "`hs-sync sql \"SELECT * FROM participants WHERE completionCode = 'TECHNICAL'\"`"
    )


def recordings_on_disk(issues: list[Issue]) -> str:
    return "download the missing files and re-fetch the bad ones: `hs-sync media`"


def freshness(issues: list[Issue]) -> str:
    return (
        "run `hs-sync sync` (and schedule it, see the README); a type skipped for a missing "
        "scope needs a key with that scope"
    )


def unconverged_windows(issues: list[Issue]) -> str:
    exps = sorted({i.experiment_id for i in issues if i.experiment_id})
    types = sorted({i.id.split("/", 1)[0] for i in issues})
    flags = " ".join([*(f"--type {t}" for t in types), *(f"--experiment {e}" for e in exps)])
    return (
        "the API counts rows in these windows that its reads do not serve; "
        f"`hs-sync sync --full-refresh {flags}` re-reads them once, and a window that stays "
        "is the API's to explain (report the bounds and counts)"
    )


def stores(issues: list[Issue]) -> str:
    return "run `hs-sync doctor --repair`: it sets the damaged file aside and rebuilds it"


def quarantine(issues: list[Issue]) -> str:
    types = sorted({i.id for i in issues})
    flags = " ".join(f"--type {t}" for t in types)
    return (
        "read the reasons in warehouse/quarantine/<type>/ (`hs-sync status`); once the cause is "
        f"fixed (registry or upstream), `hs-sync rebuild {flags}`"
    )


def reconciliation(issues: list[Issue]) -> str:
    rooms = [i for i in issues if i.entity == "room"]
    whole = [i for i in issues if i.entity == "count" and not any(
        r.experiment_id == i.experiment_id and r.id.split("/")[0] == i.id.split("/")[0]
        for r in rooms)]  # fmt: skip
    parts = []
    if rooms:
        parts.append(f"re-pull the rooms that differ: `hs-sync sync {room_flags(rooms)}`")
    if whole:
        i = whole[0]
        type_name = i.id.split("/", 1)[0]
        parts.append(
            "re-read the type: `hs-sync sync --full-refresh "
            f"--type {type_name} --experiment {i.experiment_id}`"
        )
    return "; ".join(parts) or "run `hs-sync sync`"


def participant_counts(issues: list[Issue]) -> str:
    return (
        f"re-pull the room at room scope: `hs-sync sync {room_flags(issues)}`, then "
        f"`hs-sync check {room_flags(issues)}` again; what stays short never reached the "
        "warehouse from the API (see each issue's detail for the data type)"
    )
