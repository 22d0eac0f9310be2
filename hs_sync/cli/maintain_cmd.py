"""`hs-sync maintain`: compact the Iceberg tables and expire their old snapshots.

Snapshots named with `hs-sync snapshot create` are Iceberg tags: never expired.

Only for warehouses whose tables are Iceberg (a bucket root, or table_format =
"iceberg"); hive Parquet is compacted by every transform. Uses no API; holds
the warehouse lock. Exit codes: 0 done, 2 not an Iceberg warehouse or a bad setting.
"""

from __future__ import annotations

import click

from hs_sync.cli.oneline import OneLineCommand
from hs_sync.cli.options import config_option, json_option, print_json, warehouse_option


@click.command("maintain", cls=OneLineCommand)
@warehouse_option
@json_option("what was compacted and expired")
@config_option
def command(warehouse: str | None, as_json: bool, config_file: str | None) -> None:
    """Compact the Iceberg tables and expire snapshots older than a day (never one
    that `hs-sync snapshot create` tagged).

    \b
    Examples:
      hs-sync maintain --warehouse s3://lab-data/hyperstudy
    """
    from hs_sync.config import load_config
    from hs_sync.errors import ConfigError
    from hs_sync.load import iceberg
    from hs_sync.lock import warehouse_lock
    from hs_sync.warehouse import Warehouse

    config = load_config(config_file, warehouse=warehouse)
    wh = Warehouse(config.warehouse)
    if wh.storage.table_format != "iceberg":
        raise ConfigError("table_format", f"{wh.root} keeps hive Parquet: nothing to maintain")
    with warehouse_lock(wh, timeout=config.lock_timeout_seconds):
        report = iceberg.maintain(wh, list(config.data_types))
    if as_json:
        print_json(report)
        return
    for name, done in report.items():
        compacted = ", ".join(done["compacted"]) or "-"
        click.echo(
            f"{name:20} compacted {compacted}; {done['snapshots_expired']} snapshots expired; "
            f"{done['snapshots_tagged']} kept for named snapshots"
        )
