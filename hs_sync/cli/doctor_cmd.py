"""`hs-sync doctor`: check every state store opens and reads; `--repair` recovers the damaged;
`--api` reports what the API at the base URL honours.

Exit codes: 0 every store is usable (or was repaired), 1 a store is damaged (run
with --repair), 2 configuration or lock errors. With --api: 0 the API honours
every promise checked, 1 it breaks one, 2 configuration or key errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hs_sync.cli import printing
from hs_sync.cli.oneline import OneLineCommand
from hs_sync.cli.options import config_option, json_option, print_json, warehouse_option


@click.command("doctor", cls=OneLineCommand)
@warehouse_option
@click.option(
    "--repair", is_flag=True, help="Set damaged stores aside (state/damaged/) and rebuild them."
)
@click.option(
    "--api",
    "api",
    is_flag=True,
    help="Report what the API at the base URL honours (a few requests; needs the key).",
)
@json_option("the report")
@config_option
def command(
    warehouse: Path | None, repair: bool, api: bool, as_json: bool, config_file: str | None
) -> None:
    """Check the warehouse's state stores: the state file (extraction state, transform
    ledger, media manifest) and the database; in a bucket warehouse also that raw/
    holds every raw file of the bucket. No API, no key.

    \b
    Examples:
      hs-sync doctor
      hs-sync doctor --repair
      hs-sync doctor --api
    """
    from hs_sync import objstore, stores
    from hs_sync.config import load_config
    from hs_sync.errors import ConfigError
    from hs_sync.lock import warehouse_lock

    config = load_config(config_file, warehouse=warehouse)
    if api:
        _api(config, as_json)
    wh = objstore.open_warehouse(config)  # a bucket's folder is bound on first use
    if not wh.root.is_dir():
        raise ConfigError("warehouse", f"no warehouse at {wh.root}; run `hs-sync sync` first")
    if repair:
        with warehouse_lock(wh, timeout=config.lock_timeout_seconds):
            reports = stores.repair(wh, config)
            after = {r.store: r for r in stores.check(wh)}
    else:
        reports = stores.check(wh)
        after = {r.store: r for r in reports}
    code = 0 if all(r.ok for r in after.values()) else 1
    if as_json:
        print_json({"stores": [r.to_dict() for r in reports], "exit_code": code})
        sys.exit(code)
    for r in reports:
        if not r.exists:
            state = "absent (made by the first sync)"
        elif r.ok:
            state = "ok"
        elif r.repaired and after[r.store].ok:
            aside = f" set aside as {r.moved_to};" if r.moved_to else ""
            state = f"was damaged ({r.problem});{aside} {r.repaired}"
        else:
            state = f"DAMAGED ({r.problem}); `hs-sync doctor --repair` {stores.RECOVERY[r.store]}"
        printing.echo(f"{r.store:<10} {r.path:<26} {state}")
    sys.exit(code)


def _api(config, as_json: bool) -> None:
    from hs_sync.api.budget import budget_for
    from hs_sync.api.capabilities import api_report, report_lines
    from hs_sync.api.client import ApiClient

    with ApiClient(config, budget_for(config)) as client:
        report = api_report(client, config.experiments, config.page_size)
    code = 1 if report.missing else 0
    if as_json:
        print_json({**report.to_dict(), "exit_code": code})
    else:
        for line in report_lines(report):
            printing.echo(line)
    sys.exit(code)
