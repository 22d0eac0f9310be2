"""`hs-sync demo` works from nothing, and what it leaves is what `check` and `sql` read."""

from __future__ import annotations

import json
import os
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
    assert "missing_sessions" in first.stdout and "FOUND" in first.stdout
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
