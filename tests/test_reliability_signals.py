"""SIGTERM and SIGINT stop a sync within 5 s, recorded as interrupted, nothing half-done
left; a disk that fills while landing is one line and exit 1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hs_sync.statestore import StateReader
from hs_sync.warehouse import Warehouse
from tests.hostile_server import HostileServer, Reply

STOP_WITHIN = 5.0


def _start_sync(env: dict, root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hs_sync", "sync", "--no-media", "--warehouse", str(root), *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _runs(root: Path) -> list[tuple[str, str | None]]:
    with StateReader(Warehouse(root)) as state:
        return [(r["status"], r["finished_at"]) for r in state.runs()]


def _leftovers(root: Path) -> list[Path]:
    hidden = [p for p in (root / "raw").rglob(".*")] if (root / "raw").exists() else []
    return hidden + list((root / "state").glob(".*building*")) + list(root.rglob("*.tmp"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_sync_within_5_s_and_marks_it_interrupted(sim, tmp_path, signum):
    """Events pages trickle (one byte every 10 ms): the run is mid-request when stopped."""

    def rewrite(reply: Reply) -> Reply:
        if reply.path.startswith("data/events") and reply.status == 200:
            reply.trickle_seconds = 0.01
        return reply

    root = tmp_path / "wh"
    with HostileServer(sim.base_url, rewrite) as proxy:
        env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": proxy.base_url}
        proc = _start_sync(env, root)
        deadline = time.monotonic() + 60
        while not any(r.path.startswith("data/events") for r in proxy.requests):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    assert took < STOP_WITHIN, (took, err)
    print(f"\n{signal.Signals(signum).name}: the sync stopped in {took:.2f} s")
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    lines = [line for line in err.splitlines() if line.strip() and "done " not in line]
    assert lines[-1].startswith(f"hs-sync sync: interrupted by {signal.Signals(signum).name}")
    assert "Traceback" not in err
    status, finished = _runs(root)[-1]
    assert status == "interrupted" and finished is not None
    assert _leftovers(root) == []


@pytest.mark.slow
def test_sigterm_during_the_transform_discards_the_building_copy(sim_factory, tmp_path):
    """A signal while the transform writes its private copy of the database."""
    sim = sim_factory(seed=2, scale=1.0)
    root = tmp_path / "wh"
    env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}
    proc = _start_sync(env, root)
    for line in proc.stderr:
        if "normalizing" in line:
            break
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    print(f"\nSIGTERM in the transform: the sync stopped in {took:.2f} s")
    assert took < STOP_WITHIN and proc.returncode == 143, (took, proc.returncode, out, err)
    assert _runs(root)[-1][0] == "interrupted"
    assert _leftovers(root) == [] and not (root / "state" / "parquet-staging").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (needs root and mount), else a 256 KB file-size limit on the process."""
    mount = tmp_path / "disk"
    mount.mkdir()
    ok = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1024k", "tmpfs", str(mount)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mount, None if ok else 256 * 1024
    finally:
        if ok:
            subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_while_landing_is_one_line_and_exit_1(sim, tmp_path, small_disk):
    mount, file_limit = small_disk
    root = mount / "wh"
    config = tmp_path / "hs_sync.toml"
    config.write_text('raw_compression = "none"\n')  # plain NDJSON: the disk fills sooner
    env = {"HYPERSTUDY_API_KEY": sim.api_key, "HYPERSTUDY_BASE_URL": sim.base_url}
    cmd = [sys.executable, "-m", "hs_sync", "sync", "--no-media", "--warehouse", str(root)]
    cmd += ["--config", str(config), "--type", "events"]

    def limit() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    proc = subprocess.run(
        cmd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit if file_limit else None,
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "disk is full" in proc.stdout + proc.stderr
    assert _leftovers(root) == []
