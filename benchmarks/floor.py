"""The floor under the wire-limit target: the least work a sync must do, by the fastest tools.

    .venv/bin/python benchmarks/floor.py                 # 1M events (scale 100)
    .venv/bin/python benchmarks/floor.py --scale 10 --no-write

The design asked a full sync to take at most 2.5x the time to merely download
its pages. A sync must also land the raw pages, type the records, and write
Parquet partitions and DuckDB tables. This measures, in one run against one
simulator (its own process, as in run.py), each step done the cheapest way
there is, every step doing strictly less than hs-sync does:

- wire: hs-sync's full-sync requests replayed with bare httpx, bodies dropped
  (run.py's wire limit);
- land: the same requests, each body compressed as hs-sync does (zstd level 1)
  and written to a file of its own: no records cut out, no fsync, no manifest,
  no checkpoint;
- load: DuckDB alone (both cores, no memory limit) reading hs-sync's landed raw
  files with the declared top-level columns into one DuckDB table per type and
  hive-partitioned Parquet: no strict typing, keys, de-duplication,
  quarantine, drift, lineage or flattened nested fields;
- hs-sync's full sync itself, which landed that raw data;
- memory before any data: a process that imports what a sync imports, makes
  its first Arrow array from a Python list (pyarrow then imports pandas, when
  installed) and opens a DuckDB database configured as the transform does;
  once as is and once with pandas made unimportable, as in an environment
  that has only hs-sync's own dependencies.

floor = land + load: a sync lands before it types (invariant 1), and while
it downloads the server holds one of the two cores. Each step runs in a fresh
subprocess; figures are `os.wait4`'s (run.py's `measure`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # noqa: E402
    CONCURRENCY,
    WORKERS,
    SimProcess,
    _worker,
    full_and_wire,
    machine,
    measure,
    write_results,
)

BEGIN, END = "<!-- floor:begin -->", "<!-- floor:end -->"
HERE = Path(__file__)


def work_land(spec: dict, key: str) -> dict:
    """The wire replay, each body zstd-compressed into a file of its own."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import pyarrow as pa

    todo = json.loads(Path(spec["requests"]).read_text())
    out = Path(spec["dir"])
    limits = httpx.Limits(max_connections=CONCURRENCY)
    with httpx.Client(base_url=spec["root"], headers={"X-API-Key": key}, limits=limits) as client:

        def land(numbered) -> int:
            number, (path, params) = numbered
            r = client.get(path, params=params)
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}")
            packed = pa.compress(r.content, "zstd", asbytes=True)
            (out / f"{number:06d}.json.zst").write_bytes(packed)
            return len(packed)

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            written = sum(pool.map(land, enumerate(todo)))
    return {"requests": len(todo), "bytes_written": written}


def work_load(spec: dict, key: str) -> dict:
    """DuckDB reads every type's raw files into a table and writes them as Parquet."""
    import duckdb

    from hs_sync.load.duck import duck_type
    from hs_sync.registry import DATA_TYPES

    raw, out = Path(spec["raw"]), Path(spec["dir"])
    (out / "parquet").mkdir(parents=True)
    os.chdir(out)  # COPY takes no parameter for its target: a relative path of registry names
    rows = 0
    with duckdb.connect("floor.duckdb") as con:
        con.execute("SET threads = 2")
        for dt in DATA_TYPES:
            files = sorted(str(p) for p in (raw / dt.name).rglob("*.ndjson*"))
            if not files:
                continue
            columns: dict[str, str] = {}
            for column in dt.columns:
                # nested paths are read whole: the floor flattens nothing
                nested = column.json or len(column.path) > 1
                columns.setdefault(column.path[0], duck_type(column.type, nested))
            spec_sql = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
            con.execute(
                f'CREATE TABLE "{dt.name}" AS SELECT * FROM read_json(?, '  # noqa: S608
                "format = 'newline_delimited', records = true, hive_partitioning = true, "
                f"columns = {{{spec_sql}}})",
                [files],
            )
            select, parts = "*", "experiment_id"
            if dt.date_partitioned:
                select, parts = f'*, CAST("{dt.cursor}" AS DATE) AS date', "experiment_id, date"
            con.execute(
                f"COPY (SELECT {select} FROM \"{dt.name}\") TO 'parquet/{dt.name}' "  # noqa: S608
                f"(FORMAT parquet, PARTITION_BY ({parts}))"
            )
            rows += con.execute(f'SELECT count(*) FROM "{dt.name}"').fetchone()[0]  # noqa: S608
    return {"rows": rows}


