"""The rough edges a new user met: each is one clear line and its documented exit code."""

from __future__ import annotations

import grp
import os
import socket
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from hs_sync.api.budget import RequestBudget
from hs_sync.checks import run_check
from hs_sync.checks.hints import with_warehouse
from hs_sync.cli import main
from hs_sync.cli.progress import waiting_line
from hs_sync.cli.sync_cmd import transform_line
from hs_sync.media import download_media
from hs_sync.run import sync
from hs_sync.statestore import path as state_path
from hs_sync.status import status
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import make_config
from tests.test_cli_errors import clean_env  # noqa: F401 (autouse: an empty folder, no settings)
from tests.test_reliability_rate_limits import SpedUpClock


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def api_env(sim) -> dict[str, str]:
    return {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}


@pytest.mark.parametrize("given_by", ["environment", "hs_sync.toml"])
@pytest.mark.parametrize("command", ["sync", "media"])
def test_a_warehouse_path_that_is_a_file_is_one_line_before_any_api_call(
    sim, tmp_path, given_by, command
):
    (tmp_path / "afile").write_text("not a folder")
    env = api_env(sim)
    if given_by == "environment":
        env["HS_SYNC_WAREHOUSE"] = str(tmp_path / "afile")
    else:
        (tmp_path / "hs_sync.toml").write_text('warehouse = "afile"\n')
    sim.reset_requests()
    result = CliRunner().invoke(main, [command], env=env)
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith(f"hs-sync {command}: config: warehouse:") and "afile" in line
    assert "is a file" in line
    assert sim.requests == []


def test_a_malformed_settings_file_is_named_once():
    Path("hs_sync.toml").write_text("page_size = = 3\n")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith("hs-sync status: config: hs_sync.toml: ")
    assert "config: config" not in line


def test_the_human_summary_ends_without_a_json_blob(sim, tmp_path):
    types = ["--type", "experiments", "--type", "rooms"]  # the line is the same for all
    result = CliRunner().invoke(
        main, ["sync", "--no-media", "--warehouse", str(tmp_path / "wh"), *types], env=api_env(sim)
    )
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("transform: ") and "{" not in last
    assert "row(s) written" in last and last.endswith("database published")


def test_transform_line_names_quarantine_and_new_fields():
    line = transform_line(
        {
            "published": False,
            "seconds": 0.25,
            "quarantined": 2,
            "drift": {"events": {}},
            "types": {"events": {"files": 3, "db_rows_written": 0}},
        }
    )
    assert line == (
        "transform: 3 raw file(s) applied, 0 row(s) written to 0 table(s) in 0.2 s; "
        "2 row(s) quarantined (see quarantine/); new fields in events (kept in _extra); "
        "database unchanged"
    )


def test_the_progress_line_never_shows_an_empty_type():
    from hs_sync.cli.progress import SyncProgress

    progress = SyncProgress(enabled=True)
    shown = []

    class Status:
        def update(self, text):
            shown.append(text)

    progress._status = Status()
    progress("transform")
    progress("page", data_type="events", experiment="exp_1", rows=5)
    assert shown[0].endswith("normalizing into Parquet and DuckDB")
    assert shown[1].endswith("page events/exp_1")
    assert not any(text.endswith("/") or " /" in text for text in shown)


def test_sql_shows_every_result_and_refuses_csv_with_json(sim, tmp_path):
    sync(make_config(sim, tmp_path / "wh", types=("experiments",)))
    args = ["--warehouse", str(tmp_path / "wh")]
    both = CliRunner().invoke(main, ["sql", "SELECT 1 AS a; SELECT 2 AS b", *args])
    assert both.exit_code == 0, both.output
    assert "result 1 of 2" in both.stdout and "result 2 of 2" in both.stdout
    assert "┃ a ┃" in both.stdout and "┃ b ┃" in both.stdout
    refused = CliRunner().invoke(main, ["sql", "SELECT 1", "--csv", "--json", *args])
    assert refused.exit_code == 2
    assert one_line(refused) == "hs-sync sql: --csv and --json cannot be combined; choose one"
    several = CliRunner().invoke(main, ["sql", "SELECT 1; SELECT 2", "--json", *args])
    assert several.exit_code == 2
    assert "2 statements" in one_line(several)


