"""Settings are layered defaults < file < environment < flags; a bad one is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from hs_sync.config import load_config
from hs_sync.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_the_commented_example_file_loads():
    cfg = load_config(ROOT / "hs_sync.toml.example", env={})
    assert cfg.lookback_seconds == 300 and cfg.media is True


def test_layers_override_in_order(tmp_path):
    file = tmp_path / "hs_sync.toml"
    file.write_text('base_url = "http://file.example/api/v3"\nconcurrency = 2\n')
    env = {
        "HYPERSTUDY_BASE_URL": "http://env.example/api/v3",
        "HYPERSTUDY_API_KEY": "hst_test_" + "s3cr3t" * 10,
    }
    cfg = load_config(file, env=env, concurrency=7)
    assert cfg.base_url == "http://env.example/api/v3"
    assert cfg.concurrency == 7
    assert cfg.api_key.startswith("hst_test_") and "s3cr3t" not in repr(cfg)


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ("page_size = 5000\n", "page_size"),
        ('types = ["events", "nope"]\n', "types"),
        ('api_key = "hst_live_x"\n', "api_key"),
        ("colour = 3\n", "colour"),
        ('concurrency = "many"\n', "concurrency"),
        ('raw_compression = "lz4"\n', "raw_compression"),
    ],
)
def test_a_bad_setting_is_named(tmp_path, text, setting):
    file = tmp_path / "hs_sync.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(file, env={})
    assert err.value.setting == setting
    assert setting in str(err.value)


def test_the_library_entry_point_is_the_function_whatever_was_imported_first():
    import sys

    import hs_sync
    import hs_sync.cli.sync_cmd  # noqa: F401

    assert callable(hs_sync.sync)
    assert hs_sync.sync is sys.modules["hs_sync.run"].sync


def test_the_memory_limit_reaches_the_transform_of_every_type(synced_copy):
    """`pipeline.transform_all` (Dagster's by-experiment job) uses the `memory_limit`
    setting: a limit nothing fits in stops it, the default one publishes."""
    import duckdb

    from hs_sync import pipeline
    from hs_sync.load.ledger import Ledger
    from hs_sync.warehouse import Warehouse

    ledger = Ledger(Warehouse(synced_copy.warehouse))
    try:
        ledger.set_meta("views", "older")  # views to republish: the transform opens the database
    finally:
        ledger.close()
    with pytest.raises(duckdb.OutOfMemoryException):
        pipeline.transform_all(synced_copy.replace(memory_limit="1KB"))
    assert pipeline.transform_all(synced_copy)["published"]
