"""Raw data files are landed zstd-compressed by default, plain when asked, and every
reader (the transform, the media plan, DuckDB itself) takes either."""

from __future__ import annotations

import duckdb
import pytest

from hs_sync.land import rawfile
from hs_sync.registry import BY_NAME, DEFAULT_TYPES
from hs_sync.run import sync
from tests.extract_helpers import data_files, landed_lines, make_config
from tests.warehouse_helpers import content_rows


def test_a_sync_lands_zstd_by_default_and_plain_ndjson_when_asked(synced_world, tmp_path):
    packed = synced_world.config  # synced with the default settings
    plain = make_config(synced_world.sim, tmp_path / "plain", raw_compression="none")
    assert sync(plain).exit_code == 0

    for dt in DEFAULT_TYPES:
        zst, nd = data_files(packed.warehouse, dt), data_files(plain.warehouse, dt)
        assert zst and nd, dt.name
        assert all(p.name.endswith(".ndjson.zst") for p in zst), dt.name
        assert all(p.name.endswith(".ndjson") for p in nd), dt.name
        # the same records landed, each a line exactly as the API sent it
        assert landed_lines(packed.warehouse, dt) == landed_lines(plain.warehouse, dt)
    size = {
        name: sum(p.stat().st_size for dt in DEFAULT_TYPES for p in data_files(c.warehouse, dt))
        for name, c in (("zst", packed), ("nd", plain))
    }
    assert size["zst"] * 3 < size["nd"]
    # ... and the same warehouse comes out of them
    for dt in DEFAULT_TYPES:
        rows = content_rows(packed.warehouse, dt.name)
        assert rows == content_rows(plain.warehouse, dt.name), dt.name
        assert rows or dt.name == "deployments", dt.name


def test_duckdb_reads_the_compressed_raw_files_as_they_are(synced_world):
    config = synced_world.config
    events = BY_NAME["events"]
    pattern = str(config.warehouse / "raw" / "events" / "*" / "*" / "*.ndjson.zst")
    con = duckdb.connect()
    try:
        (count,) = con.execute("SELECT count(*) FROM read_ndjson_auto(?)", [pattern]).fetchone()
    finally:
        con.close()
    assert count == landed_lines(config.warehouse, events) > 0


@pytest.mark.parametrize(
    ("name", "stem"),
    [("00001.ndjson.zst", "00001"), ("00001.ndjson.gz", "00001"), ("00001.ndjson", "00001")],
)
def test_data_file_names(name, stem):
    assert rawfile.is_data_file(name) and rawfile.stem(name) == stem
    assert not rawfile.is_data_file("." + name) and not rawfile.is_data_file("00001.meta.json")