def _read_only(root: Path) -> None:
    """Make the warehouse unwritable: immutable files for root (who may write anything
    else), no write bits for anyone else."""
    if os.geteuid() == 0:
        # every file and folder, not the published-version links (a link has no flags)
        paths = [str(p) for p in (root, *root.rglob("*")) if not p.is_symlink()]
        done = subprocess.run(["chattr", "+i", *paths], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"chattr cannot make files immutable here: {done.stderr.strip()}")
        return
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o555)
        for f in files:
            os.chmod(Path(folder) / f, 0o444)


def _writable_again(root: Path) -> None:
    if os.geteuid() == 0:
        paths = [str(p) for p in (root, *root.rglob("*")) if not p.is_symlink()]
        subprocess.run(["chattr", "-i", *paths], check=False)
    for folder, _, _ in os.walk(root):
        os.chmod(folder, 0o700)


def test_a_read_only_warehouse_is_one_line_and_check_still_prints_its_results(sim, synced_copy):
    root = Path(synced_copy.warehouse)
    _read_only(root)
    try:
        env = {**api_env(sim), "HS_SYNC_WAREHOUSE": str(root)}
        for command in (["sync"], ["media"], ["rebuild"]):
            result = CliRunner().invoke(main, command, env=env)
            assert result.exit_code == 2, result.output
            line = one_line(result)
            assert line.startswith(f"hs-sync {command[0]}: cannot write to the warehouse")
        checked = CliRunner().invoke(main, ["check", "--no-api"], env=env)
        assert checked.exit_code in (0, 1), checked.output
        assert "missing_sessions" in checked.stdout  # the results are printed
        assert "results not stored in open_issues: cannot write" in one_line(checked)
        # the sync state reads as it is (no WAL index can be made beside it)
        shown = status(root)
        assert [r["status"] for r in shown["runs"]] == ["ok"] and shown["watermarks"]
        assert run_check(make_config(sim, root), "freshness", use_api=False).passed
    finally:
        _writable_again(root)


def _a_group() -> grp.struct_group:
    """A group this user may give files to: another one when root, else the primary group."""
    if os.geteuid() == 0:
        others = [g for g in grp.getgrall() if g.gr_gid != os.getgid()]
        if others:
            return others[0]
    return grp.getgrgid(os.getgid())


def _modes(root: Path) -> set[tuple[str, int, int]]:
    """(kind, permission bits, gid) of everything under the warehouse."""
    out = set()
    for folder, _, files in os.walk(root):
        st = os.stat(folder)
        out.add(("dir", stat.S_IMODE(st.st_mode), st.st_gid))
        for name in files:
            st = os.lstat(Path(folder) / name)
            out.add(("file", stat.S_IMODE(st.st_mode), st.st_gid))
    return out


def test_a_warehouse_is_owner_only_by_default(sim, tmp_path):
    sync(make_config(sim, tmp_path / "wh", types=("experiments", "rooms")))
    assert {(kind, mode) for kind, mode, _ in _modes(tmp_path / "wh")} == {
        ("dir", 0o700),
        ("file", 0o600),
    }


def test_group_shares_the_warehouse_read_only_and_every_writer_keeps_it_so(sim, tmp_path):
    group = _a_group()
    root = tmp_path / "wh"
    # recordings (for the media below) and a type landed by time window
    types = ["--type", "recordings", "--type", "chat"]
    args = ["sync", "--warehouse", str(root), "--group", group.gr_name, "--no-media", *types]
    result = CliRunner().invoke(main, args, env=api_env(sim))
    assert result.exit_code == 0, result.output
    assert _modes(root) == {("dir", 0o2750, group.gr_gid), ("file", 0o640, group.gr_gid)}
    # a later writer that was not told the group (media, checks, Dagster) keeps it shared
    more = CliRunner().invoke(main, ["media", "--warehouse", str(root)], env=api_env(sim))
    assert more.exit_code == 0, more.output
    assert list((root / "media").rglob("*.*"))  # new files were written ...
    assert _modes(root) == {("dir", 0o2750, group.gr_gid), ("file", 0o640, group.gr_gid)}


