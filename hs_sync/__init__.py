"""hs-sync: keep a local, analysis-ready warehouse of HyperStudy experiment data."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `sync` is imported on first use so that `import hs_sync` stays cheap.
    if name == "sync":
        from hs_sync.sync import sync

        return sync
    raise AttributeError(f"module 'hs_sync' has no attribute {name!r}")
