"""Request economy against the simulator over loopback: each mechanism, counted in the
requests the simulator served (docs/requests.md)."""

from __future__ import annotations

from hs_sync.land.state import ExtractState
from hs_sync.registry import BY_NAME
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import (
    assert_landed_equals_simulator,
    expected,
    landed,
    make_config,
)

EVENTS = BY_NAME["events"]


def _served(sim, data_type: str = "events") -> list[dict]:
    return [r for r in sim.requests if f"/data/{data_type}/" in r["path"]]


def test_an_unchanged_window_costs_one_probe_and_lands_nothing(sim, tmp_path):
    # the full sync counts as the first poll: a third unchanged one backs off
    config = make_config(sim, tmp_path / "wh", types=("events",), poll_after_unchanged=3)
    assert sync(config).exit_code == 0
    experiments = sim.dataset.experiment_ids
    for _ in range(2):  # a probe of one row each time
        sim.reset_requests()
        summary = sync(config)
        assert summary.exit_code == 0, summary.errors
        served = _served(sim)
        assert len(served) == len(experiments)
        assert all(r["params"].get("order") == "desc" for r in served)
        assert summary.total_rows == 0
        assert summary.requests_by_purpose.get("probe") == len(experiments)
    assert served[0]["params"]["limit"] == "1"
    assert_landed_equals_simulator(sim, tmp_path / "wh", types=(EVENTS,))


def test_bisection_finds_rows_arriving_two_hours_late_in_a_closed_window(sim_factory, tmp_path):
    sim = sim_factory()  # its data changes
    exp = sim.dataset.experiment_ids[0]
    # small pages, so that the last day's history spans many of them
    config = make_config(sim, tmp_path / "wh", types=("events",), experiments=(exp,), page_size=100)
    assert sync(config).exit_code == 0
    full_pages = len(_served(sim))
    late = sim.add_late_rows("events", 3, experiment_id=exp, behind_seconds=2 * 3600)
    sim.reset_requests()

    summary = sync(config)

    assert summary.exit_code == 0, summary.errors
    got = landed(tmp_path / "wh", EVENTS)[exp]
    assert all(EVENTS.key_of(row) in got for row in late)
    assert got == expected(sim, EVENTS, exp)
    served = _served(sim)
    assert summary.requests_by_purpose.get("verification", 0) >= 3  # bisected, then re-read
    assert len(served) < full_pages, (len(served), full_pages)
    # only the sub-windows holding a late row were re-read, a page or less each
    fetched = sum(w.get("fetched", 0) for w in summary.windows)
    assert fetched <= len(late) * config.page_size < len(sim.dataset.records("events", exp))
    # the next sync finds everything in agreement again: one probe
    sim.reset_requests()
    assert sync(config).total_rows == 0
    assert len(_served(sim)) == 1


def test_a_unit_without_change_backs_off_and_a_change_resets_it(sim_factory, tmp_path):
    sim = sim_factory()  # its data changes
    exp = sim.dataset.experiment_ids[0]
    config = make_config(sim, tmp_path / "wh", types=("events",), experiments=(exp,))
    assert sync(config).exit_code == 0
    for _ in range(1):  # the full sync and a poll without change: the unit backs off
        sim.advance(300)
        assert sync(config).total_rows == 0
    with ExtractState(Warehouse(tmp_path / "wh")) as state:
        poll = state.poll("events", exp)
    assert poll["unchanged"] == 2 and poll["due_at"] > poll["polled_at"]

    sim.advance(300)
    sim.reset_requests()
    summary = sync(config)
    assert not _served(sim), "not due yet: no request"
    assert summary.polls["not_due"] == 1

    late = sim.add_late_rows("events", 2, experiment_id=exp)
    sim.advance(600)  # due again: the poll sees the change, which resets the backoff
    assert sync(config).rows["events"][exp] >= len(late)
    assert all(EVENTS.key_of(row) in landed(tmp_path / "wh", EVENTS)[exp] for row in late)
    with ExtractState(Warehouse(tmp_path / "wh")) as state:
        poll = state.poll("events", exp)
    assert poll["unchanged"] == 0
    sim.advance(60)
    sim.reset_requests()
    sync(config)
    assert len(_served(sim)) == 1  # polled on the very next sync


def test_a_change_in_the_experiment_listing_makes_its_units_due(sim_factory, tmp_path):
    sim = sim_factory()  # its data changes
    exp = sim.dataset.experiment_ids[0]
    config = make_config(sim, tmp_path / "wh", types=("events", "participants"))
    assert sync(config).exit_code == 0
    for _ in range(3):
        sim.advance(300)
        sync(config)
    sim.reset_requests()
    sim.advance(60)
    sync(config)
    assert not _served(sim, "participants")  # backed off
    with ExtractState(Warehouse(tmp_path / "wh")) as state:
        state.set_signal(f"listing:{exp}", "an older listing row", "2000-01-01T00:00:00Z")
    sim.reset_requests()
    sim.advance(60)
    sync(config)
    assert {r["path"].rsplit("/", 1)[1] for r in _served(sim, "participants")} == {exp}


