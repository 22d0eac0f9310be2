"""Raw data files zstd-compressed vs plain: the download phase and the transform, back to back.

Run: .venv/bin/python benchmarks/bench_raw_compression.py [scale] [pairs]
(scale 100 = 1M events; default 10). Starts the simulator in its own process,
then, for each pair, syncs without the transform (download and landing only)
once with `raw_compression = "zstd"` and once with "none", each in the same
process one after the other, and transforms each landed warehouse. Reports wall
time, CPU and system time of each phase, and the raw folder's size.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import SimProcess, sync_config  # noqa: E402


def _usage() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_stime


def _timed(fn) -> tuple[float, float, float]:
    cpu0, sys0 = _usage()
    started = time.perf_counter()
    fn()
    wall = time.perf_counter() - started
    cpu1, sys1 = _usage()
    return wall, cpu1 - cpu0, sys1 - sys0


def _landed(summary) -> None:
    if summary.errors:
        raise RuntimeError(f"sync reported errors: {summary.errors}")


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    from hs_sync.load.transform import transform
    from hs_sync.registry import DATA_TYPES
    from hs_sync.run import sync
    from hs_sync.warehouse import Warehouse

    sim = SimProcess(1, scale)
    print(f"scale {scale}: {sum(sim.rows['events'].values()):,} events")
    print("| raw files | phase | wall s | CPU s | system s | raw MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    try:
        for _ in range(pairs):
            for compression in ("zstd", "none"):
                root = Path(tempfile.mkdtemp(prefix="hs-rawc-"))
                config = sync_config(sim.base_url, sim.api_key, root, raw_compression=compression)
                wall, cpu, system = _timed(lambda c=config: _landed(sync(c, transform=False)))
                mb = _size(root / "raw") / 1e6
                print(
                    f"| {compression} | download | {wall:.2f} | {cpu:.2f} | {system:.2f} | {mb:.0f} |"
                )
                wall, cpu, system = _timed(lambda r=root: transform(Warehouse(r), DATA_TYPES))
                print(f"| {compression} | transform | {wall:.2f} | {cpu:.2f} | {system:.2f} | |")
                shutil.rmtree(root)
    finally:
        sim.close()


if __name__ == "__main__":
    main()
