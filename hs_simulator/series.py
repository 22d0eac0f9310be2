"""Time-series data types defined by data alone: an endpoint path and its fields.

`Simulator(series=[Series(...)])` serves each at `/data/{path}/{scope}/{id}` as it
serves the built-in time series (scopes, paging, time filters, sorting, the live
clock, late and planted rows, ground truth), with no code of its own: every
participant of every room gets a row every `every_ms` from joining (at most
`per_participant`, none after leaving) carrying `experimentId`, `roomId`,
`participantId`, the time field and each declared field, its value drawn from
the seed by its JSON kind.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .plan import Room
from .store import Table, TableBuilder
from .timeutil import iso

KINDS = ("number", "integer", "string", "boolean")
COLUMNS = ("roomId", "participantId", "deploymentId")  # indexed: the scope filters


@dataclass(frozen=True)
class Series:
    """One extra time-series type: where it is served and what its rows hold."""

    path: str  # served at /data/{path}/{scope}/{id}
    fields: Mapping[str, str] = field(default_factory=dict)  # name -> one of KINDS
    time_field: str = "timestamp"
    every_ms: int = 10_000
    per_participant: int = 30
    scope: str | None = None  # API-key scope the endpoint needs (None: any valid key)
    max_limit: int = 1000  # largest page
    count_name: str | None = None  # its name in the per-participant counts (None: left out)

    def __post_init__(self) -> None:
        bad = {n: k for n, k in self.fields.items() if k not in KINDS}
        if bad:
            raise ValueError(f"{self.path}: unknown field kinds {bad}; kinds: {', '.join(KINDS)}")
        if self.every_ms <= 0 or self.per_participant < 0:
            raise ValueError(f"{self.path}: every_ms must be > 0 and per_participant >= 0")

    def table(self, seed: int, rooms: list[Room], horizon: int) -> Table:
        """The type's rows for the rooms of one experiment, up to `horizon` (epoch ms)."""
        rows: list[tuple[int, bytes, tuple]] = []
        for room in rooms:
            for p in room.participants:
                rng = random.Random(f"{seed}:series:{self.path}:{room.id}:{p.id}")
                for k in range(1, self.per_participant + 1):
                    ts = p.joined_at + k * self.every_ms
                    if ts > min(p.ended_at, horizon):
                        break
                    record = {
                        "experimentId": room.experiment_id,
                        "roomId": room.id,
                        "participantId": p.id,
                        self.time_field: iso(ts),
                        **{name: _value(rng, name, kind) for name, kind in self.fields.items()},
                    }
                    rows.append((ts, orjson.dumps(record) + b",", (room.id, p.id, p.deployment_id)))
        rows.sort(key=lambda r: r[0])
        builder = TableBuilder(COLUMNS)
        builder.extend(rows)
        return builder.build()


def _value(rng: random.Random, name: str, kind: str) -> Any:
    if kind == "number":
        return round(rng.uniform(0, 200), 3)
    if kind == "integer":
        return rng.randint(0, 10_000)
    if kind == "boolean":
        return rng.random() < 0.5
    return f"{name}_{rng.randint(1, 4)}"
