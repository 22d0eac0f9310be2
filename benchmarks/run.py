"""hs-sync against the wire limit and its peers, side by side, on the simulator.

    .venv/bin/python benchmarks/run.py                          # every target (below)
    .venv/bin/python benchmarks/run.py --scale 10 --scale 100   # 100k and 1M events
    .venv/bin/python benchmarks/run.py --scale 20 --type events # one data type only
    .venv/bin/python benchmarks/run.py --quick                  # scale 1, about a minute

Per pass (a scale, the data types synced, a dataset), in one run, against one
simulator:
- hs-sync full sync (raw + Parquet + DuckDB) into an empty warehouse;
- the wire limit: the very requests that sync sent, replayed with a bare httpx
  loop at the same concurrency, bodies read and dropped (no parsing);
- the floor (floor.py): the same requests landed, then DuckDB alone loading them;
- hs-sync again with no new data, then with 1% new rows (late rows inside the
  lookback, spread over every time-mode type and experiment);
- the official `hyperstudy` SDK fetching every data type of every experiment
  (`output="dict"`) and writing one Parquet file per (type, experiment);
- dlt's `rest_api` source (offset paginator, parquet loader) into DuckDB.

`--type NAME` (repeatable) limits hs-sync and the peers to those data types.
Where dlt fails on the integers beyond 64 bits the API sends, the full sync,
its wire limit, its floor and dlt run again on the simulator's dataset without
them (`wide_ints=False`); `--int64-only` measures only that dataset. With no
--scale, --type or --quick, the passes are 200k and 1M events of every type and
200k events of `events` alone.

The simulator runs in its own process (a remote server does not share the
client's interpreter or GIL); each measured client runs in a fresh
subprocess, whose peak RSS and CPU time come from `os.wait4`. Wall times are
taken inside the client around the work itself (interpreter start and imports
excluded; the process total is reported beside it). The request budget is
lifted for the benchmark: at the published 1000 requests/hour a first 1M-event
sync is paced over hours by design, which measures the API's limit, not ours.

Results print as a table and (except --quick) replace the generated section
of benchmarks/RESULTS.md; the rest of that file (notes, before/after figures)
is kept.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
KEY_ENV = "HYPERSTUDY_API_KEY"  # the key reaches workers only through their environment
CONCURRENCY = 4  # hs-sync's default unit concurrency; the wire replay uses the same

# The SDK call and the API path for every data endpoint, as a user of the SDK fetches them.
SDK_CALLS = {
    "events": ("get_events", {}),
    "ratings_continuous": ("get_ratings", {"kind": "continuous"}),
    "ratings_sparse": ("get_ratings", {"kind": "sparse"}),
    "chat": ("get_chat", {}),
    "videochat": ("get_videochat", {}),
    "sync": ("get_sync", {}),
    "components": ("get_components", {}),
    "eyetracking": ("get_eyetracking", {}),
    "recordings": ("get_recordings", {}),
    "participants": ("get_participants", {}),
    "rooms": ("get_rooms", {}),
}
API_PATHS = {
    "events": "events",
    "ratings_continuous": "ratings/continuous",
    "ratings_sparse": "ratings/sparse",
    "chat": "chat",
    "videochat": "videochat",
    "sync": "sync",
    "components": "components",
    "eyetracking": "eyetracking",
    "recordings": "recordings",
    "participants": "participants",
    "rooms": "rooms",
}


# -- the simulator, in its own process ---------------------------------------


def _serve(conn, seed: int, scale: float, wide_ints: bool) -> None:
    from hs_simulator import Simulator

    sim = Simulator(seed=seed, scale=scale, wide_ints=wide_ints)
    with sim:
        rows = {}
        for (kind, exp), table in sim.dataset.tables.items():
            rows.setdefault(kind, {})[exp] = len(table.ts)
        conn.send((sim.base_url, sim.api_key, sim.dataset.experiment_ids, rows))
        while True:
            cmd, *args = conn.recv()
            if cmd == "stop":
                break
            if cmd == "requests":
                conn.send(sim.requests)
            elif cmd == "reset":
                sim.reset_requests()
                conn.send(None)
            elif cmd == "late":
                kind, n, exp = args
                conn.send(len(sim.add_late_rows(kind, n, exp)))
    conn.send(None)


class SimProcess:
    """The simulator in a process of its own; `wide_ints=False`: no integer beyond int64."""

    def __init__(self, seed: int, scale: float, wide_ints: bool = True):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        started = time.perf_counter()
        args = (child, seed, scale, wide_ints)
        self.proc = ctx.Process(target=_serve, args=args, daemon=True)
        self.proc.start()
        self.base_url, self.api_key, self.experiments, self.rows = self.conn.recv()
        self.startup = time.perf_counter() - started

    def call(self, *cmd):
        self.conn.send(cmd)
        return self.conn.recv()

    def close(self) -> None:
        try:
            self.call("stop")
        finally:
            self.proc.join(15)
            if self.proc.is_alive():
                self.proc.terminate()


# -- measured clients, each in a fresh subprocess ----------------------------


def measure(kind: str, api_key: str, *, script: Path = Path(__file__), **args) -> dict:
    """Run `kind` in a subprocess of `script` (which dispatches `--worker`); its own
    report plus peak RSS and CPU from wait4."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    spec = {"kind": kind, "result": str(out), **args}
    env = {**os.environ, KEY_ENV: api_key, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    env["RUNTIME__LOG_LEVEL"] = "ERROR"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(script.resolve()), "--worker", json.dumps(spec)],
        env=env,
        cwd=tempfile.gettempdir(),  # no hs_sync.toml of the caller's folder applies
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    total = time.perf_counter() - started
    try:
        report = json.loads(out.read_text()) if out.stat().st_size else {}
    finally:
        out.unlink(missing_ok=True)
    if proc.returncode != 0 or "wall" not in report:
        raise RuntimeError(f"{kind} failed (exit {proc.returncode}): {report.get('error')}")
    report["process_wall"] = total
    report["cpu"] = usage.ru_utime + usage.ru_stime
    report["rss_mb"] = usage.ru_maxrss / 1024
    return report


