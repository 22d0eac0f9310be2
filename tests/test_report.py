"""`hs-sync report`: the page renders every chart in headless Chromium, offline,
shows the planted missing sessions with their hints, and escapes text from the data."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from plotly.io.json import to_json_plotly

from hs_simulator import Simulator
from hs_sync.cli import main
from hs_sync.report import write_report
from hs_sync.run import sync
from tests.browser_helpers import charts, pixels, render, share_near
from tests.checks_helpers import copy_of, execute
from tests.extract_helpers import make_config

# An experiment name that would be markup if pasted into the page unescaped.
HOSTILE_NAME = "Ωmega <b>bold</b> <img src=x onerror=alert(1)> & co"
GREEN = (26, 152, 80)  # the heat map's "complete" colour
RED = (215, 48, 39)  # "none" in the heat map, the missing-session cross


@pytest.fixture(scope="module")
def world(shared_sim, _synced_once) -> tuple[Simulator, object]:
    """The planted-defect dataset and the warehouse synced from it once per run (the
    tests write reports outside it or into copies)."""
    return shared_sim, _synced_once.config


@pytest.fixture(scope="module")
def hostile(world, tmp_path_factory):
    """A copy of the synced warehouse whose biggest experiment has a name full of markup."""
    _, config = world
    config = copy_of(config, tmp_path_factory.mktemp("hostile"))
    execute(
        config,
        "UPDATE experiments SET name = ? WHERE id = "
        "(SELECT experimentId FROM rooms GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)",
        [HOSTILE_NAME],
    )
    return config


def report(config, *args: str):
    argv = ["report", "--warehouse", str(config.warehouse), *args]
    return CliRunner().invoke(main, argv, catch_exceptions=False)


@pytest.fixture(scope="module")
def written(hostile, tmp_path_factory) -> Path:
    """The report of the hostile-named warehouse, written by the CLI."""
    out = tmp_path_factory.mktemp("written") / "report.html"
    result = report(hostile, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out} ")
    return out


@pytest.fixture(scope="module")
def rendered(written, tmp_path_factory):
    """The report opened once in headless Chromium: (html, dom, screenshot)."""
    dom, png = render(written, tmp_path_factory.mktemp("browser"))
    return written.read_text(encoding="utf-8"), dom, png


def query(config, text: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(Path(config.warehouse) / "hyperstudy.duckdb"), read_only=True)
    try:
        return con.execute(text, params or []).fetchall()
    finally:
        con.close()


def missing_rooms(world) -> list[dict]:
    return world[0].defects["missingDataRooms"]


def test_page_is_self_contained(written):
    html = written.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html), "the page loads a file"
    assert "Plotly.newPlot" in html and "plotly.js" in html  # the library itself is inline


@pytest.mark.slow
def test_every_chart_renders_in_chromium(world, rendered, hostile):
    _, dom, _ = rendered
    found = charts(dom)
    assert set(found) == {"completeness", "sessions", "sync", "ratings"}
    for name, chart in found.items():
        assert chart.count("main-svg") >= 1, f"{name}: plotly drew no SVG"

    participants, rooms, statuses = query(
        hostile, "SELECT (SELECT count(*) FROM participants), count(*), count(DISTINCT status) "
        "FROM rooms",
    )[0]  # fmt: skip
    heat = found["completeness"]
    assert heat.count("hm") == 1 and heat.tags["image"] == 1  # the heat map's cells
    assert heat.count("ytick") == participants
    flagged = [t for t in heat.text if t.startswith("⚠ ")]  # named by missing_sessions
    assert len(flagged) == sum(len(r["participantIds"]) for r in missing_rooms(world))

    missing = len(missing_rooms(world))
    sessions = found["sessions"]
    assert sessions.count("trace scatter") == statuses + 1  # + the missing-session crosses
    assert sessions.count("point") == rooms + missing  # every room, a cross on each missing
    assert "missing session" in sessions.text

    sync = found["sync"]
    assert sync.count("trace bars") == 3  # good, acceptable, poor
    assert sync.count("point") >= 1

    room, raters = query(
        hostile,
        "SELECT roomId, count(DISTINCT participantId) FROM ratings_continuous "
        "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    )[0]
    ratings = found["ratings"]
    assert ratings.count("trace scatter") == raters
    assert ratings.count("js-line") >= raters
    assert any(room in t for t in ratings.text), "the chart names the busiest room"


@pytest.mark.slow
def test_screenshot_shows_the_charts(rendered):
    _, _, png = rendered
    image = pixels(png)
    assert image.shape[:2] == (3000, 1400)
    assert image[..., :3].std() > 30, "the screenshot is (nearly) one colour"
    assert share_near(image, GREEN) > 0.05  # the heat map's complete cells
    assert share_near(image, RED) > 0.001  # missing data and the missing-session crosses


def test_missing_sessions_are_listed_with_their_hints(world, written):
    sim, _ = world
    html = written.read_text(encoding="utf-8")
    findings = html[html.index('<section id="findings">') :]
    findings = findings[: findings.index("</section>")]
    for planted in sim.defects["missingDataRooms"]:
        assert planted["roomId"] in findings
        for participant in planted["participantIds"]:
            assert participant in findings
        # each cross's hover text carries the re-pull command for its own room
        assert f"hs-sync sync --room {planted['roomId']}" in html
    assert "What to do: re-pull the rooms at room scope" in findings


@pytest.mark.slow
def test_text_from_the_data_is_escaped(rendered):
    html, dom, _ = rendered
    assert "<img src=x" not in html and "<b>bold</b>" not in html
    drawn = charts(dom)
    assert not any(c.tags["img"] for c in drawn.values())  # no element made from the name
    assert any(HOSTILE_NAME in t for t in drawn["sessions"].text)  # shown as text, as is


def test_room_option_draws_that_room(world, tmp_path):
    _, config = world
    room = query(
        config,
        "SELECT roomId FROM ratings_continuous GROUP BY 1 ORDER BY count(*), 1 LIMIT 1",
    )[0][0]
    summary = write_report(config, out=tmp_path / "r.html", room=room)
    assert summary.room == room and summary.path.exists()
    html = summary.path.read_text(encoding="utf-8")
    assert f"Continuous ratings of room {room}" in html
    assert summary.participants == query(config, "SELECT count(*) FROM participants")[0][0]


def test_default_out_is_in_the_warehouse(world, tmp_path):
    _, config = world
    config = copy_of(config, tmp_path)
    result = report(config)
    assert result.exit_code == 0, result.output
    page = Path(config.warehouse) / "report.html"
    assert page.stat().st_size > 1_000_000
    assert page.stat().st_mode & 0o777 == 0o600  # like every file in the warehouse


@pytest.mark.parametrize(
    "case, args, message",
    [
        ("no warehouse", [], "no warehouse database at "),
        (
            "unknown room",
            ["--room", "room_nope"],
            "room 'room_nope' has no continuous ratings; e.g.",
        ),
        ("out is a folder's file", ["--out", "{file}/x.html"], "cannot write "),
        ("empty warehouse", [], "holds no rooms or participants yet; run `hs-sync sync`"),
        ("a view is gone", [], "; `hs-sync rebuild` recreates it"),
        ("not a database", [], "cannot open "),
    ],
)
def test_errors_are_one_line_with_exit_code_2(world, tmp_path, case, args, message):
    _, config = world
    if case == "no warehouse":
        config = config.replace(warehouse=tmp_path / "nothing")
    elif case == "empty warehouse":
        config = copy_of(config, tmp_path)
        execute(config, "DELETE FROM rooms")
        execute(config, "DELETE FROM participants")
    elif case == "a view is gone":
        config = copy_of(config, tmp_path)
        execute(config, "DROP VIEW sync_quality")
    elif case == "not a database":
        config = copy_of(config, tmp_path)
        (Path(config.warehouse) / "hyperstudy.duckdb").write_bytes(b"not a database" * 500)
    file = tmp_path / "a_file"
    file.write_text("x")
    result = report(config, *[a.format(file=file) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hs-sync report: "), result.output
    assert message in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_hostile_ids_reach_the_queries_as_values(tmp_path):
    """Ids made of quotes, SQL, dot segments and NUL bytes are drawn, never run."""
    types = ("experiments", "deployments", "rooms", "participants", "ratings_continuous")
    with Simulator(seed=4, scale=0.2, hostile_ids=True) as sim:
        config = make_config(sim, tmp_path / "wh", types=types)
        assert sync(config).exit_code == 0
    rooms = dict(query(config, "SELECT roomId, count(*) FROM ratings_continuous GROUP BY 1"))
    hostile = [r for r in rooms if "DROP TABLE" in r or "\x00" in r or r.startswith("..")]
    assert len(hostile) >= 3
    for room in hostile:
        summary = write_report(config, out=tmp_path / "r.html", room=room)
        assert summary.room == room
        html = summary.path.read_text(encoding="utf-8")
        # the chart's title as plotly writes it into the page's JSON
        assert to_json_plotly(f"Continuous ratings of room {room}")[1:-1] in html
    assert write_report(config, out=tmp_path / "d.html").room == max(rooms, key=rooms.get)
    assert query(config, "SELECT count(*) FROM rooms")[0][0] == len(sim.dataset.rooms)
