"""Group commit: a sync killed between two commits re-fetches only the pages not committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from hs_sync.land import rawfile
from hs_sync.registry import BY_NAME
from tests.extract_helpers import expected, landed

RUNNER = (
    "import sys; from hs_sync.config import load_config; from hs_sync.run import sync; "
    "sys.exit(sync(load_config(sys.argv[1]), transform=False).exit_code)"
)


def _run(config_file: Path, sim) -> subprocess.Popen:
    env = {**os.environ, "HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}
    env.pop("HS_SYNC_WAREHOUSE", None)
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(config_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _config(tmp_path: Path, name: str, exp: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'warehouse = "{tmp_path / name}"\npage_size = 10\nlookback_seconds = 0\n'
        f'types = ["events"]\nexperiments = ["{exp}"]\n'
        # No re-reading of the rows before the watermark to verify them: the requests
        # counted are the pages read to land the data.
        "verify_budget = 0\n"
        "budget_per_hour = 1000000\nbudget_per_minute = 1000000\n"
    )
    return path


def _committed(root: Path) -> tuple[int, list[int]]:
    """(data files visible, pages their manifests list)."""
    metas = sorted((root / "raw" / "events").glob("experiment_id=*/*/[0-9]*.meta.json"))
    files = [p for p in (root / "raw" / "events").glob("experiment_id=*/*/*")]
    visible = sum(rawfile.is_data_file(p.name) for p in files)
    return visible, [len(orjson.loads(m.read_bytes())["pages"]) for m in metas]


def _waiting(root: Path) -> bool:
    """Whether a group is committed and a data file of the next one is written, waiting."""
    batches = list((root / "raw" / "events").glob("experiment_id=*/*"))
    hidden = [p for b in batches for p in b.glob(".*.ndjson.zst.*.tmp")]
    return bool(hidden) and _committed(root)[0] > 0


def _page_requests(sim) -> int:
    """Pages of events requested (probes for a count, `limit=1`, are not pages)."""
    return sum(
        "/data/events/" in r["path"] and r["params"].get("limit") == "10" for r in sim.requests
    )


def test_kill_between_group_commits_refetches_only_uncommitted_pages(sim_factory, tmp_path):
    sim = sim_factory(scale=1.0)
    exp = max(sim.dataset.experiment_ids, key=lambda e: len(sim.dataset.tables[("events", e)].ts))
    # A clean run counts the pages a whole sync of the experiment's events takes.
    clean = _run(_config(tmp_path, "clean", exp), sim)
    assert clean.wait(120) == 0, clean.stderr.read().decode()
    clean.stderr.close()
    whole = _page_requests(sim)
    sim.reset_requests()

    # Each page takes 30 ms: a group commits about every second, a few files at once.
    sim.faults.configure(slow=1.0, slow_seconds=0.03, only_paths="/events")
    root = tmp_path / "killed"
    proc = _run(_config(tmp_path, "killed", exp), sim)
    # Kill once a group is committed and a file of the next one waits, written under its
    # temporary name: the checkpoint must not cover that file's pages.
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if _waiting(root):
            # Not mid-commit: nothing became visible for a while (the checkpoint
            # follows a commit at once), and the file still waits.
            visible = _committed(root)[0]
            time.sleep(0.05)
            if _waiting(root) and _committed(root)[0] == visible:
                break
        time.sleep(0.002)
    assert proc.poll() is None, "the sync ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    time.sleep(0.3)  # the simulator logs a request as it answers: let the last one land
    fetched = _page_requests(sim)
    files, pages = _committed(root)
    committed = sum(pages)
    assert files >= 1 and fetched >= committed + 20  # a whole file's pages not committed
    assert committed < whole

    sim.faults.configure()
    sim.reset_requests()
    resume = _run(_config(tmp_path, "killed", exp), sim)
    assert resume.wait(120) == 0, resume.stderr.read().decode()
    resume.stderr.close()
    again = _page_requests(sim)
    # Every page not committed is fetched again, and of the committed ones no more than
    # two pages' worth: the first page of the whole range (read for its total), and
    # the rows from the start of the watermark's minute.
    assert whole - committed <= again <= whole - committed + 2
    events = BY_NAME["events"]
    assert landed(root, events)[exp] == expected(sim, events, exp)  # nothing lost
