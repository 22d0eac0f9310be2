"""Settings for a sync, layered: defaults < hs_sync.toml < environment < flags."""

from __future__ import annotations

import dataclasses
import grp
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from hs_sync import objstore, registry
from hs_sync.errors import ConfigError
from hs_sync.land import rawfile

DEFAULT_BASE_URL = "https://api.hyperstudy.io/api/v3"
CONFIG_FILE = "hs_sync.toml"
# DuckDB's working memory in a transform unless `memory_limit` says otherwise
DEFAULT_MEMORY_LIMIT = "256MB"

# Environment variables, named as the official SDK names them where it has them.
ENV = {
    "api_key": "HYPERSTUDY_API_KEY",
    "base_url": "HYPERSTUDY_BASE_URL",
    "org_id": "HYPERSTUDY_ORG_ID",
    "warehouse": "HS_SYNC_WAREHOUSE",
    "local_dir": "HS_SYNC_LOCAL_DIR",
    "catalog_uri": "HS_SYNC_CATALOG_URI",
    "state_dir": "HS_SYNC_STATE_DIR",
}


@dataclass(frozen=True)
class Config:
    """Everything a sync needs to know. Build with `load_config`."""

    api_key: str = field(default="", repr=False)  # never printed
    base_url: str = DEFAULT_BASE_URL
    org_id: str | None = None
    warehouse: Path = Path("warehouse")
    experiments: tuple[str, ...] = ()  # empty: every experiment GET /experiments returns
    types: tuple[str, ...] = ()  # empty: every registered data type
    rooms: tuple[str, ...] = ()  # re-pull these rooms at room scope (repair path)
    lookback_seconds: float = 300.0
    full_refresh: bool = False
    page_size: int = 1000
    concurrency: int = 4
    timeout_seconds: float = 60.0  # per read (connect, each chunk of the body)
    # A whole response, however it trickles: a page arrives in seconds, so a response
    # still arriving after this means the server is failing, and the run stops.
    request_deadline_seconds: float = 45.0
    max_run_seconds: float | None = None  # a run stops cleanly after this long (None: never)
    max_body_bytes: int = 64 * 1024 * 1024  # a response body, decompressed
    max_attempts: int = 6
    retry_floor_seconds: float = 0.5  # minimum wait on 429 even when Retry-After says 0
    retry_max_wait_seconds: float = 30.0
    budget_per_hour: int = 1000
    budget_per_minute: int = 100  # per endpoint
    lock_timeout_seconds: float = 5.0
    media: bool = True
    media_concurrency: int = 4
    freshness_hours: float = 26.0
    raw_compression: str = "zstd"  # raw data files: "zstd" or "none" (plain NDJSON)
    # An object-store warehouse (docs/dagster.md, "Outgrowing one machine"): `warehouse`
    # may be s3://bucket/prefix; it then lands in `warehouse_uri` and `warehouse` becomes
    # the local folder for state, DuckDB and working copies (`local_dir`, or a default).
    warehouse_uri: str | None = None
    local_dir: Path | None = None
    table_format: str = "auto"  # "parquet" (hive folders), "iceberg"; auto: by the root
    catalog_uri: str | None = None  # Iceberg SQL catalog (sqlite:///..., postgresql://...)
    s3_endpoint: str | None = None  # else AWS_ENDPOINT_URL
    s3_region: str | None = None  # else AWS_REGION / AWS_DEFAULT_REGION
    group: str | None = None  # share the warehouse read-only with this group (lab server)
    # Per-user state shared by every warehouse (the request ledger of each key, a bucket
    # warehouse's default local_dir); None: warehouse.user_state_dir's default.
    state_dir: Path | None = None
    # Request economy (docs/requests.md): time buckets whose landed rows are counted,
    # how much history each sync verifies against the API's totals, and polling backoff.
    bucket_seconds: int = 300
    verify_recent_hours: float = 24.0  # verified on every poll of a time type
    verify_all_hours: float = 24.0  # all history verified this often
    verify_budget: int = 60  # requests a run may spend on bisecting and re-reading
    poll_after_unchanged: int = 2  # polls that saw no change before backing off
    poll_max_interval_seconds: float = 3600.0
    access_cache_hours: float = 24.0
    # DuckDB's working memory in the transform (e.g. "1GB", "512MB", "25%"); beyond it
    # DuckDB spills to state/duckdb-tmp, so a transform of any size fits
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    # how long a replaced Parquet version stays for readers still scanning it
    parquet_grace_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if objstore.is_uri(self.warehouse):
            uri = str(self.warehouse).rstrip("/")
            local = self.local_dir or objstore.default_local_dir(uri, self.state_dir)
            object.__setattr__(self, "warehouse_uri", uri)
            object.__setattr__(self, "warehouse", Path(local))
        _validate(self)

    @property
    def data_types(self) -> tuple[registry.DataType, ...]:
        if not self.types:
            return registry.DEFAULT_TYPES
        return tuple(registry.BY_NAME[t] for t in self.types)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def _validate(cfg: Config) -> None:
    for name in cfg.types:
        if name not in registry.BY_NAME:
            raise ConfigError(
                "types", f"unknown data type {name!r}; known: {', '.join(registry.BY_NAME)}"
            )
    if not cfg.base_url.startswith(("http://", "https://")):
        raise ConfigError("base_url", f"must start with http:// or https://, got {cfg.base_url!r}")
    positive = (
        "page_size",
        "concurrency",
        "timeout_seconds",
        "request_deadline_seconds",
        "max_body_bytes",
        "max_attempts",
        "budget_per_hour",
        "budget_per_minute",
        "media_concurrency",
        "bucket_seconds",
        "poll_max_interval_seconds",
    )
    for name in positive:
        if getattr(cfg, name) <= 0:
            raise ConfigError(name, f"must be greater than 0, got {getattr(cfg, name)!r}")
    if cfg.page_size > 1000:
        raise ConfigError(
            "page_size", f"the API serves at most 1000 rows a page, got {cfg.page_size}"
        )
    if cfg.raw_compression not in rawfile.SUFFIXES:
        raise ConfigError(
            "raw_compression",
            f"must be one of {', '.join(rawfile.SUFFIXES)}, got {cfg.raw_compression!r}",
        )
    if cfg.table_format not in ("auto", *objstore.TABLE_FORMATS):
        raise ConfigError(
            "table_format", f"must be auto, parquet or iceberg, got {cfg.table_format!r}"
        )
    if cfg.warehouse_uri is not None and not objstore.is_uri(cfg.warehouse_uri):
        raise ConfigError(
            "warehouse", f"a warehouse URI starts with s3://, got {cfg.warehouse_uri!r}"
        )
    if not _MEMORY.fullmatch(cfg.memory_limit.strip()):
        raise ConfigError(
            "memory_limit", f"must be a size like 1GB, 512MB or 25%, got {cfg.memory_limit!r}"
        )
    if not 0 <= cfg.parquet_grace_seconds < float("inf"):
        raise ConfigError(
            "parquet_grace_seconds", f"must be 0 or more seconds, got {cfg.parquet_grace_seconds!r}"
        )
    warehouse = Path(cfg.warehouse)
    if warehouse.exists() and not warehouse.is_dir():
        raise ConfigError(
            "warehouse", f"{str(warehouse)!r} is a file; the warehouse must be a folder"
        )
    if cfg.group is not None:
        try:
            grp.getgrnam(cfg.group)
        except KeyError:
            raise ConfigError("group", f"no group {cfg.group!r} on this machine") from None
    if cfg.max_run_seconds is not None and not 0 < cfg.max_run_seconds < float("inf"):
        raise ConfigError(
            "max_run_seconds", f"must be greater than 0 (or unset), got {cfg.max_run_seconds!r}"
        )
    if cfg.lookback_seconds < 0:
        raise ConfigError("lookback_seconds", f"must be 0 or more, got {cfg.lookback_seconds!r}")