def _worker(spec: dict) -> None:
    result = Path(spec["result"])
    key = os.environ[KEY_ENV]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    try:
        report = WORKERS[spec["kind"]](spec, key)
    except Exception as exc:  # the root cause, for the report (no key: it is in a header)
        root = exc
        while root.__cause__ or root.__context__:
            root = root.__cause__ or root.__context__
        first = (str(root).strip().splitlines() or [""])[0][:200]
        result.write_text(json.dumps({"error": f"{type(root).__name__}: {first}"}))
        raise
    report["wall"] = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    report["work_cpu"] = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    result.write_text(json.dumps(report))


def sync_config(base_url: str, api_key: str, warehouse, **changes):
    """The measured hs-sync's settings: the request budget lifted, no media."""
    from hs_sync.config import load_config

    return load_config(
        env={},
        api_key=api_key,
        base_url=base_url,
        warehouse=warehouse,
        budget_per_hour=10**9,
        budget_per_minute=10**9,
        concurrency=CONCURRENCY,
        media=False,
        # Every unit is polled on every sync: the no-change and 1%-new syncs measure a
        # poll of every unit, not the scheduler's choice to skip one (live_lab.py does).
        poll_after_unchanged=10**6,
        **changes,
    )


def work_hs_sync(spec: dict, key: str) -> dict:
    from hs_sync.run import sync

    config = sync_config(spec["base_url"], key, spec["warehouse"], types=spec.get("types"))
    summary = sync(config)
    if summary.errors:
        raise RuntimeError(f"sync reported errors: {summary.errors}")
    transform = summary.transform or {}
    return {
        "requests": summary.requests,
        "rows": summary.total_rows,
        "transform_seconds": transform.get("seconds"),
        "bytes": summary.bytes_received,
    }


def work_wire(spec: dict, key: str) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    todo = json.loads(Path(spec["requests"]).read_text())
    root = spec["root"]
    nbytes = 0
    limits = httpx.Limits(max_connections=CONCURRENCY)
    with httpx.Client(base_url=root, headers={"X-API-Key": key}, limits=limits) as client:

        def get(item) -> int:
            r = client.get(item[0], params=item[1])
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}")
            return len(r.content)

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            nbytes = sum(pool.map(get, todo))
    return {"requests": len(todo), "bytes": nbytes}


