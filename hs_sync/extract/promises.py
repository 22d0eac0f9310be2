"""What a run relies on of the API's documented promises, from the capability check.

`Promises` turns the kept answers of `hs_sync/api/capabilities.py` into what the
pulls may rely on (an unknown answer is relied on, as documented), the warnings
a run's summary leads with, and `TrustedClient`: the client the pulls read
through, which drops a `pagination.total` the API is known to misreport so that
every read pages to its end and no count is compared with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hs_sync.api.capabilities import BEHAVIORS, BOUNDS, LIMIT, ORDER, TOTAL, Capabilities
from hs_sync.api.client import ApiClient, Envelope

REPORTED_TOTAL = "reportedTotal"  # where a dropped total is kept, for bounds only

# What the run does instead, and what that costs, per missing behaviour.
COSTS = {
    ORDER: "time windows read ascending and bisect on counts instead of reading the newest "
    "rows first: a sync with new rows costs one request more",
    BOUNDS: "time windows are asked one millisecond past their end so no row at a bound is "
    "lost (rows at it are read twice and de-duplicated by key)",
    TOTAL: "reads page to their end instead of trusting totals and history is not verified "
    "by counts: rows arriving later than the lookback are found only by the daily re-read "
    "of the last verify_recent_hours",
    LIMIT: "pages advance by the rows actually served, so reads take more requests",
}


@dataclass(frozen=True)
class Promises:
    """Which of the API's promises the pulls may rely on (True unless found missing)."""

    order: bool = True
    bounds: bool = True
    total: bool = True
    limit: bool = True
    evidence: tuple[tuple[str, str], ...] = ()  # (behaviour, evidence) of the missing ones

    @classmethod
    def from_capabilities(cls, caps: Capabilities | None) -> Promises:
        if caps is None:
            return cls()
        missing = [(n, f.evidence) for n, f in caps.findings.items() if f.status == "missing"]
        names = {n for n, _ in missing}
        return cls(
            order=ORDER not in names,
            bounds=BOUNDS not in names,
            total=TOTAL not in names,
            limit=LIMIT not in names,
            evidence=tuple(sorted(missing)),
        )

    def warnings(self, base_url: str) -> list[str]:
        """One line per missing behaviour: what the API did and what doing without costs."""
        return [
            f"the API at {base_url} does not keep {BEHAVIORS[name]} ({evidence}); {COSTS[name]}"
            for name, evidence in self.evidence
            if name in COSTS
        ]


class TrustedClient:
    """The run's client as the pulls see it: a `pagination.total` the API misreports is
    dropped from every answer (a read without a total pages to its end)."""

    def __init__(self, client: ApiClient, promises: Promises):
        self._client = client
        self._promises = promises

    def get(self, *args: Any, **kwargs: Any) -> Envelope:
        page = self._client.get(*args, **kwargs)
        if self._promises.total:
            return page
        pagination = page.metadata.get("pagination")
        if not isinstance(pagination, dict) or "total" not in pagination:
            return page
        # kept aside for the pagination loop's bound on a server that never stops
        kept = {k: v for k, v in pagination.items() if k != "total"}
        kept[REPORTED_TOTAL] = pagination["total"]
        return replace(page, metadata={**page.metadata, "pagination": kept})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
