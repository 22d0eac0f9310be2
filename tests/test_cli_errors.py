"""Bad flags and bad config: one clear line naming the flag or setting, and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hs_sync.cli import main

OK_EXPORT = ["export", "--level", "room", "--id", "room_1", "--format", "csv", "--out", "o"]


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    """Run each command in an empty folder, with no hs-sync settings in the environment."""
    monkeypatch.chdir(tmp_path)
    for var in ("HS_SYNC_WAREHOUSE", "HYPERSTUDY_BASE_URL", "HYPERSTUDY_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def one_line(result) -> str:
    """The single stderr line of a failed command (nothing on stdout)."""
    assert result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def run(args: list[str], **kwargs):
    return CliRunner().invoke(main, args, **kwargs)


def replace(args: list[str], flag: str, value: str | None) -> list[str]:
    """`args` with `flag`'s value replaced (or the flag and its value removed if None)."""
    i = args.index(flag)
    return args[:i] + ([flag, value] if value is not None else []) + args[i + 2 :]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (replace(OK_EXPORT, "--level", "planet"), "--level"),
        (replace(OK_EXPORT, "--format", "xlsx"), "--format"),
        (replace(OK_EXPORT, "--id", None), "--id"),
        (replace(OK_EXPORT, "--out", None), "--out"),
        (replace(OK_EXPORT, "--format", None), "--format"),
        (OK_EXPORT + ["--type", "nope"], "--type"),
        (replace(OK_EXPORT, "--level", "participant") + ["--type", "rooms"], "--type"),
        (OK_EXPORT + ["--type", "chat", "--category", "media"], "--category"),
        (OK_EXPORT + ["--since", "last tuesday"], "--since"),
        (OK_EXPORT + ["--since", "2024-05-02", "--until", "2024-05-01"], "--until"),
        (OK_EXPORT + ["--colour"], "--colour"),
        (OK_EXPORT + ["--warehouse", "nowhere"], "--warehouse"),
        (["status", "--runs", "0"], "--runs"),
        (["status", "--verbose"], "--verbose"),
        (["status", "--warehouse", "nowhere"], "warehouse"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_bad_flags_exit_2_with_one_line_naming_the_flag(args, flag):
    result = run(args)
    assert result.exit_code == 2, result.output
    line = one_line(result)
    assert line.startswith(f"hs-sync {args[0]}: ")
    assert flag in line


@pytest.mark.parametrize(
    ("toml", "setting"),
    [
        ('colour = "blue"\n', "colour"),
        ("page_size = 5000\n", "page_size"),
        ('freshness_hours = "soon"\n', "freshness_hours"),
        ('api_key = "hs_live_secret"\n', "api_key"),
        ("warehouse = \n", "config"),  # not TOML
    ],
)
@pytest.mark.parametrize("command", [OK_EXPORT, ["status"]], ids=["export", "status"])
def test_bad_config_file_exit_2_with_one_line_naming_the_setting(tmp_path, command, toml, setting):
    (tmp_path / "hs_sync.toml").write_text(toml, encoding="utf-8")
    result = run(command)
    assert result.exit_code == 2, result.output
    line = one_line(result)
    if setting == "config":  # the file itself: named once, with where it went wrong
        assert "config: hs_sync.toml:" in line and "config: config" not in line
    else:
        assert f"config: {setting}:" in line
    assert "hs_live_secret" not in result.output


@pytest.mark.parametrize("command", [OK_EXPORT, ["status"]], ids=["export", "status"])
def test_a_missing_config_file_or_bad_environment_names_the_setting(command):
    result = run(command + ["--config", "missing.toml"])
    assert result.exit_code == 2
    assert one_line(result).endswith(": config: config file 'missing.toml' does not exist")
    result = run(command, env={"HYPERSTUDY_BASE_URL": "ftp://example.org"})
    assert result.exit_code == 2
    assert "config: base_url:" in one_line(result)


def test_as_a_real_process(tmp_path):
    (tmp_path / "hs_sync.toml").write_text("page_size = 0\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HS_SYNC_", "HYPERSTUDY_"))}
    command = [sys.executable, "-m", "hs_sync"]
    bad_flag = subprocess.run(
        [*command, *replace(OK_EXPORT, "--level", "galaxy")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad_flag.returncode == 2 and bad_flag.stdout == ""
    assert bad_flag.stderr.strip().splitlines() == [
        "hs-sync export: Invalid value for '--level': 'galaxy' is not one of "
        "'participant', 'room', 'deployment', 'experiment'."
    ]
    bad_config = subprocess.run(
        [*command, "status"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert bad_config.returncode == 2 and bad_config.stdout == ""
    assert bad_config.stderr.strip().splitlines() == [
        "hs-sync status: config: page_size: must be greater than 0, got 0"
    ]
    assert not Path(tmp_path / "o").exists()