def _arrow_table(rows: list[dict]):
    """What a careful SDK user writes: columns as pyarrow infers them, nested values as JSON."""
    import orjson
    import pyarrow as pa

    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        names = list(dict.fromkeys(k for r in rows for k in r))
        cols = {}
        for name in names:
            values = [r.get(name) for r in rows]
            if any(isinstance(v, (dict, list)) for v in values):
                values = [None if v is None else orjson.dumps(v).decode() for v in values]
            try:
                cols[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                cols[name] = pa.array([None if v is None else str(v) for v in values])
        return pa.table(cols)


def work_sdk(spec: dict, key: str) -> dict:
    import pyarrow.parquet as pq
    from hyperstudy import HyperStudy

    hs = HyperStudy(api_key=key, base_url=spec["base_url"])
    out = Path(spec["dir"])
    rows = 0
    for name, (method, kw) in SDK_CALLS.items():
        if spec["types"] and name not in spec["types"]:
            continue
        for exp in spec["experiments"]:
            data = getattr(hs, method)(exp, output="dict", progress=False, **kw)
            rows += len(data)
            if data:
                pq.write_table(_arrow_table(data), out / f"{name}-{exp}.parquet")
            del data
    return {"rows": rows}


def _fit_int64(value):
    """`value` with every integer outside the signed 64-bit range as text."""
    if isinstance(value, dict):
        return {k: _fit_int64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fit_int64(v) for v in value]
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return str(value)
    return value


def work_dlt(spec: dict, key: str) -> dict:
    import dlt
    import duckdb
    from dlt.sources.rest_api import rest_api_source

    out = Path(spec["dir"])
    paths = {n: p for n, p in API_PATHS.items() if not spec["types"] or n in spec["types"]}
    resources = [
        {
            "name": f"{name}__{i}",
            "table_name": name,
            "endpoint": {"path": f"data/{path}/experiment/{exp}"},
        }
        for name, path in paths.items()
        for i, exp in enumerate(spec["experiments"])
    ]
    source = rest_api_source(
        {
            "client": {
                "base_url": spec["base_url"].rstrip("/") + "/",
                "auth": {"type": "api_key", "name": "X-API-Key", "api_key": key},
                "paginator": {
                    "type": "offset",
                    "limit": 1000,
                    "offset_param": "offset",
                    "limit_param": "limit",
                    "total_path": "metadata.pagination.total",
                },
            },
            "resource_defaults": {"endpoint": {"data_selector": "data"}},
            "resources": resources,
        }
    )
    # A careful user's step: dlt cannot load integers beyond 64 bits (the API's u64
    # counters), so they go in as text, as the SDK peer writes them. (It does not save
    # dlt: a column first seen holding an int64 coerces such text back to an integer.)
    # A dataset without them needs no map.
    if spec["fit_int64"]:
        for each in source.resources.values():
            each.add_map(_fit_int64)
    db = out / "dlt.duckdb"
    pipeline = dlt.pipeline(
        pipeline_name="hs_bench",
        destination=dlt.destinations.duckdb(str(db)),
        dataset_name="hs",
        pipelines_dir=str(out / "pipelines"),
    )
    pipeline.run(source, loader_file_format="parquet")
    with duckdb.connect(str(db), read_only=True) as con:
        rows = sum(
            con.execute(f'SELECT count(*) FROM hs."{name}"').fetchone()[0]  # noqa: S608
            for name in paths
            if con.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = 'hs' "
                "AND table_name = ?",
                [name],
            ).fetchone()
        )
    return {"rows": rows}


WORKERS = {"hs-sync": work_hs_sync, "wire": work_wire, "sdk": work_sdk, "dlt": work_dlt}


# -- one scale ---------------------------------------------------------------


def _unit_requests(log: list[dict]) -> dict:
    """Data requests of a run per (type, experiment): time units, and whole-table re-reads
    (snapshot and merge tables are re-read in full each run: ceil(rows / page) pages)."""
    from hs_sync.registry import DATA_TYPES, Mode

    mode = {dt.path: dt.mode for dt in DATA_TYPES}
    units: dict[str, int] = {}
    for r in log:
        path = r["path"]
        if "/data/" not in path or "check-access" in path or r.get("status") != 200:
            continue
        units[path] = units.get(path, 0) + 1
    time_units = [
        n
        for path, n in units.items()
        if mode.get(path.split("/data/")[1].rsplit("/", 2)[0]) is Mode.TIME
    ]
    return {
        "data_requests": sum(units.values()),
        "time_units": len(time_units),
        "max_per_time_unit": max(time_units, default=0),
        "whole_table_pages": sum(units.values()) - sum(time_units),
    }


