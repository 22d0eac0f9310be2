"""When the API breaks a promise of its docs (order, inclusive bounds, total, limit): the
run finds it, warns first, and lands every row by a strategy that does without it,
counted in the requests the simulator served (docs/requests.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hs_sync.checks import run_check
from hs_sync.registry import BY_NAME
from hs_sync.run import sync
from hs_sync.statestore import StateReader
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import expected, landed, make_config
from tests.hostile_server import HostileServer, Reply

EVENTS = BY_NAME["events"]


def _served(sim) -> list[dict]:
    return [r for r in sim.requests if "/data/events/" in r["path"]]


def _synced(sim, tmp_path, **faults):
    """One experiment's events synced from a simulator set to break `faults`."""
    sim.faults.configure(**faults)
    exp = sim.dataset.experiment_ids[0]
    config = make_config(sim, tmp_path / "wh", types=("events",), experiments=(exp,))
    first = sync(config)
    assert first.exit_code == 0, first.errors
    return config, exp, first


def _assert_equal(sim, tmp_path, exp) -> None:
    assert landed(tmp_path / "wh", EVENTS)[exp] == expected(sim, EVENTS, exp)


def test_without_order_late_rows_land_and_the_cost_is_bounded(sim_factory, tmp_path):
    sim = sim_factory()  # its data changes
    config, exp, first = _synced(sim, tmp_path, ignore_order=True)
    assert "order=desc" in first.warnings[0] and "ascending" in first.warnings[0]
    sim.advance(60)
    assert sync(config).total_rows == 0
    late = sim.add_late_rows("events", 5, experiment_id=exp)  # inside the lookback
    late += sim.add_late_rows("events", 3, experiment_id=exp, behind_seconds=3 * 3600)
    sim.advance(600)  # the unit backed off after a poll without change: due again
    sim.reset_requests()
    summary = sync(config)
    assert summary.exit_code == 0, summary.errors
    assert all(r["params"].get("order") != "desc" for r in _served(sim))
    got = landed(tmp_path / "wh", EVENTS)[exp]
    assert all(EVENTS.key_of(row) in got for row in late)
    _assert_equal(sim, tmp_path, exp)
    assert len(_served(sim)) <= 20, len(_served(sim))
    assert summary.warnings[0].startswith("the API at") and "order=desc" in summary.warnings[0]
    for _ in range(2):  # then: the no-change cost, one request
        sim.advance(60)
        sim.reset_requests()
        assert sync(config).total_rows == 0
        assert len(_served(sim)) == 1


@pytest.mark.parametrize(
    "faults, words",
    [
        ({"exclusive_end": True}, "inclusive time bounds"),
        ({"total_skew": 7}, "pagination.total"),
        ({"total_skew": -3}, "pagination.total"),
        ({"limit_cap": 100}, "limit"),
    ],
)
def test_a_broken_promise_still_lands_every_row(sim_factory, tmp_path, faults, words):
    sim = sim_factory()  # its data changes
    config, exp, first = _synced(sim, tmp_path, **faults)
    assert f"does not keep {words} (" in first.warnings[0]
    _assert_equal(sim, tmp_path, exp)
    late = sim.add_late_rows("events", 4, experiment_id=exp)
    sim.advance(60)  # the unit's second poll (the full sync was its first)
    summary = sync(config)
    assert summary.exit_code == 0, summary.errors
    got = landed(tmp_path / "wh", EVENTS)[exp]
    assert all(EVENTS.key_of(row) in got for row in late)
    _assert_equal(sim, tmp_path, exp)


