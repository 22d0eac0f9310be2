"""The report page: one self-contained HTML document (plotly.js inline, no network).

Every text from the data is escaped here or in `charts`; the figures' JSON is
written by plotly, which escapes `<`, `>` and `/` inside the script.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from hs_sync.checks.model import CheckResult

MAX_ISSUE_ROWS = 200  # issues listed per check; the open_issues view has them all
_ISSUE_FIELDS = ("entity", "id", "experiment_id", "room_id", "participant_id", "detail")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1400px;
       color: #222; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 4px; }
h2 { margin-top: 36px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
p.meta, p.note { color: #555; }
nav a { margin-right: 16px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.error { color: #b2182b; }
.warning { color: #b35806; }
code { background: #f4f4f4; padding: 1px 4px; }
"""


@dataclass
class Section:
    """One part of the page: a heading, a sentence on what it shows, a chart or HTML."""

    anchor: str
    title: str
    note: str  # plain text
    figure: go.Figure | None = None
    body: str = ""  # HTML, already escaped
    empty: str = ""  # plain text shown instead of the chart when there is no data


def document(title: str, meta: list[str], sections: list[Section]) -> str:
    """The whole page; `title` and `meta` are plain text."""
    nav = " ".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>{escape(title)}</h1>",
        *(f'<p class="meta">{escape(line)}</p>' for line in meta),
        f"<nav>{nav}</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>')
        parts.append(f'<p class="note">{escape(s.note)}</p>')
        if s.figure is not None:
            parts.append(
                s.figure.to_html(
                    full_html=False,
                    include_plotlyjs=False,
                    div_id=f"chart-{s.anchor}",
                    config={"displaylogo": False, "responsive": True},
                )
            )
        elif s.empty:
            parts.append(f'<p class="empty"><em>{escape(s.empty)}</em></p>')
        parts.append(s.body)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def findings(results: list[CheckResult]) -> str:
    """The checks' results as HTML: each failed check with its hint and issues."""
    out = []
    for r in results:
        if r.status not in ("failed", "error"):
            continue
        cls = "error" if r.severity == "error" else "warning"
        out.append(
            f'<h3 id="finding-{escape(r.name)}"><span class="{cls}">{escape(r.severity)}</span> '
            f"{escape(r.name)}: {r.count:,} issue(s)</h3>"
        )
        if r.status == "error":
            out.append(f"<p>could not run: {escape(str(r.details.get('error', '')))}</p>")
        if r.hint:
            out.append(f"<p>What to do: {escape(r.hint)}</p>")
        if r.issues:
            out.append(_table(r.issues[:MAX_ISSUE_ROWS]))
            more = len(r.issues) - MAX_ISSUE_ROWS
            if more > 0:
                out.append(f"<p>… and {more:,} more (see the open_issues view).</p>")
    passed = [r.name for r in results if r.status == "passed"]
    skipped = [r for r in results if r.status == "skipped"]
    if passed:
        out.append(f"<p>Passed: {escape(', '.join(passed))}.</p>")
    if skipped:
        reasons = "; ".join(f"{r.name} ({r.details.get('reason', '')})" for r in skipped)
        out.append(f"<p>Skipped: {escape(reasons)}.</p>")
    return "\n".join(out)


def _table(issues: list[Any]) -> str:
    head = "".join(f"<th>{escape(f)}</th>" for f in _ISSUE_FIELDS)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(getattr(i, f) or ''))}</td>" for f in _ISSUE_FIELDS)
        + "</tr>"
        for i in issues
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
