"""Start-up stays light: `import hs_sync`, `hs-sync --help` and every subcommand's `--help`
load none of the heavy libraries (DuckDB, PyArrow, httpx); a command imports them when it runs.

Each check runs in a fresh interpreter and reads `sys.modules` as it exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hs_sync.cli import SUBCOMMANDS

HEAVY = ("duckdb", "pyarrow", "httpx")
ROOT = Path(__file__).resolve().parent.parent

# Runs `code`, then prints the heavy top-level modules loaded, whatever `code` exits with.
_PROBE = """\
import atexit, sys
heavy = {heavy!r}
atexit.register(lambda: print("LOADED=" + ",".join(
    sorted(m for m in heavy if m in sys.modules))))
{code}
"""


def _loaded(code: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY, code=code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    marker = [line for line in out.stdout.splitlines() if line.startswith("LOADED=")]
    assert marker, out.stdout + out.stderr
    return [m for m in marker[-1].removeprefix("LOADED=").split(",") if m]


def _help(*args: str) -> str:
    return f"from hs_sync.cli import main\nmain({[*args, '--help']!r}, prog_name='hs-sync')"


def test_import_hs_sync_loads_no_heavy_library():
    assert _loaded("import hs_sync") == []


def test_the_probe_sees_a_heavy_library_when_one_loads():
    assert _loaded("import hs_sync\nhs_sync.sync") == sorted(HEAVY)


def test_help_loads_no_heavy_library():
    assert _loaded(_help()) == []


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_help_loads_no_heavy_library(name):
    assert _loaded(_help(name)) == [], name
