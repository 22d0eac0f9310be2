"""The warehouse on disk: where each layer lives, owner-only, written atomically.

Every path hs-sync writes is built here, so storage stays behind one
abstraction and API values can never escape their folder.
"""

from __future__ import annotations

import grp
import hashlib
import os
import re
import stat
import threading
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import orjson

DB_FILE = "hyperstudy.duckdb"
BINDING = "storage.json"  # in state/: where the shared layers live (hs_sync/objstore.py)
STATE_DIR_ENV = "HS_SYNC_STATE_DIR"  # overrides the per-user state folder
GROUP_FILE = "group"  # in state/: the group the warehouse is shared with (absent: owner only)
SHARED_DIR_MODE = 0o2750  # group may list and enter; new entries inherit the group (setgid)
SHARED_FILE_MODE = 0o640  # group may read
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_PART = 80


def safe_part(value: object) -> str:
    """A file-name component built from an API value that cannot escape or collide.

    Keeps `[A-Za-z0-9._-]`, replaces the rest, and appends a short hash of the
    original whenever anything was changed or case alone could collide, so two
    different values never map to one name (also on case-insensitive disks).
    """
    text = "" if value is None else str(value)
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFKC", text)).strip(".")
    changed = cleaned != text or cleaned.lower() != cleaned or len(cleaned) > _MAX_PART
    if not cleaned or changed:
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
        cleaned = f"{cleaned[:_MAX_PART]}~{digest}" if cleaned else f"~{digest}"
    return cleaned


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to a temporary name beside `path`, fsync, rename, fsync the folder."""
    with atomic_file(path) as fh:
        fh.write(data)
    fsync_path(path.parent)


@contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A private file written under a temporary name beside `path`, synced and renamed
    into place when the block ends; removed if the block raises."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_umask_lock = threading.Lock()
_umask_users = 0
_umask_saved = 0


@contextmanager
def owner_only() -> Iterator[None]:
    """Create every file and folder inside readable by its owner only (umask 077).

    Covers what other libraries create for us (Parquet files, SQLite and DuckDB
    side files, parent folders made by `mkdir(parents=True)`). The umask is
    process-wide, so nested or concurrent users share one saved value and the
    last one out restores it.
    """
    global _umask_users, _umask_saved
    with _umask_lock:
        if _umask_users == 0:
            _umask_saved = os.umask(0o077)
        _umask_users += 1
    try:
        yield
    finally:
        with _umask_lock:
            _umask_users -= 1
            if _umask_users == 0:
                os.umask(_umask_saved)


def _share(path: Path, gid: int, mode: int) -> None:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return
    if st.st_gid != gid:
        os.chown(path, -1, gid)
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)


def fsync_path(path: Path) -> None:
    """Make a file's contents, or a folder's entries (a rename), durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Storage:
    """Where a warehouse's shared layers live; `uri` None means the local folder itself."""

    uri: str | None = None
    table_format: str = "parquet"
    catalog_uri: str | None = None  # SQL catalog; default a SQLite file in state/
    endpoint: str | None = None
    region: str | None = None

    @property
    def bucket(self) -> str:
        return urlsplit(self.uri or "").netloc

    @property
    def prefix(self) -> str:
        return urlsplit(self.uri or "").path.strip("/")

    def key(self, relative: str) -> str:
        """The object path (bucket/prefix/relative) pyarrow's S3 filesystem takes."""
        return "/".join(p for p in (self.bucket, self.prefix, relative) if p)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def bound(state_dir: Path) -> Storage | None:
    """The storage this state folder was bound to (None: never bound, a local warehouse)."""
    path = state_dir / BINDING
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    return Storage(**{k: v for k, v in data.items() if k in Storage.__dataclass_fields__})


def user_state_dir(setting: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The per-user state folder (request ledgers, a bucket warehouse's local part): the
    `state_dir` setting, else $HS_SYNC_STATE_DIR, else $XDG_STATE_HOME/hs-sync, else
    ~/.local/state/hs-sync."""
    env = os.environ if env is None else env
    if setting is not None:
        return Path(setting)
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV]).expanduser()
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "hs-sync"


@dataclass(frozen=True)
class Warehouse:
    """The folders of one warehouse root (see docs/warehouse.md)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def create(self) -> Warehouse:
        """Create the root readable by its owner only (or its group, when shared)."""
        old = os.umask(0o077)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.root.stat().st_mode & stat.S_IWUSR:  # one its owner made read-only stays so
                os.chmod(self.root, SHARED_DIR_MODE if self.shared_group() else 0o700)
            for sub in ("raw", "parquet", "media", "quarantine", "state"):
                (self.root / sub).mkdir(exist_ok=True, mode=0o700)
        finally:
            os.umask(old)
        return self

    def raw_dir(self, type_name: str, experiment_id: str) -> Path:
        return self.root / "raw" / type_name / f"experiment_id={safe_part(experiment_id)}"

    def parquet_dir(self, type_name: str) -> Path:
        return self.root / "parquet" / type_name

    def quarantine_dir(self, type_name: str) -> Path:
        return self.root / "quarantine" / type_name

    def media_path(self, experiment_id: str, room_id: str, participant_id: str, name: str) -> Path:
        return (
            self.root
            / "media"
            / safe_part(experiment_id)
            / safe_part(room_id)
            / safe_part(participant_id)
            / safe_part(name)
        )

    @cached_property
    def storage(self) -> Storage:
        """Where the shared layers live (hs_sync/objstore.py): this folder unless bound
        to an object store or to Iceberg tables."""
        return bound(self.state_dir) or Storage()

    def shared_group(self) -> str | None:
        """The group this warehouse is shared with read-only, or None (owner only)."""
        try:
            return (self.state_dir / GROUP_FILE).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def share(self, group: str) -> None:
        """Share the warehouse read-only with `group` from now on (every writer keeps it so)."""
        if self.shared_group() != group:
            atomic_write(self.state_dir / GROUP_FILE, group.encode("utf-8") + b"\n")
        self.apply_sharing()

    def apply_sharing(self) -> None:
        """Give the shared group read access to everything (0750 folders, 0640 files).

        Files are written owner-only while a run holds the lock; the lock's release
        calls this, so a group reader sees each run's files once the run is done.
        """
        group = self.shared_group()
        if group is None:
            return
        gid = grp.getgrnam(group).gr_gid
        for folder, _, files in os.walk(self.root):
            _share(Path(folder), gid, SHARED_DIR_MODE)
            for name in files:
                _share(Path(folder) / name, gid, SHARED_FILE_MODE)

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def db_path(self) -> Path:
        return self.root / DB_FILE

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "sync.lock"
