"""What each thread, cache and special case on a sync's hot path saves.

    .venv/bin/python benchmarks/complexity.py --scale 5 --repeat 2
    .venv/bin/python benchmarks/complexity.py --scale 5 --only concurrency --no-write

Each mechanism is measured in pairs, back to back against one simulator (its
own process, as in run.py): a sync with it as shipped, and a sync with it
switched off by a setting or by a patch applied inside the measured
subprocess only (hs-sync's code is untouched). Every sync is a full sync into
an empty warehouse (run.py's settings: request budget lifted, no media), except:

- access-cache: a second sync with no new data, after an untimed full sync;
  off is `access_cache_hours=0`;
- media-threads and listed-links: a full sync with media (the download step
  included), off being `media_concurrency=1`, or no listed link ever used.

A pair's order alternates from one repeat to the next; the table gives the
median of the repeats. saving = (off - with) / off: the share of that sync
the mechanism saves (negative: the mechanism costs time).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import SimProcess, _worker, machine, measure, sync_config, write_results  # noqa: E402

BEGIN, END = "<!-- complexity:begin -->", "<!-- complexity:end -->"
HERE = Path(__file__)


# -- switching a mechanism off, inside the measured subprocess --------------


class _Inline:
    """A ThreadPoolExecutor stand-in that runs each task at submit: no read-ahead."""

    def __init__(self, *a, **kw):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args, **kw) -> Future:
        done: Future = Future()
        try:
            done.set_result(fn(*args, **kw))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            done.set_exception(exc)
        return done


def off_read_ahead() -> None:
    from hs_sync.extract import pages

    pages.ThreadPoolExecutor = _Inline


def off_group_commit() -> None:
    from hs_sync.extract.pages import PullContext

    writer = PullContext.writer

    def one_file_per_commit(self, *args, **kw):
        kw["group_files"] = 1
        return writer(self, *args, **kw)

    PullContext.writer = one_file_per_commit


class _Text(str):
    """A cursor text that is not exactly `str`: the canonical-cursor check fails."""


def off_canonical_cursor() -> None:
    from hs_sync.land.batch import BatchWriter

    note = BatchWriter._note_cursor

    def general(self, values, key_at):
        return note(self, [_Text(v) if type(v) is str else v for v in values], key_at)

    BatchWriter._note_cursor = general


def off_bucket_cache() -> None:
    from hs_sync.extract import time_windows

    bucket_of = time_windows._bucket_of
    time_windows._bucket_of = lambda value, width, cache=None: bucket_of(value, width)


def off_typing_sql_cache() -> None:
    from hs_sync.load import typing_sql

    typing_sql.typing_sql = typing_sql.typing_sql.__wrapped__


def off_value_type_shortcut() -> None:
    from hs_sync.load import typing_sql

    typing_sql.typing_sql.cache_clear()
    typing_sql._value_type = lambda v: f"json_type({v})"


def off_orjson_parse() -> None:
    import json

    from hs_sync.api import client

    client._loads = lambda body: json.loads(body, parse_float=client._float, parse_constant=str)


def off_orjson_encode() -> None:
    from hs_sync import jsontext
    from hs_sync.land import batch

    batch.encode_records = lambda records: b"".join(jsontext.dumps(r) + b"\n" for r in records)


def off_listed_links() -> None:
    from hs_sync.media.links import ListedLinks

    ListedLinks.get = lambda self, recording_id: None


# name -> (what it is, the sync measured, config changes when off, patch when off)
MECHANISMS = {
    "concurrency": ("unit threads, config.concurrency 4 (off: 1)", "full", {"concurrency": 1}, None),
    "read-ahead": ("next page fetched while one lands (extract/pages.py)", "full", {}, off_read_ahead),
    "group-commit": ("fsync per 5 files (land/batch.py; off: group_files=1)", "full", {}, off_group_commit),
    "canonical-cursor": ("canonical cursor text path (land/batch.py)", "full", {}, off_canonical_cursor),
    "bucket-cache": ("minute -> bucket cache (extract/time_windows.py)", "full", {}, off_bucket_cache),
    "typing-sql-cache": ("functools.cache on typing_sql (load/typing_sql.py)", "full", {}, off_typing_sql_cache),
    "value-type": ("JSON type by first character (load/typing_sql.py)", "full", {}, off_value_type_shortcut),
    "orjson-parse": ("orjson before the stdlib, pages parsed (api/client.py)", "full", {}, off_orjson_parse),
    "orjson-encode": ("orjson before the stdlib, lines written (land/batch.py)", "full", {}, off_orjson_encode),
    "access-cache": ("access checks remembered 24 h (off: access_cache_hours=0)", "resync", {"access_cache_hours": 0.0}, None),
    "media-threads": ("media downloads, media_concurrency 4 (off: 1)", "media", {"media_concurrency": 1}, None),
    "listed-links": ("legacy links from the sync's listing (media/links.py)", "media", {}, off_listed_links),
}  # fmt: skip


def work_variant(spec: dict, key: str) -> dict:
    """One sync of `spec["mechanism"]`'s kind, the mechanism on or off."""
    import time

    from hs_sync.run import sync

    _, kind, changes, patch = MECHANISMS[spec["mechanism"]]
    config = sync_config(spec["base_url"], key, spec["warehouse"])
    if kind == "media":
        config = config.replace(media=True)
    if spec["off"]:
        config = config.replace(**changes)
        if patch is not None:
            patch()
    if kind == "resync":
        sync(config.replace(access_cache_hours=24.0))  # the full sync before: not timed
    started = time.perf_counter()
    summary = sync(config)
    seconds = time.perf_counter() - started
    if summary.errors:
        raise RuntimeError(f"sync reported errors: {summary.errors}")
    media = summary.media or {}
    return {
        "seconds": seconds,
        "requests": summary.requests,
        "rows": summary.total_rows,
        "media_requests": media.get("api_requests", 0),
        "downloaded": media.get("downloaded", 0),
    }