def test_an_unknown_group_is_one_line_before_any_api_call(sim, tmp_path):
    sim.reset_requests()
    args = ["sync", "--warehouse", str(tmp_path / "wh"), "--group", "no-such-group-here"]
    result = CliRunner().invoke(main, args, env=api_env(sim))
    assert result.exit_code == 2
    assert (
        one_line(result)
        == "hs-sync sync: config: group: no group 'no-such-group-here' on this machine"
    )
    assert sim.requests == []


def test_hints_name_the_warehouse_that_was_given(synced_world, tmp_path):
    root = Path(synced_world.copy(tmp_path / "my wh").warehouse)  # a space in the path
    result = CliRunner().invoke(main, ["check", "--no-api", "--warehouse", str(root), "--json"])
    checks = {c["name"]: c for c in orjson.loads(result.stdout)["checks"]}
    hint = checks["missing_sessions"]["hint"]
    assert f" --warehouse '{root}'`" in hint and "`hs-sync sync --room " in hint
    table = CliRunner().invoke(main, ["check", "--no-api", "--warehouse", str(root)])
    shown = " ".join(table.stdout.split())  # rich wraps long lines
    assert f"""all issues: hs-sync sql "SELECT * FROM open_issues" --warehouse '{root}'""" in shown
    # the default folder needs no flag
    assert with_warehouse("`hs-sync media`", Path("warehouse")) == "`hs-sync media`"
    assert with_warehouse("`hs-sync sync --room a (and 2 more room(s))`", Path("w")) == (
        "`hs-sync sync --room a --warehouse w (and 2 more room(s))`"
    )


def test_check_says_when_the_hourly_budget_stopped_reconciliation(sim, synced_copy):
    root = Path(synced_copy.warehouse)
    Path("hs_sync.toml").write_text("budget_per_hour = 5\n")  # fewer than reconciliation needs
    result = CliRunner().invoke(main, ["check", "--warehouse", str(root)], env=api_env(sim))
    assert result.exit_code == 1
    out = " ".join(result.stdout.split())
    assert "count_reconciliation: the hourly request budget is spent" in out
    assert (
        "--no-api --warehouse" in out
        and "now for the offline checks" in out
        and "details.error" not in out
    )


def test_status_and_the_freshness_check_agree_after_a_partial_run(synced_copy):
    """A run that ended partial after every pull completed (the budget ran out during the
    media downloads) leaves the data fresh: status says so, as the freshness check does."""
    config = synced_copy
    root = Path(config.warehouse)
    with sqlite3.connect(state_path(Warehouse(root))) as db:  # how such a run is recorded
        db.execute("UPDATE runs SET status = 'partial'")
    fresh = status(root)["freshness"]
    assert fresh["last_run_status"] == "partial"
    assert fresh["last_success_at"] is not None and fresh["stale"] is False
    assert run_check(config, "freshness", use_api=False).passed
    shown = CliRunner().invoke(main, ["status", "--warehouse", str(root)])
    assert "no successful sync yet" not in shown.stdout and "fresh" in shown.stdout


def test_request_counts_agree_between_summary_run_table_and_status(sim, tmp_path):
    root = tmp_path / "wh"
    # one type of each mode: time windows, rooms, merge (with media), snapshot
    types = ["--type", "chat", "--type", "components", "--type", "recordings", "--type", "rooms"]
    result = CliRunner().invoke(
        main, ["sync", "--warehouse", str(root), "--json", *types], env=api_env(sim)
    )
    summary = orjson.loads(result.stdout)
    assert summary["media"]["api_requests"] > 0  # link mints are part of the run's requests
    runs = status(root)["runs"]
    assert runs[0]["requests"] == summary["requests"]
    assert summary["requests"] == len(sim.requests) - _media_bytes_requests(sim)


