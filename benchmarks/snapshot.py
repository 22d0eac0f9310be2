"""Snapshot cost on a large warehouse: time to create and verify, and disk used.

    .venv/bin/python benchmarks/snapshot.py                  # 1M events
    .venv/bin/python benchmarks/snapshot.py --events 200000 --no-write

The simulator serves a small study once (a real sync lands every type's raw
pages); the landed events are copied into further raw files until `--events`
rows are landed (benchmarks/big_load.py), and `hs-sync rebuild` builds the
database and Parquet from them. Then `hs-sync snapshot create`, `verify` and
`export` run as a user would run them, each in a fresh process, and the
warehouse's disk use is read with `du` (which counts a hard-linked file once)
before and after the snapshot. Targets: create <= 5 s, <= 10% of the
warehouse's disk; verify <= 10 s.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from big_load import land_seed, multiply  # noqa: E402
from run import RESULTS, machine  # noqa: E402

BEGIN, END = "<!-- snapshot:begin -->", "<!-- snapshot:end -->"
HS_SYNC = str(Path(sys.executable).parent / "hs-sync")


def hs_sync(*args: str) -> float:
    """Run `hs-sync ARGS` in a fresh process; its wall time (exits on failure)."""
    start = time.monotonic()
    proc = subprocess.run([HS_SYNC, *args], capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"hs-sync {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall


def disk_kib(path: Path) -> int:
    """Disk used under `path` (du: blocks, each hard-linked file counted once)."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed-scale", type=float, default=2.0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hs-snapshot-"))
    try:
        root = work / "warehouse"
        where = ["--warehouse", str(root)]
        land_seed(root, args.seed_scale, types=())  # every type
        multiply(root, args.events, 0.0, seed=5)
        build = hs_sync("rebuild", *where)
        con = duckdb.connect(str(root / "hyperstudy.duckdb"), read_only=True)
        events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        con.close()
        before = disk_kib(root)
        db_kib = disk_kib(root / "hyperstudy.duckdb")
        parquet_kib = disk_kib(root / "parquet")
        create = hs_sync("snapshot", "create", "bench", *where)
        used = disk_kib(root) - before
        files = sum(1 for p in (root / "snapshots" / "bench").rglob("*") if p.is_file())
        verify = hs_sync("snapshot", "verify", "bench", *where)
        export = hs_sync("snapshot", "export", "bench", "--out", str(work / "bench.zip"), *where)
        zip_mb = (work / "bench.zip").stat().st_size / 2**20
    finally:
        shutil.rmtree(work, ignore_errors=True)
    share = used / before
    text = "\n".join(
        [
            "## Snapshots",
            "",
            "Command: `" + " ".join(["python benchmarks/snapshot.py", *sys.argv[1:]]) + "`",
            "",
            machine(),
            "",
            f"A warehouse of {events:,} events (every other type from one simulated study at "
            f"scale {args.seed_scale:g}), built by `hs-sync rebuild` in {build:.0f} s: "
            f"{before / 1024:.0f} MB on disk (database {db_kib / 1024:.0f} MB, Parquet "
            f"{parquet_kib / 1024:.0f} MB, the rest raw NDJSON). Each command in a fresh "
            "process (imports included):",
            "",
            "| step | wall s | target |",
            "| --- | --- | --- |",
            f"| `hs-sync snapshot create` ({files} files, hard links + SHA-256 of each) "
            f"| {create:.2f} | 5 |",
            f"| `hs-sync snapshot verify` | {verify:.2f} | 10 |",
            f"| `hs-sync snapshot export` ({zip_mb:.0f} MB zip) | {export:.2f} | |",
            "",
            f"Disk the snapshot adds: {used:,} KiB, {share:.2%} of the warehouse "
            "(target 10%): its manifest, data dictionary and media manifest; the database "
            "and Parquet are hard links.",
            "",
            f"- [{'x' if create <= 5 else ' '}] create <= 5 s",
            f"- [{'x' if share <= 0.10 else ' '}] <= 10% of the warehouse's disk",
            f"- [{'x' if verify <= 10 else ' '}] verify <= 10 s",
        ]
    )
    print(text)
    if not args.no_write:
        old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            old = head.rstrip("\n") + "\n" + rest.split(END, 1)[1].lstrip("\n")
        RESULTS.write_text(old.rstrip("\n") + f"\n\n{BEGIN}\n{text}\n{END}\n")


if __name__ == "__main__":
    main()
