"""Start-up cost of the `hs-sync` command: peak memory and wall time of `--help`.

    .venv/bin/python benchmarks/startup.py            # 5 runs of each command line
    .venv/bin/python benchmarks/startup.py --runs 10 --json

Each command line runs in a fresh interpreter (`python -m hs_sync ...`, as the
`hs-sync` script does) under GNU time, which reports its peak RSS (a figure
taken by this script's own `wait4` would include this interpreter's, which the
child inherits until it execs); wall time is the median over the runs. Lines: `import hs_sync`, `hs-sync --help`, and every
subcommand's `--help`. Also lists the heavy libraries (DuckDB, PyArrow, httpx)
each line loaded, which should be none.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("duckdb", "pyarrow", "httpx")
TARGET_RSS_MB = 40
TARGET_SECONDS = 0.15
GNU_TIME = "/usr/bin/time"

_PROBE = """\
import atexit, sys
atexit.register(lambda: sys.stderr.write("LOADED=" + ",".join(
    sorted(m for m in {heavy!r} if m in sys.modules)) + "\\n"))
{code}
"""


def _code(args: list[str] | None) -> str:
    if args is None:
        return "import hs_sync"
    return f"from hs_sync.cli import main\nmain({args!r}, prog_name='hs-sync')"


def run_once(args: list[str] | None, probe: bool = False) -> tuple[float, float, str]:
    """One fresh interpreter: (wall seconds, peak RSS in MB, heavy modules loaded if probed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if probe:
        cmd = [sys.executable, "-c", _PROBE.format(heavy=HEAVY, code=_code(args))]
    elif args is None:
        cmd = [sys.executable, "-c", "import hs_sync"]
    else:
        cmd = [sys.executable, "-m", "hs_sync", *args]
    started = time.perf_counter()
    out = subprocess.run(
        [GNU_TIME, "-f", "RSS_KB=%M", *cmd],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {out.stderr}")
    lines = out.stderr.splitlines()
    rss_kb = next(int(ln[7:]) for ln in lines if ln.startswith("RSS_KB="))
    loaded = next((ln[7:] for ln in lines if ln.startswith("LOADED=")), "")
    return wall, rss_kb / 1024, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from hs_sync.cli import SUBCOMMANDS

    lines: list[tuple[str, list[str] | None]] = [("import hs_sync", None)]
    lines.append(("hs-sync --help", ["--help"]))
    lines += [(f"hs-sync {name} --help", [name, "--help"]) for name in SUBCOMMANDS]
    rows = []
    for label, args in lines:
        runs = [run_once(args) for _ in range(opts.runs)]
        rows.append(
            {
                "command": label,
                "seconds": statistics.median(r[0] for r in runs),
                "peak_rss_mb": max(r[1] for r in runs),
                "heavy_loaded": run_once(args, probe=True)[2],
            }
        )
    if opts.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"| command | median s ({opts.runs} runs) | peak RSS MB | heavy libraries loaded |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['command']}` | {r['seconds']:.3f} | {r['peak_rss_mb']:.1f} | "
            f"{r['heavy_loaded'] or 'none'} |"
        )
    top = next(r for r in rows if r["command"] == "hs-sync --help")
    ok = top["peak_rss_mb"] < TARGET_RSS_MB and top["seconds"] < TARGET_SECONDS
    print(
        f"\n`hs-sync --help`: target < {TARGET_RSS_MB} MB and < {TARGET_SECONDS} s: "
        f"{'met' if ok else 'missed'}"
    )


if __name__ == "__main__":
    main()
