"""Soak: sync after sync with every fault switched on while the experiment keeps producing data.

Faults per request: 5% JSON 5xx and 5% HTML 5xx (10% in all), 5% 429 with
Retry-After 0 in some rounds and 1 s in others, 3% connection resets, 3%
truncated bodies, 5% slow responses (slower than the client's timeout, so they
time out and are retried). The simulator is live: each round the clock moves
on, rooms start, statuses change and rows arrive late. In the end the DuckDB
tables and the Parquet equal the API's data row for row, and every row landed
in raw is there once.
"""

from __future__ import annotations

import pytest

from hs_sync.registry import DATA_TYPES
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import assert_landed_equals_simulator, make_config
from tests.test_warehouse_sim import comparable, truth
from tests.warehouse_helpers import db_rows, parquet_table

ROUNDS = 6


def _faults(sim, round_: int) -> None:
    sim.faults.configure(
        http_5xx=0.05,
        html_5xx=0.05,
        rate_429=0.05,
        retry_after=0 if round_ % 2 == 0 else 1,
        reset=0.03,
        truncate=0.03,
        slow=0.05,
        slow_seconds=1.2,
        seed=round_,
    )


@pytest.mark.slow
def test_every_fault_with_live_data_ends_equal_to_the_ground_truth(sim_factory, tmp_path):
    sim = sim_factory(seed=9, scale=0.15, live=True)
    root = tmp_path / "wh"
    config = make_config(
        sim,
        root,
        page_size=250,
        max_attempts=10,
        timeout_seconds=1.0,
        retry_max_wait_seconds=2.0,
        media=False,
    )
    injected = dict.fromkeys(("http_5xx", "html_5xx", "rate_429", "reset", "truncate", "slow"), 0)
    retry_after_seen = set()
    requests = retries = failed_units = 0
    for round_ in range(ROUNDS + 3):
        _faults(sim, round_)
        summary = sync(config)
        for kind in injected:
            injected[kind] += sim.faults.counts[kind]
        if sim.faults.counts["rate_429"]:
            retry_after_seen.add(sim.faults.retry_after)
        requests += summary.requests
        retries += summary.retries
        failed_units += len(summary.errors)
        if round_ < ROUNDS:
            sim.advance(300)  # five minutes of data collection
        elif summary.exit_code == 0:
            break  # the data stopped moving and a run got everything, faults and all
    assert summary.exit_code == 0, summary.errors

    assert all(injected.values()), injected
    assert retry_after_seen == {0, 1}
    assert retries >= sum(injected.values()) - injected["slow"]
    assert_landed_equals_simulator(sim, root)
    wh = Warehouse(root)
    compared = 0
    for dt in DATA_TYPES:
        expected = truth(sim, dt)
        stored = {r["_key"]: comparable(dt, r) for r in db_rows(wh, dt.name)}
        assert stored == expected, dt.name
        from_parquet = {r["_key"]: comparable(dt, r) for r in parquet_table(wh, dt).to_pylist()}
        assert from_parquet == stored, dt.name
        compared += len(expected)
    assert compared > 3000
    print(
        f"\nsoak: {sum(injected.values())} faults injected {injected} over {requests} requests "
        f"({retries} retried, {failed_units} units failed and resumed); {compared} rows compared"
    )
