"""Fault injection: each request draws once from a seeded generator against the configured rates.

Kinds (rates 0..1, checked in this order, at most one per request):
`http_5xx` a 500/502/503 with the JSON error envelope; `html_5xx` a 502/503
with an HTML body; `reset` the TCP connection is reset before any response;
`truncate` headers announce the full Content-Length, half the body is sent,
then the connection closes; `rate_429` a 429 RATE_LIMIT_EXCEEDED with
`Retry-After: retry_after`; `trickle` the real answer, its body sent one byte
every `trickle_seconds` (default one a second). `slow` (independent) delays the
response by `slow_seconds`. Only API and media requests are subject to faults, never
the `/_sim/` admin endpoints. `only_paths` confines faults to request paths containing it.

Broken promises (not drawn: every data-endpoint read, while set), for clients that
check what the API honours before relying on it:
`ignore_order` serves ascending whatever `order` asks and echoes
`metadata.query.order: "asc"`; `exclusive_end` treats `endTime` as exclusive;
`total_skew` reports `pagination.total` (and `X-Total-Count`) that many rows off
the rows served (never below 0; `hasMore` and `nextOffset` stay true to the rows);
`limit_cap` serves at most that many rows a page while echoing the `limit` asked.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

KINDS = ("http_5xx", "html_5xx", "reset", "truncate", "rate_429", "trickle")


@dataclass
class Draw:
    kind: str | None
    slow: float
    status: int


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.configure()

    def configure(
        self,
        http_5xx: float = 0.0,
        html_5xx: float = 0.0,
        reset: float = 0.0,
        truncate: float = 0.0,
        slow: float = 0.0,
        slow_seconds: float = 0.5,
        rate_429: float = 0.0,
        retry_after: int = 0,
        seed: int = 0,
        only_paths: str | None = None,
        trickle: float = 0.0,
        trickle_seconds: float = 1.0,
        ignore_order: bool = False,
        exclusive_end: bool = False,
        total_skew: int = 0,
        limit_cap: int | None = None,
    ) -> None:
        rates = {
            "http_5xx": http_5xx,
            "html_5xx": html_5xx,
            "reset": reset,
            "truncate": truncate,
            "rate_429": rate_429,
            "trickle": trickle,
            "slow": slow,
        }
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate {name}={rate} is not within 0..1")
        if limit_cap is not None and limit_cap < 1:
            raise ValueError(f"limit_cap={limit_cap} must be at least 1")
        with self._lock:
            self.rates = rates
            self.slow_seconds = slow_seconds
            self.retry_after = retry_after
            self.only_paths = only_paths  # faults only on request paths containing this
            self.trickle_seconds = trickle_seconds
            self.ignore_order = ignore_order
            self.exclusive_end = exclusive_end
            self.total_skew = total_skew
            self.limit_cap = limit_cap
            self._rng = random.Random(seed)
            self.counts = dict.fromkeys((*KINDS, "slow"), 0)

    @property
    def active(self) -> bool:
        return any(self.rates.values())

    def draw(self, path: str = "") -> Draw:
        with self._lock:
            if self.only_paths is not None and self.only_paths not in path:
                return Draw(None, 0.0, 0)
            rng = self._rng
            slow = self.slow_seconds if rng.random() < self.rates["slow"] else 0.0
            if slow:
                self.counts["slow"] += 1
            x = rng.random()
            acc = 0.0
            for kind in KINDS:
                acc += self.rates[kind]
                if x < acc:
                    self.counts[kind] += 1
                    status = rng.choice((500, 502, 503)) if kind == "http_5xx" else 502
                    if kind == "html_5xx":
                        status = rng.choice((502, 503))
                    return Draw(kind, slow, status)
            return Draw(None, slow, 0)
