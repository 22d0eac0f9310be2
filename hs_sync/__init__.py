"""hs-sync: keep a local, analysis-ready warehouse of HyperStudy experiment data.

`hs_sync.sync(config) -> RunSummary` is the library entry point; build the
config with `hs_sync.config.load_config`.
"""

__version__ = "0.1.0"

# Bound eagerly: a lazy attribute would be shadowed by the `hs_sync.sync` submodule
# as soon as anything imports it.
from hs_sync.sync import RunSummary, sync  # noqa: E402

__all__ = ["RunSummary", "__version__", "sync"]
