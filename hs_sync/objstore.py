"""A warehouse whose root is an object store (`s3://bucket/prefix`).

The state store, the DuckDB database and a working copy of raw files and media
stay in a local folder (the `local_dir` setting). That folder is bound to its
storage once (`state/storage.json`: the URI, endpoint, region, table format and
catalog; never credentials), so every later `Warehouse(folder)` (sync, rebuild,
Dagster) writes to the same place. Raw files and media are uploaded under their
final object names once they are complete locally: an S3 PUT is atomic, so a
reader sees a whole object or none; a local folder that lacks raw files the
bucket holds (a new machine) gets them back with `pull` (`hs-sync doctor
--repair`, hs_sync/stores.py). Credentials come from the usual AWS
environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN); the endpoint from the `s3_endpoint` setting or
AWS_ENDPOINT_URL, the region from `s3_region`, AWS_REGION or AWS_DEFAULT_REGION.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hs_sync.errors import ConfigError
from hs_sync.warehouse import (
    BINDING,
    Storage,
    Warehouse,
    atomic_write,
    bound,
    safe_part,
    user_state_dir,
)

SCHEMES = ("s3://",)
TABLE_FORMATS = ("parquet", "iceberg")
PUSHED = ("raw", "media")  # the local folders mirrored to the object store


def is_uri(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SCHEMES)


def default_local_dir(
    uri: str, state_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """Where a bucket warehouse keeps its local part unless `local_dir` names a folder:
    under the per-user state folder (`state_dir` setting, see `user_state_dir`)."""
    return user_state_dir(state_dir, env) / "warehouses" / safe_part(uri.split("://", 1)[1])


def from_config(config: Any) -> Storage:
    """The storage a config asks for (table format "auto": Iceberg in a bucket, else Parquet)."""
    uri = config.warehouse_uri
    fmt = config.table_format
    if fmt == "auto":
        fmt = "iceberg" if uri else "parquet"
    if uri and fmt != "iceberg":
        raise ConfigError("table_format", "a bucket warehouse keeps its tables as Iceberg")
    return Storage(
        uri=uri,
        table_format=fmt,
        catalog_uri=config.catalog_uri,
        endpoint=config.s3_endpoint or os.environ.get("AWS_ENDPOINT_URL"),
        region=config.s3_region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION"),
    )


def bind(state_dir: Path, storage: Storage) -> None:
    """Record where this local folder's shared layers live; a folder already bound to
    another bucket is refused (its state describes that bucket's data)."""
    current = bound(state_dir)
    if current is not None and current.uri != storage.uri:
        raise ConfigError(
            "warehouse",
            f"the local folder {state_dir.parent} belongs to {current.uri or 'a local warehouse'};"
            " name another local_dir",
        )
    if current == storage:
        return
    if current is None and storage == Storage() and not (state_dir / BINDING).exists():
        return  # the plain local default needs no record
    atomic_write(state_dir / BINDING, storage.to_json())


def filesystem(storage: Storage):
    """pyarrow's S3 filesystem for the storage's endpoint, region and the AWS_* credentials."""
    from pyarrow import fs

    options: dict[str, Any] = {"region": storage.region or "us-east-1"}
    if storage.endpoint:
        parts = urlsplit(storage.endpoint)
        if parts.scheme:
            options["scheme"] = parts.scheme
            options["endpoint_override"] = parts.netloc
        else:
            options["endpoint_override"] = storage.endpoint
    for name, value in _credentials().items():
        options[{"key": "access_key", "secret": "secret_key", "token": "session_token"}[name]] = (
            value
        )
    return fs.S3FileSystem(**options)


def _credentials() -> dict[str, str]:
    """The AWS_* credentials of the environment (empty: the SDK's own chain decides)."""
    env = os.environ
    if not env.get("AWS_ACCESS_KEY_ID"):
        return {}
    out = {"key": env["AWS_ACCESS_KEY_ID"], "secret": env.get("AWS_SECRET_ACCESS_KEY", "")}
    if env.get("AWS_SESSION_TOKEN"):
        out["token"] = env["AWS_SESSION_TOKEN"]
    return out


def iceberg_properties(storage: Storage) -> dict[str, str]:
    """pyiceberg's FileIO settings for the same endpoint and credentials."""
    props: dict[str, str] = {}
    if storage.uri:
        props["s3.region"] = storage.region or "us-east-1"
        if storage.endpoint:
            props["s3.endpoint"] = storage.endpoint
        names = {"key": "access-key-id", "secret": "secret-access-key", "token": "session-token"}
        for name, value in _credentials().items():
            props[f"s3.{names[name]}"] = value
    return props


def push(root: Path, storage: Storage) -> dict[str, int]:
    """Upload the local raw files and media the bucket does not hold yet (same size).

    Dot names (temporaries, set-aside files) stay local. Each object is written
    under its final name in one PUT (multipart for large files, completed at
    once), so a reader never sees part of one.
    """
    s3 = filesystem(storage)
    uploaded = bytes_sent = 0
    for top in PUSHED:
        local = root / top
        if not local.is_dir():
            continue
        remote = _remote_files(s3, storage, top)
        for path in sorted(local.rglob("*")):
            relative = path.relative_to(root)
            if any(p.startswith(".") for p in relative.parts) or not path.is_file():
                continue
            size = path.stat().st_size
            key = storage.key(relative.as_posix())
            if remote.get(key) == size:
                continue
            # compression=None: pyarrow would otherwise compress a .zst name once more
            with path.open("rb") as src, s3.open_output_stream(key, compression=None) as dst:
                while chunk := src.read(8 << 20):
                    dst.write(chunk)
            uploaded += 1
            bytes_sent += size
    return {"objects": uploaded, "bytes": bytes_sent}


def _remote_files(s3, storage: Storage, top: str) -> dict[str, int]:
    """The objects under `top` of the storage's prefix: object path -> size."""
    from pyarrow import fs

    selector = fs.FileSelector(storage.key(top), recursive=True, allow_not_found=True)
    return {
        info.path: info.size for info in s3.get_file_info(selector) if info.type == fs.FileType.File
    }


def missing_here(root: Path, storage: Storage, top: str = "raw") -> dict[str, int]:
    """The objects under `top` that the local folder lacks (or holds at another size):
    path relative to the warehouse -> size in the bucket."""
    base = storage.key("")
    out = {}
    for key, size in _remote_files(filesystem(storage), storage, top).items():
        relative = key[len(base) :].lstrip("/")
        if any(p.startswith(".") for p in relative.split("/")):
            continue  # never ours (dot names stay local), and no `..` leads out of root
        path = root / relative
        if not path.is_file() or path.stat().st_size != size:
            out[relative] = size
    return out


def pull(root: Path, storage: Storage, relatives: Iterable[str]) -> dict[str, int]:
    """Download these objects (paths relative to the warehouse) into the local folder.

    Each is written to a dot-named temporary beside its final name (dot names are
    never uploaded or read as raw files), synced and renamed, so a crash leaves a
    whole file or none.
    """
    from hs_sync.warehouse import atomic_file, fsync_path

    s3 = filesystem(storage)
    fetched = bytes_received = 0
    for relative in relatives:
        path = root / relative
        # compression=None: the object is the file's bytes (a .zst name stays as it is)
        with s3.open_input_stream(storage.key(relative), compression=None) as src:
            with atomic_file(path) as dst:
                while chunk := src.read(8 << 20):
                    dst.write(chunk)
                    bytes_received += len(chunk)
        fsync_path(path.parent)
        fetched += 1
    return {"objects": fetched, "bytes": bytes_received}


def open_warehouse(config: Any) -> Warehouse:
    """The config's local warehouse folder, bound to its storage (created for a bucket)."""
    storage = from_config(config)
    local = Warehouse(config.warehouse)
    if storage == Storage() and not (local.state_dir / BINDING).exists():
        return local  # a plain local warehouse: created once the key is known to work
    bind(local.create().state_dir, storage)
    return local
