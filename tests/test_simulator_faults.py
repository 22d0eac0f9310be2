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


# -- broken promises: a server that does not do what the docs say ---------------


def _times(r) -> list[str]:
    return [row["timestamp"] for row in r.json()["data"]]


def test_ignore_order_serves_ascending_and_echoes_asc(sim):
    honest = _get(sim, limit=5, order="desc")
    assert honest.json()["metadata"]["query"]["order"] == "desc"
    assert _times(honest) == sorted(_times(honest), reverse=True)
    sim.faults.configure(ignore_order=True)
    r = _get(sim, limit=5, order="desc")
    assert r.json()["metadata"]["query"]["order"] == "asc"
    assert _times(r) == sorted(_times(r)) and _times(r) == _times(_get(sim, limit=5))
    assert _times(r)[0] < _times(honest)[0]


def test_exclusive_end_drops_rows_at_end_time(sim):
    first = _get(sim, limit=1).json()["data"][0]["timestamp"]
    window = {"startTime": first, "endTime": first, "limit": 100}
    at_first = _get(sim, **window).json()
    assert at_first["metadata"]["pagination"]["total"] >= 1
    sim.faults.configure(exclusive_end=True)
    r = _get(sim, **window).json()
    assert r["data"] == [] and r["metadata"]["pagination"]["total"] == 0
    assert len(_get(sim, startTime=first, limit=100).json()["data"]) >= 1  # start inclusive


def test_total_skew_reports_a_total_the_rows_do_not_match(sim):
    honest = _get(sim, limit=1).json()["metadata"]["pagination"]["total"]
    sim.faults.configure(total_skew=7)
    page = _get(sim, limit=1).json()["metadata"]["pagination"]
    assert page["total"] == honest + 7 and page["hasMore"] and page["nextOffset"] == 1
    last = _get(sim, limit=1, offset=honest - 1).json()["metadata"]["pagination"]
    assert last["hasMore"] is False and last["total"] == honest + 7
    ndjson = _get(sim, limit=1, format="ndjson")
    assert ndjson.headers["X-Total-Count"] == str(honest + 7)
    sim.faults.configure(total_skew=-(10**9))
    assert _get(sim, limit=1).json()["metadata"]["pagination"]["total"] == 0


def test_limit_cap_serves_fewer_rows_than_asked_and_echoes_the_limit(sim):
    sim.faults.configure(limit_cap=3)
    body = _get(sim, limit=20).json()
    meta = body["metadata"]
    assert len(body["data"]) == 3
    assert meta["query"]["limit"] == 20 and meta["pagination"]["limit"] == 20
    assert meta["pagination"]["returned"] == 3 and meta["pagination"]["nextOffset"] == 3
    assert len(_get(sim, limit=2).json()["data"]) == 2
    with pytest.raises(ValueError):
        sim.faults.configure(limit_cap=0)


def test_trickle_sends_the_body_one_byte_at_a_time(sim):
    sim.faults.configure(trickle=1.0, trickle_seconds=0.2)
    headers = {"X-API-Key": sim.api_key}
    started = time.monotonic()
    with httpx.stream(
        "GET", _events_url(sim), params={"limit": 1}, headers=headers, timeout=30
    ) as r:
        assert r.status_code == 200
        chunks = []
        for chunk in r.iter_raw():
            chunks.append(chunk)
            if len(chunks) == 5:
                break
    assert [len(c) for c in chunks] == [1] * 5
    assert b"".join(chunks) == b'{"sta'
    assert time.monotonic() - started >= 0.8
    assert sim.requests[-1]["fault"] == "trickle" and sim.requests[-1]["status"] == 200
    sim.faults.configure(trickle=1.0, trickle_seconds=0.0)
    whole = _get(sim, limit=2)  # every byte arrives, in order
    assert whole.status_code == 200 and len(whole.json()["data"]) == 2