def _add_late_rows(sim: SimProcess, fraction: float, types: list[str]) -> int:
    """1% new rows, per time-mode type (of `types`; none: all) and experiment, arriving
    inside the lookback."""
    from hs_sync.registry import DATA_TYPES, Mode

    added = 0
    for dt in DATA_TYPES:
        if dt.mode is not Mode.TIME or (types and dt.name not in types):
            continue
        for exp, n in sim.rows.get(dt.path, {}).items():
            if n:
                added += sim.call("late", dt.path, math.ceil(n * fraction), exp)
    return added


def full_and_wire(sim: SimProcess, work: Path, warehouse: Path, log, types=()) -> tuple:
    """hs-sync's full sync (of `types`; none: all) into `warehouse`, then the wire limit:
    its requests replayed. Returns both reports, the file of replayed requests and the
    server's root URL."""
    log("  hs-sync full sync")
    sim.call("reset")
    full = measure(
        "hs-sync", sim.api_key, base_url=sim.base_url, warehouse=str(warehouse), types=types
    )
    replay = [(r["path"], r["params"]) for r in sim.call("requests") if r.get("status") == 200]
    requests = work / "requests.json"
    requests.write_text(json.dumps(replay))
    log("  wire limit (the same requests, bare httpx)")
    root = sim.base_url.split("/api/")[0]
    wire = measure("wire", sim.api_key, requests=str(requests), root=root)
    return full, wire, requests, root


def floor_steps(sim: SimProcess, work: Path, requests: Path, root: str, log) -> tuple:
    """The floor's two steps (floor.py) on the data the full sync just landed."""
    import floor

    log("  floor: land the same requests, then DuckDB loads the raw")
    (work / "land").mkdir()
    land = measure(
        "land", sim.api_key, script=floor.HERE, requests=str(requests), root=root,
        dir=str(work / "land"),
    )  # fmt: skip
    load = measure(
        "load", sim.api_key, script=floor.HERE, raw=str(work / "warehouse" / "raw"),
        dir=str(work / "load"),
    )  # fmt: skip
    return land, load


def run_pass(scale: float, seed: int, log, *, types=(), wide_ints=True, peers=(),
             incremental=True) -> dict:  # fmt: skip
    """One simulator, its dataset with every integer the API sends (`wide_ints=False`:
    none beyond int64): hs-sync's full sync of `types` (none: all), its wire limit and
    floor, then (`incremental`) a sync with no new data and one with 1% new, then `peers`
    fetching the same types."""
    res: dict = {"scale": scale, "types": list(types), "wide_ints": wide_ints}
    work = Path(tempfile.mkdtemp(prefix=f"hs-bench-{scale:g}-"))
    log(f"{describe(res)}: starting the simulator")
    sim = SimProcess(seed, scale, wide_ints)
    res["sim_startup"] = sim.startup
    res["events"] = sum(sim.rows.get("events", {}).values())
    try:
        common = {"base_url": sim.base_url, "warehouse": str(work / "warehouse"), "types": types}
        res["full"], res["wire"], requests, root = full_and_wire(
            sim, work, work / "warehouse", log, types
        )
        res["land"], res["load"] = floor_steps(sim, work, requests, root, log)

        if incremental:
            log("  hs-sync, no new data")
            sim.call("reset")
            res["nochange"] = measure("hs-sync", sim.api_key, **common)
            res["nochange"].update(_unit_requests(sim.call("requests")))

            res["late_rows"] = _add_late_rows(sim, 0.01, types)
            log(f"  hs-sync, 1% new data ({res['late_rows']:,} late rows)")
            res["onepct"] = measure("hs-sync", sim.api_key, **common)

        for name in peers:
            log(f"  {PEERS[name]}")
            (work / name).mkdir()
            try:
                res[name] = measure(
                    name,
                    sim.api_key,
                    base_url=sim.base_url,
                    dir=str(work / name),
                    experiments=sim.experiments,
                    types=types,
                    fit_int64=wide_ints,
                )
            except RuntimeError as exc:  # a peer that cannot load this data
                log(f"  {PEERS[name]} failed: {exc}")
                res[name] = {"failed": str(exc)}
    finally:
        sim.close()
        shutil.rmtree(work, ignore_errors=True)
    return res


