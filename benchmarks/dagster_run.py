"""A Dagster run against the CLI on the same data: `dagster job execute` vs `hs-sync sync` + check.

    .venv/bin/python benchmarks/dagster_run.py                 # scale 0.3, 2 rounds
    .venv/bin/python benchmarks/dagster_run.py --rounds 3 --profile /tmp/dagster.txt

One simulator (its own process, seed 1) serves both. Each round runs, one after
the other and each into a fresh warehouse: `hs-sync sync` (with media) then
`hs-sync check`, and `dagster job execute -j hs_sync_incremental` of
dagster_project.definitions (the same work: pull, transform, views, media,
checks). The Dagster instance (DAGSTER_HOME, with the project's dagster.yaml)
is new in the first round and reused by the later ones, as a deployment's is.
Settings lift the request budget. Wall times of the whole commands, the
ratio, and the Dagster steps' own durations (its STEP_SUCCESS lines).
`--profile FILE` runs the last round's Dagster command under py-spy (raw
format, 50 samples a second), which slows it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import SimProcess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SETTINGS = "retry_floor_seconds = 0.01\nbudget_per_hour = 1000000\nbudget_per_minute = 1000000\n"
_STEP = re.compile(r'Finished execution of step "([^"]+)" in ([\d.]+)(m?s)')


def _timed(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    started = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    return time.perf_counter() - started


def _steps(log: Path) -> dict[str, float]:
    steps = {}
    for name, value, unit in _STEP.findall(log.read_text()):
        steps[name] = float(value) / (1000 if unit == "ms" else 1)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", type=Path, default=None)
    opts = parser.parse_args()

    sim = SimProcess(seed=1, scale=opts.scale)
    work = Path(tempfile.mkdtemp(prefix="hs-dagster-bench-"))
    try:
        (work / "hs_sync.toml").write_text(SETTINGS)
        home = work / "dagster-home"
        home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        env = {
            **os.environ,
            "HYPERSTUDY_API_KEY": sim.api_key,
            "HYPERSTUDY_BASE_URL": sim.base_url,
            "DAGSTER_HOME": str(home),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("HS_SYNC_WAREHOUSE", None)
        rows = []
        for n in range(opts.rounds):
            cli_wh = f"cli-{n}"
            sync = _timed(
                [str(BIN / "hs-sync"), "sync", "--warehouse", cli_wh, "--json"],
                env,
                work,
                work / f"{cli_wh}-sync.log",
            )
            check = _timed(
                [str(BIN / "hs-sync"), "check", "--warehouse", cli_wh, "--json"],
                env,
                work,
                work / f"{cli_wh}-check.log",
            )
            dg_wh = work / f"dagster-{n}"
            cmd = [str(BIN / "dagster"), "job", "execute", "-m", "dagster_project.definitions"]
            cmd += ["-j", "hs_sync_incremental"]
            if opts.profile and n == opts.rounds - 1:
                spy = [str(BIN / "py-spy"), "record", "-f", "raw", "-r", "50"]
                cmd = [*spy, "-o", str(opts.profile), "--", *cmd]
            log = work / f"dagster-{n}.log"
            dagster = _timed(cmd, {**env, "HS_SYNC_WAREHOUSE": str(dg_wh)}, work, log)
            steps = _steps(log)
            if len(steps) < 5:
                raise RuntimeError(f"the Dagster run did not finish its steps; see {log}")
            rows.append((sync, check, dagster, steps))
            instance = "new" if n == 0 else "reused"
            print(
                f"round {n + 1} (instance {instance}): CLI {sync:.1f} + {check:.1f} = "
                f"{sync + check:.1f} s; Dagster {dagster:.1f} s "
                f"({dagster / (sync + check):.2f}x); steps "
                + ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
                + f" = {sum(steps.values()):.1f}",
                flush=True,
            )
        ratios = [d / (s + c) for s, c, d, _ in rows]
        print(f"median ratio {statistics.median(ratios):.2f}x over {len(rows)} rounds")
    finally:
        sim.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
