"""The documentation names what exists: the module map in docs/developing.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
MAP = ROOT / "docs" / "developing.md"


def _listed() -> set[str]:
    """The `hs_sync/...` paths the module map's lines start with."""
    return {m.group(1) for m in re.finditer(r"^(hs_sync/\S*)\s", MAP.read_text(), re.MULTILINE)}


def _modules() -> set[str]:
    """Every module under hs_sync/ (a package's `__init__`, `__main__` excepted), and each
    package folder."""
    found = set()
    for path in (ROOT / "hs_sync").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if path.name in ("__init__.py", "__main__.py"):
            if path.parent != ROOT / "hs_sync":
                found.add(rel.rsplit("/", 1)[0] + "/")
            continue
        found.add(rel)
    return found


def test_the_module_map_lists_every_module_and_only_those():
    listed, modules = _listed(), _modules()
    missing = sorted(modules - listed)
    assert not missing, f"add a line to the module map in docs/developing.md for: {missing}"
    gone = sorted(listed - modules)
    assert not gone, f"the module map in docs/developing.md names what does not exist: {gone}"


README = ROOT / "README.md"


def test_the_readme_lists_every_command_and_every_sync_flag():
    from hs_sync.cli import SUBCOMMANDS, main

    text = README.read_text()
    rows = re.findall(r"^\| `hs-sync (\w+)", text, re.MULTILINE)
    missing = set(SUBCOMMANDS) - {"maintain"} - set(rows)  # maintain: in the bucket row
    assert not missing, f"add a row to README.md's command table for: {sorted(missing)}"
    sync = main.get_command(None, "sync")
    flags = {opt for param in sync.params for opt in param.opts if opt.startswith("--")}
    listed = set(re.findall(r"^\| `(--[\w-]+)", text, re.MULTILINE))
    missing = flags - {"--help"} - listed
    assert not missing, f"add a row to README.md's sync flags table for: {sorted(missing)}"


def test_help_names_every_exit_code():
    from click.testing import CliRunner

    from hs_sync.cli import main

    shown = CliRunner().invoke(main, ["--help"]).output
    assert all(code in shown for code in ("0 success", "1 partial", "2 configuration", "130/143"))


def test_files_the_docs_and_settings_point_to_exist():
    import subprocess

    pointed = re.findall(r"See (docs/[\w.-]+\.md)", (ROOT / "dagster.yaml").read_text())
    assert pointed and all((ROOT / p).is_file() for p in pointed)
    # the folders the docs suggest for warehouses are kept out of git
    for folder in re.findall(r"\$PWD/(warehouse-\w+)", (ROOT / "docs" / "dagster.md").read_text()):
        ignored = subprocess.run(["git", "check-ignore", "-q", f"{folder}/x"], cwd=ROOT)
        assert ignored.returncode == 0, folder


def test_readme_examples_need_nothing_the_install_lacks():
    text = README.read_text()
    assert not re.search(r"^python ", text, re.MULTILINE)  # .venv/bin/python has pyarrow
    assert "duckdb warehouse/" not in text  # no DuckDB CLI is installed
    assert "CSV / NDJSON / Parquet" not in text  # export writes csv, json and zip