PEERS = {
    "sdk": "official SDK (output=dict) + pyarrow Parquet",
    "dlt": "dlt rest_api -> duckdb (parquet loader)",
}


def run_scale(scale: float, seed: int, log, *, types=(), peers=True, int64_only=False) -> list:
    """The passes at one scale. Where dlt fails on the integers beyond 64 bits the API
    sends, hs-sync (with its floor) and dlt run again on a dataset without them."""
    names = list(PEERS) if peers else []
    if "dlt" in names:
        try:
            import dlt  # noqa: F401
        except ImportError:
            log("  dlt is not installed (pip install '.[bench]'): skipped")
            names.remove("dlt")
    if int64_only:
        return [run_pass(scale, seed, log, types=types, wide_ints=False, peers=names)]
    passes = [run_pass(scale, seed, log, types=types, peers=names)]
    if "failed" in passes[0].get("dlt", {}):
        log("  dlt failed: hs-sync and dlt again on the dataset without integers beyond int64")
        passes.append(
            run_pass(
                scale, seed, log, types=types, wide_ints=False, peers=["dlt"], incremental=False
            )  # fmt: skip
        )
    return passes


def describe(res: dict) -> str:
    """Which pass: its scale, its types (when not all) and its dataset (when int64-only)."""
    text = f"scale {res['scale']:g}"
    if res["types"]:
        text += ", --type " + " --type ".join(res["types"])
    if not res["wide_ints"]:
        text += ", int64-only dataset"
    return text


# -- report -------------------------------------------------------------------


def _fmt_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def report(results: list[dict]) -> str:
    lines = [
        _fmt_row(["pass", "client", "wall s", "CPU s", "peak RSS MB", "requests", "rows", "ratio"]),
        _fmt_row(["---"] * 8),
    ]
    for res in results:
        full = res["full"]["wall"]
        name = f"{describe(res)} ({res['events']:,} events)"

        def row(label, m, ratio="", name=name):
            lines.append(
                _fmt_row(
                    [
                        name,
                        label,
                        f"{m['wall']:.2f}",
                        f"{m['cpu']:.1f}",
                        f"{m['rss_mb']:.0f}",
                        f"{m.get('requests', '')}",
                        f"{m['rows']:,}" if "rows" in m else "",
                        ratio,
                    ]
                )
            )

        row("wire limit (bare httpx, same requests)", res["wire"])
        floor = res["land"]["wall"] + res["load"]["wall"]
        row("floor: land (bodies compressed, a file each)", res["land"])
        row("floor: load (DuckDB reads the raw into tables and Parquet)", res["load"])
        tr = res["full"].get("transform_seconds") or 0
        row(
            "hs-sync full sync",
            res["full"],
            f"{full / floor:.2f}x floor ({floor:.2f} s), {full / res['wire']['wall']:.2f}x wire "
            f"(transform {tr:.1f} s)",
        )
        if "nochange" in res:
            nc = res["nochange"]
            row(
                "hs-sync, no new data",
                nc,
                f"{nc['max_per_time_unit']} req per time unit ({nc['time_units']} units) "
                f"+ {nc['whole_table_pages']} whole-table pages",
            )
            row(
                f"hs-sync, 1% new ({res['late_rows']:,} rows)",
                res["onepct"],
                f"{100 * res['onepct']['wall'] / full:.1f}% of full",
            )
        for key, label in (("sdk", "hyperstudy SDK + pyarrow"), ("dlt", "dlt rest_api -> duckdb")):
            if key in res and "failed" in res[key]:
                cause = res[key]["failed"].split(": ", 1)[-1].replace("|", "/")
                lines.append(_fmt_row([name, label, "", "", "", "", "", f"failed: {cause}"]))
            elif key in res:
                row(label, res[key], f"{res[key]['wall'] / full:.1f}x hs-sync")
    return "\n".join(lines)


