"""Security promises (docs/design.md, invariants 7 and 8) proven on whole runs against the simulator.

- The API key and the signed media URLs reach no file under the warehouse and no
  log line or command output: every file's bytes are scanned.
- The warehouse is owner-only: every folder 0700, every file 0600.
- `X-Organization-Id` goes with every API request when configured, never otherwise.
- Hostile ids served by the API (`..`, `../`, quotes, `'; DROP TABLE`, NUL) stay
  inside their folders and reach SQL only as values.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from hs_simulator import Simulator
from hs_simulator.generate import HOSTILE_EXPERIMENT, HOSTILE_PARTICIPANT, HOSTILE_ROOMS
from hs_sync.cli import main
from hs_sync.media.run import download_media
from hs_sync.registry import DEFAULT_TYPES
from hs_sync.run import sync
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import file_bytes, make_config, served_by_key
from tests.warehouse_helpers import query

ORG = "org_lab_7"


class _Captured(logging.Handler):
    """Every log record of the run, formatted with its arguments (DEBUG and up)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """`hs-sync sync`, `hs-sync media` and `hs-sync rebuild` from the command line,
    with an organization id, every log record captured."""
    sim = Simulator(seed=11, scale=0.2)
    sim.start()
    handler = _Captured()
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    try:
        root = tmp_path_factory.mktemp("sec") / "wh"
        env = {
            "HYPERSTUDY_API_KEY": sim.api_key,
            "HYPERSTUDY_BASE_URL": sim.base_url,
            "HYPERSTUDY_ORG_ID": ORG,
        }
        runner = CliRunner()
        outputs = []
        for args in (["sync", "--json"], ["media", "--json"], ["sync"], ["rebuild"]):
            result = runner.invoke(main, [*args, "--warehouse", str(root)], env=env)
            assert result.exit_code == 0, (args, result.output)
            outputs.append(result.output)
        yield sim, root, outputs, handler.lines
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)
        sim.stop()


def _secrets(sim) -> dict[str, str]:
    """The key and every media signature the simulator handed out or served."""
    found = {"api key": sim.api_key}
    for i, record in enumerate(sim.dataset.records("recordings")):
        url = record.get("downloadUrl") or ""
        if "sig=" in url:
            found[f"legacy url {i}"] = url.split("sig=", 1)[1].split("&", 1)[0]
    for request in sim.requests:
        sig = request["params"].get("sig")
        if request["path"].startswith("/media/") and sig:
            found[f"minted url {request['path']}"] = sig
    return found


def _everything(root: Path) -> list[Path]:
    return [root, *root.rglob("*")]


def test_no_key_and_no_signed_url_in_any_file_log_or_output(synced):
    sim, root, outputs, log_lines = synced
    secrets = _secrets(sim)
    assert any(name.startswith("minted") for name in secrets), "no media was downloaded"
    assert any(name.startswith("legacy") for name in secrets)
    files = [p for p in _everything(root) if p.is_file()]
    assert len(files) > 50
    scanned = 0
    for path in files:
        data = file_bytes(path)
        scanned += len(data)
        for name, secret in secrets.items():
            assert secret.encode() not in data, f"{name} in {path.relative_to(root)}"
    assert any("httpx" in line or "HTTP Request" in line for line in log_lines) or log_lines
    for text in [*outputs, *log_lines]:
        for name, secret in secrets.items():
            assert secret not in text, f"{name} in a log line or output: {text[:200]}"
    assert scanned > 1_000_000  # media and the database were read too


def test_every_folder_is_0700_and_every_file_0600(synced):
    _, root, _, _ = synced
    wrong = []
    for path in _everything(root):
        if path.is_symlink():  # a link has no mode of its own; its target is checked
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            wrong.append(f"{oct(mode)} {path.relative_to(root)}")
    assert not wrong, f"{len(wrong)} paths not owner-only, e.g. {wrong[:5]}"
    assert (root / "media").is_dir() and any((root / "media").rglob("*.*"))


