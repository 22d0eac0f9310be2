"""The normalized tables as Iceberg tables: each sync's changes to a table are one
commit (a reader never sees part of one), re-applied files never add a row twice,
maintenance compacts and expires, and the catalog may be PostgreSQL."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hs_sync import objstore, registry
from hs_sync.load import iceberg
from hs_sync.load.transform import transform
from hs_sync.warehouse import Warehouse
from tests.warehouse_helpers import db_rows, event, land

EVENTS = registry.BY_NAME["events"]
BATCHES = 6
STEP = 100  # each batch changes the previous batch's STEP events and adds STEP new ones


def iceberg_warehouse(root: Path, catalog_uri: str | None = None) -> Warehouse:
    wh = Warehouse(root).create()
    objstore.bind(wh.state_dir, objstore.Storage(table_format="iceberg", catalog_uri=catalog_uri))
    return Warehouse(root)


def batch(k: int, base: int = 0) -> list[dict]:
    ids = range(base + max(0, (k - 1) * STEP), base + (k + 1) * STEP)
    return [event(i, stateName=f"v{k}") for i in ids]


def state_after(k: int, base: int = 0) -> dict[str, str]:
    """id -> stateName once batches 1..k are applied."""
    out: dict[str, str] = {}
    for j in range(1, k + 1):
        out.update({r["id"]: r["stateName"] for r in batch(j, base)})
    return out


def snapshot_view(wh: Warehouse) -> list[tuple[str, str]]:
    return [(r["id"], r["stateName"]) for r in iceberg.read(wh, EVENTS).to_pylist()]


def test_a_reader_polling_during_syncs_sees_whole_syncs_only(tmp_path):
    wh = iceberg_warehouse(tmp_path / "wh")
    states = [state_after(k) for k in range(BATCHES + 1)]
    seen: list[list[tuple[str, str]]] = []
    stop = threading.Event()

    def poll() -> None:
        # 50 reads a second; a reader that never pauses holds the GIL enough to slow the
        # syncs it watches several-fold
        while not stop.is_set():
            seen.append(snapshot_view(wh))
            stop.wait(0.02)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for k in range(1, BATCHES + 1):
            land(wh, "events", batch(k), batch=f"2024050{k}T100000000000Z-w")
            transform(wh, [EVENTS])
    finally:
        stop.set()
        reader.join()
    distinct = {tuple(sorted(view)) for view in seen}
    assert len(distinct) >= 3, "the reader saw too few states to mean anything"
    for view in seen:
        assert len({i for i, _ in view}) == len(view), "a key twice"
        assert dict(view) in states, "a partial sync"
    assert dict(snapshot_view(wh)) == states[-1]
    assert {r["id"]: r["stateName"] for r in db_rows(wh, "events")} == states[-1]


def test_maintenance_compacts_and_expires_snapshots(tmp_path):
    from datetime import datetime, timedelta, timezone

    wh = iceberg_warehouse(tmp_path / "wh")
    for k in range(1, iceberg.MAX_FILES + 3):  # one new data file per sync
        land(wh, "events", [event(k, stateName=f"v{k}")], batch=f"202405{k:02d}T100000000000Z-w")
        transform(wh, [EVENTS])
    table = iceberg.table(iceberg.catalog(wh), EVENTS)
    assert len(table.inspect.data_files()) > iceberg.MAX_FILES
    before = {r["_key"]: r for r in iceberg.read(wh, EVENTS).to_pylist()}
    later = datetime.now(timezone.utc) + iceberg.KEEP_SNAPSHOTS_FOR + timedelta(minutes=1)
    report = iceberg.maintain(wh, [EVENTS], now=later)
    assert report["events"]["compacted"] == ["exp_test"]
    assert report["events"]["snapshots_expired"] > 0
    table = iceberg.table(iceberg.catalog(wh), EVENTS)
    assert len(table.metadata.snapshots) == 1
    assert len(table.inspect.data_files()) <= 2  # one per day partition
    assert {r["_key"]: r for r in iceberg.read(wh, EVENTS).to_pylist()} == before


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL cluster on a loopback port, in its own temporary folder
    (pytest's are owner-only); as root it runs as `nobody`, as PostgreSQL requires."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 server binaries are not installed (/usr/lib/postgresql/15)")
    prefix: list[str] = []
    home = Path(tempfile.mkdtemp(prefix="hs-sync-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
        prefix = ["runuser", "-u", "nobody", "--"]
        nobody = pwd.getpwnam("nobody")
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
    data, port = home / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    try:
        run(str(PG_BIN / "initdb"), "-D", str(data), "-U", "hs", "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
        log = str(home / "server.log")  # without -l the server keeps our pipes open
        run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", log, "-o", options, "-w", "start")
        try:
            yield f"postgresql+psycopg2://hs@127.0.0.1:{port}/postgres"
        finally:
            run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_postgresql_catalog_shared_by_two_local_folders(tmp_path, postgres):
    """Two machines (two local folders) commit to one catalog at once; each sees the
    other's rows."""
    shared = (tmp_path / "tables").as_uri()
    first = iceberg_warehouse(tmp_path / "a", postgres)
    second = iceberg_warehouse(tmp_path / "b", postgres)
    assert iceberg.catalog_uri(first) == postgres
    # one table location for both: the SQL catalog is the single source of truth
    first_table = iceberg.catalog(first).create_table_if_not_exists(
        "hyperstudy.events", schema=iceberg.table_schema(EVENTS), location=shared
    )
    assert first_table.location() == shared
    land(first, "events", batch(1), experiment="exp_a")
    land(second, "events", [event(i, stateName="b") for i in range(500, 520)], experiment="exp_b")
    with ThreadPoolExecutor(2) as pool:  # concurrent commits: the later one is redone
        list(pool.map(lambda wh: transform(wh, [EVENTS]), [first, second]))
    rows = iceberg.read(first, EVENTS).to_pylist()
    assert sorted({r["experiment_id"] for r in rows}) == ["exp_a", "exp_b"]
    assert len(rows) == len(batch(1)) + 20
    assert iceberg.read(second, EVENTS).to_pylist() == rows


