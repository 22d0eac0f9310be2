"""The report's charts as plotly figures, built from the rows `queries` returns.

Text that comes from the data is HTML-escaped before it goes into a figure:
plotly.js reads a few HTML tags in labels and hover text, and shows entities
as the characters they stand for.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go

from hs_sync.checks.model import Issue
from hs_sync.report.queries import participant_counts

QUALITY_COLORS = {"good": "#1a9850", "acceptable": "#fdae61", "poor": "#d73027"}
STATUS_COLORS = ("#4575b4", "#1b9e77", "#7b3294", "#a6761d", "#666666")
MISSING_COLOR = "#d73027"
ROW_PX = 16  # height of one heat-map row or one deployment lane
MAX_HEIGHT = 6000


def esc(value: Any) -> str:
    """Text from the data, safe in a plotly label or hover text."""
    return html.escape("" if value is None else str(value), quote=False)


def _layout(fig: go.Figure, title: str, height: int, **more: Any) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01},
        height=max(320, min(height, MAX_HEIGHT)),
        template="plotly_white",
        margin={"l": 20, "r": 20, "t": 60, "b": 40},
        **more,
    )
    fig.update_yaxes(automargin=True)
    fig.update_xaxes(automargin=True)
    return fig


def completeness(participants: list[dict[str, Any]], flagged: set[tuple[str, str]]) -> go.Figure:
    """Heat map: each participant's rows of each type against their experiment's typical count.

    1 (green) is at least the typical count, 0 (red) none; a blank cell is a type
    nobody in the experiment has. `flagged` holds (room, participant) pairs the
    missing-sessions check named; their labels carry a warning sign.
    """
    types = participant_counts()
    labels, z, counts = [], [], []
    for p in participants:
        mark = "⚠ " if (p["room_id"], p["participant_id"]) in flagged else ""
        labels.append(f"{mark}{esc(p['room_id'])} / {esc(p['participant_id'])}")
        z_row, c_row = [], []
        for column, _ in types:
            typical = p[f"typical_{column}"]
            have = p[column]
            z_row.append(None if not typical else min(1.0, have / typical))
            c_row.append(
                [
                    have,
                    "-" if typical is None else round(typical, 1),
                    esc(p["experiment_name"]),
                    esc(p["status"]),
                ]
            )
        z.append(z_row)
        counts.append(c_row)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[label for _, label in types],
            y=labels,
            customdata=counts,
            zmin=0,
            zmax=1,
            colorscale=[[0, "#d73027"], [0.5, "#fee08b"], [1, "#1a9850"]],
            colorbar={"title": {"text": "share of typical"}},
            xgap=1,
            ygap=1,
            hovertemplate=(
                "%{y}<br>%{x}: %{customdata[0]} rows (typical %{customdata[1]})<br>"
                "%{customdata[2]}, status %{customdata[3]}<extra></extra>"
            ),
        )
    )
    many = len(labels) > 150
    fig.update_yaxes(autorange="reversed", showticklabels=not many, tickfont={"size": 10})
    fig.update_xaxes(side="top")
    return _layout(
        fig,
        "Completeness per participant and data type",
        ROW_PX * len(labels) + 160,
        plot_bgcolor="#eeeeee",
    )


def _lane(row: dict[str, Any]) -> str:
    return f"{esc(row['experiment_name'])} / {esc(row['deployment_name'])}"


def sessions(rooms: list[dict[str, Any]], findings: dict[str, list[Issue]], hint) -> go.Figure:
    """Sessions (rooms) over time, one lane per deployment, coloured by room status.

    `findings` maps a room to the missing-sessions issues about it; those rooms get
    a red cross whose hover text gives the issues and `hint(issues)`.
    """
    fig = go.Figure()
    by_status: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for room in rooms:
        by_status[room["status"] or "unknown"].append(room)
    for i, (status, group) in enumerate(sorted(by_status.items())):
        fig.add_trace(
            go.Scatter(
                x=[r["started_at"] for r in group],
                y=[_lane(r) for r in group],
                mode="markers",
                name=esc(status),
                marker={"size": 9, "color": STATUS_COLORS[i % len(STATUS_COLORS)]},
                customdata=[
                    [esc(r["room_id"]), r["participant_count"], _duration(r["duration_s"])]
                    for r in group
                ],
                hovertemplate=(
                    "%{customdata[0]}<br>%{x}<br>%{customdata[1]} participant(s), "
                    "%{customdata[2]}<extra>" + esc(status) + "</extra>"
                ),
            )
        )
    missing = [r for r in rooms if r["room_id"] in findings]
    if missing:
        fig.add_trace(
            go.Scatter(
                x=[r["started_at"] for r in missing],
                y=[_lane(r) for r in missing],
                mode="markers",
                name="missing session",
                marker={
                    "size": 16,
                    "symbol": "x-thin-open",
                    "line": {"width": 3, "color": MISSING_COLOR},
                    "color": MISSING_COLOR,
                },
                customdata=[
                    [esc(r["room_id"]), _issues_text(findings[r["room_id"]], hint)] for r in missing
                ],  # fmt: skip
                hovertemplate="%{customdata[0]}<br>%{customdata[1]}<extra>missing</extra>",
            )
        )
    lanes = len({_lane(r) for r in rooms})
    fig.update_yaxes(categoryorder="category descending")
    return _layout(
        fig,
        "Sessions over time per deployment (red cross: missing session)",
        4 * ROW_PX * lanes + 200,
        legend={"orientation": "h", "y": -0.15},
        hoverlabel={"align": "left"},
    )


def _duration(seconds: float | None) -> str:
    return "still running" if seconds is None else f"{seconds / 60:.1f} min"


def _issues_text(issues: list[Issue], hint) -> str:
    lines = [esc(i.detail or i.entity) + (f" ({esc(i.id)})" if i.entity != "room" else "")
             for i in issues]  # fmt: skip
    return "<br>".join(lines + _wrap(esc(hint(issues))))


def _wrap(text: str, width: int = 80) -> list[str]:
    """Hover text has no automatic line breaks: break at spaces."""
    out, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return out + ([line] if line else [])


def sync_quality(rows: list[dict[str, Any]]) -> go.Figure:
    """Stacked bars: participant sessions per deployment in each sync-quality class."""
    lanes = sorted({_lane(r) for r in rows}, reverse=True)
    fig = go.Figure()
    for quality, color in QUALITY_COLORS.items():
        mine = {_lane(r): r for r in rows if r["quality_class"] == quality}
        fig.add_trace(
            go.Bar(
                y=lanes,
                x=[mine[lane]["sessions"] if lane in mine else 0 for lane in lanes],
                orientation="h",
                name=quality,
                marker={"color": color},
                customdata=[
                    [
                        mine[lane]["samples"] if lane in mine else 0,
                        _ms(mine[lane]["median_abs_drift_ms"]) if lane in mine else "-",
                    ]
                    for lane in lanes
                ],
                hovertemplate=(
                    "%{y}<br>%{x} participant session(s) " + quality + "<br>"
                    "%{customdata[0]} samples, median |drift| %{customdata[1]}<extra></extra>"
                ),
            )
        )
    return _layout(
        fig,
        "Media sync quality per deployment (participant sessions by class of median |drift|)",
        3 * ROW_PX * len(lanes) + 200,
        barmode="stack",
        xaxis_title="participant sessions",
        legend={"orientation": "h", "y": -0.2},
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def ratings(samples: Iterable[dict[str, Any]], title: str, gap_ms: int) -> go.Figure:
    """Continuous ratings of one room: a line per participant and component over onset.

    A pause longer than `gap_ms` breaks the line (no interpolation across a gap).
    """
    series: dict[tuple[str, str], tuple[list, list]] = defaultdict(lambda: ([], []))
    last: dict[tuple[str, str], int] = {}
    for s in samples:
        key = (s["participant_id"], s["component_id"])
        xs, ys = series[key]
        if key in last and s["onset"] - last[key] > gap_ms:
            xs.append(None)  # a gap: the line stops here
            ys.append(None)
        last[key] = s["onset"]
        xs.append(s["onset"] / 1000)
        ys.append(s["value"])
    components = {c for _, c in series}
    fig = go.Figure()
    for (participant, component), (xs, ys) in sorted(series.items()):
        name = esc(participant) + (f" · {esc(component)}" if len(components) > 1 else "")
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, connectgaps=False))
    return _layout(
        fig,
        title,
        520,
        xaxis_title="onset (s)",
        yaxis_title="rating",
        hovermode="x unified",
    )
