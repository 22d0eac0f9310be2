"""Iceberg or hive Parquet for a local warehouse: the transform's time, both ways.

    .venv/bin/python benchmarks/bench_iceberg.py            # simulator scale 3
    .venv/bin/python benchmarks/bench_iceberg.py --scale 10

One sync lands the simulator's raw data (no transform). Two copies of that
folder are transformed, one with hive Parquet tables (the local default), one
with Iceberg tables (pyiceberg, SQLite catalog, files on the local disk):
first with every experiment but one (a full load), then with the last
experiment's raw files moved back in (an incremental load of new rows), then
once more with one experiment's events landed again under a new batch with
changed content (an update of stored keys). Prints the seconds of each step.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hs_simulator import Simulator  # noqa: E402
from hs_sync import objstore  # noqa: E402
from hs_sync.config import Config  # noqa: E402
from hs_sync.land import rawfile  # noqa: E402
from hs_sync.load.transform import transform  # noqa: E402
from hs_sync.registry import DATA_TYPES  # noqa: E402
from hs_sync.run import sync  # noqa: E402
from hs_sync.warehouse import Warehouse  # noqa: E402


def _experiment_dirs(root: Path, experiment: str) -> list[Path]:
    return sorted((root / "raw").glob(f"*/experiment_id={experiment}"))


def _changed_events(root: Path, experiment: str) -> None:
    """Land one experiment's events again in a new batch, every row's content changed."""
    import orjson

    source = root / "raw" / "events" / f"experiment_id={experiment}"
    target = source / "29991231T000000000000Z-w"
    target.mkdir()
    rows = []
    for batch in sorted(p for p in source.iterdir() if p != target):
        for file in sorted(batch.iterdir()):
            if rawfile.is_data_file(file.name):
                for line in b"".join(rawfile.blocks(file)).splitlines():
                    record = orjson.loads(line)
                    record["stateName"] = "changed"
                    rows.append(orjson.dumps(record))
    (target / "00000.ndjson").write_bytes(b"\n".join(rows) + b"\n")


def run(scale: float) -> dict[str, dict[str, float]]:
    sim = Simulator(seed=7, scale=scale)
    sim.start()
    work = Path(tempfile.mkdtemp(prefix="hs-bench-iceberg-"))
    try:
        landed = work / "landed"
        config = Config(
            api_key=sim.api_key,
            base_url=sim.base_url,
            warehouse=landed,
            media=False,
            budget_per_hour=10**7,
            budget_per_minute=10**7,
        )
        sync(config, transform=False)
        experiments = sim.dataset.experiment_ids
        out: dict[str, dict[str, float]] = {}
        for fmt in objstore.TABLE_FORMATS:
            root = work / fmt
            shutil.copytree(landed, root)
            wh = Warehouse(root)
            objstore.bind(wh.state_dir, objstore.Storage(table_format=fmt))
            aside = work / f"{fmt}-aside"
            for folder in _experiment_dirs(root, experiments[-1]):
                target = aside / folder.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                folder.rename(target)
            times: dict[str, float] = {}
            started = time.perf_counter()
            summary = transform(Warehouse(root), DATA_TYPES)
            times["full"] = time.perf_counter() - started
            times["rows"] = sum(summary["rows"].values())
            for folder in sorted(aside.glob("raw/*/*")):
                folder.rename(root / folder.relative_to(aside))
            started = time.perf_counter()
            transform(Warehouse(root), DATA_TYPES)
            times["new_experiment"] = time.perf_counter() - started
            _changed_events(root, experiments[0])
            started = time.perf_counter()
            summary = transform(Warehouse(root), DATA_TYPES)
            times["update_events"] = time.perf_counter() - started
            times["updated_rows"] = summary["rows"]["events"]
            out[fmt] = {k: round(v, 2) for k, v in times.items()}
        return out
    finally:
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=3.0)
    args = parser.parse_args()
    print(json.dumps(run(args.scale), indent=2))


if __name__ == "__main__":
    main()
