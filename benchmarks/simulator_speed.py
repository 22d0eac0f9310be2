"""Simulator speed: dataset generation time, serving every event at experiment scope in
pages of 1000 with a bare httpx loop, and the process's peak RSS.

    .venv/bin/python benchmarks/simulator_speed.py --scale 100   # about 1M events
"""

from __future__ import annotations

import argparse
import resource
import time

import httpx

from hs_simulator import Simulator


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    started = time.perf_counter()
    sim = Simulator(seed=args.seed, scale=args.scale)
    generated = time.perf_counter() - started
    rss_after_generation = peak_rss_mb()
    with sim:
        rows = pages = 0
        nbytes = 0
        started = time.perf_counter()
        with httpx.Client(base_url=sim.base_url, headers={"X-API-Key": sim.api_key}) as client:
            for exp in sim.dataset.experiment_ids:
                offset = 0
                while True:
                    r = client.get(
                        f"/data/events/experiment/{exp}", params={"limit": 1000, "offset": offset}
                    )
                    r.raise_for_status()
                    nbytes += len(r.content)
                    page = r.json()["metadata"]["pagination"]
                    rows += page["returned"]
                    pages += 1
                    if not page["hasMore"]:
                        break
                    offset = page["nextOffset"]
        served = time.perf_counter() - started
    print(
        f"scale {args.scale}: generated in {generated:.1f} s (peak RSS {rss_after_generation:.0f} MB)"
    )
    print(
        f"served {rows:,} events in {pages} pages ({nbytes / 1e6:.0f} MB) in {served:.1f} s "
        f"({rows / served:,.0f} rows/s)"
    )
    print(f"peak RSS of the whole process (simulator and client): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
