"""Request economy: a lab of 20 experiments, 2 of them live, synced every 5 simulated minutes.

    .venv/bin/python benchmarks/live_lab.py            # prints the figures
    .venv/bin/python benchmarks/live_lab.py --write    # and writes them to RESULTS.md

Against the simulator's live mode (in process, over loopback; the simulated
clock is moved between syncs), counting the API requests the simulator served:

1. the first full sync, against sum(ceil(rows/page)) + 2 per (type, experiment);
2. two simulated hours of syncs every 5 minutes: requests in each hour (the second,
   once the backoff has settled, is the steady state), by purpose, and the largest delay between a row's arrival (it became visible) and its landing,
   in syncs (1: landed by the first sync after it arrived);
3. the warehouse (raw landing, by key) against the simulator's ground truth;
4. rows injected 2 hours behind into the live experiments' closed windows: the
   syncs until they are landed and the requests those syncs cost;
5. one experiment with every data type and nothing new, synced every 5 minutes for
   two hours: the average requests per sync in each hour.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hs_simulator import Simulator  # noqa: E402
from hs_sync.config import Config  # noqa: E402
from hs_sync.land import rawfile  # noqa: E402
from hs_sync.registry import DATA_TYPES, DEFAULT_TYPES, Mode  # noqa: E402
from hs_sync.run import sync  # noqa: E402
from hs_sync.warehouse import Warehouse  # noqa: E402

RESULTS = HERE / "RESULTS.md"
SECTION = "## Request economy"
SYNC_EVERY = 300.0  # simulated seconds between syncs
SYNCS_PER_HOUR = 12
SERIES = [dt for dt in DATA_TYPES if dt.mode in (Mode.TIME, Mode.ROOM)]


def config_for(sim: Simulator, warehouse: Path) -> Config:
    return Config(
        api_key=sim.api_key,
        base_url=sim.base_url,
        warehouse=warehouse,
        media=False,  # media downloads are counted apart (purpose "media")
        budget_per_hour=100_000,  # measure what the sync asks for, not the pacing
        budget_per_minute=100_000,
    )


def api_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if "/api/v3/" in r["path"])


def landed_keys(root: Path) -> dict[str, set[tuple[str, str]]]:
    """data type -> (experiment, key) of every row landed raw."""
    out: dict[str, set] = {}
    base = Warehouse(root).root / "raw"
    for dt in DATA_TYPES:
        keys = out.setdefault(dt.name, set())
        for path in (base / dt.name).glob("experiment_id=*/*/*"):
            if not rawfile.is_data_file(path.name):
                continue
            exp = path.parent.parent.name.split("=", 1)[1]
            for line in rawfile.lines(path):
                keys.add((exp, dt.key_of(orjson.loads(line))))
    return out


def visible_keys(sim: Simulator, types) -> dict[str, set[tuple[str, str]]]:
    out = {}
    for dt in types:
        keys = set()
        for exp in sim.dataset.experiment_ids:
            for record in sim.dataset.records(dt.path, exp):
                keys.add((exp, dt.key_of(dt.redact([record])[0])))
        out[dt.name] = keys
    return out


def first_sync_bound(sim: Simulator, page: int) -> int:
    bound = 0
    for dt in DEFAULT_TYPES:  # what a sync pulls by default
        if not dt.per_experiment:
            bound += 1 + 2
            continue
        for exp in sim.dataset.experiment_ids:
            rows = len(sim.dataset.records(dt.path, exp))
            bound += max(1, math.ceil(rows / page)) + 2
    return bound


def lab(scale: float, seed: int, work: Path) -> dict:
    sim = Simulator(seed=seed, scale=scale, live=True, experiments=20, live_experiments=2)
    sim.start()
    try:
        config = config_for(sim, work / "lab")
        bound = first_sync_bound(sim, config.page_size)
        sim.reset_requests()
        first = sync(config, transform=False)
        out = {
            "scale": scale,
            "experiments": len(sim.dataset.experiment_ids),
            "first_requests": api_requests(sim),
            "first_bound": bound,
            "first_errors": dict(first.errors),
        }
        arrived: dict[tuple[str, str, str], int] = {}
        delays: list[int] = []
        known = landed_keys(work / "lab")
        purposes: dict[str, int] = {}
        hours = [0, 0]
        for k in range(1, 2 * SYNCS_PER_HOUR + 1):
            sim.advance(SYNC_EVERY)
            for name, keys in visible_keys(sim, SERIES).items():
                for key in keys - known[name]:
                    arrived.setdefault((name, *key), k)
            sim.reset_requests()
            summary = sync(config, transform=False)
            hours[(k - 1) // SYNCS_PER_HOUR] += api_requests(sim)
            if k > SYNCS_PER_HOUR:
                for purpose, n in summary.requests_by_purpose.items():
                    purposes[purpose] = purposes.get(purpose, 0) + n
            known = landed_keys(work / "lab")
            for item, at in list(arrived.items()):
                if (item[1], item[2]) in known[item[0]]:
                    delays.append(k - at + 1)
                    del arrived[item]
        out["first_hour_requests"], out["hour_requests"] = hours
        out["hour_by_purpose"] = purposes
        out["max_delay_syncs"] = max(delays) if delays else 0
        out["rows_arrived"] = len(delays) + len(arrived)
        out["not_landed_after_hour"] = len(arrived)
        truth = visible_keys(sim, DEFAULT_TYPES)  # the types a sync pulls by default
        out["ground_truth"] = {
            dt.name: {
                "missing": len(truth[dt.name] - known[dt.name]),
                "rows": len(truth[dt.name]),
            }
            for dt in DEFAULT_TYPES
        }
        # late rows, 2 hours behind, into the closed windows of a live experiment that has
        # a room still open (one whose rooms are all final is verified daily instead)
        live = sim.dataset.experiment_ids[:2]
        open_rooms = {
            e: any(r["status"] != "completed" for r in sim.dataset.records("rooms", e))
            for e in live
        }
        target = next((e for e in live if open_rooms[e]), live[0])
        out["late_experiment_open"] = open_rooms[target]
        late = [(target, r) for r in sim.add_late_rows("events", 3, target, behind_seconds=7200)]
        late += [
            (target, r) for r in sim.add_late_rows("ratings/sparse", 2, target, behind_seconds=7200)
        ]
        by_type = {"events": DATA_TYPES[0]}
        by_type.update({dt.path: dt for dt in DATA_TYPES})
        syncs, spent, verification = 0, 0, 0
        while syncs < 6:
            sim.advance(SYNC_EVERY)
            sim.reset_requests()
            summary = sync(config, transform=False)
            syncs += 1
            spent += api_requests(sim)
            verification += summary.requests_by_purpose.get("verification", 0)
            known = landed_keys(work / "lab")
            pending = [
                (exp, r)
                for exp, r in late
                if (exp, by_type[_path_of(r)].key_of(r)) not in known[by_type[_path_of(r)].name]
            ]
            if not pending:
                break
        out["late_rows"] = len(late)
        out["late_syncs"] = syncs
        out["late_landed"] = not pending
        out["late_requests"] = spent
        out["late_verification_requests"] = verification
        return out
    finally:
        sim.stop()


def _path_of(record: dict) -> str:
    return "ratings/sparse" if "ratingId" in record else "events"


def quiet(scale: float, seed: int, work: Path) -> dict:
    """One experiment with every data type, nothing new: requests per sync for an hour."""
    sim = Simulator(seed=seed, scale=scale, live=False, experiments=1)
    sim.start()
    try:
        config = config_for(sim, work / "quiet")
        sync(config, transform=False)
        counts, rows = [], []
        for _ in range(2 * SYNCS_PER_HOUR):
            sim.advance(SYNC_EVERY)
            sim.reset_requests()
            summary = sync(config, transform=False)
            rows.append(summary.total_rows)
            counts.append(api_requests(sim))
        first, second = counts[:SYNCS_PER_HOUR], counts[SYNCS_PER_HOUR:]
        return {
            "quiet_per_sync": counts,
            "quiet_first_hour_average": sum(first) / len(first),
            "quiet_average": sum(second) / len(second),
            "quiet_rows_landed": sum(rows),
        }
    finally:
        sim.stop()


NOTES = """\
The first hour after a full sync is the backoff settling. The full sync counts
as each unit's first poll, so a unit without change backs off after the first
sync that follows it; a unit whose experiment's newest row is already older
than a backed-off interval starts backed off. Here every experiment has rows
from the minutes before the full sync (the simulator's non-live experiments
stop at its start), so each (type, experiment) unit is still polled on the
first sync after it (about one request each, 290 here), and the quiet ones
twice more in the hour as the backoff doubles. The second hour is the steady
state while the two experiments stay live. The nothing-new experiment has
rooms that stay active (the simulator's non-live data is frozen), so it is
never "all final"; its units back off by doubling, and a full poll of them
costs 19 requests. An experiment whose rooms are all final is verified daily
(all its history, each poll), or sooner if its listing row changes.
"""


def report(r: dict, command: str) -> str:
    missing = {k: v["missing"] for k, v in r["ground_truth"].items() if v["missing"]}
    purposes = ", ".join(f"{k} {v}" for k, v in sorted(r["hour_by_purpose"].items()) if v)
    lines = [
        SECTION,
        "",
        f"Command: `{command}`",
        "",
        f"Simulator live mode, scale {r['scale']} per design, {r['experiments']} experiments "
        "(2 live), one sync every 5 simulated minutes; API requests the simulator served.",
        "",
        "| measure | result | target |",
        "| --- | --- | --- |",
        f"| first full sync | {r['first_requests']} requests | <= {r['first_bound']} "
        "(sum ceil(rows/page) + 2 per type and experiment) |",
        f"| requests in the first hour after it (12 syncs) | {r['first_hour_requests']} | <= 400 |",
        f"| requests in the second hour (12 syncs) | {r['hour_requests']} ({purposes}) | <= 300 |",
        f"| largest arrival-to-landing delay, both hours | {r['max_delay_syncs']} sync(s) over "
        f"{r['rows_arrived']} rows that arrived | <= 2 |",
        f"| warehouse vs ground truth after two hours | "
        f"{'equal' if not missing else 'missing ' + str(missing)} | equal |",
        f"| {r['late_rows']} rows 2 h late in closed windows of a live experiment | "
        f"{'landed' if r['late_landed'] else 'NOT landed'} after {r['late_syncs']} sync(s), "
        f"{r['late_requests']} requests ({r['late_verification_requests']} verification) | "
        "<= 2 syncs, <= 40 requests |",
        f"| nothing new, 1 experiment, every type, second hour | {r['quiet_average']:.2f} "
        f"requests/sync on average (first hour {r['quiet_first_hour_average']:.2f}; per sync "
        f"{r['quiet_per_sync']}) | <= 4 |",
        "",
        NOTES,
    ]
    return "\n".join(lines)


def write(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION in current:
        head, _, rest = current.partition(SECTION)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        current = head + text + ("\n" + tail if tail else "")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="write RESULTS.md's section")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hs-lab-") as tmp:
        result = lab(args.scale, args.seed, Path(tmp))
        result.update(quiet(args.scale, args.seed, Path(tmp)))
    command = "python benchmarks/live_lab.py" + (
        f" --scale {args.scale}" if args.scale != 0.5 else ""
    )
    text = report(result, command)
    print(text)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
