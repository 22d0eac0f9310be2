"""Which experiments a run syncs: those named, or all the key can list, each checked for
access (a check is remembered for `access_cache_hours`)."""

from __future__ import annotations

from hs_sync.api.budget import budget_for
from hs_sync.api.client import ApiClient, Envelope
from hs_sync.api.paths import quote_id
from hs_sync.config import Config
from hs_sync.errors import ConfigError, ForbiddenError, NotFoundError
from hs_sync.extract.pages import now_iso
from hs_sync.land.state import remembered_access
from hs_sync.summary import RunSummary, new_run_id
from hs_sync.warehouse import Warehouse


def discover(config: Config) -> list[str]:
    """The experiments a sync of `config` would pull (GET /experiments unless named),
    each checked for access; a few requests, counted in the warehouse's budget."""
    warehouse = Warehouse(config.warehouse)
    budget = budget_for(config)  # the key's shared ledger, as every run on this machine
    with ApiClient(config, budget) as client:
        summary = RunSummary(run_id=new_run_id(), started_at=now_iso())
        access = remembered_access(warehouse, config.access_cache_hours)
        return check_experiments(client, config, summary, access)[0]


def check_experiments(
    client: ApiClient, config: Config, summary: RunSummary, access: dict[str, str]
) -> tuple[list[str], Envelope | None, dict[str, str]]:
    """The experiments to sync, checked for access. Read-only: the key's first test.

    A check-access answer is remembered for `access_cache_hours` (`access`: what
    earlier runs saw); the answers checked now are returned to be remembered.
    The experiments listing is read whenever no check is made, so the key is
    still tested before anything is written.
    """
    listing = None
    if config.experiments:
        candidates = list(dict.fromkeys(config.experiments))
        if all(access.get(f"access:{exp}") == "ok" for exp in candidates):
            try:
                listing = client.get("experiments", endpoint="experiments")
            except ForbiddenError:
                access = {}  # the key cannot list: test it with the access checks
    else:
        try:
            listing = client.get("experiments", endpoint="experiments")
        except ForbiddenError as exc:
            raise ConfigError(
                "experiments",
                f"the key cannot list experiments ({exc}); name them with --experiment",
            ) from None
        candidates = [str(r["id"]) for r in listing.records if isinstance(r, dict) and r.get("id")]
    usable = []
    checked: dict[str, str] = {}
    for exp in candidates:
        if access.get(f"access:{exp}") == "ok":
            usable.append(exp)
            continue
        try:
            access_data = client.get(
                f"data/check-access/experiment/{quote_id(exp)}", endpoint="data/check-access"
            ).data
        except NotFoundError:
            reason = "not found (404)"
            summary.skipped_experiments[exp] = reason
            if config.experiments:
                summary.errors[f"experiment/{exp}"] = f"experiment {exp}: {reason}"
            continue
        except ForbiddenError as exc:
            access_data = {"canExport": False, "reason": str(exc)}
        access_data = access_data if isinstance(access_data, dict) else {}
        if access_data.get("canExport") is False or access_data.get("canView") is False:
            reason = (
                "unknown, or not visible to this key (check-access: canView is false)"
                if access_data.get("canView") is False
                else "the key cannot export this experiment (check-access: canExport is false)"
            )
            summary.skipped_experiments[exp] = reason
            if config.experiments:
                summary.errors[f"experiment/{exp}"] = f"experiment {exp}: {reason}"
            continue
        checked[f"access:{exp}"] = "ok"
        usable.append(exp)
    return usable, listing, checked
