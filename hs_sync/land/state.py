"""Extraction state in SQLite: each mode's state, the ledger of completed windows, run history.

Its tables live in the warehouse's state file (hs_sync/statestore.py). Every
checkpoint is one transaction written after the raw file behind it is durable, so
the state never claims data that a crash could have lost (docs/design.md,
invariant 2).
Thread-safe: one connection behind a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from hs_sync import statestore
from hs_sync.land.room_state import INSERT_LEDGER, RoomState, utc_stamp
from hs_sync.statestore import StateReader
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse

# Landed-row counts of time buckets: (first bucket, end bucket (exclusive), bucket -> rows);
# None bounds are open. Buckets are epoch seconds at a multiple of the bucket width.
Buckets = tuple[int | None, int | None, dict[int, int]]


def remembered_access(warehouse: Warehouse, hours: float) -> dict[str, str]:
    """Access checks an earlier run saw within `hours` (read-only: creates nothing if there is no state)."""
    if hours <= 0:
        return {}
    since = datetime.now(timezone.utc) - timedelta(hours=hours)
    with StateReader(warehouse) as reader:
        rows = reader.signals("access:")
    out = {}
    for name, value, seen_at in rows:
        seen = parse_time(seen_at)
        if seen is not None and seen >= since:
            out[name] = value
    return out


class ExtractState(RoomState):
    """Read and checkpoint the extraction state of one warehouse."""

    def __init__(self, warehouse: Warehouse):
        self.path = statestore.path(warehouse)
        self._lock = threading.RLock()
        self._db = statestore.connect(warehouse)
        self._upgrade_signals()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ExtractState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction, under the lock: committed whole or rolled back."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, params: Iterable[Any]) -> Any:
        with self._lock:
            row = self._db.execute(sql, tuple(params)).fetchone()
        return row[0] if row else None

    # -- watermarks and the ledger ----------------------------------------

    def watermark(self, data_type: str, experiment_id: str) -> str | None:
        return self._one(
            "SELECT watermark FROM watermarks WHERE data_type = ? AND experiment_id = ?",
            (data_type, experiment_id),
        )

    def advance_watermark(self, data_type: str, experiment_id: str, value: str) -> None:
        """Move the watermark forward to `value` (never backward)."""
        with self._transaction():
            self._advance(data_type, experiment_id, value)

    def _advance(self, data_type: str, experiment_id: str, value: str) -> None:
        current = self.watermark(data_type, experiment_id)
        new = parse_time(value)
        if new is None:
            return
        old = parse_time(current)
        if old is not None and old >= new:
            return
        self._db.execute(
            "INSERT INTO watermarks VALUES (?, ?, ?, ?) ON CONFLICT (data_type, experiment_id) "
            "DO UPDATE SET watermark = excluded.watermark, updated_at = excluded.updated_at",
            (data_type, experiment_id, value, utc_stamp()),
        )

    def complete_window(
        self,
        run_id: str,
        data_type: str,
        experiment_id: str,
        *,
        scope: str,
        scope_id: str,
        start: str | None,
        end: str | None,
        rows: int,
        total: int | None,
        requests: int,
        batch: str | None,
        watermark: str | None = None,
        tail: dict[str, str] | None = None,
        buckets: Buckets | None = None,
        keep_tail: bool = False,
    ) -> None:
        """Record a completed window and, in one transaction, advance the watermark.

        `tail` (key -> cursor of the rows the next window's lookback will re-read)
        replaces the remembered tail, so those rows are not landed again (unless
        `keep_tail`: a read that did not reach the window end). `buckets` replaces the landed-row counts of
        the time buckets the window covered, so they never count rows whose
        file is not durable.
        """
        with self._transaction():
            self._db.execute(
                INSERT_LEDGER,
                (
                    run_id,
                    data_type,
                    experiment_id,
                    scope,
                    scope_id,
                    start,
                    end,
                    rows,
                    total,
                    requests,
                    batch,
                    utc_stamp(),
                ),
            )
            if watermark is not None:
                self._advance(data_type, experiment_id, watermark)
            if buckets is not None:
                self._set_buckets(data_type, experiment_id, buckets)
            if not keep_tail:
                self._db.execute(
                    "DELETE FROM tail_keys WHERE data_type = ? AND experiment_id = ?",
                    (data_type, experiment_id),
                )
            if tail and not keep_tail:
                self._db.executemany(
                    "INSERT OR REPLACE INTO tail_keys VALUES (?, ?, ?, ?)",
                    [(data_type, experiment_id, k, c) for k, c in tail.items()],
                )

    def _set_buckets(self, data_type: str, experiment_id: str, buckets: Buckets) -> None:
        lo, hi, counts = buckets
        self._db.execute(
            "DELETE FROM buckets WHERE data_type = ? AND experiment_id = ? "
            "AND (? IS NULL OR bucket >= ?) AND (? IS NULL OR bucket < ?)",
            (data_type, experiment_id, lo, lo, hi, hi),
        )
        self._db.executemany(
            "INSERT INTO buckets VALUES (?, ?, ?, ?)",
            [(data_type, experiment_id, b, n) for b, n in counts.items() if n],
        )

    def bucket_rows(
        self, data_type: str, experiment_id: str, lo: int | None, hi: int | None
    ) -> list[tuple[int, int]]:
        """(bucket start, rows landed) of the buckets in [lo, hi) (None: unbounded), in order."""
        with self._lock:
            return self._db.execute(
                "SELECT bucket, rows FROM buckets WHERE data_type = ? AND experiment_id = ? "
                "AND (? IS NULL OR bucket >= ?) AND (? IS NULL OR bucket < ?) ORDER BY bucket",
                (data_type, experiment_id, lo, lo, hi, hi),
            ).fetchall()

    def note_unconverged(
        self, data_type: str, experiment_id: str, lo: int, hi: int, api_rows: int,
        landed_rows: int, seen_at: str,
    ) -> int:  # fmt: skip
        """Note a re-read of [lo, hi) after which the API's count and the rows landed still
        differ; the attempts so far with these same counts."""
        with self._transaction():
            row = self._db.execute(
                "SELECT api_rows, landed_rows, attempts FROM unconverged_windows "
                "WHERE data_type = ? AND experiment_id = ? AND window_start = ? AND window_end = ?",
                (data_type, experiment_id, lo, hi),
            ).fetchone()
            same = row is not None and (row[0], row[1]) == (api_rows, landed_rows)
            attempts = row[2] + 1 if same else 1
            self._db.execute(
                "INSERT INTO unconverged_windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (data_type, experiment_id, window_start, window_end) DO UPDATE SET "
                "api_rows = excluded.api_rows, landed_rows = excluded.landed_rows, "
                "attempts = excluded.attempts, last_seen = excluded.last_seen",
                (data_type, experiment_id, lo, hi, api_rows, landed_rows, attempts, seen_at,
                 seen_at),
            )  # fmt: skip
        return attempts

    def unconverged(self, data_type: str, experiment_id: str) -> list[tuple[int, int, int, int]]:
        """(start, end, API's count, rows landed) of the unit's windows marked as not
        converging (two re-reads that left the same counts)."""
        with self._lock:
            return self._db.execute(
                "SELECT window_start, window_end, api_rows, landed_rows FROM unconverged_windows "
                "WHERE data_type = ? AND experiment_id = ? AND attempts >= 2 "
                "ORDER BY window_start",
                (data_type, experiment_id),
            ).fetchall()

    def forget_unconverged(
        self, data_type: str, experiment_id: str, lo: int | None = None, hi: int | None = None
    ) -> None:
        """The window [lo, hi) agrees now (None: every window of the unit, re-read whole)."""
        with self._transaction():
            self._db.execute(
                "DELETE FROM unconverged_windows WHERE data_type = ? AND experiment_id = ? "
                "AND (? IS NULL OR window_start = ?) AND (? IS NULL OR window_end = ?)",
                (data_type, experiment_id, lo, lo, hi, hi),
            )

    def newest_bucket(self, experiment_id: str) -> int | None:
        """The newest time bucket (epoch seconds) holding landed rows of any time type of
        the experiment; None when none is known."""
        with self._lock:
            row = self._db.execute(
                "SELECT max(bucket) FROM buckets WHERE experiment_id = ? AND rows > 0",
                (experiment_id,),
            ).fetchone()
        return row[0] if row else None

    def forget_batch(self, data_type: str, experiment_folder: str, batch: str) -> None:
        """Make the next sync pull again what raw batch `batch` held (its file did not
        read): a time window's watermark goes back to the window's start, a room or
        snapshot read is forgotten. `experiment_folder` is the batch's experiment
        folder value, used when the ledger has no row for the batch."""
        with self._transaction():
            rows = self._db.execute(
                "SELECT experiment_id, start_time FROM ledger WHERE data_type = ? AND batch = ?",
                (data_type, batch),
            ).fetchall()
            experiments = {e for e, _ in rows} or {experiment_folder}
            for exp in experiments:
                starts = [s for e, s in rows if e == exp]
                known = starts and all(parse_time(t) for t in starts)
                start = min(starts, key=parse_time) if known else None
                if start is not None:
                    self._db.execute(
                        "UPDATE watermarks SET watermark = ?, updated_at = ? "
                        "WHERE data_type = ? AND experiment_id = ?",
                        (start, utc_stamp(), data_type, exp),
                    )
                else:
                    self._db.execute(
                        "DELETE FROM watermarks WHERE data_type = ? AND experiment_id = ?",
                        (data_type, exp),
                    )
                # Forgetting its landed counts and polling state makes the next
                # sync's probe see the gap and read it again.
                tables = (
                    "tail_keys",
                    "room_versions",
                    "room_digests",
                    "snapshots",
                    "whole_probes",
                )
                for table in (*tables, "buckets", "polls", "room_offsets"):
                    self._db.execute(
                        f"DELETE FROM {table} WHERE data_type = ? AND experiment_id = ?",  # noqa: S608
                        (data_type, exp),
                    )
            self._db.execute(
                "DELETE FROM ledger WHERE data_type = ? AND batch = ?", (data_type, batch)
            )

    def tail_keys(self, data_type: str, experiment_id: str) -> set[str]:
        """Keys of the rows the last completed window saw inside the next lookback."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key FROM tail_keys WHERE data_type = ? AND experiment_id = ?",
                (data_type, experiment_id),
            ).fetchall()
        return {r[0] for r in rows}

    def ledger(self, data_type: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(
                "SELECT * FROM ledger WHERE ? IS NULL OR data_type = ? ORDER BY id",
                (data_type, data_type),
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def watermarks(self) -> dict[tuple[str, str], str]:
        with self._lock:
            rows = self._db.execute("SELECT data_type, experiment_id, watermark FROM watermarks")
            return {(t, e): w for t, e, w in rows.fetchall()}

    # -- snapshots and whole tables ----------------------------------------

    def snapshot_digest(self, data_type: str, experiment_id: str) -> str | None:
        return self._one(
            "SELECT digest FROM snapshots WHERE data_type = ? AND experiment_id = ?",
            (data_type, experiment_id),
        )

    def set_snapshot_digest(self, data_type: str, experiment_id: str, digest: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO snapshots VALUES (?, ?, ?, ?) ON CONFLICT (data_type, experiment_id) "
                "DO UPDATE SET digest = excluded.digest, landed_at = excluded.landed_at",
                (data_type, experiment_id, digest, utc_stamp()),
            )

    def whole_probe(
        self, data_type: str, experiment_id: str
    ) -> tuple[int, list | None, str] | None:
        """(pages, what its probe saw: [total, first row's hash] or None, read at) of a
        whole table's last read."""
        with self._lock:
            row = self._db.execute(
                "SELECT pages, total, first_row, read_at FROM whole_probes "
                "WHERE data_type = ? AND experiment_id = ?",
                (data_type, experiment_id),
            ).fetchone()
        if row is None:
            return None
        pages, total, first_row, read_at = row
        return pages, (None if first_row is None else [total, first_row]), read_at

    def set_whole_probe(
        self, data_type: str, experiment_id: str, pages: int, seen: list | None, read_at: str
    ) -> None:
        total, first_row = seen if seen is not None else (None, None)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO whole_probes VALUES (?, ?, ?, ?, ?, ?)",
                (data_type, experiment_id, pages, total, first_row, read_at),
            )

    def _upgrade_signals(self) -> None:
        """Move the mode state an older version kept as encoded signals into its tables:
        `snapshot:{type}:{experiment}` (a probe's memory) and `rooms:{experiment}` (the
        listed rooms); `final:{experiment}` is now read from the listed rooms."""
        query = (
            "SELECT name, value, seen_at FROM signals "
            "WHERE name LIKE 'snapshot:%' OR name LIKE 'rooms:%' OR name LIKE 'final:%'"
        )
        with self._lock:
            if self._db.execute(query).fetchone() is None:
                return
            with self._transaction():  # another writer may have upgraded it meanwhile
                for name, value, seen_at in self._db.execute(query).fetchall():
                    self._upgrade_signal(name, value, seen_at)
                    self._db.execute("DELETE FROM signals WHERE name = ?", (name,))

    def _upgrade_signal(self, name: str, value: str, seen_at: str) -> None:
        kind, _, rest = name.partition(":")
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return  # unreadable: forgotten, the next sync reads the table again
        if kind == "snapshot" and ":" in rest and isinstance(decoded, list) and len(decoded) == 2:
            data_type, experiment_id = rest.split(":", 1)
            pages, seen = decoded
            seen = seen if isinstance(seen, list) and len(seen) == 2 else None
            self.set_whole_probe(data_type, experiment_id, pages, seen, seen_at)
        elif kind == "rooms" and isinstance(decoded, dict):
            self._replace_rooms(rest, {str(k): str(v) for k, v in decoded.items()}, seen_at)

    # -- adaptive polling ------------------------------------------------

    def poll(self, data_type: str, experiment_id: str) -> dict[str, Any] | None:
        """When a unit was last polled, how many polls in a row saw no change, when it is due."""
        with self._lock:
            row = self._db.execute(
                "SELECT unchanged, polled_at, due_at, verified_at FROM polls "
                "WHERE data_type = ? AND experiment_id = ?",
                (data_type, experiment_id),
            ).fetchone()
        if row is None:
            return None
        return dict(zip(("unchanged", "polled_at", "due_at", "verified_at"), row, strict=True))

    def set_poll(
        self,
        data_type: str,
        experiment_id: str,
        *,
        unchanged: int,
        polled_at: str,
        due_at: str,
        verified_at: str | None = None,
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO polls VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (data_type, experiment_id) DO UPDATE SET "
                "unchanged = excluded.unchanged, polled_at = excluded.polled_at, "
                "due_at = excluded.due_at, "
                "verified_at = COALESCE(excluded.verified_at, polls.verified_at)",
                (data_type, experiment_id, unchanged, polled_at, due_at, verified_at),
            )

    def reset_polls(self, experiment_id: str) -> None:
        """Make every unit of an experiment due now (a change was seen in it)."""
        with self._lock:
            self._db.execute(
                "UPDATE polls SET unchanged = 0, due_at = polled_at WHERE experiment_id = ?",
                (experiment_id,),
            )

    def signal(self, name: str) -> tuple[str, str] | None:
        """(value, seen_at) of a remembered change signal (a listing digest, an access check)."""
        with self._lock:
            row = self._db.execute(
                "SELECT value, seen_at FROM signals WHERE name = ?", (name,)
            ).fetchone()
        return (row[0], row[1]) if row else None

    def set_signal(self, name: str, value: str, seen_at: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO signals VALUES (?, ?, ?) ON CONFLICT (name) "
                "DO UPDATE SET value = excluded.value, seen_at = excluded.seen_at",
                (name, value, seen_at),
            )

    def forget_signal(self, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM signals WHERE name = ?", (name,))

    # -- runs ---------------------------------------------------------------

    def begin_run(self, run_id: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO runs (run_id, started_at, status) VALUES (?, ?, 'running')",
                (run_id, utc_stamp()),
            )

    def finish_run(self, run_id: str, status: str, requests: int, summary: dict) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, requests = ?, summary = ? "
                "WHERE run_id = ?",
                (utc_stamp(), status, requests, orjson.dumps(summary).decode(), run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute("SELECT * FROM runs ORDER BY started_at")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
