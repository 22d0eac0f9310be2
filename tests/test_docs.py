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
