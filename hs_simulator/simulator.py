"""`Simulator`: the dataset, the HTTP server and the test controls behind one object."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from .app import SimApp
from .auth import KeyRing, default_key
from .dataset import Dataset
from .faults import Faults
from .media import MediaFault
from .ratelimit import RateLimiter
from .series import Series
from .server import ServerThread, TransportRegistry
from .timeutil import Clock


class Simulator:
    """A HyperStudy v3 API on 127.0.0.1, serving a dataset generated from (seed, scale).

    scale 1.0 is about 10,000 events across three experiments (other types in
    proportion); scale 100 about 1M events. `defects=False` plants no defects.
    `hostile_ids=True` gives some experiments, rooms and participants ids made to
    attack paths and SQL (`..`, `../`, quotes, `'; DROP TABLE`, NUL), see generate.
    `experiments` cycles the three experiment designs to that many experiments; in
    live mode only the first `live_experiments` keep collecting data. `series` adds
    time-series types defined by data alone (see `series.Series`). `wide_ints=False`
    serves the same rows with every integer within the signed 64-bit range (the u64
    values moved below 2^63).
    """

    def __init__(
        self,
        seed: int = 1,
        scale: float = 1.0,
        live: bool = False,
        port: int = 0,
        defects: bool = True,
        hostile_ids: bool = False,
        experiments: int | None = None,
        live_experiments: int | None = None,
        series: Sequence[Series] = (),
        wide_ints: bool = True,
    ) -> None:
        self.seed = seed
        self.scale = scale
        self.live = live
        self.port = port
        self.dataset = Dataset(
            seed,
            scale,
            live,
            defects,
            hostile_ids,
            experiments,
            live_experiments,
            series,
            wide_ints,
        )
        self.keys = KeyRing()
        self.api_key = default_key(seed)
        self.keys.add(self.api_key, None)
        self.faults = Faults()
        self._limiter = RateLimiter()
        self._registry = TransportRegistry()
        self._app = SimApp(self.dataset, self.keys, self.faults, self._limiter, self._registry.get)
        self._server: ServerThread | None = None
        self.base_url: str | None = None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> str:
        if self._server is not None:
            return self.base_url  # type: ignore[return-value]
        server = ServerThread(self._app.starlette(), self.port, self._registry)
        root = f"http://127.0.0.1:{server.port}"
        self.dataset.base_url = root
        self._app.server_root = root
        server.start()
        self._server = server
        self.port = server.port
        self.base_url = root + "/api/v3"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- controls -----------------------------------------------------------

    def add_key(self, key: str, scopes: set[str] | None = None) -> None:
        self.keys.add(key, scopes)

    def set_rate_limits(
        self,
        per_hour: int | None = None,
        per_minute: int | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Per key per hour, per endpoint per minute (None: off); `clock` (seconds)
        replaces the wall clock the windows are measured on."""
        self._limiter.configure(per_hour, per_minute, clock)

    @property
    def media_url_ttl(self) -> float:
        return self._app.media_url_ttl

    @media_url_ttl.setter
    def media_url_ttl(self, seconds: float) -> None:
        self._app.media_url_ttl = float(seconds)

    def media_fault(
        self,
        recording_id: str,
        kind: str,
        *,
        times: int = 1,
        delay: float = 0.0,
        delta: int = -1000,
    ) -> None:
        """Script a fault on a recording's file: `drop` (half the body, then the connection
        closes, after `delay` s) or `resize` (the file served `delta` bytes off), `times` GETs."""
        if kind not in ("drop", "resize"):
            raise ValueError(f"unknown media fault {kind!r}")
        self._app.media_faults[recording_id] = MediaFault(kind, times, delay, delta)

    @property
    def legacy_url_ttl(self) -> float:
        """Seconds (wall clock) until the legacy recordings' downloadUrls expire."""
        return self.dataset.legacy_url_expires_ms / 1000 - time.time()

    @legacy_url_ttl.setter
    def legacy_url_ttl(self, seconds: float) -> None:
        """Re-sign the legacy downloadUrls to expire `seconds` from now (<= 0: expired)."""
        with self.dataset._lock:
            self.dataset.legacy_url_expires_ms = int((time.time() + seconds) * 1000)

    @property
    def cases(self) -> dict:
        """Where the dataset holds shapes a client must cope with (see Dataset.cases)."""
        return self.dataset.cases

    def override_recording(self, recording_id: str, **fields) -> None:
        """Serve a recording's listing record with `fields` replaced (e.g. hostile ids);
        its downloadPath still mints the real file unless overridden too."""
        with self.dataset._lock:
            self.dataset.recording_overrides[recording_id] = fields
            self.dataset.entity_version += 1

    def plant_fields(self, data_type: str, record_id: str, **fields) -> None:
        """Serve an entity record (rooms, participants, recordings) with `fields` replaced;
        a value `planted.ABSENT` removes the field."""
        self.dataset.plant_fields(data_type, record_id, fields)

    def plant_rows(
        self, data_type: str, experiment_id: str, records: list[dict], columns: dict | None = None
    ) -> None:
        """Serve `records` as rows of `data_type` in `experiment_id` (ground truth too)."""
        self.dataset.plant_rows(data_type, experiment_id, records, columns)

    @property
    def clock(self) -> Clock:
        return self.dataset.clock

    @property
    def now(self) -> datetime:
        return self.dataset.clock.now

    def advance(self, seconds: float) -> None:
        self.dataset.advance(seconds)

    def on_request(self, callback) -> None:
        """Call `callback(entry)` after each API request is answered (None: stop)."""
        self._app.on_request = callback

    def add_late_rows(self, *args, **kwargs) -> list[dict]:
        """See `Dataset.add_late_rows`."""
        return self.dataset.add_late_rows(*args, **kwargs)

    @property
    def defects(self) -> dict:
        return self.dataset.defects

    @property
    def requests(self) -> list[dict]:
        return list(self._app.requests)

    def reset_requests(self) -> None:
        self._app.requests.clear()