_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|%)", re.IGNORECASE)
_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_OPTIONAL_FLOATS = ("max_run_seconds",)  # numbers whose default is None (off)


def _coerce(name: str, value: Any) -> Any:
    """Convert a value from TOML, the environment or a flag to the field's type."""
    default = _FIELDS[name].default
    try:
        if name == "warehouse" and objstore.is_uri(value):
            return str(value)
        if name in ("warehouse", "local_dir", "state_dir"):
            return Path(value).expanduser()
        if name in _OPTIONAL_FLOATS:
            return None if value is None or value == "" else float(value)
        if name in ("experiments", "types", "rooms"):
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return tuple(str(v).strip() for v in value)
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return None if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"cannot read {value!r} as {type(default).__name__}") from None


def load_config(
    path: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """Layer defaults, a TOML file, environment variables and explicit overrides.

    `path` defaults to ./hs_sync.toml when it exists. Overrides whose value is
    None are ignored, so CLI flags can be passed straight through.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    file = Path(path) if path else Path(CONFIG_FILE)
    if path and not file.exists():
        raise ConfigError("config", f"config file {str(file)!r} does not exist")
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{file}: {exc}") from None
        section = data.get("hs_sync", data)
        for key, value in section.items():
            if key == "api_key":
                raise ConfigError(
                    "api_key", f"{file}: keep the API key out of files; set HYPERSTUDY_API_KEY"
                )
            if key not in _FIELDS:
                raise ConfigError(key, f"{file}: unknown setting {key!r}")
            values[key] = _coerce(key, value)
    for name, var in ENV.items():
        if env.get(var):
            values[name] = _coerce(name, env[var])
    for key, value in overrides.items():
        if key not in _FIELDS:
            raise ConfigError(key, f"unknown setting {key!r}")
        if value is None or (isinstance(value, (tuple, list)) and not value):
            continue
        values[key] = _coerce(key, value)
    return Config(**values)
