"""The capability checks and `hs-sync doctor --api`, against a simulator that keeps or
breaks each promise of the docs (order, inclusive bounds, total, limit) over loopback."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from hs_sync.api import capabilities
from hs_sync.api.capabilities import BEHAVIORS, BOUNDS, LIMIT, ORDER, TOTAL
from hs_sync.api.client import ApiClient
from hs_sync.cli import main
from hs_sync.statestore import path as state_path
from hs_sync.timeutil import parse_time, to_iso
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import make_config
from tests.hostile_server import HostileServer, Reply

# simulator setting -> (the behaviour it breaks, words of the evidence)
BROKEN = {
    "ignore_order": ({"ignore_order": True}, ORDER, "metadata.query.order says 'asc'"),
    "exclusive_end": ({"exclusive_end": True}, BOUNDS, "endTime is exclusive"),
    "total_skew": ({"total_skew": 7}, TOTAL, "total says"),
    "limit_cap": ({"limit_cap": 100}, LIMIT, "served 100 rows of"),
}


def _check(sim, tmp_path, **config):
    with ApiClient(make_config(sim, tmp_path / "wh", **config)) as client:
        return capabilities.check(client, sim.dataset.experiment_ids[0])


def test_an_honest_server_honours_every_promise(sim, tmp_path):
    found = _check(sim, tmp_path)
    assert {n: f.status for n, f in found.findings.items()} == dict.fromkeys(BEHAVIORS, "honored")
    assert found.base_url == sim.base_url and parse_time(found.checked_at) is not None
    assert all(found.honored(name) is True for name in BEHAVIORS)


@pytest.mark.parametrize("setting", list(BROKEN))
def test_each_broken_promise_is_found_and_only_it(sim, tmp_path, setting):
    faults, broken, evidence = BROKEN[setting]
    sim.faults.configure(**faults)
    found = _check(sim, tmp_path)
    statuses = {n: f.status for n, f in found.findings.items()}
    assert statuses == {n: "missing" if n == broken else "honored" for n in BEHAVIORS}
    assert evidence in found.findings[broken].evidence
    assert found.honored(broken) is False


def test_a_check_that_cannot_read_says_unknown(sim, tmp_path):
    sim.add_key("hst_test_" + "n" * 64, {"read:experiments"})  # no read:events
    found = _check(sim, tmp_path, api_key="hst_test_" + "n" * 64)
    assert {f.status for f in found.findings.values()} == {"unknown"}
    assert "403" in found.findings[ORDER].evidence
    assert found.honored(ORDER) is None


def test_answers_are_kept_per_base_url_and_due_daily(sim, tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    assert capabilities.needs_check(warehouse, sim.base_url)
    assert capabilities.load(warehouse, sim.base_url) is None
    assert not state_path(warehouse).exists()  # reading creates nothing
    sim.faults.configure(exclusive_end=True)
    found = _check(sim, tmp_path)
    capabilities.save(warehouse, found)
    kept = capabilities.load(warehouse, sim.base_url + "/")
    assert kept is not None and kept.findings == found.findings
    assert kept.checked_at == found.checked_at and kept.honored(BOUNDS) is False
    checked = parse_time(found.checked_at)
    assert not capabilities.needs_check(warehouse, sim.base_url, found.checked_at)
    later = to_iso(checked + timedelta(hours=23))
    assert not capabilities.needs_check(warehouse, sim.base_url, later)
    a_day = to_iso(checked + timedelta(hours=24))
    assert capabilities.needs_check(warehouse, sim.base_url, a_day)
    assert capabilities.needs_check(warehouse, "http://127.0.0.1:9/api/v3", found.checked_at)
    sim.faults.configure()
    capabilities.save(warehouse, _check(sim, tmp_path))  # a new check replaces the answers
    assert capabilities.load(warehouse, sim.base_url).honored(BOUNDS) is True


def test_ensure_checked_checks_when_due_and_reuses_the_answers_otherwise(sim, tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    exp = sim.dataset.experiment_ids[0]
    sim.faults.configure(limit_cap=100)
    with ApiClient(make_config(sim, tmp_path / "wh")) as client:
        first = capabilities.ensure_checked(client, warehouse, exp)
        assert first.requests > 0 and first.honored(LIMIT) is False
        sent = len(sim.requests)
        again = capabilities.ensure_checked(client, warehouse, exp, now=first.checked_at)
        assert len(sim.requests) == sent  # kept answers, no request
        assert again.findings == first.findings and again.requests == 0
        sim.faults.configure()
        a_day = to_iso(parse_time(first.checked_at) + timedelta(days=1))
        fresh = capabilities.ensure_checked(client, warehouse, exp, now=a_day)
    assert fresh.honored(LIMIT) is True
    assert capabilities.load(warehouse, sim.base_url).honored(LIMIT) is True


# -- hs-sync doctor --api ---------------------------------------------------------


@pytest.fixture
def doctor(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYPERSTUDY_API_KEY", sim.api_key)
    monkeypatch.setenv("HYPERSTUDY_BASE_URL", sim.base_url)
    monkeypatch.delenv("HS_SYNC_WAREHOUSE", raising=False)

    def run(*args: str):
        return CliRunner().invoke(main, ["doctor", "--api", *args])

    return run


def _row(output: str, label: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith(label))


def test_doctor_api_reports_an_honest_server(sim, doctor):
    result = doctor()
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(f"API {sim.base_url} (experiment ")
    for label in BEHAVIORS.values():
        assert "HONORED" in _row(out, label)
    assert "from server" in _row(out, "server time")
    assert "none sent" in _row(out, "rate-limit headers")
    assert sim.api_key not in out


@pytest.mark.parametrize("setting", list(BROKEN))
def test_doctor_api_names_what_a_server_breaks(sim, doctor, setting):
    faults, broken, evidence = BROKEN[setting]
    sim.faults.configure(**faults)
    result = doctor()
    assert result.exit_code == 1, result.output
    assert "MISSING" in _row(result.stdout, BEHAVIORS[broken])
    assert evidence in _row(result.stdout, BEHAVIORS[broken])
    others = [label for name, label in BEHAVIORS.items() if name != broken]
    assert all("HONORED" in _row(result.stdout, label) for label in others)
    report = json.loads(doctor("--json").stdout)
    assert report["missing"] == [broken] and report["exit_code"] == 1
    assert report["capabilities"]["findings"][broken]["status"] == "missing"


def test_doctor_api_on_a_trickling_server_is_one_line(sim, doctor, tmp_path):
    sim.faults.configure(trickle=1.0, trickle_seconds=0.05)
    (tmp_path / "hs_sync.toml").write_text("request_deadline_seconds = 1.0\n")
    result = doctor()
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hs-sync doctor: GET experiments: ")
    assert "request_deadline_seconds" in lines[0]


def test_doctor_api_without_a_key_is_one_line(doctor, monkeypatch):
    monkeypatch.delenv("HYPERSTUDY_API_KEY")
    result = doctor()
    assert result.exit_code == 2 and "HYPERSTUDY_API_KEY" in result.stderr


def test_doctor_api_shows_the_rate_limit_headers_a_server_sends(sim, doctor, monkeypatch):
    def rewrite(reply: Reply) -> Reply:
        reply.headers.update({"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "994"})
        return reply

    with HostileServer(sim.base_url, rewrite) as proxy:
        monkeypatch.setenv("HYPERSTUDY_BASE_URL", proxy.base_url)
        result = doctor()
    assert result.exit_code == 0, result.output
    row = _row(result.stdout, "rate-limit headers")
    assert "x-ratelimit-limit: 1000" in row.lower() and "x-ratelimit-remaining: 994" in row.lower()
