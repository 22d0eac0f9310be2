"""A hostile API server for the tests: a loopback proxy in front of the simulator that
misbehaves as each test picks.

`HostileServer(upstream)` forwards every GET to `upstream` (a simulator's base URL)
and hands the reply to `rewrite(reply)`, which may change it or return another:
echo the key in an error, put signed URLs in nested fields, never end `hasMore`,
trickle the body a byte at a time, send a bad Retry-After, a gzip bomb, a huge
`total`, ids with newlines. Without an upstream, `rewrite` gets an empty 404 reply
to replace.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson


@dataclass
class Reply:
    """One response: what the upstream sent, for a test to rewrite."""

    path: str  # the request path after the base URL, without the query
    query: dict[str, str]
    status: int = 404
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    trickle_seconds: float = 0.0  # pause between single bytes of the body

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @json.setter
    def json(self, value: Any) -> None:
        self.body = json.dumps(value).encode()  # the stdlib: integers beyond 64 bits too
        self.headers["content-type"] = "application/json"


Rewrite = Callable[[Reply], Reply | None]


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A small gzip body that inflates to `inflated_bytes` of spaces inside a JSON string."""
    out = gzip.compress(b'{"data": "' + b" " * inflated_bytes + b'"}', compresslevel=9)
    return out


class HostileServer:
    """Started on a free loopback port; `base_url` is what a client points at."""

    def __init__(self, upstream: str | None = None, rewrite: Rewrite | None = None):
        self.upstream = upstream.rstrip("/") + "/" if upstream else None
        self.rewrite: Rewrite = rewrite or (lambda reply: reply)
        self.requests: list[Reply] = []
        self._http = httpx.Client(timeout=30)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                server._serve(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # clients that hang up
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v3"

    def start(self) -> HostileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = httpx.URL(handler.path)
        path = url.path.removeprefix("/api/v3/")
        reply = Reply(path, dict(url.params))
        if self.upstream:
            headers = {
                k: v
                for k, v in handler.headers.items()
                if k.lower() not in ("host", "accept-encoding")
            }
            raw = handler.path.removeprefix("/api/v3/")  # still percent-encoded
            got = self._http.get(self.upstream + raw, headers=headers)
            reply.status, reply.body = got.status_code, got.content
            reply.headers = {
                k: v
                for k, v in got.headers.items()
                if k.lower() in ("content-type", "retry-after", "date")
            }
        reply = self.rewrite(reply) or reply
        self.requests.append(reply)
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("content-length", str(len(reply.body)))
            handler.end_headers()
            if reply.trickle_seconds:
                for i in range(len(reply.body)):
                    handler.wfile.write(reply.body[i : i + 1])
                    handler.wfile.flush()
                    time.sleep(reply.trickle_seconds)
            else:
                handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should