def _room_reads(sim, data_type: str) -> list[dict]:
    return [r for r in sim.requests if f"/data/{data_type}/room/" in r["path"]]


def test_an_active_room_continues_from_its_landed_offset(sim_factory, tmp_path):
    sim = sim_factory(live=True)
    config = make_config(sim, tmp_path / "wh", types=("components", "rooms"))
    assert sync(config).exit_code == 0
    dt = BY_NAME["components"]
    sim.advance(240)
    sim.reset_requests()
    summary = sync(config)
    assert summary.exit_code == 0, summary.errors
    reads = _room_reads(sim, "components")
    continued = [r for r in reads if int(r["params"].get("offset", "0")) > 0]
    assert continued, "a room still collecting is read from its landed offset"
    for read in continued:  # the read starts at the last landed row, not after it
        room = read["path"].rsplit("/", 1)[1]
        with ExtractState(Warehouse(tmp_path / "wh")) as state:
            rows, _ = state.room_offset("components", sim.dataset.room_experiment[room], room)
        assert rows >= int(read["params"]["offset"]) + 1
    assert_landed_equals_simulator(sim, tmp_path / "wh", types=(dt,))


def test_a_room_whose_overlap_row_differs_is_re_read_whole(sim, tmp_path):
    config = make_config(sim, tmp_path / "wh", types=("components",))
    assert sync(config).exit_code == 0
    with ExtractState(Warehouse(tmp_path / "wh")) as state:
        offsets = {
            (exp, room): state.room_offset("components", exp, room)
            for room, exp in sim.dataset.room_experiment.items()
        }
        offsets = {k: v for k, v in offsets.items() if v}
        assert offsets, "the first sync noted the offsets of the rooms still collecting"
        (exp, room), (rows, _) = next(iter(offsets.items()))
        state.set_room_offset("components", exp, room, rows, "not the row landed last")
    sim.reset_requests()
    summary = sync(config)
    assert summary.exit_code == 0, summary.errors
    reads = [r for r in _room_reads(sim, "components") if r["path"].endswith("/" + room)]
    assert [r["params"].get("offset", "0") for r in reads][:2] == [str(rows - 1), "0"]
    assert any("re-read whole" in w for w in summary.warnings)
    assert_landed_equals_simulator(sim, tmp_path / "wh", types=(BY_NAME["components"],))
    # the other rooms still collecting cost one request each
    others = [r for r in _room_reads(sim, "components") if not r["path"].endswith("/" + room)]
    assert len(others) == len(offsets) - 1


def test_a_snapshot_of_several_pages_is_re_read_only_when_a_probe_shows_a_change(
    sim_factory, tmp_path
):
    sim = sim_factory(live=True)
    exp = sim.dataset.experiment_ids[0]
    config = make_config(  # no backoff here: every sync polls, to show the probe alone
        sim,
        tmp_path / "wh",
        types=("participants",),
        experiments=(exp,),
        page_size=5,
        poll_after_unchanged=100,
    )
    pages = -(-len(sim.dataset.records("participants", exp)) // 5)
    assert pages > 1
    assert sync(config).exit_code == 0  # a full read of several pages
    sim.reset_requests()
    sync(config)  # nothing changed; the first probe has nothing to compare with yet
    sim.reset_requests()
    summary = sync(config)
    served = _served(sim, "participants")
    assert len(served) == 1 and served[0]["params"]["limit"] == "1"  # the probe alone
    assert summary.requests_by_purpose.get("probe") == 1
    # a participant joins or finishes: the probe sees it and the table is re-read
    before = sim.dataset.records("participants", exp)
    while sim.dataset.records("participants", exp) == before:
        sim.advance(60)
    sim.reset_requests()
    summary = sync(config)
    assert len(_served(sim, "participants")) >= 1 + pages
    got = landed(tmp_path / "wh", BY_NAME["participants"])[exp]
    assert got == expected(sim, BY_NAME["participants"], exp)


def test_access_checks_are_remembered_until_a_403(sim, tmp_path):
    exp = sim.dataset.experiment_ids[0]
    key = "hst_test_" + "ab" * 32
    sim.add_key(key, {"read:experiments", "read:events"})
    config = make_config(sim, tmp_path / "wh", api_key=key, types=("events",), experiments=(exp,))

    def checks() -> int:
        return sum(1 for r in sim.requests if "/check-access/" in r["path"])

    sim.reset_requests()
    assert sync(config).exit_code == 0
    assert checks() == 1
    sim.reset_requests()
    assert sync(config).exit_code == 0
    assert checks() == 0  # remembered
    sim.add_key(key, {"read:experiments"})  # the key loses read:events: a 403
    summary = sync(config.replace(full_refresh=True))
    assert "events" in summary.skipped_types
    sim.reset_requests()
    sync(config)
    assert checks() == 1  # a 403 makes the next run check again
