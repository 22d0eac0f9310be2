"""`hs-sync demo` works from nothing, and what it leaves is what `check` and `sql` read."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

HS_SYNC = [sys.executable, "-m", "hs_sync"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYPERSTUDY_", "HS_SYNC_"))}
    env["HS_SYNC_STATE_DIR"] = os.environ["HS_SYNC_STATE_DIR"]  # the test's, not the user's
    return subprocess.run(
        HS_SYNC + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_demo_in_a_fresh_directory_then_check_and_sql(tmp_path: Path):
    first = run(["demo"], tmp_path)
    assert first.returncode == 0, first.stderr
    wh = tmp_path / "warehouse"
    assert (wh / "hyperstudy.duckdb").is_file()
    assert oct(wh.stat().st_mode & 0o777) == "0o700"
    # the planted missing sessions are reported, and the example queries printed
    checks = next(line for line in first.stdout.splitlines() if "missing_sessions" in line)
    assert "failed" in checks.split()  # the word `hs-sync check` uses
    assert "deployment_summary" in first.stdout

    media = list((wh / "media").rglob("*.mp4")) + list((wh / "media").rglob("*.webm"))
    assert media, "the demo downloads recordings"

    sql = run(["sql", "SELECT count(*) AS n FROM events", "--json"], tmp_path)
    assert sql.returncode == 0, sql.stderr
    events_before = json.loads(sql.stdout)[0]["n"]
    assert events_before > 1000

    check = run(["check", "--json", "--no-api"], tmp_path)
    assert check.returncode == 1, check.stderr  # planted missing sessions are error-level
    found = {c["name"]: c for c in json.loads(check.stdout)["checks"]}
    assert not found["missing_sessions"]["passed"]
    assert found["duplicate_keys"]["passed"]

    # a re-run is incremental against a simulator whose clock moved on
    second = run(["demo", "--json"], tmp_path)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["run"] == 2
    events_after = json.loads(
        run(["sql", "SELECT count(*) AS n FROM events", "--json"], tmp_path).stdout
    )[0]["n"]
    assert events_after > events_before
    first_clock = first.stdout.split("simulator clock at ", 1)[1].split()[0]
    assert result["simulated_now"] > first_clock


def test_the_commands_the_demo_suggests_work_and_an_account_is_kept_apart(tmp_path: Path):
    shown = run(["demo"], tmp_path).stdout.split("\nnext:\n", 1)[1].split("\n\n", 1)[0]
    suggested = [shlex.split(line) for line in shown.splitlines()]
    assert [args[3] for args in suggested] == ["sql", "check", "report"]
    for args in suggested:
        assert args[1:3] == ["-m", "hs_sync"]  # how this test starts it (no PATH lookup)
        done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode in (0, 1), (args, done.stderr)  # check: the planted issues
        assert "Traceback" not in done.stderr
    # a real account's sync is not mixed into the demo's warehouse
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/api/v3"
    env = {**os.environ, "HYPERSTUDY_API_KEY": "hst_live_x", "HYPERSTUDY_BASE_URL": url}
    real = subprocess.run(
        HS_SYNC + ["sync"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert real.returncode == 2
    assert "holds data from the demo's embedded simulator" in real.stderr
