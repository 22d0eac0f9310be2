"""The simulated dataset at the current clock: the store the API serves and the tests' ground truth.

`Dataset.query` answers every list endpoint; `records` and `arrow` give the
same rows without HTTP. Time-series types (events, ratings, chat, videochat,
sync, components, eyetracking) are immutable pre-encoded tables; visibility is
`time field <= clock` (live mode) plus rows that arrive late. Entity types
(rooms, participants, recordings, deployments, experiments) are rebuilt from
their plans whenever the clock moves, because their status changes.

Behaviour chosen where the contract is silent:
- With live=False the clock still moves on `advance`, but the data stays as it
  was at the dataset's "now" (statuses frozen, nothing more arrives).
- In live mode about 3% of the rows produced after the start arrive 2-45 s
  after their timestamp (client batching), i.e. later than newer rows.

Time-series types given as data (`series.Series`) are served and queried as the
built-in ones; `series_types`, `data_types` and `time_field` list both.
"""

from __future__ import annotations

import random
import threading
import time
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

from . import extras, planted, snapshots
from .generate import SERIES_TYPES, generate
from .media import Signer, media_bytes
from .series import Series
from .store import NO_BOUND_HI, NO_BOUND_LO, Table
from .timeutil import Clock, iso

ENTITY_TYPES = ("rooms", "participants", "recordings", "deployments", "experiments")
DATA_TYPES = SERIES_TYPES + ENTITY_TYPES

TIME_FIELD = {t: "timestamp" for t in SERIES_TYPES} | {
    "recordings": "startTime",
    "participants": "joinedAt",
    "rooms": "createdAt",
    "deployments": "createdAt",
    "experiments": "createdAt",
}
EXTRA_SORTS = {
    "events": ("onset",),
    "ratings/continuous": ("onset",),
    "ratings/sparse": ("onset",),
    "eyetracking": ("onset",),
    "participants": ("completedAt", "id", "email", "role", "status", "completionCode"),
    "rooms": ("id", "status", "updatedAt"),
}
ID_FIELD = {"events": "id", "ratings/sparse": "ratingId", "chat": "messageId"}
ROOM_CAP = 5000  # the API returns at most 5,000 rooms
LEGACY_URL_TTL = 3600.0  # seconds a legacy downloadUrl stays valid after the dataset is made


