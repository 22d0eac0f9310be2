"""What a check run reads: the warehouse database (read-only), the sync state, the API.

One `CheckContext` per run. It opens the live DuckDB file read-only (a sync
running meanwhile is never blocked), reads the extraction state without
creating or changing it, and opens an API client only if a check needs one.
SQL comes from `sql/checks/<name>.sql`; identifiers from the registry are
filled in with `db.sql`, values always travel as parameters.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cached_property
from typing import Any

import orjson

from hs_sync import db, registry, stores
from hs_sync.checks.model import Issue
from hs_sync.config import Config
from hs_sync.errors import ConfigError
from hs_sync.load.sqlfiles import sql_dir
from hs_sync.registry import Mode, listing
from hs_sync.statestore import StateReader
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse

ISSUE_COLUMNS = ("entity", "id", "experiment_id", "room_id", "participant_id", "detail")


def check_sql(query: str, **identifiers: str) -> str:
    """The text of `sql/checks/<name>.sql`, registry identifiers filled in."""
    text = (sql_dir("checks") / f"{query}.sql").read_text(encoding="utf-8")
    return db.sql(text, **identifiers) if identifiers else text


class CheckContext:
    """The warehouse (and, on demand, the API) as one check run sees them."""

    def __init__(self, config: Config, *, use_api: bool = True):
        self.config = config
        self.use_api = use_api
        self.warehouse = Warehouse(config.warehouse)
        if not self.warehouse.db_path.exists():
            raise ConfigError(
                "warehouse",
                f"no warehouse database at {self.warehouse.db_path}; run `hs-sync sync` first",
            )
        stores.require_usable(self.warehouse, ("database",))
        self.con = db.connect_readonly(self.warehouse)
        self._client = None
        self._budget = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._budget.close()
        if "state" in self.__dict__:
            self.state.close()
        self.con.close()

    def __enter__(self) -> CheckContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the database ------------------------------------------------------

    def issues(self, query: str, params: dict[str, Any] | None = None, **ids: str) -> list[Issue]:
        """Run a check query whose rows have the issue columns; one Issue per row."""
        cur = self.con.execute(check_sql(query, **ids), params or {})
        names = [d[0] for d in cur.description]
        if tuple(names) != ISSUE_COLUMNS:
            raise RuntimeError(f"sql/checks/{query}.sql must return {ISSUE_COLUMNS}, not {names}")
        return [Issue(*row) for row in cur.fetchall()]

    def scalar(self, text: str, params: dict[str, Any] | list | None = None) -> Any:
        row = self.con.execute(text, params or []).fetchone()
        return row[0] if row else None

    def table_exists(self, name: str) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = 'main' AND table_name = ?",
                [name],
            )
        )

    def columns(self, table: str) -> list[str]:
        rows = self.con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return [r[0] for r in rows]

    @cached_property
    def experiments(self) -> list[str]:
        """Experiments the warehouse knows (plus those the config names)."""
        found = {
            r[0]
            for r in self.con.execute(
                "SELECT id FROM experiments WHERE id IS NOT NULL "
                "UNION SELECT experimentId FROM rooms WHERE experimentId IS NOT NULL"
            ).fetchall()
        }
        return sorted(found | set(self.config.experiments))

    # -- the extraction state (read-only) ------------------------------------

    @cached_property
    def state(self) -> StateReader:
        """The sync state, read-only (empty when there is none)."""
        return StateReader(self.warehouse)

    @cached_property
    def runs(self) -> list[dict[str, Any]]:
        """Finished sync runs, oldest first: finished_at, status and the run summary."""
        out = []
        for run in self.state.finished_runs():
            try:
                data = orjson.loads(run["summary"]) if run["summary"] else {}
            except orjson.JSONDecodeError:
                data = {}
            keep = {k: run[k] for k in ("run_id", "finished_at", "status")}
            out.append({**keep, **data})
        return out

    def watermark(self, type_name: str, experiment_id: str) -> datetime | None:
        return parse_time(self.state.watermark(type_name, experiment_id))

    def last_run_with(self, type_name: str, experiment_id: str) -> dict[str, Any] | None:
        """The newest finished run that synced this (type, experiment) and transformed it."""
        for run in reversed(self.runs):
            done = experiment_id in (run.get("rows") or {}).get(type_name, {})
            if done and "transform" not in (run.get("errors") or {}):
                return run
        return None

    def synced_until(self, type_name: str, experiment_id: str) -> datetime | None:
        """The server time up to which the warehouse holds this type (None: no bound)."""
        dt = registry.BY_NAME[type_name]
        if dt.mode is Mode.TIME:
            return self.watermark(type_name, experiment_id)
        if dt.mode is Mode.MERGE and dt.cursor:
            run = self.last_run_with(type_name, experiment_id)
            return parse_time(run.get("window_end")) if run else None
        return None

    def last_success(self, type_name: str, experiment_id: str) -> datetime | None:
        """When this (type, experiment) last synced successfully (local clock)."""
        times = [parse_time(self.state.last_completion(type_name, experiment_id))]
        if registry.BY_NAME[type_name].mode is Mode.ROOM:
            # an unchanged room is not pulled again, so the run itself is the proof
            run = self.last_run_with(type_name, experiment_id)
            if run:
                times.append(parse_time(run["finished_at"]))
        return max((t for t in times if t is not None), default=None)

    @cached_property
    def as_of(self) -> datetime:
        """The server time of the newest snapshot (what 'now' meant when it was taken)."""
        participants = listing("participant").name
        for run in reversed(self.runs):
            end = parse_time(run.get("window_end"))
            if end is not None and participants in (run.get("rows") or {}):
                return end
        synced = self.scalar("SELECT max(_synced_at) FROM participants")
        return synced or datetime.now(timezone.utc)

    # -- the API -------------------------------------------------------------

    @property
    def client(self):
        """An API client sharing the sync's hourly request budget (opened on first use)."""
        if self._client is None:
            from hs_sync.api.budget import budget_for
            from hs_sync.api.client import ApiClient

            self._budget = budget_for(self.config)
            self._client = ApiClient(self.config, self._budget)
        return self._client
