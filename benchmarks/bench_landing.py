"""Landing cost: one file per page vs one file per N pages, plain vs compressed.

Run: .venv/bin/python benchmarks/bench_landing.py [rows]
Writes event-like records in pages of 1000 through the real BatchWriter
(atomic_write: temp name, fsync, rename) and reports seconds and bytes.
"""

from __future__ import annotations

import gzip
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hs_sync.api.client import Envelope
from hs_sync.land.batch import BatchWriter, encode_records
from hs_sync.registry import get
from hs_sync.warehouse import Warehouse, atomic_write


def event(i: int, rnd: random.Random) -> dict:
    return {
        "id": f"ev_{i:09d}",
        "experimentId": "exp_1",
        "roomId": f"room_{i // 500}",
        "participantId": f"p_{i % 7}",
        "onset": rnd.randint(-5000, 3_600_000),
        "timestamp": f"2026-03-02T10:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}Z",
        "category": rnd.choice(["component", "state", "media", "communication"]),
        "eventType": "component.complete",
        "componentType": None,
        "content": "x" * rnd.randint(10, 200),
        "stateId": "s1",
        "stateName": "Intro",
        "participantRole": "viewer",
        "response": {"value": rnd.random(), "items": [1, 2, 3]},
    }


def pages(rows: int) -> list[Envelope]:
    rnd = random.Random(1)
    out = []
    for start in range(0, rows, 1000):
        data = [event(i, rnd) for i in range(start, min(start + 1000, rows))]
        out.append(Envelope("data/events/experiment/exp_1", {"offset": start}, data, {}))
    return out


def land(root: Path, all_pages: list[Envelope], pages_per_file: int) -> float:
    writer = BatchWriter(
        Warehouse(root),
        get("events"),
        "exp_1",
        "w",
        "experiment",
        "exp_1",
        pages_per_file=pages_per_file,
    )
    t0 = time.perf_counter()
    for page in all_pages:
        writer.add(page, "now")
    writer.flush()
    writer.close()
    return time.perf_counter() - t0


def land_compressed(root: Path, all_pages: list[Envelope], per_file: int, codec: str) -> tuple:
    import zstandard

    t0 = time.perf_counter()
    size = 0
    for n, i in enumerate(range(0, len(all_pages), per_file)):
        data = b"".join(encode_records(p.records) for p in all_pages[i : i + per_file])
        if codec == "gzip":
            blob = gzip.compress(data, compresslevel=1)
        else:
            blob = zstandard.ZstdCompressor(level=1).compress(data)
        size += len(blob)
        atomic_write(root / f"{n:05d}.ndjson.{codec}", blob)
    return time.perf_counter() - t0, size


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    all_pages = pages(rows)
    raw = sum(len(encode_records(p.records)) for p in all_pages)
    print(f"{rows:,} events, {raw / 1e6:.1f} MB as NDJSON")
    for per_file in (1, 5, 20):
        root = Path(tempfile.mkdtemp(prefix="bench-landing-"))
        try:
            secs = land(root, all_pages, per_file)
            print(f"plain, {per_file:>2} pages/file: {secs:6.2f} s  ({rows / secs:,.0f} rows/s)")
        finally:
            shutil.rmtree(root)
    for codec in ("gzip", "zstd"):
        root = Path(tempfile.mkdtemp(prefix="bench-landing-"))
        try:
            secs, size = land_compressed(root, all_pages, 20, codec)
            print(f"{codec:>5}, 20 pages/file: {secs:6.2f} s  {size / 1e6:.1f} MB")
        finally:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
