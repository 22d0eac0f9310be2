"""A wheel of hs-sync carries the SQL files, and an installed copy finds them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hs_sync.load import duck

ROOT = Path(__file__).resolve().parent.parent
# What the build reads; a copy keeps build/ and the egg-info out of the working tree.
SOURCES = ("pyproject.toml", "README.md", "hs_sync", "hs_simulator", "dagster_project", "sql")
PIP_ENV = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}

PROBE = """
import json, sys
import hs_sync
from hs_sync.load import duck
from hs_sync.checks.context import check_sql
print(json.dumps({
    "package": hs_sync.__file__,
    "views": [p.name for p in duck.view_files()],
    "views_digest": duck.views_digest(),
    "checks": {name: check_sql(name) for name in sys.argv[1:]},
}))
"""


def _sql_files(kind: str) -> list[Path]:
    return sorted((ROOT / "sql" / kind).glob("*.sql"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(dist), str(src)],
        check=True, env=PIP_ENV,
    )  # fmt: skip
    (built,) = dist.glob("hs_sync-*.whl")
    return built


def test_wheel_carries_sql_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("views", "checks"):
        files = _sql_files(kind)
        assert files
        missing = [p.name for p in files if f"hs_sync/sql/{kind}/{p.name}" not in names]
        assert not missing, f"sql/{kind} files not in the wheel: {missing}"
    # pyproject.toml lists the packages by name: a new one must be added there.
    modules = {
        p.relative_to(ROOT).as_posix()
        for package in ("hs_sync", "hs_simulator", "dagster_project")
        for p in (ROOT / package).rglob("*.py")
    }
    assert not modules - names, f"modules not in the wheel: {sorted(modules - names)}"


def test_installed_copy_reads_its_own_sql(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(wheel)],
        check=True, env=PIP_ENV,
    )  # fmt: skip
    checks = _sql_files("checks")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *(p.stem for p in checks)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert Path(got["package"]).resolve().is_relative_to(site.resolve())
    assert got["views"] == [p.name for p in _sql_files("views")]
    assert got["views_digest"] == duck.views_digest()
    assert got["checks"] == {p.stem: p.read_text(encoding="utf-8") for p in checks}


def test_missing_sql_fails_loudly():
    from hs_sync.errors import HsSyncError
    from hs_sync.load.sqlfiles import sql_dir

    with pytest.raises(HsSyncError, match="sql/nowhere"):
        sql_dir("nowhere")