WORKERS = {"variant": work_variant}


def one(sim: SimProcess, work: Path, name: str, off: bool) -> dict:
    warehouse = work / f"{name}-{'off' if off else 'on'}"
    shutil.rmtree(warehouse, ignore_errors=True)
    try:
        return measure(
            "variant",
            sim.api_key,
            script=HERE,
            base_url=sim.base_url,
            warehouse=str(warehouse),
            mechanism=name,
            off=off,
        )
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)


def pairs(sim: SimProcess, names: list[str], repeat: int, log, done=None) -> list[dict]:
    """The pairs of each mechanism; `done(rows)` after each mechanism's pairs."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="hs-complexity-") as tmp:
        work = Path(tmp)
        for name in names:
            runs: dict[bool, list[dict]] = {False: [], True: []}
            for i in range(repeat):
                for off in (i % 2 == 1, i % 2 == 0):  # alternate which goes first
                    r = one(sim, work, name, off)
                    runs[off].append(r)
                    log(
                        f"  {name} {'off' if off else 'on '} {r['seconds']:.2f}s {r['cpu']:.2f}s cpu"
                    )
            on, off_runs = runs[False], runs[True]

            def med(key: str, of: list[dict]) -> float:
                return statistics.median(r[key] for r in of)

            rows.append(
                {
                    "name": name,
                    "on": med("seconds", on),
                    "off": med("seconds", off_runs),
                    "cpu_on": med("cpu", on),
                    "cpu_off": med("cpu", off_runs),
                    "req_on": on[0]["requests"],  # media requests included
                    "req_off": off_runs[0]["requests"],
                    "spread": [round(r["seconds"], 1) for r in on + off_runs],
                }
            )
            if done is not None:
                done(rows)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| mechanism | what | sync | with (s) | without (s) | saving | CPU with / without (s) "
        "| CPU saving | requests with / without |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        what, kind, _, _ = MECHANISMS[r["name"]]
        saving = (r["off"] - r["on"]) / r["off"]
        cpu_saving = (r["cpu_off"] - r["cpu_on"]) / r["cpu_off"]
        lines.append(
            f"| {r['name']} | {what} | {kind} | {r['on']:.2f} | {r['off']:.2f} | {saving:+.0%} "
            f"| {r['cpu_on']:.1f} / {r['cpu_off']:.1f} | {cpu_saving:+.0%} "
            f"| {r['req_on']} / {r['req_off']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2, help="pairs per mechanism (median)")
    parser.add_argument("--only", action="append", choices=sorted(MECHANISMS), default=[])
    parser.add_argument(
        "--int64-only", action="store_true", help="the dataset without integers beyond int64"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import json

        import run

        run.WORKERS.update(WORKERS)
        _worker(json.loads(args.worker))
        return

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    names = args.only or list(MECHANISMS)
    command = " ".join([".venv/bin/python benchmarks/complexity.py", *sys.argv[1:]])

    def text(rows: list[dict]) -> str:
        return (
            f"Command: `{command}` (scale {args.scale:g}; each figure the median of "
            f"{args.repeat} pairs, each pair back to back, alternating which goes first)\n\n"
            f"{machine()}\n\n{table(rows)}\n\nEach sync's seconds (with, then without): "
            + "; ".join(f"{r['name']} {r['spread']}" for r in rows)
        )

    def done(rows: list[dict]) -> None:
        if not args.no_write:
            write_results(text(rows), BEGIN, END)

    sim = SimProcess(args.seed, args.scale, wide_ints=not args.int64_only)
    try:
        log(f"scale {args.scale:g}: {sum(sum(v.values()) for v in sim.rows.values())} rows")
        rows = pairs(sim, names, args.repeat, log, done)
    finally:
        sim.close()
    print(text(rows))


if __name__ == "__main__":
    main()
