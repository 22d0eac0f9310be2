"""The HTTP API (Starlette): routing, parameters, envelopes, errors, auth, limits and faults.

Every `/api/v3/...` request goes through one handler: record it, draw faults,
authenticate, rate-limit, check the scope, dispatch. Pages are assembled from
pre-encoded rows (`Dataset.query`) without decoding them.

Choices where the contract is silent (documented for clients):
- startTime/endTime are inclusive at both ends; an inverted range is empty.
- `limit` must be at least 1 (else 400 INVALID_PARAMETER, details.parameter);
  above the endpoint's maximum (`shapes.MAX_LIMIT`) it is clamped. `offset` >= 0.
  An unknown `sort` falls back to the default sort (the metadata says which
  was used); an unknown `order` is 400.
- csv and ndjson bodies carry only the rows; pagination goes in the headers
  `X-Total-Count`, `X-Has-More` and `X-Next-Offset`.
- `metadata.processing.processingTimeMs` is derived from the page size, not
  measured, so identical requests give identical bytes.
- `_warnings` (MISSING_INDEX) is added when a non-default sort is combined with
  a time range or a category filter, on every plain experiment-scope query of
  one experiment (its index is "not deployed"; the rows are still complete),
  and when the room listing hits its cap.
- Participant scope is served for every type except rooms and participants
  (the docs: experiment and room scope only); it filters the room given in
  `roomId` by participantId (chat: by senderId).
- 401 answers carry the code AUTHENTICATION_ERROR (the SDK's fixture).
- check-access answers 200 with `canView`/`canExport` false for an experiment
  the key cannot see (unknown ones included).
- Counts are keyed by the SDK's names (`textchat`, `continuousrating`, ...),
  one object in a one-item `data` list.
- The deployments list comes in one unpaginated page; `/deployments/{id}/sessions`
  returns up to 5,000 rooms in one page.
- The download-path mint endpoint answers 404 while a recording is processing
  or when it failed; a signed URL that was altered gets 403 and one that
  expired gets 400, each with an XML body, as the storage service does.
- Time-series types given as data (`series.Series`) are served at every scope,
  need the scope they name (none: any valid key) and appear in the counts
  under their `count_name` only.
- `/data/agent-decisions/...` and `/data/agent-runs/...` exist (the SDK's
  get_all_data calls them) and return no rows: the dataset has no AI agents.
"""

from __future__ import annotations

import asyncio
import csv
import io
import socket
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import extras, shapes
from .auth import SCOPE_FOR_TYPE, KeyRing, grants
from .dataset import DATA_TYPES, Dataset
from .faults import Faults
from .media import MediaFault, media_bytes, parse_range
from .ratelimit import RateLimiter
from .timeutil import iso, parse_iso

API_PREFIX = "/api/v3"
VERSION = "3.0.0"
SCOPES = ("experiment", "room", "participant")
TYPE_SCOPES = {t: SCOPES for t in DATA_TYPES} | {
    "rooms": ("experiment", "room"),
    "participants": ("experiment", "room"),
}
DATA_ENDPOINT_TYPES = tuple(t for t in DATA_TYPES if t not in ("deployments", "experiments"))
TYPE_FILTERS = {
    "events": ("category",),
    "components": ("componentType", "completed", "stateId"),
    "participants": ("completionCode",),
}
FILTER_NAMES = tuple(name for names in TYPE_FILTERS.values() for name in names)
# the experiment (by index) whose plain experiment-scope queries warn of a missing index
WARN_EXPERIMENT_INDEX = 2


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def _bad(parameter: str, message: str, **extra: Any) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER", message, {"parameter": parameter, **extra})


