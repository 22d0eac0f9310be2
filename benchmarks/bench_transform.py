"""The transform alone: a rebuild of a landed warehouse, its wall time and memory over time.

    .venv/bin/python benchmarks/bench_transform.py prepare /tmp/wh20 --scale 20
    .venv/bin/python benchmarks/bench_transform.py rebuild /tmp/wh20 [--memory-limit 256MB]

`prepare` starts the simulator (its own process) and lands a full sync into
`<dir>` without transforming it. `rebuild` runs `hs_sync.load.transform.rebuild`
over every type in a fresh subprocess and reports its wall and CPU time, peak
RSS (wait4) and, per data type, the seconds and CPU seconds (all threads) it took
and the highest RSS seen while it ran (a thread samples /proc/self/status). CPU
time is the figure to compare on a busy machine. To see where a type's time goes:

    py-spy record -o profile.txt -f raw -- .venv/bin/python benchmarks/bench_transform.py \
        rebuild /tmp/wh20
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import WORKERS, SimProcess, _worker, measure, sync_config  # noqa: E402

HERE = Path(__file__)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def work_rebuild(spec: dict, key: str) -> dict:
    from hs_sync.load import transform as tr
    from hs_sync.registry import DATA_TYPES
    from hs_sync.warehouse import Warehouse

    peaks: dict[str, float] = {}
    current = ["(start)"]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            name = current[0]
            peaks[name] = max(peaks.get(name, 0.0), _rss_mb())

    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    load_type = tr._load_type

    def timed(build, warehouse, dt, *args):
        current[0] = dt.name
        started, used = time.perf_counter(), time.process_time()
        try:
            return load_type(build, warehouse, dt, *args)
        finally:
            seconds[dt.name] = round(time.perf_counter() - started, 2)
            cpu[dt.name] = round(time.process_time() - used, 2)
            current[0] = "(between types)"

    tr._load_type = timed
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        summary = tr.rebuild(Warehouse(Path(spec["warehouse"])), DATA_TYPES, spec["memory_limit"])
    finally:
        done.set()
        sampler.join()
    return {
        "rows": sum(summary["rows"].values()),
        "types": {
            n: {"s": seconds[n], "cpu": cpu[n], "rss_mb": round(peaks.get(n, 0))} for n in seconds
        },
        "rss_other_mb": {n: round(v) for n, v in peaks.items() if n not in seconds},
    }


def work_land(spec: dict, key: str) -> dict:
    from hs_sync.run import sync

    summary = sync(sync_config(spec["base_url"], key, spec["warehouse"]), transform=False)
    if summary.errors:
        raise RuntimeError(f"sync reported errors: {summary.errors}")
    return {"requests": summary.requests}


WORKERS.update(rebuild=work_rebuild, land_only=work_land)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=["prepare", "rebuild"])
    parser.add_argument("dir", nargs="?")
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory-limit", default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(json.loads(args.worker))
    warehouse = Path(args.dir)
    if args.action == "prepare":
        sim = SimProcess(args.seed, args.scale)
        try:
            m = measure("land_only", sim.api_key, script=HERE, base_url=sim.base_url,
                        warehouse=str(warehouse))  # fmt: skip
        finally:
            sim.close()
        print(f"landed in {m['wall']:.1f} s: {m['requests']} requests")
        return
    m = measure("rebuild", "-", script=HERE, warehouse=str(warehouse),
                memory_limit=args.memory_limit)  # fmt: skip
    print(
        f"rebuild: {m['wall']:.2f} s wall, {m['cpu']:.1f} s CPU, peak RSS {m['rss_mb']:.0f} MB, "
        f"{m['rows']:,} rows"
    )
    for name, t in sorted(m["types"].items(), key=lambda kv: -(kv[1]["s"] or 0)):
        print(f"  {name:22s} {t['s']:7.2f} s  {t['cpu']:6.2f} s CPU  {t['rss_mb']:5d} MB")
    for name, mb in m["rss_other_mb"].items():
        print(f"  {name:22s}                         {mb:5d} MB")


if __name__ == "__main__":
    main()
