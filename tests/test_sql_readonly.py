"""`hs-sync sql` reads the warehouse and nothing else: no statement writes or reads a file."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hs_sync.cli import main
from hs_sync.load.transform import transform
from hs_sync.registry import BY_NAME
from hs_sync.warehouse import Warehouse
from tests.warehouse_helpers import event, land


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("sqlro") / "wh").create()
    land(wh, "events", [event(i) for i in range(5)])
    transform(wh, [BY_NAME["events"]])
    return wh


def _sql(wh: Warehouse, query: str):
    return CliRunner().invoke(main, ["sql", query, "--warehouse", str(wh.root), "--csv"])


def test_queries_and_views_still_work(wh):
    result = _sql(wh, "SELECT count(*) AS n FROM events")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["n", "5"]


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO '{out}/copy.csv'",
        "COPY events TO '{state}/state.sqlite'",
        "COPY events TO '{parquet}/events/extra.parquet'",
        "EXPORT DATABASE '{out}/dump'",
        "ATTACH '{out}/other.duckdb' AS other",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        "INSTALL httpfs",
    ],
)
def test_statements_that_touch_files_are_refused(wh, tmp_path, statement):
    state = wh.root / "state"
    before = {p: p.stat().st_mtime_ns for p in wh.root.rglob("*") if p.is_file()}
    query = statement.format(out=tmp_path, state=state, parquet=wh.root / "parquet")
    result = _sql(wh, query)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hs-sync sql: "), result.output
    assert list(tmp_path.iterdir()) == []
    after = {p: p.stat().st_mtime_ns for p in wh.root.rglob("*") if p.is_file()}
    assert after == before