class _NoPandas:
    """An import hook under which `import pandas` fails, as where it is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def work_baseline(spec: dict, key: str) -> dict:
    """What a sync's process holds before it reads any data."""
    if spec["without_pandas"]:
        sys.meta_path.insert(0, _NoPandas())
    import duckdb
    import pyarrow as pa

    import hs_sync.run  # noqa: F401  (the modules a sync runs)
    from hs_sync.load import duck

    pa.array(["first conversion"])
    with duckdb.connect(str(Path(spec["dir"]) / "baseline.duckdb")) as con:
        duck.configure(con)
        duck.ensure_tables(con)
        con.execute("SELECT 1").fetchall()
    return {"pandas": "pandas" in sys.modules}


WORKERS.update(land=work_land, load=work_load, baseline=work_baseline)


def run_scale(scale: float, seed: int, log) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"hs-floor-{scale:g}-"))
    log(f"scale {scale:g}: starting the simulator")
    sim = SimProcess(seed, scale)
    res: dict = {"scale": scale, "events": sum(sim.rows.get("events", {}).values())}
    try:
        warehouse = work / "warehouse"
        res["full"], res["wire"], requests, root = full_and_wire(sim, work, warehouse, log)
        log("  land: the same requests, bodies compressed and written")
        (work / "land").mkdir()
        res["land"] = measure(
            "land",
            sim.api_key,
            script=HERE,
            requests=str(requests),
            root=root,
            dir=str(work / "land"),
        )
        log("  load: DuckDB reads the landed raw files into tables and Parquet")
        res["load"] = measure(
            "load", sim.api_key, script=HERE, raw=str(warehouse / "raw"), dir=str(work / "load")
        )
        for label, without in (("baseline", False), ("baseline_no_pandas", True)):
            res[label] = measure(
                "baseline", sim.api_key, script=HERE, dir=str(work), without_pandas=without
            )
    finally:
        sim.close()
        shutil.rmtree(work, ignore_errors=True)
    return res


def report(results: list[dict]) -> str:
    lines = [
        "| scale | step | wall s | CPU s | peak RSS MB | x wire |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for res in results:
        wire = res["wire"]["wall"]
        name = f"{res['scale']:g} ({res['events']:,} events)"
        floor = res["land"]["wall"] + res["load"]["wall"]
        steps = [
            ("wire: bare httpx, bodies dropped", res["wire"]),
            ("land: bodies zstd-compressed, a file each", res["land"]),
            ("load: DuckDB reads the raw into tables and Parquet", res["load"]),
            ("hs-sync full sync", res["full"]),
        ]
        for label, m in steps:
            cells = [name, label, f"{m['wall']:.2f}", f"{m['cpu']:.1f}", f"{m['rss_mb']:.0f}"]
            lines.append("| " + " | ".join(cells + [f"{m['wall'] / wire:.2f}x"]) + " |")
        lines.append(f"| {name} | floor = land + load | {floor:.2f} |  |  | {floor / wire:.2f}x |")
        for key, label in (
            ("baseline", "memory before any data"),
            ("baseline_no_pandas", "memory before any data, pandas not installed"),
        ):
            lines.append(f"| {name} | {label} |  |  | {res[key]['rss_mb']:.0f} |  |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, action="append", help="repeatable; default: 100")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(json.loads(args.worker))
    command = "python benchmarks/floor.py " + " ".join(sys.argv[1:])

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = [run_scale(s, args.seed, log) for s in args.scale or [100.0]]
    text = f"Command: `{command.strip()}`\n\n{machine()}\n\n{report(results)}\n"
    print(text)
    if not args.no_write:
        write_results(text, BEGIN, END)
        log("written to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