def _media_bytes_requests(sim) -> int:
    """Requests for the media bytes themselves (signed storage URLs, not the API)."""
    return sum(1 for r in sim.requests if "/api/v3/" not in str(r.get("path", "")))


def test_media_downloads_waiting_for_the_budget_say_so(synced_copy):
    """With 2 link mints a minute (on a clock 600x faster), the downloads wait: the
    progress says how long, and the media bar's line shows it."""
    config = synced_copy.replace(budget_per_minute=2)
    clock = SpedUpClock(600.0)
    budget = RequestBudget(100_000, 2, clock=clock.time, sleep=clock.sleep)
    events = []
    summary = download_media(
        config, budget=budget, progress=lambda event, **info: events.append((event, info))
    )
    assert summary.downloaded > 2
    waits = [info for event, info in events if event == "media_wait"]
    # at most a minute, give or take the sped-up clock's granularity; a wait shorter than
    # 0.05 s is shown (rounded) as 0.0
    assert waits and all(0 <= w["seconds"] <= 61 and w["per_minute"] == 2 for w in waits)
    assert any(w["seconds"] > 1 for w in waits)
    assert budget.on_wait is None  # handed back after the run
    line = waiting_line("media: 40 file(s)", waits[0], files_left=30)
    assert line.startswith("media: 40 file(s) · waiting ")
    assert line.endswith("for the request budget (2/min); 30 file(s) left need at least 15 min")


def test_a_closed_port_names_the_url_and_fails_fast(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v3"
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        ["sync", "--warehouse", str(tmp_path / "wh")],
        env={"HYPERSTUDY_API_KEY": "hst_test_key", "HYPERSTUDY_BASE_URL": url},
    )
    assert result.exit_code == 2
    assert one_line(result) == (
        f"hs-sync sync: config: base_url: nothing answers at {url} (connection refused): "
        "check the URL (HYPERSTUDY_BASE_URL, --base-url) and that the server is up"
    )
    assert time.monotonic() - started < 5  # no rounds of retries


def test_check_with_the_server_down_still_shows_the_offline_checks(sim, synced_copy):
    root = Path(synced_copy.warehouse)
    with socket.socket() as s:  # the server's address once it is down: nothing listens
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/api/v3"
    env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": url}
    result = CliRunner().invoke(main, ["check", "--warehouse", str(root), "--json"], env=env)
    assert result.exit_code == 1
    checks = {c["name"]: c for c in orjson.loads(result.stdout)["checks"]}
    assert checks["count_reconciliation"]["status"] == "error"
    assert f"nothing answers at {url}" in checks["count_reconciliation"]["details"]["error"]
    assert checks["missing_sessions"]["status"] == "failed"  # the offline checks ran


def test_a_base_url_without_api_v3_is_configuration_with_a_hint(sim, tmp_path):
    url = sim.base_url.removesuffix("/api/v3")
    env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": url}
    result = CliRunner().invoke(main, ["sync", "--warehouse", str(tmp_path / "wh")], env=env)
    assert result.exit_code == 2, result.output
    line = one_line(result)
    assert line.startswith("hs-sync sync: config: base_url: GET experiments answered 404 at ")
    assert f"did you mean {url}/api/v3?" in line
    assert not (tmp_path / "wh").exists()


def test_a_host_that_does_not_resolve_fails_at_once(tmp_path):
    url = "http://no-such-host.invalid/api/v3"  # .invalid never resolves
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        ["sync", "--warehouse", str(tmp_path / "wh")],
        env={"HYPERSTUDY_API_KEY": "hst_test_key", "HYPERSTUDY_BASE_URL": url},
    )
    assert result.exit_code == 2, result.output
    assert one_line(result) == (
        f"hs-sync sync: config: base_url: nothing answers at {url} (the host name does not "
        "resolve): check the URL (HYPERSTUDY_BASE_URL, --base-url) and that the server is up"
    )
    assert time.monotonic() - started < 5  # no rounds of retries


