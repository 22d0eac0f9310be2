"""The warehouse report: one self-contained HTML page of charts, readable offline.

`write_report(config, out, room)` writes it; see docs/report.md for what each chart shows.
"""

from __future__ import annotations

from hs_sync.report.build import ReportError, ReportSummary, default_path, write_report

__all__ = ["ReportError", "ReportSummary", "default_path", "write_report"]