def _not_found(resource: str, ident: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{resource} not found: {ident}", {"resource": resource})


def error_response(err: ApiError, headers: dict | None = None) -> Response:
    body = {"status": "error", "error": {"code": err.code, "message": err.message}}
    if err.details is not None:
        body["error"]["details"] = err.details
    return Response(orjson.dumps(body), err.status, headers, "application/json")


class SimApp:
    """Holds the simulator's state that requests need; `starlette()` builds the ASGI app."""

    def __init__(
        self,
        dataset: Dataset,
        keys: KeyRing,
        faults: Faults,
        limiter: RateLimiter,
        transport_for: Callable[[Any], Any],
    ) -> None:
        self.ds = dataset
        self.keys = keys
        self.faults = faults
        self.limiter = limiter
        self.transport_for = transport_for
        self.requests: list[dict] = []
        self.media_url_ttl = 300.0
        self.media_faults: dict[str, MediaFault] = {}  # recording id -> scripted fault
        self.server_root = "http://127.0.0.1:0"
        self.on_request = None  # test hook: called with each logged request, after its answer

    def starlette(self) -> Starlette:
        return Starlette(
            routes=[
                Route(API_PREFIX + "/{rest:path}", self.api, methods=["GET"]),
                Route("/media/{recording_id}", self.media, methods=["GET", "HEAD"]),
            ]
        )

    # -- plumbing -----------------------------------------------------------

    def _log(self, request: Request, status: int | None, fault: str | None = None) -> None:
        entry = {
            "method": request.method,
            "path": request.url.path,
            "params": dict(request.query_params),
            "status": status,
        }
        if fault:
            entry["fault"] = fault
        org = request.headers.get("x-organization-id")
        if org is not None:
            entry["org"] = org
        self.requests.append(entry)
        if self.on_request is not None:
            self.on_request(entry)

    async def _fault(self, request: Request) -> Response | None:
        if not self.faults.active:
            return None
        draw = self.faults.draw(request.url.path)
        if draw.slow:
            await asyncio.sleep(draw.slow)
        if draw.kind is None:
            return None
        if draw.kind == "trickle":  # the real answer, slowly: logged when it is made
            return _TrickledResponse(self.faults.trickle_seconds, self.transport_for)
        self._log(request, draw.status if "5xx" in draw.kind else None, draw.kind)
        if draw.kind == "http_5xx":
            err = ApiError(draw.status, "INTERNAL_SERVER_ERROR", "Internal server error")
            self.requests[-1]["status"] = draw.status
            return error_response(err)
        if draw.kind == "html_5xx":
            html = (
                f"<html><head><title>{draw.status} Bad Gateway</title></head><body>"
                f"<center><h1>{draw.status} Bad Gateway</h1></center><hr><center>nginx</center>"
                "</body></html>"
            ).encode()
            return Response(html, draw.status, media_type="text/html")
        if draw.kind == "rate_429":
            self.requests[-1]["status"] = 429
            err = ApiError(429, "RATE_LIMIT_EXCEEDED", "Too many requests", {"fault": True})
            return error_response(err, {"Retry-After": str(self.faults.retry_after)})
        if draw.kind == "reset":
            return _ResetResponse(self.transport_for)
        self.requests[-1]["status"] = 200
        return _TruncatedResponse(self.transport_for)

    # -- /api/v3 ------------------------------------------------------------

    async def api(self, request: Request) -> Response:
        rest = request.path_params["rest"].strip("/")
        if rest.startswith("_sim/"):
            response = self._admin(rest[5:])
            self._log(request, response.status_code)
            return response
        faulty = await self._fault(request)
        if faulty is not None and not isinstance(faulty, _TrickledResponse):
            return faulty
        try:
            response = self._dispatch(request, _segments(request))
        except ApiError as err:
            headers = None
            if err.status == 429:
                headers = {"Retry-After": str(err.details.get("retryAfter", 0))}
            response = error_response(err, headers)
        self._log(request, response.status_code)
        return _trickled(faulty, response, self.requests[-1])

    def _admin(self, what: str) -> Response:
        if what == "defects":
            return Response(orjson.dumps(self.ds.defects), media_type="application/json")
        if what == "clock":
            body = {"now": iso(self.ds.clock.ms), "live": self.ds.live}
            return Response(orjson.dumps(body), media_type="application/json")
        return error_response(_not_found("admin endpoint", what))

    def _dispatch(self, request: Request, parts: list[str]) -> Response:
        if parts == ["health"]:
            body = {"status": "healthy", "version": VERSION, "timestamp": iso(self.ds.clock.ms)}
            return _json(body)
        scopes = self.keys.scopes(request.headers.get("x-api-key"))
        if scopes is None:
            missing = not request.headers.get("x-api-key")
            raise ApiError(
                401,
                "AUTHENTICATION_ERROR",
                "Missing API key" if missing else "Invalid or expired API key",
            )
        key = request.headers["x-api-key"]
        endpoint = self._endpoint_name(parts)
        limited = self.limiter.check(key, endpoint)
        if limited is not None:
            retry, which = limited
            raise ApiError(
                429,
                "RATE_LIMIT_EXCEEDED",
                f"Rate limit exceeded ({which.replace('_', ' ')})",
                {"limit": which, "retryAfter": retry},
            )
        q = request.query_params
        if parts and parts[0] == "data" and len(parts) >= 3:
            return self._data(parts[1:], q, scopes)
        if parts and parts[0] == "deployments":
            self._need(scopes, SCOPE_FOR_TYPE["deployments"])
            return self._deployments(parts[1:], q)
        if parts and parts[0] == "experiments":
            self._need(scopes, "read:experiments")
            return self._experiments(parts[1:], q)
        raise _not_found("endpoint", "/" + "/".join(parts))

    @staticmethod
    def _endpoint_name(parts: list[str]) -> str:
        if parts[:1] == ["data"] and len(parts) >= 4:
            if parts[1] in ("check-access", "counts", "agent-decisions", "agent-runs"):
                return "/data/" + parts[1]
            if parts[1:3] == ["recordings", "download"]:
                return "/data/recordings/download"
            return "/" + "/".join(parts[:-1])
        if parts[:1] == ["deployments"] and len(parts) == 3:
            return "/deployments/sessions"
        return "/" + (parts[0] if parts else "")

    @staticmethod
    def _need(scopes: frozenset[str], required: tuple[str, ...] | str | None) -> None:
        if required and not grants(scopes, required):
            first = required if isinstance(required, str) else required[0]
            raise ApiError(
                403,
                "FORBIDDEN",
                f"Insufficient scopes. Required: {first}",
                {"required": [first], "provided": sorted(scopes)},
            )

    # -- /data --------------------------------------------------------------

    def _data(self, parts: list[str], q, scopes) -> Response:
        head = parts[0]
        if head == "check-access" and len(parts) == 3 and parts[1] == "experiment":
            known = parts[2] in self.ds.experiment_ids
            body = {"experimentId": parts[2], "canView": known, "canExport": known}
            return _json(body, True)
        if head == "counts" and len(parts) == 3 and parts[1] == "participant":
            self._need(scopes, "read:events")
            return self._counts(parts[2], q)
        if head == "recordings" and len(parts) == 4 and parts[1] == "download":
            self._need(scopes, "read:recordings")
            return self._mint(parts[2], parts[3])
        if head in ("agent-decisions", "agent-runs", "variables") and len(parts) == 3:
            return self._extra(head, parts[1], parts[2], q)
        if head == "agent-decisions" and len(parts) == 5 and parts[1:4:2] == ["room", "decision"]:
            return self._decision(parts[2], parts[4])
        scope, scope_id = parts[-2], parts[-1]
        data_type = "/".join(parts[:-2])
        if data_type not in DATA_ENDPOINT_TYPES and data_type not in self.ds.series:
            raise _not_found("data type", data_type)
        if scope not in SCOPES:
            raise _bad("scope", f"scope must be one of {', '.join(SCOPES)}", value=scope)
        if scope not in TYPE_SCOPES.get(data_type, SCOPES):
            raise _bad("scope", f"{data_type} cannot be read at {scope} scope", value=scope)
        spec = self.ds.series.get(data_type)
        self._need(scopes, SCOPE_FOR_TYPE[data_type] if spec is None else spec.scope)
        return self._list(data_type, scope, scope_id, q)

    def _experiment(self, experiment_id: str) -> str:
        if experiment_id not in self.ds.experiment_ids:
            raise _not_found("experiment", experiment_id)
        return experiment_id

    def _room(self, room_id: str | None) -> str:
        room = self.ds.rooms.get(room_id or "")
        if room is None or room.created_at > self.ds.cutoff:
            raise _not_found("room", room_id or "")
        return room.experiment_id

    def _participant(self, participant_id: str, room_id: str | None) -> str:
        if not room_id:
            raise _bad("roomId", "roomId is required at participant scope")
        exp = self._room(room_id)
        p = self.ds.participants.get((room_id, participant_id))
        if p is None or p.joined_at > self.ds.cutoff:
            raise _not_found("participant", participant_id)
        return exp

    def _list(self, data_type: str, scope: str, scope_id: str, q) -> Response:
        filters: dict[str, Any] = {}
        if scope == "experiment":
            exp = self._experiment(scope_id)
            if q.get("roomId"):
                filters["roomId"] = q["roomId"]
        elif scope == "room":
            exp = self._room(scope_id)
            filters["roomId"] = scope_id
        else:
            exp = self._participant(scope_id, q.get("roomId"))
            filters["roomId"] = q["roomId"]
            filters["participantId"] = scope_id
        if q.get("deploymentId"):
            filters["deploymentId"] = q["deploymentId"]
        for name in TYPE_FILTERS.get(data_type, ()):
            value = q.get(name)
            if value is None or value == "":
                continue
            if name == "completed":
                if value.lower() not in ("true", "false"):
                    raise _bad("completed", "completed must be true or false", value=value)
                filters[name] = value.lower() == "true"
            else:
                filters[name] = value
        spec = self.ds.series.get(data_type)
        max_limit = shapes.MAX_LIMIT[data_type] if spec is None else spec.max_limit
        paging = _paging(q, self.ds.sorts(data_type), max_limit)
        served = self._broken_promises(paging)
        fmt = q.get("format", "json")
        if fmt not in ("json", "csv", "ndjson"):
            raise _bad("format", "format must be json, csv or ndjson", value=fmt)
        window = q.get("aggregationWindow")
        if data_type == "sync" and window not in (None, ""):
            return self._aggregated_sync(exp, scope, scope_id, filters, paging, window, fmt)
        sep = b"\n" if fmt == "ndjson" else b","
        total, page, n = self.ds.query(
            data_type,
            exp,
            filters,
            paging["start"],
            served["end"],
            paging["sort"],
            paging["desc"],
            paging["offset"],
            served["limit"],
            sep,
        )
        warnings = []
        if paging["sort"] != self.ds.time_field[data_type] and (
            paging["start"] is not None or paging["end"] is not None or "category" in filters
        ):
            warnings.append(
                "MISSING_INDEX: The query requires an index that is not deployed "
                f"(sort={paging['sort']} with a filter). Results may be incomplete."
            )
        if self._plain_warning(scope, exp, q):
            warnings.append(
                f"MISSING_INDEX: Query for experiment/{exp} requires a composite index "
                "that is not deployed. Results may be incomplete."
            )
        if data_type == "rooms" and total >= 5000:
            warnings.append("ROOM_LIMIT: at most 5,000 rooms are returned.")
        names = ("deploymentId", "roomId", *TYPE_FILTERS.get(data_type, ()))
        extra = {k: q[k] for k in names if q.get(k)}
        if data_type == "events":
            extra.setdefault("category", None)
        return self._page(data_type, scope, scope_id, exp, paging, total, page, n, fmt,
                          extra, warnings)  # fmt: skip

    def _broken_promises(self, paging: dict[str, Any]) -> dict[str, Any]:
        """Apply the promises this server is set to break (see faults.py): `paging` is
        changed where the answer echoes the change (order); the returned bounds and
        limit are what is served without saying so."""
        faults = self.faults
        if faults.ignore_order:
            paging["desc"] = False
        end, limit = paging["end"], paging["limit"]
        if faults.exclusive_end and end is not None:
            end -= 1  # times are whole milliseconds
        if faults.limit_cap is not None:
            limit = min(limit, faults.limit_cap)
        return {"end": end, "limit": limit}

    def _plain_warning(self, scope: str, exp: str, q) -> bool:
        """A plain query (no filter, default sort) on the experiment whose index is missing."""
        if scope != "experiment" or self.ds.experiment_ids.index(exp) != WARN_EXPERIMENT_INDEX:
            return False
        filters = ("startTime", "endTime", "sort", "roomId", "deploymentId", *FILTER_NAMES)
        return not any(q.get(name) for name in filters)

    def _page(self, data_type, scope, scope_id, exp, paging, total, page, n, fmt, extra,
              warnings) -> Response:  # fmt: skip
        offset, limit = paging["offset"], paging["limit"]
        has_more = offset + n < total
        total = max(0, total + self.faults.total_skew)  # hasMore stays true to the rows
        pagination = {
            "total": total,
            "returned": n,
            "hasMore": has_more,
            "limit": limit,
            "offset": offset,
        }
        if has_more:
            pagination["nextOffset"] = offset + n
        if fmt != "json":
            headers = {"X-Total-Count": str(total), "X-Has-More": str(has_more).lower()}
            if has_more:
                headers["X-Next-Offset"] = str(offset + n)
            if fmt == "ndjson":
                body = page + b"\n" if n else b""
                return Response(body, 200, headers, "application/x-ndjson")
            return Response(_csv(page, n), 200, headers, "text/csv; charset=utf-8")
        started = self._started_at(scope, scope_id, exp, extra.get("roomId"))
        kind, _, rating = data_type.partition("/")
        meta: dict[str, Any] = {
            "dataType": kind,
            **({"ratingType": rating} if rating else {}),
            "scope": scope,
            "scopeId": scope_id,
            "timestamp": iso(self.ds.clock.ms),
            "query": {
                "startTime": paging["start_raw"],
                "endTime": paging["end_raw"],
                "limit": limit,
                "offset": offset,
                "sort": paging["sort"],
                "order": "desc" if paging["desc"] else "asc",
                **extra,
            },
            "pagination": pagination,
            "processing": {
                "processingTimeMs": 3 + n // 40,
                "enriched": True,
                "version": VERSION,
                "experimentStartedAt": started,
            },
        }
        if warnings:
            meta["_warnings"] = warnings
        return _envelope(meta, page)

    def _started_at(self, scope: str, scope_id: str, exp: str, room_id: str | None) -> str | None:
        if scope == "experiment":
            deps = [d for d in self.ds.deployments.values() if d.experiment_id == exp]
            return iso(min(d.created_at for d in deps)) if deps else None
        room = self.ds.rooms.get(scope_id if scope == "room" else "") or None
        if room is None and scope == "participant":
            room = self.ds.rooms.get(room_id or "")
        if room is None or room.started_at is None or room.started_at > self.ds.cutoff:
            return None
        return iso(room.started_at)

    def _aggregated_sync(self, exp, scope, scope_id, filters, paging, window, fmt) -> Response:
        try:
            width = int(window)
            if width <= 0:
                raise ValueError
        except ValueError:
            raise _bad("aggregationWindow", "aggregationWindow must be a positive integer (ms)",
                       value=window) from None  # fmt: skip
        total, page, n = self.ds.query(
            "sync", exp, filters, paging["start"], paging["end"], None, False, 0, 10**9
        )
        rows = orjson.loads(b"[" + page + b"]")
        buckets: dict[tuple, list[dict]] = {}
        for row in rows:
            t = parse_iso(row["timestamp"])
            key = (t - t % width, row["roomId"], row["participantId"])
            buckets.setdefault(key, []).append(row)
        out = []
        for (start, room, participant), items in sorted(buckets.items()):
            k = len(items)
            out.append(
                {
                    "experimentId": exp,
                    "roomId": room,
                    "participantId": participant,
                    "timestamp": iso(start),
                    "windowMs": width,
                    "sampleCount": k,
                    "timeDrift": round(sum(i["timeDrift"] for i in items) / k, 1),
                    "playbackRate": round(sum(i["playbackRate"] for i in items) / k, 4),
                    "syncQuality": round(sum(i["syncQuality"] for i in items) / k, 3),
                    "latency": round(sum(i["latency"] for i in items) / k, 1),
                }
            )
        if paging["desc"]:
            out.reverse()
        chunk = out[paging["offset"] : paging["offset"] + paging["limit"]]
        sep = b"\n" if fmt == "ndjson" else b","
        body = sep.join(orjson.dumps(r) for r in chunk)
        extra = {"aggregationWindow": width}
        return self._page("sync", scope, scope_id, exp, paging, len(out), body, len(chunk), fmt,
                          extra, [])  # fmt: skip

    def _counts(self, participant_id: str, q) -> Response:
        room_id = q.get("roomId")
        exp = self._participant(participant_id, room_id)
        filters = {"roomId": room_id, "participantId": participant_id}
        counts = {}
        names = shapes.COUNT_NAMES | {s.path: s.count_name for s in self.ds.series.values()}
        for data_type in (*self.ds.series_types, "recordings"):
            if names[data_type] is not None:
                total, _, _ = self.ds.query(data_type, exp, filters, limit=0)
                counts[names[data_type]] = total
        data = {
            "participantId": participant_id,
            "roomId": room_id,
            "counts": counts,
            "hasData": {k: v > 0 for k, v in counts.items()},
        }
        meta = {"dataType": "counts", "scope": "participant", "scopeId": participant_id}
        return _envelope(meta, orjson.dumps(data))  # one item in the `data` list

    def _extra(self, head: str, scope: str, scope_id: str, q) -> Response:
        """Room variables, agent decisions (experiment or room scope) and agent runs.

        An experiment's agent decisions come whole up to `limit` (default
        EXTRA_LIMIT); a longer log is cut there and says so (`truncated`)."""
        allowed = {"variables": ("room",), "agent-runs": ("experiment",)}
        if scope not in allowed.get(head, ("experiment", "room")):
            raise _bad("scope", f"{head} cannot be read at {scope} scope", value=scope)
        if scope == "room":
            exp = self._room(scope_id)
            if head == "variables":
                rows = extras.variable_rows(self.ds, scope_id)
            else:
                rows = extras.agent_decision_rows(self.ds, exp, scope_id)
        else:
            exp = self._experiment(scope_id)
            runs = head == "agent-runs"
            rows = (extras.agent_run_rows if runs else extras.agent_decision_rows)(self.ds, exp)
        name = {"agent-decisions": "agentDecisions", "agent-runs": "agentRuns"}.get(head, head)
        meta: dict[str, Any] = {"dataType": name, "scope": scope, "scopeId": scope_id}
        if head == "agent-decisions" and scope == "experiment":
            limit = _int(q, "limit", extras.EXTRA_LIMIT, 1, None)
            meta["truncated"] = len(rows) > limit
            rows = rows[:limit]
        return _envelope(meta, b",".join(orjson.dumps(r) for r in rows))

    def _decision(self, room_id: str, decision_id: str) -> Response:
        """One agent decision with its prompt, reasoning chain and peer model."""
        exp = self._room(room_id)
        found = extras.decision_detail(self.ds, exp, room_id, decision_id)
        if found is None:
            raise _not_found("agent decision", decision_id)
        meta = {"dataType": "agentDecisions", "scope": "room", "scopeId": room_id}
        return Response(
            orjson.dumps({"status": "success", "data": found, "metadata": meta}),
            media_type="application/json",
        )

    # -- recordings media ---------------------------------------------------

    def _mint(self, room_id: str, recording_id: str) -> Response:
        rec = self.ds.recordings.get(recording_id)
        if rec is None or rec.room_id != room_id or rec.start > self.ds.cutoff:
            raise _not_found("recording", recording_id)
        status = "complete" if rec.ready_at <= self.ds.cutoff and not rec.failed else None
        if status is None:
            state = "failed" if rec.failed and rec.ready_at <= self.ds.cutoff else "processing"
            raise ApiError(404, "NOT_FOUND", f"recording file not available ({state})",
                           {"resource": "recording file", "status": state})  # fmt: skip
        expires = int((time.time() + self.media_url_ttl) * 1000)
        sig = self.ds.signer.sign(recording_id, expires)
        url = f"{self.server_root}/media/{recording_id}?expires={expires}&sig={sig}"
        return _json({"url": url, "expiresAt": iso(expires)}, True)

    async def media(self, request: Request) -> Response:
        faulty = await self._fault(request)
        if isinstance(faulty, _TruncatedResponse):
            # storage truncates its own way: the file's real headers, half its bytes
            response = self._media(request)
            if response.status_code in (200, 206):
                return _DroppedResponse(response, self.transport_for, 0.0)
            return response
        if faulty is not None and not isinstance(faulty, _TrickledResponse):
            return faulty
        response = self._media(request)
        self._log(request, response.status_code)
        self.requests[-1]["range"] = request.headers.get("range")
        if faulty is not None:
            return _trickled(faulty, response, self.requests[-1])
        fault = self._media_fault(request, response, "drop")
        if fault is not None:
            self.requests[-1]["fault"] = "drop"
            return _DroppedResponse(response, self.transport_for, fault.delay)
        return response

    def _media_fault(self, request: Request, response: Response | None, kind: str):
        """The scripted fault of `kind` due on this request, counted as used."""
        fault = self.media_faults.get(request.path_params["recording_id"])
        if fault is None or fault.kind != kind or request.method != "GET":
            return None
        if response is not None and response.status_code not in (200, 206):
            return None
        fault.times -= 1
        if fault.times <= 0:
            del self.media_faults[request.path_params["recording_id"]]
        return fault

    def _media(self, request: Request) -> Response:
        rid = request.path_params["recording_id"]
        q = request.query_params
        rec = self.ds.recordings.get(rid)
        try:
            expires = int(q.get("expires", ""))
        except ValueError:
            expires = -1
        if rec is None or not self.ds.signer.valid(rid, expires, q.get("sig", "")):
            return _storage_error("SignatureDoesNotMatch", "The request signature is invalid.")
        if expires < time.time() * 1000:
            return _storage_error("ExpiredToken", "The provided token has expired.", 400)
        if rec.failed or rec.ready_at > self.ds.cutoff:
            return _storage_error("NoSuchKey", "The specified key does not exist.", 404)
        data = media_bytes(self.ds.seed, rec)
        resize = self._media_fault(request, None, "resize")
        if resize is not None:
            data = (
                data[: len(data) + resize.delta]
                if resize.delta < 0
                else data + b"\0" * resize.delta
            )
        size = len(data)
        ctype = {"mp4": "video/mp4", "webm": "video/webm"}[rec.fmt]
        if rec.kind == "audio":
            ctype = "audio/webm"
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{rec.id}"'}
        wanted = parse_range(request.headers.get("range"), size)
        if wanted == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{size}"
            return Response(b"", 416, headers)
        if wanted is None:
            body, status = data, 200
        else:
            first, last = wanted
            body, status = data[first : last + 1], 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return Response(None, status, headers, ctype)
        return Response(body, status, headers, ctype)

    # -- deployments and experiments ----------------------------------------

    def _deployments(self, parts: list[str], q) -> Response:
        if not parts:
            rows = self.ds.records("deployments")
            if q.get("experimentId"):
                rows = [r for r in rows if r["experimentId"] == q["experimentId"]]
            if q.get("status"):
                rows = [r for r in rows if r["status"] == q["status"]]
            meta = {"dataType": "deployments", "scope": "user", "scopeId": shapes.OWNER_ID}
            body = b",".join(orjson.dumps(r) for r in rows)
            return _envelope(meta, body)
        dep_id = parts[0]
        found = [r for r in self.ds.records("deployments") if r["id"] == dep_id]
        if not found:
            raise _not_found("deployment", dep_id)
        if len(parts) == 1:
            meta = {"dataType": "deployment", "scope": "deployment", "scopeId": dep_id}
            detail = shapes.deployment_detail(found[0], self.ds.deployments[dep_id])
            return _json_envelope(meta, detail)
        if parts[1:] == ["sessions"]:
            rows = extras.session_rows(self.ds, found[0])
            return self._listing("sessions", rows, q, 5000, ("deployment", dep_id))
        raise _not_found("endpoint", "/deployments/" + "/".join(parts))

    def _experiments(self, parts: list[str], q) -> Response:
        rows = self.ds.records("experiments")
        if not parts:
            term = (q.get("search") or "").lower()
            if term:
                rows = [r for r in rows if term in f"{r['name']} {r['description'] or ''}".lower()]
            return self._listing("experiments", rows, q, 100, ("user", shapes.OWNER_ID))
        found = [r for r in rows if r["id"] == parts[0]]
        if not found or len(parts) > 2 or parts[1:] not in ([], ["config"], ["export"]):
            raise _not_found("experiment", "/".join(parts))
        plan = self.ds.experiment_plans[parts[0]]
        meta = {"dataType": "experiment", "scope": "experiment", "scopeId": parts[0]}
        if parts[1:] == ["config"]:
            return _json_envelope(meta, [shapes.experiment_config(plan)])
        if parts[1:] == ["export"]:
            extra, document = shapes.experiment_export(plan)
            return _json_envelope({**meta, "dataType": "experimentExport", **extra}, [document])
        return _json_envelope(meta, [shapes.experiment_detail(found[0], plan)])

    def _listing(self, name: str, rows: list[dict], q, max_limit: int, scope: tuple) -> Response:
        offset = _int(q, "offset", 0, 0, None)
        limit = min(_int(q, "limit", max_limit, 1, None), max_limit)
        chunk = rows[offset : offset + limit]
        n = len(chunk)
        pagination = {
            "total": len(rows),
            "returned": n,
            "hasMore": offset + n < len(rows),
            "limit": limit,
            "offset": offset,
        }
        if pagination["hasMore"]:
            pagination["nextOffset"] = offset + n
        meta = {
            "dataType": name,
            "scope": scope[0],
            "scopeId": scope[1],
            "timestamp": iso(self.ds.clock.ms),
            "pagination": pagination,
        }
        return _envelope(meta, b",".join(orjson.dumps(r) for r in chunk))


# -- helpers ----------------------------------------------------------------


def _segments(request: Request) -> list[str]:
    """The path after /api/v3 as decoded segments, split before decoding, so an id
    holding `/` (sent as %2F) stays one segment."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    rest = raw.decode("latin-1")[len(API_PREFIX) :].strip("/")
    return [unquote(part) for part in rest.split("/")] if rest else []


def _json(data: Any, envelope: bool = False) -> Response:
    body = {"status": "success", "data": data} if envelope else data
    return Response(orjson.dumps(body), media_type="application/json")


def _json_envelope(meta: dict, data: Any) -> Response:
    body = {"status": "success", "metadata": meta, "data": data}
    return Response(orjson.dumps(body), media_type="application/json")


def _envelope(meta: dict, rows: bytes) -> Response:
    body = b'{"status":"success","metadata":' + orjson.dumps(meta) + b',"data":['
    return Response(body + rows + b"]}", media_type="application/json")


def _storage_error(code: str, message: str, status: int = 403) -> Response:
    xml = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(xml.encode(), status, media_type="application/xml")


def _int(q, name: str, default: int, lo: int | None, hi: int | None) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"{name} must be an integer", value=raw) from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise _bad(name, f"{name} must be {bounds}", value=value)
    return value


def _paging(q, sorts: tuple[str, ...], max_limit: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("startTime", "endTime"):
        raw = q.get(name)
        out[name + "_raw"] = raw or None
        if raw:
            try:
                out[name] = parse_iso(raw)
            except ValueError:
                raise _bad(name, f"{name} must be an ISO 8601 time", value=raw) from None
        else:
            out[name] = None
    sort = q.get("sort") or sorts[0]
    if sort not in sorts:
        sort = sorts[0]  # the API ignores a sort it does not know
    order = (q.get("order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise _bad("order", "order must be asc or desc", value=order)
    return {
        "start": out["startTime"],
        "end": out["endTime"],
        "start_raw": out["startTime_raw"],
        "end_raw": out["endTime_raw"],
        "sort": sort,
        "desc": order == "desc",
        "offset": _int(q, "offset", 0, 0, None),
        "limit": min(_int(q, "limit", shapes.DEFAULT_LIMIT, 1, None), max_limit),
    }


def _csv(page: bytes, n: int) -> bytes:
    if not n:
        return b""
    rows = orjson.loads(b"[" + page + b"]")
    names: list[str] = []
    for row in rows:
        for name in row:
            if name not in names:
                names.append(name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in names])
    return out.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _trickled(fault: Response | None, response: Response, entry: dict) -> Response:
    """`response`, sent through the trickle fault when it was drawn (and logged as such)."""
    if not isinstance(fault, _TrickledResponse):
        return response
    entry["fault"] = "trickle"
    fault.inner = response
    return fault


class _TrickledResponse(Response):
    """Sends a response's headers at once, then its body one byte every `seconds`,
    until the body is sent or the client has gone."""

    def __init__(self, seconds: float, transport_for) -> None:
        super().__init__(b"")
        self.seconds = seconds
        self.inner: Response | None = None
        self._transport_for = transport_for

    async def __call__(self, scope, receive, send) -> None:
        inner = self.inner
        assert inner is not None
        start = {"type": "http.response.start", "status": inner.status_code}
        await send({**start, "headers": inner.raw_headers})
        body = inner.body
        for i in range(len(body)):
            transport = self._transport_for(scope.get("client"))
            if transport is None or transport.is_closing():
                return  # the client gave up: stop sending into a closed connection
            await send({"type": "http.response.body", "body": body[i : i + 1], "more_body": True})
            await asyncio.sleep(self.seconds)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _ResetResponse(Response):
    """Resets the TCP connection (RST) instead of answering."""

    def __init__(self, transport_for) -> None:
        super().__init__(b"")
        self._transport_for = transport_for

    async def __call__(self, scope, receive, send) -> None:
        transport = self._transport_for(scope.get("client"))
        if transport is None:
            raise ConnectionResetError("simulated reset")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


class _DroppedResponse(Response):
    """Sends a media response's headers and half its body, then closes the connection."""

    def __init__(self, response: Response, transport_for, delay: float) -> None:
        super().__init__(b"")
        self._inner = response
        self._transport_for = transport_for
        self._delay = delay

    async def __call__(self, scope, receive, send) -> None:
        body = self._inner.body
        start = {"type": "http.response.start", "status": self._inner.status_code}
        await send({**start, "headers": self._inner.raw_headers})
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        await asyncio.sleep(max(self._delay, 0.01))  # the half body reaches the client first
        transport = self._transport_for(scope.get("client"))
        if transport is not None:
            transport.close()
        else:
            raise ConnectionError("simulated dropped connection")


class _TruncatedResponse(Response):
    """Announces a full body, sends half of it, then closes the connection."""

    def __init__(self, transport_for) -> None:
        super().__init__(b"")
        self._transport_for = transport_for

    async def __call__(self, scope, receive, send) -> None:
        body = b'{"status":"success","metadata":{"pagination":{"total":1}},"data":[' + (
            b'{"truncated":"' + b"x" * 4000 + b'"}]}'
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        await asyncio.sleep(0.01)  # let the half body reach the socket before closing
        transport = self._transport_for(scope.get("client"))
        if transport is not None:
            transport.close()
        else:
            raise ConnectionError("simulated truncation")
