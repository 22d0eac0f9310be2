"""A transform far larger than memory: millions of events, 30% of rows repeated across raw files.

    .venv/bin/python benchmarks/big_load.py                       # 5M events
    .venv/bin/python benchmarks/big_load.py --events 500000 --no-write

The simulator serves a small study once (a real sync lands its raw events);
the landed events are then copied into further raw files, as later syncs would
land them: each copy gives most rows new ids (new events) and keeps the ids of
`--repeat` of them (the same events landed again, as re-reads and late rows
do). `hs-sync rebuild` then types everything in a fresh process with the
default settings; its peak RSS and CPU come from `os.wait4`. The run passes
when the rebuild exits 0 and the events table holds exactly the distinct keys.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import machine, write_results  # noqa: E402

from hs_simulator import Simulator  # noqa: E402
from hs_sync.config import Config  # noqa: E402
from hs_sync.land import rawfile  # noqa: E402
from hs_sync.registry import BY_NAME  # noqa: E402
from hs_sync.run import sync  # noqa: E402

BEGIN, END = "<!-- big-load:begin -->", "<!-- big-load:end -->"
EVENTS = BY_NAME["events"]
FIRST_BATCH = datetime(2026, 12, 1)  # the copies' batch stamps, one second apart


def land_seed(root: Path, scale: float, types: tuple[str, ...] = (EVENTS.name,)) -> None:
    """One real sync into raw/ (no transform) of `types` (empty: every default type)."""
    sim = Simulator(seed=3, scale=scale)
    sim.start()
    try:
        config = Config(
            api_key=sim.api_key,
            base_url=sim.base_url,
            warehouse=root,
            media=False,
            types=types,
            budget_per_hour=1_000_000,
            budget_per_minute=1_000_000,
        )
        summary = sync(config, transform=False)
        assert summary.exit_code == 0, summary.errors
    finally:
        sim.stop()


def multiply(root: Path, target: int, repeat: float, seed: int) -> tuple[int, int]:
    """Copy the landed events into new raw files until `target` rows are landed.
    Returns (rows landed, distinct keys)."""
    rng = random.Random(seed)
    base = root / "raw" / EVENTS.name
    seeds = []  # (experiment folder, records)
    for folder in sorted(base.glob("experiment_id=*")):
        records = [
            orjson.loads(line)
            for path in sorted(folder.glob("*/*"))
            if rawfile.is_data_file(path.name)
            for line in rawfile.lines(path)
        ]
        if records:
            seeds.append((folder, records))
    landed = sum(len(r) for _, r in seeds)
    distinct = landed
    copy = 0
    while landed < target:
        copy += 1
        for folder, records in seeds:
            stamp = (FIRST_BATCH + timedelta(seconds=copy)).strftime("%Y%m%dT%H%M%S%f")
            batch = folder / f"{stamp}Z-copy"
            batch.mkdir()
            out = []
            for record in records:
                again = rng.random() < repeat  # the same event landed again
                row = dict(record)
                if not again:
                    row["id"] = f"{record['id']}-c{copy}"
                    distinct += 1
                out.append(orjson.dumps(row))
            data = rawfile.encode(b"\n".join(out) + b"\n", "zstd")
            (batch / "00000.ndjson.zst").write_bytes(data)
            landed += len(out)
            if landed >= target:
                break
    return landed, distinct


def rebuild(root: Path) -> dict:
    """`hs-sync rebuild --type events` in a fresh process (the only child this script
    starts, so the children's peak RSS is its own)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "hs-sync"), "rebuild", "--warehouse", str(root),
         "--type", EVENTS.name, "--json"],
        capture_output=True,
    )  # fmt: skip
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "exit_code": proc.returncode,
        "wall": wall,
        "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "rss_mb": after.ru_maxrss / 1024,
        "stderr": proc.stderr.decode(errors="replace")[-2000:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=float, default=0.3)
    parser.add_argument("--seed-scale", type=float, default=5.0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hs-bigload-"))
    try:
        root = work / "warehouse"
        land_seed(root, args.seed_scale)
        landed, distinct = multiply(root, args.events, args.repeat, seed=5)
        raw_mb = sum(p.stat().st_size for p in (root / "raw").rglob("*.zst")) / 2**20
        result = rebuild(root)
        rows = None
        if result["exit_code"] == 0:
            con = duckdb.connect(str(root / "hyperstudy.duckdb"), read_only=True)
            rows = con.table(EVENTS.name).aggregate("count(*)").fetchall()[0][0]
            con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = result["exit_code"] == 0 and rows == distinct
    text = "\n".join(
        [
            "Command: `" + " ".join(["python benchmarks/big_load.py", *sys.argv[1:]]) + "`",
            "",
            machine(),
            "",
            "| rows landed | distinct events | raw (zstd) MB | rebuild exit | wall s | CPU s "
            "| peak RSS MB | events table rows |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            f"| {landed:,} | {distinct:,} | {raw_mb:.0f} | {result['exit_code']} | "
            f"{result['wall']:.1f} | {result['cpu']:.1f} | {result['rss_mb']:.0f} | "
            f"{rows if rows is None else f'{rows:,}'} |",
            "",
            f"- [{'x' if ok else ' '}] no out-of-memory, and the table holds exactly the "
            f"distinct events ({args.repeat:.0%} of the copied rows repeated)",
        ]
    )
    print(text)
    if result["exit_code"] != 0:
        print(result["stderr"], file=sys.stderr)
    if not args.no_write:
        write_results(text + "\n", BEGIN, END)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