class Dataset:
    def __init__(
        self,
        seed: int = 1,
        scale: float = 1.0,
        live: bool = False,
        defects: bool = True,
        hostile_ids: bool = False,
        experiments: int | None = None,
        live_experiments: int | None = None,
        series: Sequence[Series] = (),
        wide_ints: bool = True,
    ):
        self.seed = seed
        self.scale = scale
        self.live = live
        gen = generate(
            seed, scale, live, defects, hostile_ids, experiments, live_experiments, wide_ints
        )
        self._gen = gen
        self.clock = Clock(gen.now)
        self.start_ms = gen.now
        self.tables: dict[tuple[str, str], Table] = gen.tables
        self.series = {s.path: s for s in series}
        if clash := [p for p in self.series if p in DATA_TYPES or p in extras.PATHS]:
            raise ValueError(f"series {clash} would replace endpoints the API has")
        self.series_types = SERIES_TYPES + tuple(self.series)
        self.data_types = self.series_types + ENTITY_TYPES
        self.time_field = TIME_FIELD | {s.path: s.time_field for s in series}
        for spec in series:
            for exp in gen.experiments:
                rooms = [r for r in gen.rooms if r.experiment_id == exp.id]
                self.tables[(spec.path, exp.id)] = spec.table(seed, rooms, gen.horizons[exp.id])
        self.experiment_ids = [e.id for e in gen.experiments]
        self.room_experiment = dict(gen.room_exp)
        self.rooms = {r.id: r for r in gen.rooms}
        # (room id, participant id) -> participant: one id can be in two rooms (a rejoin)
        self.participants = {(r.id, p.id): p for r in gen.rooms for p in r.participants}
        self.recordings = {r.id: r for r in gen.recordings}
        self.deployments = {d.id: d for e in gen.experiments for d in e.deployments}
        self.signer = Signer(seed)
        self.base_url = "http://127.0.0.1:0"  # set by the server once it has a port
        self._defects = gen.defects
        self._defects["lateRowsAdded"] = []
        self._lock = threading.RLock()
        self._entity_cache: dict[tuple, Table] = {}
        self._late_rng = random.Random(f"{seed}:add_late_rows")
        # Bumped when entity listings change other than by the clock (recording
        # overrides); late time-series rows leave them, and their cache, alone.
        self.entity_version = 0
        # recording id -> fields served in place of the generated ones (test hook; the
        # downloadPath keeps pointing at the real file unless overridden too)
        self.recording_overrides: dict[str, dict] = {}
        self.planted = planted.Planted()  # test hook: planted fields and rows
        # legacy downloadUrls are signed until then (wall clock, epoch ms; see legacy_url_ttl)
        self.legacy_url_expires_ms = int((time.time() + LEGACY_URL_TTL) * 1000)
        self.experiment_plans = {e.id: e for e in gen.experiments}
        self.cases = gen.cases

    # -- clock --------------------------------------------------------------

    @property
    def cutoff(self) -> int:
        """Rows with a time field at or before this are visible."""
        return self.clock.ms if self.live else self.start_ms

    def advance(self, seconds: float) -> None:
        with self._lock:
            now = self.clock.advance(seconds)
            if not self.live:
                return
            due: dict[tuple[str, str], list] = {}
            pending = self._gen.delayed
            while pending and pending[0][0] <= now:
                _, kind, exp, ts, data, cols = pending.pop(0)
                due.setdefault((kind, exp), []).append((ts, data, cols))
            for key, items in due.items():
                self.tables[key].insert(items)

    # -- entity tables ------------------------------------------------------

    def _entity_table(self, data_type: str, experiment_id: str | None) -> Table:
        key = (data_type, experiment_id, self.cutoff, self.entity_version, self.base_url,
               self.legacy_url_expires_ms)  # fmt: skip
        with self._lock:
            table = self._entity_cache.get(key)
            if table is not None:
                return table
            now = self.cutoff
            gen = self._gen
            rooms = [r for r in gen.rooms if experiment_id in (None, r.experiment_id)]
            if data_type == "rooms":
                rows = snapshots.room_rows(rooms, now)
            elif data_type == "participants":
                rows = snapshots.participant_rows(rooms, now)
            elif data_type == "recordings":
                recs = [r for r in gen.recordings if experiment_id in (None, r.experiment_id)]
                rows = snapshots.recording_rows(
                    recs, now, self.base_url, self.signer.sign, self.legacy_url_expires_ms
                )
                rows = [(t, {**r, **self.recording_overrides.get(r["recordingId"], {})}, c)
                        for t, r, c in rows]  # fmt: skip
            elif data_type == "deployments":
                rows = snapshots.deployment_rows(gen.experiments, gen.rooms, now)
            else:
                rows = snapshots.experiment_rows(gen.experiments, gen.rooms, now)
            rows = self.planted.entity_rows(data_type, experiment_id, rows)
            names: list[str] = []
            for _, _, cols in rows:
                for name in cols:
                    if name not in names:
                        names.append(name)
            table = Table.from_rows(
                [r[0] for r in rows],
                [orjson.dumps(r[1]) for r in rows],
                {n: [r[2].get(n) for r in rows] for n in names},
            )
            if len(self._entity_cache) > 64:
                self._entity_cache.clear()
            self._entity_cache[key] = table
            return table

    def table(self, data_type: str, experiment_id: str) -> Table:
        if data_type in ENTITY_TYPES:
            return self._entity_table(data_type, experiment_id)
        return self.tables[(data_type, experiment_id)]

    # -- queries ------------------------------------------------------------

    def query(
        self,
        data_type: str,
        experiment_id: str | None,
        filters: dict[str, Any],
        start: int | None = None,
        end: int | None = None,
        sort: str | None = None,
        descending: bool = False,
        offset: int = 0,
        limit: int = 1000,
        sep: bytes = b",",
    ) -> tuple[int, bytes, int]:
        """-> (total, page JSON rows joined by `sep`, rows returned)."""
        if data_type in ("deployments", "experiments"):
            table = self._entity_table(data_type, None)
            if experiment_id is not None:
                filters = {**filters, "experimentId": experiment_id}
        else:
            table = self.table(data_type, experiment_id)
        hi = NO_BOUND_HI if end is None else end
        if data_type in self.series_types:
            hi = min(hi, self.cutoff)
        lo = NO_BOUND_LO if start is None else start
        if sort == self.time_field[data_type]:
            sort = None
        total, page, n = table.query(filters, lo, hi, sort, descending, offset, limit, sep)
        if data_type == "rooms" and total > ROOM_CAP:
            total = ROOM_CAP
            if offset + n > ROOM_CAP:
                keep = max(0, ROOM_CAP - offset)
                rows = orjson.loads(b"[" + page.replace(b"\n", b",") + b"]")[:keep]
                page = sep.join(orjson.dumps(r) for r in rows)
                n = keep
        return total, page, n

    def sorts(self, data_type: str) -> tuple[str, ...]:
        return (self.time_field[data_type], *EXTRA_SORTS.get(data_type, ()))

    # -- ground truth -------------------------------------------------------

    @property
    def defects(self) -> dict:
        with self._lock:
            return orjson.loads(orjson.dumps(self._defects))

    def records(self, data_type: str, experiment_id: str | None = None) -> list[dict]:
        """Exactly what the API serves now at experiment scope (time order, experiments in order)."""
        if data_type in extras.PATHS:
            return extras.records(self, data_type, experiment_id)
        if data_type not in self.data_types:
            raise ValueError(f"unknown data type {data_type!r}")
        with self._lock:
            if data_type in ("deployments", "experiments"):
                out = self._all_rows(self._entity_table(data_type, None), NO_BOUND_HI)
                if experiment_id is None:
                    return out
                key = "experimentId" if data_type == "deployments" else "id"
                return [r for r in out if r[key] == experiment_id]
            out = []
            for exp in self.experiment_ids:
                if experiment_id in (None, exp):
                    cutoff = self.cutoff if data_type in self.series_types else NO_BOUND_HI
                    out.extend(self._all_rows(self.table(data_type, exp), cutoff))
            return out

    def room_ids(self, data_type: str, experiment_id: str | None = None) -> list[str]:
        """The room of each row of `records()`, in the same order: the API leaves roomId
        out of some types (sparse ratings, recordings), the ground truth knows it."""
        if data_type in ("deployments", "experiments"):
            raise ValueError(f"{data_type} rows belong to no room")
        with self._lock:
            out: list[str] = []
            for exp in self.experiment_ids:
                if experiment_id in (None, exp):
                    table = self.table(data_type, exp)
                    cutoff = self.cutoff if data_type in self.series_types else NO_BOUND_HI
                    out.extend(table.cols.get("roomId", [])[: bisect_right(table.ts, cutoff)])
            return out

    @staticmethod
    def _all_rows(table: Table, cutoff: int) -> list[dict]:
        hi = bisect_right(table.ts, cutoff)
        return orjson.loads(b"[" + table.range_bytes(0, hi) + b"]")

    def arrow(self, data_type: str, experiment_id: str | None = None) -> pa.Table:
        """`records()` as a table: scalars as they are, objects and lists as JSON text."""
        rows = self.records(data_type, experiment_id)
        names: list[str] = []
        seen = set()
        for row in rows:
            for name in row:
                if name not in seen:
                    seen.add(name)
                    names.append(name)
        arrays = {}
        for name in names:
            values = [row.get(name) for row in rows]
            if any(isinstance(v, (dict, list)) for v in values):
                values = [None if v is None else orjson.dumps(v).decode() for v in values]
            try:
                arrays[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arrays[name] = pa.array(
                    [None if v is None else orjson.dumps(v).decode() for v in values]
                )
        return pa.table(arrays) if arrays else pa.table({})

    def media_bytes(self, recording_id: str) -> bytes:
        return media_bytes(self.seed, self.recordings[recording_id])

    # -- planted records ----------------------------------------------------

    def plant_fields(self, data_type: str, record_id: str, fields: dict) -> None:
        """Serve the entity record `record_id` with `fields` replaced (`planted.ABSENT`:
        removed)."""
        with self._lock:
            per = self.planted.fields.setdefault(data_type, {})
            per[record_id] = {**per.get(record_id, {}), **fields}
            self.entity_version += 1

    def plant_rows(
        self, data_type: str, experiment_id: str, records: list[dict], columns: dict | None = None
    ) -> None:
        """Serve `records` too (entity or time-series type) in `experiment_id`; `columns`:
        indexed values the records do not carry (e.g. a room they omit)."""
        time_field = self.time_field[data_type]
        with self._lock:
            if data_type in ENTITY_TYPES:
                rows = self.planted.rows.setdefault(data_type, [])
                for r in records:
                    ts, record, cols = planted.entity_row(data_type, r, time_field, columns)
                    rows.append((experiment_id, ts, record, cols))
                self.entity_version += 1
            else:
                table = self.tables[(data_type, experiment_id)]
                table.insert(planted.series_items(table.cols, records, time_field))

    # -- late rows ----------------------------------------------------------

    def add_late_rows(
        self,
        data_type: str,
        n: int,
        experiment_id: str | None = None,
        behind_seconds: float | None = None,
    ) -> list[dict]:
        """Insert n rows, visible now, timestamped before the newest visible row (within
        2 minutes of it, or within a minute around `behind_seconds` before it)."""
        if data_type not in self.series_types:
            raise ValueError(f"late rows exist only for time-series types, not {data_type!r}")
        with self._lock:
            rng = self._late_rng
            exps = [experiment_id] if experiment_id else self.experiment_ids
            table = None
            for exp in exps:
                candidate = self.tables[(data_type, exp)]
                if bisect_right(candidate.ts, self.cutoff) > 0:
                    table, experiment_id = candidate, exp
                    break
            if table is None:
                raise ValueError(f"no visible {data_type} rows to arrive late behind")
            hi = bisect_right(table.ts, self.cutoff)
            newest = table.ts[hi - 1]
            existing = set(table.ts[max(0, hi - 5000) : hi])
            made: list[tuple[int, bytes, dict]] = []
            out = []
            for _ in range(n):
                if behind_seconds is None:
                    ts = rng.randint(max(table.ts[0], newest - 120_000), newest - 1)
                else:
                    back = newest - int(behind_seconds * 1000)
                    ts = max(table.ts[0], rng.randint(back - 30_000, back + 30_000))
                while ts in existing:
                    ts -= 1
                existing.add(ts)
                pos = max(0, bisect_right(table.ts, ts) - 1)
                record = orjson.loads(table.row(pos))
                delta = ts - table.ts[pos]
                record[self.time_field[data_type]] = iso(ts)
                if isinstance(record.get("onset"), (int, float)):
                    record["onset"] += delta
                if data_type in ID_FIELD:
                    prefix = record[ID_FIELD[data_type]].split("_")[0]
                    record[ID_FIELD[data_type]] = f"{prefix}_late{rng.getrandbits(40):010x}"
                if data_type == "ratings/continuous":
                    record["value"] = round(rng.uniform(0, 100), 2)
                # the copied row's columns (some types carry no roomId), with its new onset
                cols = {name: column[pos] for name, column in table.cols.items()}
                if "onset" in cols:
                    cols["onset"] = record["onset"]
                made.append((ts, orjson.dumps(record), cols))
                out.append(record)
            table.insert(made)
            self._defects["lateRowsAdded"].append(
                {"dataType": data_type, "experimentId": experiment_id, "count": n}
            )
            return out