def test_no_command_makes_a_read_only_warehouse_writable_again(sim, synced_copy):
    root = Path(synced_copy.warehouse)
    os.chmod(root, 0o555)  # its owner made it read-only (root may still write inside)
    try:
        env = {**api_env(sim), "HS_SYNC_WAREHOUSE": str(root)}
        for command in (["check", "--no-api"], ["sync", "--no-media"], ["rebuild"], ["media"]):
            CliRunner().invoke(main, command, env=env)
            assert stat.S_IMODE(root.stat().st_mode) == 0o555, command
    finally:
        os.chmod(root, 0o700)


def _closed_port_url() -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/api/v3"


def test_a_warehouse_refuses_another_api_unless_told(sim, tmp_path):
    root = tmp_path / "wh"
    args = ["sync", "--no-media", "--warehouse", str(root), "--type", "experiments"]
    assert CliRunner().invoke(main, args, env=api_env(sim)).exit_code == 0
    other = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": _closed_port_url()}
    refused = CliRunner().invoke(main, args, env=other)
    assert refused.exit_code == 2
    line = one_line(refused)
    assert f"holds data from {sim.base_url}, not {other['HYPERSTUDY_BASE_URL']}" in line
    assert "--allow-other-api" in line and "--warehouse DIR" in line
    # another organization at the same URL is another API too
    org = CliRunner().invoke(main, args, env={**api_env(sim), "HYPERSTUDY_ORG_ID": "org_x"})
    assert org.exit_code == 0  # the warehouse's origin named no organization
    assert "organization org_x" in one_line(
        CliRunner().invoke(main, args, env={**api_env(sim), "HYPERSTUDY_ORG_ID": "org_y"})
    )
    # told: the origin check passes (and the closed port is what stops it now)
    allowed = CliRunner().invoke(main, [*args, "--allow-other-api"], env=other)
    assert allowed.exit_code == 2 and "nothing answers" in one_line(allowed)


def test_a_demo_warehouse_is_not_mixed_with_an_account(sim, tmp_path):
    root = Warehouse(tmp_path / "warehouse").create()
    (root.state_dir / "demo.json").write_text('{"runs": 1}')  # what `hs-sync demo` leaves
    args = ["sync", "--no-media", "--warehouse", str(root.root), "--type", "experiments"]
    sim.reset_requests()
    refused = CliRunner().invoke(main, args, env=api_env(sim))
    assert refused.exit_code == 2 and sim.requests == []
    assert "holds data from the demo's embedded simulator" in one_line(refused)
    real = Warehouse(tmp_path / "real")
    assert (
        CliRunner().invoke(main, [*args[:3], str(real.root), *args[4:]], env=api_env(sim)).exit_code
        == 0
    )
    demo = CliRunner().invoke(main, ["demo", "--warehouse", str(real.root)])
    assert demo.exit_code == 2
    assert one_line(demo).endswith(
        "the demo writes into a folder of its own: hs-sync demo --warehouse demo-warehouse"
    )


@pytest.mark.parametrize("query", ["", " ", ";"])
def test_sql_without_a_statement_is_one_line(sim, tmp_path, query):
    sync(make_config(sim, tmp_path / "wh", types=("experiments",)))
    result = CliRunner().invoke(main, ["sql", query, "--warehouse", str(tmp_path / "wh")])
    assert result.exit_code == 2
    assert (
        one_line(result) == 'hs-sync sql: the query holds no statement; e.g. hs-sync sql "SELECT 1"'
    )


def test_sql_tables_never_break_inside_a_value(synced_copy):
    query = (
        "SELECT _key, _synced_at, _raw_file, experimentId, deploymentId, status "
        "FROM rooms ORDER BY _key LIMIT 3"
    )
    args = ["--warehouse", str(synced_copy.warehouse)]
    rows = CliRunner().invoke(main, ["sql", query, "--json", *args])
    table = CliRunner().invoke(main, ["sql", query, *args])  # piped: not a terminal
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert len(lines) == 3 + 3 + 2  # header (3 lines), one line per row, bottom and count
    for row in orjson.loads(rows.stdout):
        line = next(line for line in lines if row["_key"] in line)
        assert all(str(value) in line for value in row.values() if value is not None)