def test_organization_header_on_every_api_request_when_configured(synced, sim_factory, tmp_path):
    sim, _, _, _ = synced
    api = [r for r in sim.requests if r["path"].startswith("/api/v3/")]
    assert api and all(r.get("org") == ORG for r in api)
    storage = [r for r in sim.requests if r["path"].startswith("/media/")]
    assert storage and not any("org" in r for r in storage)  # storage gets nothing of ours

    other = sim_factory(seed=2, scale=0.05)
    summary = sync(make_config(other, tmp_path / "wh", types=("rooms",)))
    assert summary.exit_code == 0
    assert other.requests and not any("org" in r for r in other.requests)


def test_hostile_ids_stay_in_their_folders_and_reach_sql_as_values(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = outside / "inner" / "wh"  # `../../` from a folder under root lands beside it
    with Simulator(seed=4, scale=0.2, hostile_ids=True) as sim:
        hostile_exp = next(e for e in sim.dataset.experiment_ids if e.startswith("../"))
        assert "\x00" in hostile_exp and "DROP TABLE" in hostile_exp
        config = make_config(sim, root)
        first = sync(config)
        media = download_media(config)
        again = sync(config)  # incremental, over the same hostile ids

        assert first.exit_code == 0, first.errors
        assert again.exit_code == 0, again.errors
        assert media.downloaded > 0 and not media.errors, media.errors
        assert set(first.experiments) == set(sim.dataset.experiment_ids)
        truth = {dt.name: len(served_by_key(sim, dt)) for dt in DEFAULT_TYPES}
        hostile_rooms = [r for r in sim.dataset.rooms if r == ".." or r.startswith(HOSTILE_ROOMS)]
        hostile_events = len(sim.dataset.records("events", experiment_id=hostile_exp))

    # Nothing was written outside the warehouse root, and nothing inside escapes it.
    assert sorted(p.relative_to(outside).as_posix() for p in outside.iterdir()) == ["inner"]
    assert [p.name for p in (outside / "inner").iterdir()] == ["wh"]
    real_root = root.resolve()
    for path in _everything(root):
        assert path.resolve().is_relative_to(real_root), path
        assert "\x00" not in path.name and path.name not in (".", "..")
        if path.is_symlink():  # only the published-version links, into parquet/.v
            assert path.parent == root / "parquet", path
            assert path.resolve().is_relative_to((root / "parquet" / ".v").resolve()), path

    # Every table is there, whole: no SQL text was changed by a value.
    wh = Warehouse(root)
    tables = {r[0] for r in query(wh, "SELECT table_name FROM information_schema.tables")}
    assert {dt.name for dt in DEFAULT_TYPES} <= tables
    for dt in DEFAULT_TYPES:
        (count,) = query(wh, f'SELECT count(*) FROM "{dt.name}"')[0]
        assert count == truth[dt.name], dt.name
    # The hostile values are stored verbatim.
    (n,) = query(wh, "SELECT count(*) FROM events WHERE experimentId = ?", [hostile_exp])[0]
    assert n == hostile_events > 0
    stored_rooms = {r[0] for r in query(wh, "SELECT id FROM rooms")}
    assert len(hostile_rooms) == len(HOSTILE_ROOMS) and set(hostile_rooms) <= stored_rooms
    (pts,) = query(
        wh, "SELECT count(*) FROM participants WHERE starts_with(id, ?)", [HOSTILE_PARTICIPANT]
    )[0]
    assert pts > 0
    assert HOSTILE_EXPERIMENT.startswith("../")


def test_an_id_that_cannot_be_a_url_is_a_bad_request_never_a_crash(sim):
    from hs_sync.api.client import ApiClient
    from hs_sync.errors import BadRequestError

    with ApiClient(make_config(sim, "unused")) as client:
        with pytest.raises(BadRequestError, match="not a valid URL"):
            client.get("data/recordings/download/room\x00x/rec_1")
        assert client.attempts == 0  # nothing was sent, no budget spent
