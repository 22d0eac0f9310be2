"""hs-sync: keep a local, analysis-ready warehouse of HyperStudy experiment data."""

__version__ = "0.1.0"