def test_deployment_summary_has_the_median_session_of_rooms_sent_with_start_time(synced_copy):
    """The simulator sends rooms as the dashboard docs do (`startTime`, `duration`)."""
    import statistics

    from hs_sync.db import connect_readonly

    con = connect_readonly(Warehouse(synced_copy.warehouse))
    try:
        assert con.execute("SELECT count(startedAt) FROM rooms").fetchone() == (0,)
        durations: dict[str, list[float]] = {}
        rows = con.execute("SELECT deployment_id, duration_s FROM dashboard_rooms").fetchall()
        for deployment, seconds in rows:
            if seconds is not None:
                durations.setdefault(deployment, []).append(seconds)
        summary = dict(
            con.execute(
                "SELECT deployment_id, median_session_duration_s FROM deployment_summary"
            ).fetchall()
        )
    finally:
        con.close()
    assert durations
    for deployment, seconds in durations.items():
        assert summary[deployment] == pytest.approx(statistics.median(seconds))


def test_an_unknown_experiment_is_said_once_as_unknown(sim, tmp_path):
    args = ["sync", "--no-media", "--warehouse", str(tmp_path / "wh"), "--experiment", "exp_nope"]
    result = CliRunner().invoke(main, args, env=api_env(sim))
    assert result.exit_code == 1
    said = [line for line in result.stdout.splitlines() if "exp_nope" in line]
    assert said == [
        "error: experiment/exp_nope: experiment exp_nope: unknown, or not visible to this key "
        "(check-access: canView is false)"
    ]


def test_doctor_on_a_folder_that_does_not_exist_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["doctor", "--warehouse", str(tmp_path / "typo")])
    assert result.exit_code == 2
    assert one_line(result) == (
        f"hs-sync doctor: config: warehouse: no warehouse at {tmp_path / 'typo'}; "
        "run `hs-sync sync` first"
    )


def test_summaries_count_one_row_in_the_singular(sim, tmp_path):
    args = ["sync", "--no-media", "--warehouse", str(tmp_path / "wh"), "--type", "experiments"]
    result = CliRunner().invoke(main, args, env=api_env(sim))
    assert result.exit_code == 0, result.output
    per_experiment = [line for line in result.stdout.splitlines() if "exp_" in line]
    assert per_experiment and all(line.endswith(" 1 row") for line in per_experiment)
    assert "1 rows" not in result.output


def test_the_budget_counts_the_wall_time_its_threads_waited_not_their_sum():
    import threading

    clock = SpedUpClock(600.0)
    budget = RequestBudget(100_000, 1, clock=clock.time, sleep=clock.sleep)
    began = clock.time()
    threads = [threading.Thread(target=budget.acquire, args=("media",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = clock.time() - began
    assert elapsed > 150  # three more requests, one a minute: the threads did wait
    assert budget.waited_seconds <= elapsed  # four threads waiting one minute wait a minute


def test_long_waits_are_said_without_a_terminal_and_in_the_summary(capsys):
    from hs_sync.cli.progress import SyncProgress
    from hs_sync.cli.sync_cmd import print_summary
    from hs_sync.run import RunSummary

    for enabled in (True, False):  # plain lines, and --json
        progress = SyncProgress(enabled=enabled)  # stderr is not a terminal here
        for _ in range(4):  # four download threads wait the same minute
            progress("media_wait", seconds=42.0, per_minute=2)
        progress("media_wait", seconds=0.5, per_minute=2)  # too short to mention
        said = capsys.readouterr().err.splitlines()
        assert said == ["media: waiting 42 s for the request budget (2/min per endpoint)"]
    summary = RunSummary(run_id="r", started_at="2026-01-01T00:00:00Z")
    summary.budget = {"per_hour": 1000, "remaining_this_hour": 900, "waited_seconds": 192.4}
    print_summary(summary)
    assert "waited 3 min 12 s in all for the per-minute request budget" in capsys.readouterr().out
