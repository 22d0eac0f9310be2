"""Rate limits and every injected fault kind, seen from a plain HTTP client."""

from __future__ import annotations

import time

import httpx
import pytest


def _events_url(sim) -> str:
    return f"{sim.base_url}/data/events/experiment/{sim.dataset.experiment_ids[0]}"


def _get(sim, url=None, **params):
    headers = {"X-API-Key": sim.api_key}
    return httpx.get(url or _events_url(sim), params=params, headers=headers, timeout=30)


def test_rate_limits_are_off_by_default(sim_factory):
    sim = sim_factory()  # as started, not as the shared one is reset between tests
    assert all(_get(sim, limit=1).status_code == 200 for _ in range(30))


def test_per_minute_limit_per_endpoint_gives_429_with_retry_after(sim):
    sim.set_rate_limits(per_hour=None, per_minute=3)
    assert [_get(sim, limit=1).status_code for _ in range(3)] == [200, 200, 200]
    r = _get(sim, limit=1)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert 0 < int(r.headers["Retry-After"]) <= 60
    other = f"{sim.base_url}/data/chat/experiment/{sim.dataset.experiment_ids[0]}"
    assert _get(sim, other, limit=1).status_code == 200  # another endpoint has its own budget
    sim.set_rate_limits(None, None)
    assert _get(sim, limit=1).status_code == 200


def test_per_hour_limit_per_key(sim):
    sim.set_rate_limits(per_hour=2, per_minute=None)
    other = f"{sim.base_url}/data/chat/experiment/{sim.dataset.experiment_ids[0]}"
    assert _get(sim, limit=1).status_code == 200
    assert _get(sim, other, limit=1).status_code == 200
    r = _get(sim, other, limit=1)
    assert r.status_code == 429 and 3000 < int(r.headers["Retry-After"]) <= 3600


def test_json_5xx(sim):
    sim.faults.configure(http_5xx=1.0)
    r = _get(sim, limit=1)
    assert r.status_code in (500, 502, 503)
    assert r.json()["error"]["code"] == "INTERNAL_SERVER_ERROR"


def test_html_5xx(sim):
    sim.faults.configure(html_5xx=1.0)
    r = _get(sim, limit=1)
    assert r.status_code in (502, 503)
    assert r.headers["content-type"].startswith("text/html") and "<html>" in r.text


def test_connection_reset(sim):
    sim.faults.configure(reset=1.0)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        _get(sim, limit=1)
    sim.faults.configure()
    assert _get(sim, limit=1).status_code == 200


def test_truncated_body(sim):
    sim.faults.configure(truncate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        _get(sim, limit=1)
    assert sim.requests[-1]["fault"] == "truncate"


def test_slow_responses(sim):
    sim.faults.configure(slow=1.0, slow_seconds=0.4)
    started = time.monotonic()
    assert _get(sim, limit=1).status_code == 200
    assert time.monotonic() - started >= 0.4


def test_429_storm_with_zero_retry_after(sim):
    sim.faults.configure(rate_429=1.0, retry_after=0)
    statuses = [_get(sim, limit=1) for _ in range(5)]
    assert all(r.status_code == 429 and r.headers["Retry-After"] == "0" for r in statuses)


def test_fault_rates_apply_per_request_and_are_seeded(sim):
    def pattern():
        sim.faults.configure(http_5xx=0.5, seed=3)
        return [_get(sim, limit=1).status_code == 200 for _ in range(40)]

    first = pattern()
    assert 5 < sum(first) < 35
    assert pattern() == first
    assert not any(r.get("fault") for r in sim.requests if "_sim" in r["path"])
