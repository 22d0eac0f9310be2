"""Where hs-sync's SQL files are: the only place that knows.

A checkout (editable install) reads the top-level `sql/` folder; a wheel or
`pip install .` carries a copy of it inside the package as `hs_sync/sql/`
(pyproject.toml maps the folder there).
"""

from __future__ import annotations

from pathlib import Path

from hs_sync.errors import HsSyncError

_PACKAGE = Path(__file__).resolve().parent.parent  # hs_sync/
_ROOTS = (_PACKAGE / "sql", _PACKAGE.parent / "sql")  # installed copy, then the checkout


def sql_dir(kind: str) -> Path:
    """The folder of the `sql/<kind>/*.sql` files ("views", "checks")."""
    for root in _ROOTS:
        folder = root / kind
        if any(folder.glob("*.sql")):
            return folder
    looked = " or ".join(str(root / kind) for root in _ROOTS)
    raise HsSyncError(
        f"hs-sync's SQL files are missing: no sql/{kind}/*.sql in {looked}; reinstall hs-sync"
    )