def targets(results: list[dict]) -> str:
    out = []

    def check(ok: bool, text: str) -> None:
        out.append(f"- [{'x' if ok else ' '}] {text}")

    for res in results:
        s = describe(res)
        floor = res["land"]["wall"] + res["load"]["wall"]
        r = res["full"]["wall"] / floor
        check(r <= 1.5, f"{s}: full sync {r:.2f}x the floor (target <= 1.5x)")
        if "dlt" in res and "failed" in res["dlt"]:
            cause = res["dlt"]["failed"].split(": ", 1)[-1].replace("|", "/")
            check(False, f"{s}: dlt failed on this dataset ({cause}), not compared (target >= 4x)")
        elif "dlt" in res:
            d = res["dlt"]["wall"] / res["full"]["wall"]
            check(d >= 4, f"{s}: dlt takes {d:.1f}x hs-sync's time (target >= 4x)")
        rss, limit = res["full"]["rss_mb"], (300 if res["events"] <= 200_000 else 400)
        check(rss <= limit, f"{s}: full sync peak RSS {rss:.0f} MB (target <= {limit} MB)")
        if "nochange" not in res:
            continue
        nc = res["nochange"]
        check(
            nc["max_per_time_unit"] <= 1,
            f"{s}: no-change sync {nc['wall']:.2f} s, {nc['max_per_time_unit']} request per "
            f"(time type, experiment) and {nc['whole_table_pages']} whole-table pages "
            "(target 1 per time unit)",
        )
        landed, late = res["onepct"]["rows"], res["late_rows"]
        check(landed == late, f"{s}: the 1%-new sync landed {landed:,} of the {late:,} new rows")
        one = res["onepct"]["wall"]
        check(one <= 2, f"{s}: 1%-new sync {one:.2f} s (target <= 2 s at 1M events)")
    return "\n".join(out)


def machine() -> str:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for pkg in ("hs-sync", "duckdb", "pyarrow", "httpx", "orjson", "uvicorn", "hyperstudy", "dlt"):
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    return (
        f"- machine: {os.cpu_count()} CPUs ({cpu or platform.machine()}), {mem} memory, "
        f"{platform.system()} {platform.release()}\n"
        f"- Python {platform.python_version()}; {', '.join(versions)}"
    )


def write_results(text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the block between `begin` and `end` in RESULTS.md (added at the top if absent)."""
    old = RESULTS.read_text() if RESULTS.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        title, _, body = old.partition("\n") if old.startswith("# ") else ("", "", old)
        new = (title or "# Benchmark results") + "\n\n" + block + "\n" + body
    RESULTS.write_text(new)


# The passes a run without --scale, --type or --quick makes: every target in
# docs/performance.md, including the single-type experiment.
DEFAULT_PASSES = ((20.0, ()), (100.0, ()), (20.0, ("events",)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, action="append", help="repeatable; default: 20 and 100"
    )
    parser.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        metavar="NAME",
        help="repeatable: hs-sync and the peers fetch only these data types (default: all)",
    )
    parser.add_argument(
        "--int64-only",
        action="store_true",
        help="only the dataset without integers beyond int64 (by default that dataset is "
        "measured where dlt fails on the other)",
    )
    parser.add_argument("--quick", action="store_true", help="scale 1 only; nothing written")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-peers", action="store_true", help="skip the SDK and dlt")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(json.loads(args.worker))
    from hs_sync.registry import BY_NAME

    if unknown := [t for t in args.types if t not in BY_NAME]:
        parser.error(f"unknown data type {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    if args.quick:
        passes = [(1.0, tuple(args.types))]
    elif args.scale or args.types:
        passes = [(s, tuple(args.types)) for s in args.scale or [20.0, 100.0]]
    else:
        passes = list(DEFAULT_PASSES)
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = [
        res
        for scale, types in passes
        for res in run_scale(
            scale,
            args.seed,
            log,
            types=types,
            peers=not args.no_peers,
            int64_only=args.int64_only,
        )  # fmt: skip
    ]
    table = report(results)
    checks = targets(results)
    text = (
        f"Command: `{command.strip()}`\n\n{machine()}\n\n{PASSES_NOTE}\n\n{table}\n\n"
        f"Targets (docs/performance.md):\n\n{checks}\n"
    )
    print(text)
    if not (args.quick or args.no_write):
        write_results(text)
        log(f"written to {RESULTS.relative_to(HERE.parent)}")


PASSES_NOTE = (
    "Each pass is one simulator: its scale, the data types synced (`--type`; every type "
    "when not named) and its dataset: the simulator's default, whose integers include u64 "
    "values beyond int64, or the int64-only one (the same rows with those values below "
    "2^63; `Simulator(wide_ints=False)`), measured where dlt fails on the default. dlt "
    "gets a map that turns integers beyond int64 into text on the default dataset only."
)


if __name__ == "__main__":
    main()
