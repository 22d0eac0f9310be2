"""Readers of the hive Parquet see one published version per sync: never a row twice,
never a missing file, while syncs move rows between date partitions."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone

import duckdb
import pyarrow.dataset as ds

from hs_sync import registry
from hs_sync.load import versions
from hs_sync.load.transform import rebuild, transform
from hs_sync.pipeline import transform_all
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import landed
from tests.warehouse_helpers import land

EVENTS = registry.get("events")
SYNCS = 6


def _land_later(wh: Warehouse, experiment: str, records: list[dict]) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    land(wh, "events", records, batch=f"{stamp}-w", experiment=experiment)


class Reader(threading.Thread):
    """Scans the events dataset over and over, resolving `parquet/events` once per scan."""

    def __init__(self, wh: Warehouse):
        super().__init__(daemon=True)
        self.link = wh.parquet_dir("events")
        self.stop = threading.Event()
        self.scans = 0
        self.sizes: set[int] = set()
        self.duplicates = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                version = os.path.realpath(self.link)
                if self.scans % 2:
                    glob = os.path.join(version, "**", "*.parquet")
                    keys = [
                        r[0]
                        for r in duckdb.sql(
                            "SELECT _key FROM read_parquet($g, hive_partitioning = true)",
                            params={"g": glob},
                        ).fetchall()
                    ]
                else:
                    dataset = ds.dataset(version, format="parquet", partitioning="hive")
                    keys = dataset.to_table(columns=["_key"]).column("_key").to_pylist()
            except BaseException as exc:  # noqa: BLE001 - every failure is a finding
                self.errors.append(exc)
                continue
            self.scans += 1
            self.sizes.add(len(keys))
            self.duplicates += len(keys) - len(set(keys))


def test_readers_see_one_version_while_syncs_move_rows_between_dates(synced_copy):
    wh = Warehouse(synced_copy.warehouse)
    link = wh.parquet_dir("events")
    assert link.is_symlink()
    experiment, rows = max(landed(wh.root, EVENTS).items(), key=lambda item: len(item[1]))
    moving = list(rows.values())[:50]
    reader = Reader(wh)
    reader.start()
    try:
        before = reader.scans
        for day in range(1, SYNCS + 1):
            # the API now serves these rows on another day: each sync moves them all
            stamp = f"2031-01-{day:02d}T03:04:05.000Z"
            _land_later(wh, experiment, [{**r, "timestamp": stamp} for r in moving])
            transform(wh, registry.DATA_TYPES)
        during = reader.scans - before
        while reader.scans < before + 2 * SYNCS and not reader.errors:
            reader.stop.wait(0.05)
    finally:
        reader.stop.set()
        reader.join(30)
    print(f"reader scans {reader.scans} (during syncs {during}), duplicates {reader.duplicates}")
    assert reader.errors == []
    assert reader.duplicates == 0
    assert len(reader.sizes) == 1  # every scan saw every row once, whichever version it read
    assert reader.scans >= 2 * SYNCS
    # every sync published one version; the replaced ones stay within the grace period
    folder = versions.versions_dir(wh, "events")
    assert len(os.listdir(folder)) >= SYNCS + 1
    assert link.resolve().parent == folder.resolve()


def test_replaced_versions_go_after_the_grace_period_and_unpublished_ones_at_once(synced_copy):
    wh = Warehouse(synced_copy.warehouse)
    experiment, rows = next((e, r) for e, r in sorted(landed(wh.root, EVENTS).items()) if r)
    record = next(iter(rows.values()))
    folder = versions.versions_dir(wh, "events")
    _land_later(wh, experiment, [{**record, "timestamp": "2031-02-01T00:00:00.000Z"}])
    transform(wh, registry.DATA_TYPES)
    old = sorted(os.listdir(folder), key=int)
    assert len(old) == 2  # the synced version and this sync's
    kept_for_reader = folder / old[0]
    files_before = sorted(kept_for_reader.rglob("*.parquet"))

    orphan = versions.begin(wh, "events")  # as if a run were killed before publishing
    transform(wh, registry.DATA_TYPES)  # nothing new: only the sweep runs
    assert not orphan.exists()
    assert sorted(kept_for_reader.rglob("*.parquet")) == files_before  # within the grace

    link_target = wh.parquet_dir("events").resolve()
    transform_all(synced_copy.replace(parquet_grace_seconds=0))  # the setting, as configured
    assert not kept_for_reader.exists()
    assert sorted(os.listdir(folder)) == [link_target.name]
    assert wh.parquet_dir("events").resolve() == link_target
    # the remaining version reads whole
    table = ds.dataset(link_target, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len({*table.column("_key").to_pylist()})


def test_a_rebuild_publishes_a_fresh_version_with_the_same_rows(synced_copy):
    wh = Warehouse(synced_copy.warehouse)
    glob = (wh.parquet_dir("events") / "**" / "*.parquet").as_posix()
    count = "SELECT count(*), count(DISTINCT _key) FROM read_parquet($g)"
    before = duckdb.sql(count, params={"g": glob}).fetchall()[0]
    old = wh.parquet_dir("events").resolve()
    rebuild(wh, registry.DATA_TYPES)
    new = wh.parquet_dir("events").resolve()
    assert new != old and old.exists()  # the replaced version stays for readers
    assert duckdb.sql(count, params={"g": glob}).fetchall()[0] == before
