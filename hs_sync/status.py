"""`status(warehouse)`: what a warehouse holds and how fresh it is, as one JSON-able dict.

Reads only: the extraction state (watermarks, run history), the transform's
ledger (schema drift), the quarantine folder and the DuckDB database (row
counts and newest row per type and experiment). Opens everything read-only,
so it never blocks, or is blocked by, a running sync, and creates nothing.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from hs_sync import registry, stores
from hs_sync.db import connect_readonly, quote, sql
from hs_sync.errors import ConfigError
from hs_sync.export import time_column
from hs_sync.land import quarantine
from hs_sync.statestore import StateReader
from hs_sync.timeutil import parse_time, to_iso
from hs_sync.warehouse import Warehouse

DEFAULT_FRESHNESS_HOURS = 26.0


def status(
    warehouse: Warehouse | str | os.PathLike,
    *,
    freshness_hours: float = DEFAULT_FRESHNESS_HOURS,
    last_runs: int = 5,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The warehouse's state; raises ConfigError (names `warehouse`) if there is none.

    Keys: warehouse, database, freshness, runs (newest first), watermarks,
    rows (totals per type), tables (rows and newest row per type and experiment),
    drift, quarantine, quarantined_rows.
    """
    wh = warehouse if isinstance(warehouse, Warehouse) else Warehouse(Path(warehouse))
    if not wh.root.is_dir():
        raise ConfigError("warehouse", f"no warehouse at {wh.root}; run `hs-sync sync` first")
    stores.require_usable(wh)
    now = now or datetime.now(timezone.utc)
    totals, tables = _tables(wh)
    quarantined = quarantine.count(wh)
    with StateReader(wh) as state:
        runs = _runs(state)
        return {
            "warehouse": str(wh.root),
            "database": _database(wh),
            "freshness": _freshness(runs, tables, freshness_hours, now, state.units_synced_at()),
            "runs": list(reversed(runs[-last_runs:])) if last_runs > 0 else [],
            "watermarks": _watermarks(state, now),
            "rows": totals,
            "tables": tables,
            "drift": state.drift(),
            "quarantine": quarantined,
            "quarantined_rows": sum(quarantined.values()),
        }


def _hours_since(value: str | None, now: datetime, digits: int | None = 2) -> float | None:
    moment = parse_time(value)
    if moment is None:
        return None
    hours = (now - moment).total_seconds() / 3600
    return hours if digits is None else round(hours, digits)


def _runs(state: StateReader) -> list[dict[str, Any]]:
    """Every run, oldest first, with the summary's headline figures."""
    rows = state.runs()
    out = []
    for row in rows:
        summary = orjson.loads(row.pop("summary")) if row.get("summary") else {}
        row.update(
            experiments=summary.get("experiments", []),
            total_rows=summary.get("total_rows"),
            duration_seconds=summary.get("duration_seconds"),
            errors=summary.get("errors", {}),
            skipped_types=summary.get("skipped_types", {}),
            warnings=summary.get("warnings", []),
        )
        out.append(row)
    return out


def _watermarks(state: StateReader, now: datetime) -> list[dict[str, Any]]:
    rows = state.watermarks()
    for row in rows:
        row["age_hours"] = _hours_since(row["watermark"], now)
    return rows


def _database(wh: Warehouse) -> dict[str, Any]:
    path = wh.db_path
    if not path.exists():
        return {"path": str(path), "exists": False}
    st = path.stat()
    modified = datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)
    return {"path": str(path), "exists": True, "bytes": st.st_size, "modified_at": to_iso(modified)}


def _tables(wh: Warehouse) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Row totals per type, and rows and newest row per (type, experiment)."""
    if not wh.db_path.exists():
        return {}, []
    con = connect_readonly(wh)
    try:
        present = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        }
        totals: dict[str, int] = {}
        tables: list[dict[str, Any]] = []
        for dt in registry.DATA_TYPES:
            if dt.name not in present:
                continue
            names = {c.name for c in dt.columns}
            experiment = "experimentId" if "experimentId" in names else "id"
            tcol = time_column(dt)
            newest = sql("max({c})", c=quote(tcol)) if tcol else "NULL"
            query = sql(
                "SELECT {e}, count(*), {newest} FROM {t} GROUP BY 1 ORDER BY 1",
                e=quote(experiment),
                newest=newest,
                t=quote(dt.name),
            )
            totals[dt.name] = 0
            for exp, n, latest in con.execute(query).fetchall():
                totals[dt.name] += n
                tables.append(
                    {
                        "data_type": dt.name,
                        "experiment_id": exp,
                        "rows": n,
                        "newest": to_iso(latest) if latest is not None else None,
                    }
                )
        return totals, tables
    finally:
        con.close()


def _freshness(
    runs: list[dict[str, Any]],
    tables: list[dict[str, Any]],
    hours: float,
    now: datetime,
    units_synced_at: str | None = None,
) -> dict[str, Any]:
    """When the last good sync finished, and whether that is longer ago than `hours`.

    A run that ended partial (e.g. the budget ran out during media downloads) still
    counts when every data type's pull completed since: the freshness check agrees.
    """
    last = runs[-1] if runs else None
    good = [r for r in runs if r.get("status") == "ok" and r.get("finished_at")]
    last_ok = good[-1]["finished_at"] if good else None
    if units_synced_at and (last_ok is None or units_synced_at > last_ok):
        last_ok = units_synced_at
    age = _hours_since(last_ok, now, digits=None)
    newest = max((t["newest"] for t in tables if t["newest"]), default=None)
    return {
        "threshold_hours": hours,
        "last_run_at": last.get("finished_at") or last.get("started_at") if last else None,
        "last_run_status": last.get("status") if last else None,
        "last_success_at": last_ok,
        "hours_since_success": None if age is None else round(age, 2),
        "newest_row_at": newest,
        "stale": age is None or age > hours,
    }
