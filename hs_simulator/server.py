"""Runs the ASGI app with uvicorn in a background thread, on 127.0.0.1 only.

The HTTP protocol class is subclassed only to remember each connection's
transport by client address, so the fault injector can reset or cut a
connection (something ASGI itself cannot express).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn

try:  # the C parser is much faster; fall back to h11 when httptools is absent
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base


class TransportRegistry:
    def __init__(self) -> None:
        self._by_client: dict[Any, asyncio.Transport] = {}

    def protocol_class(self) -> type:
        registry = self._by_client

        class Protocol(_Base):  # type: ignore[misc, valid-type]
            def connection_made(self, transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                peer = transport.get_extra_info("peername")
                if peer:
                    self._sim_peer = tuple(peer[:2])
                    registry[self._sim_peer] = transport

            def connection_lost(self, exc) -> None:
                registry.pop(getattr(self, "_sim_peer", None), None)
                super().connection_lost(exc)

        return Protocol

    def get(self, client: Any) -> asyncio.Transport | None:
        if not client:
            return None
        return self._by_client.get(tuple(client[:2]))


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1:`port` (0 = a free port) in a daemon thread."""

    def __init__(self, app: Any, port: int, registry: TransportRegistry) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="critical",
            access_log=False,
            lifespan="off",
            http=registry.protocol_class(),
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True,
            name=f"hs-sync-simulator:{self.port}",
        )  # fmt: skip

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the simulator's server thread exited during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator's server did not start in time")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
