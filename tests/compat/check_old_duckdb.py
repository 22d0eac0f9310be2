"""Open a synced warehouse and its snapshots with older DuckDB releases and query every
table and view.

Each release is installed into a throwaway virtual environment (pip, from the
package index) and runs a small script against `hyperstudy.duckdb` read-only:
every table and view is read whole, and every column's description (comment)
must come back.
Every snapshot's database (`snapshots/<name>/hyperstudy.duckdb`) is probed as the
live one is. Without a warehouse argument, the demo is synced into a temporary
folder first and a snapshot of it taken.

    python tests/compat/check_old_duckdb.py [WAREHOUSE] [--versions 1.4.* 1.1.*]

Exit code 0 when every release read everything, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

DEFAULT_VERSIONS = ("1.4.*", "1.1.*")

# Run by the old DuckDB: read every relation, print one summary line.
PROBE = r"""
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
rels = con.execute(
    "SELECT table_name, table_type FROM information_schema.tables "
    "WHERE table_schema = 'main' ORDER BY table_name").fetchall()
for name, kind in rels:
    con.execute('SELECT * FROM "' + name.replace('"', '""') + '"').fetchall()
bare = con.execute(
    "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'main' AND NOT internal "
    "AND comment IS NULL").fetchone()[0]
print(f"duckdb {duckdb.__version__}: read all {len(rels)} tables and views; "
      f"{bare} columns without a description")
sys.exit(0 if rels and not bare else 1)
"""


def probe(db: Path, version: str, cache: Path) -> bool:
    env_dir = cache / ("duckdb-" + version.replace("*", "x"))
    python = env_dir / "bin" / "python"
    if not python.exists():
        venv.create(env_dir, with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"duckdb=={version}", "pytz"], check=True
        )
    done = subprocess.run([str(python), "-c", PROBE, str(db)], text=True, capture_output=True)
    print(done.stdout.strip() or f"duckdb=={version}: " + done.stderr.strip().splitlines()[-1])
    return done.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", nargs="?", type=Path)
    parser.add_argument("--versions", nargs="+", default=list(DEFAULT_VERSIONS))
    parser.add_argument(
        "--cache", type=Path, help="keep the virtual environments here (default: temporary)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hs-compat-") as tmp:
        warehouse = args.warehouse
        if warehouse is None:
            from hs_sync import snapshot
            from hs_sync.demo import run_demo
            from hs_sync.warehouse import Warehouse

            warehouse = Path(tmp) / "warehouse"
            run_demo(warehouse)
            snapshot.create(Warehouse(warehouse), "compat")
        cache = args.cache or Path(tmp) / "envs"
        cache.mkdir(parents=True, exist_ok=True)
        databases = [warehouse / "hyperstudy.duckdb"]
        databases += sorted((warehouse / "snapshots").glob("*/hyperstudy.duckdb"))
        ok = []
        for db in databases:
            print(db.relative_to(warehouse))
            ok += [probe(db, v, cache) for v in args.versions]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    sys.exit(main())