CHILD = (
    "import sys; from hs_sync import registry; from hs_sync.warehouse import Warehouse; "
    "from hs_sync.load.transform import transform; "
    "transform(Warehouse(sys.argv[1]), [registry.BY_NAME['events']])"
)


def _table_files(wh: Warehouse) -> set[Path]:
    return {p for p in (wh.root / "iceberg").rglob("*") if p.is_file()}


EXPERIMENTS = ("exp_a", "exp_b")


@pytest.mark.slow
def test_kill_9_during_iceberg_commits_loses_and_duplicates_nothing(tmp_path):
    """Each round lands a batch that changes the previous one's rows, starts a transform
    and kills it (SIGKILL) as soon as it writes a new table file (a data file,
    manifest or metadata: the commit is under way); the last round runs to the end."""
    import signal
    import sys
    import time

    wh = iceberg_warehouse(tmp_path / "wh")
    rounds, killed = 8, 0
    for k in range(1, rounds + 1):
        for base, exp in enumerate(EXPERIMENTS):
            land(
                wh,
                "events",
                batch(k, base * 5000),
                batch=f"2024050{k}T100000000000Z-w",
                experiment=exp,
            )
        before = _table_files(wh)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(wh.root)])
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if k < rounds and _table_files(wh) - before:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        code = child.wait(timeout=120)
        killed += code == -signal.SIGKILL
    transform(wh, [EVENTS])  # the run after the last kill, if the last round was killed
    assert killed >= rounds // 2, f"only {killed} transforms were killed mid-commit"
    rows = iceberg.read(wh, EVENTS).to_pylist()
    keys = [(r["experiment_id"], r["id"]) for r in rows]
    assert len(keys) == len(set(keys)), "a row twice"
    for base, exp in enumerate(EXPERIMENTS):
        got = {r["id"]: r["stateName"] for r in rows if r["experiment_id"] == exp}
        assert got == state_after(rounds, base * 5000), exp
    assert len(db_rows(wh, "events")) == len(rows)


def test_a_record_seen_in_another_experiment_leaves_iceberg_equal_to_duckdb(tmp_path):
    """Deletes read only the batch's experiments and those its keys were stored in:
    a key that moves keeps no copy behind (whatever the key scheme makes of it)."""
    wh = iceberg_warehouse(tmp_path / "wh")
    land(wh, "events", [event(i) for i in range(5)], experiment="exp_a")
    transform(wh, [EVENTS])
    later = "20240502T100000000000Z-w"
    land(wh, "events", [event(1, stateName="moved")], batch=later, experiment="exp_b")
    transform(wh, [EVENTS])

    def view(rows):
        return sorted((r["_key"], r["stateName"], r["_raw_file"].split("/")[2]) for r in rows)

    rows = iceberg.read(wh, EVENTS).to_pylist()
    assert view(rows) == view(db_rows(wh, "events"))
    assert {r["experiment_id"] for r in rows} == {"exp_a", "exp_b"}
