"""hs-sync: keep a local, analysis-ready warehouse of HyperStudy experiment data.

`hs_sync.sync(config) -> RunSummary` is the library entry point; build the
config with `hs_sync.config.load_config`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["RunSummary", "__version__", "sync"]

if TYPE_CHECKING:
    from hs_sync.run import RunSummary, sync


def __getattr__(name: str) -> Any:
    # Resolved on first use so that `import hs_sync` (and `hs-sync --help`) does not
    # load duckdb, pyarrow or httpx.
    if name in ("RunSummary", "sync"):
        from hs_sync import run

        return getattr(run, name)
    raise AttributeError(f"module 'hs_sync' has no attribute {name!r}")