def test_late_rows_in_a_finished_study_land_within_a_day_of_arriving(sim_factory, tmp_path):
    """Polled daily, each poll verifies back to where the last one's range began: rows
    stamped at the study's end that arrive 6 and 30 hours after it land within 24
    hourly syncs of arriving, for at most 90 requests a day."""
    sim = sim_factory(seed=1)  # its data changes
    rooms = sim.dataset.records("rooms")
    finished = [
        exp
        for exp in sim.dataset.experiment_ids
        if all(r.get("status") == "completed" for r in rooms if r.get("experimentId") == exp)
    ]
    assert finished, "the dataset has an experiment whose rooms are all final"
    exp = finished[0]
    config = make_config(sim, tmp_path / "wh", types=("events", "rooms"), experiments=(exp,))
    assert sync(config).exit_code == 0
    sim.reset_requests()
    arrivals = {6: [], 30: []}  # hour -> rows arriving then, stamped when the study ended
    landed_at: dict[int, int] = {}
    for hour in range(1, 55):
        sim.advance(3600 - 20)  # hourly, each sync a little early (a scheduler jitters)
        if hour in arrivals:
            arrivals[hour] = sim.add_late_rows("events", 3, experiment_id=exp, behind_seconds=60)
        summary = sync(config)
        assert summary.exit_code == 0, summary.errors
        got = landed(tmp_path / "wh", EVENTS)[exp]
        for at, rows in arrivals.items():
            if rows and at not in landed_at and all(EVENTS.key_of(r) in got for r in rows):
                landed_at[at] = hour
    assert {at: landed_at.get(at, 99) - at for at in arrivals} == {
        at: min(landed_at.get(at, 99) - at, 24) for at in arrivals
    }, landed_at
    assert len(sim.requests) <= 90 * 54 / 24, len(sim.requests)
    _assert_equal(sim, tmp_path, exp)


def test_a_window_that_never_converges_is_marked_and_reported(sim, tmp_path):
    """An API that counts a row in one window it never serves: two re-reads, then the
    window is marked, costs nothing more, and `hs-sync check` names it with its counts."""
    exp = sim.dataset.experiment_ids[0]
    times = sorted(r["timestamp"] for r in sim.dataset.records("events", experiment_id=exp))
    newest = parse_time(times[-1])
    phantom = next(t for t in reversed(times) if parse_time(t) < newest - timedelta(hours=2))
    at = parse_time(phantom)
    counting = {"on": False}

    def rewrite(reply: Reply) -> Reply:
        if counting["on"] and reply.path.startswith("data/events/experiment") and reply.status:
            lo, hi = (
                parse_time(reply.query.get("startTime")),
                parse_time(reply.query.get("endTime")),
            )
            if (lo is None or lo <= at) and (hi is None or at <= hi):
                body = reply.json
                body["metadata"]["pagination"]["total"] += 1  # a row it never serves
                reply.json = body
        return reply

    with HostileServer(sim.base_url, rewrite) as proxy:
        config = make_config(
            sim, tmp_path / "wh", base_url=proxy.base_url, types=("events",),
            experiments=(exp,), poll_after_unchanged=10,
        )  # fmt: skip
        assert sync(config).exit_code == 0
        counting["on"] = True
        for _ in range(2):  # each bisects down to the window and re-reads it
            before = len(proxy.requests)
            assert sync(config).exit_code == 0
            assert len(proxy.requests) - before > 2
        for _ in range(2):  # marked: the no-change cost
            before = len(proxy.requests)
            summary = sync(config)
            events = [r for r in proxy.requests[before:] if r.path.startswith("data/events/")]
            assert len(events) == 1, [r.query for r in events]
    result = run_check(config, "unconverged_windows")
    assert not result.passed and result.count == 1
    issue = result.issues[0]
    assert issue.experiment_id == exp and "the API counts" in issue.detail
    assert "--full-refresh" in result.hint
    with StateReader(Warehouse(tmp_path / "wh")) as reader:
        (window,) = reader.unconverged_windows()
    assert window["window_start"] <= at.timestamp() < window["window_end"]
    assert window["api_rows"] == window["landed_rows"] + 1 and window["attempts"] >= 2
    assert summary.exit_code == 0
