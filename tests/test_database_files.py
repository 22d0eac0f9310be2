"""The published database: a storage format older DuckDB clients open, and documented columns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from hs_sync import snapshot
from hs_sync.checks import record_results, run_checks
from hs_sync.db import quote, sql
from hs_sync.media import download_media
from hs_sync.registry import DATA_TYPES
from hs_sync.warehouse import Warehouse

COMPAT_SCRIPT = Path(__file__).parent / "compat" / "check_old_duckdb.py"


@pytest.fixture(scope="module")
def synced(_synced_once, tmp_path_factory):
    """A copy of the session's synced warehouse with media and checks: every table present."""
    config = _synced_once.copy(tmp_path_factory.mktemp("dbfiles"), media=True)
    download_media(config)  # some planted recordings cannot be downloaded: not tested here
    record_results(config, run_checks(config))
    snapshot.create(Warehouse(config.warehouse), "compat")  # the compat script probes it too
    return config


def storage_tag(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() "
            "WHERE database_name = current_database()"
        ).fetchone()[0]
    finally:
        con.close()


def header_version(path: Path) -> int:
    """The storage version number in the file header (what an old client compares)."""
    head = path.read_bytes()[:20]
    assert head[8:12] == b"DUCK"
    return int.from_bytes(head[12:20], "little")


def test_database_is_written_in_the_compatible_format(synced):
    db = Warehouse(synced.warehouse).db_path
    assert storage_tag(db) == "v1.0.0+"
    assert header_version(db) == 64  # readable by DuckDB 0.10 to today


def test_a_database_in_a_newer_format_is_rewritten_compatibly(synced, tmp_path):
    wh = Warehouse(synced.warehouse)
    before = _counts(wh.db_path)
    newer = tmp_path / "newer.duckdb"
    con = duckdb.connect(str(newer))  # this DuckDB's default format
    con.execute("ATTACH ? AS live (READ_ONLY)", [str(wh.db_path)])
    con.execute("COPY FROM DATABASE live TO newer")
    con.close()
    assert header_version(newer) != 64
    newer.replace(wh.db_path)
    record_results(synced, run_checks(synced, use_api=False))  # publishes a new copy
    assert header_version(wh.db_path) == 64
    assert _counts(wh.db_path) == before


def _counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {
            n: con.execute(sql("SELECT count(*) FROM {t}", t=quote(n))).fetchone()[0] for n in names
        }
    finally:
        con.close()


@pytest.mark.slow
def test_duckdb_1_4_reads_every_table_and_view(synced, tmp_path):
    done = subprocess.run(
        [sys.executable, str(COMPAT_SCRIPT), str(synced.warehouse), "--versions", "1.4.*"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "duckdb 1.4." in done.stdout
    assert "snapshots/compat/hyperstudy.duckdb" in done.stdout  # a snapshot opens as well


def test_every_table_view_and_column_has_a_comment(synced):
    con = duckdb.connect(str(Warehouse(synced.warehouse).db_path), read_only=True)
    try:
        relations = con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main' "
            "UNION ALL SELECT view_name, comment FROM duckdb_views() "
            "WHERE NOT internal AND schema_name = 'main'"
        ).fetchall()
        columns = con.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = 'main' AND NOT internal"
        ).fetchall()
    finally:
        con.close()
    names = {name for name, _ in relations}
    assert {dt.name for dt in DATA_TYPES} | {"media_files", "check_results"} <= names
    assert [name for name, comment in relations if not comment] == []
    mine = [(t, c, comment) for t, c, comment in columns if t in names]
    assert len(mine) > 300
    assert [f"{t}.{c}" for t, c, comment in mine if not comment] == []
    # the unit travels with the description
    comment = {(t, c): comment for t, c, comment in mine}
    assert comment[("events", "onset")].endswith("(unit: ms)")
    assert comment[("sync_quality", "median_abs_drift_ms")].endswith("(unit: ms)")
