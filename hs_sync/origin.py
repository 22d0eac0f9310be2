"""Which API a warehouse was filled from, so data from two APIs never mixes unasked.

The first sync that gets past the key check records the base URL (and the
organization, when one is set) in `state/origin.json`; a later sync against
another API stops with one line before any request. The demo records its
embedded simulator as the origin (its port changes from run to run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from hs_sync.errors import ConfigError
from hs_sync.warehouse import Warehouse, atomic_write

FILE = "origin.json"
DEMO_MARKER = "demo.json"  # the demo's run count, kept by hs_sync/demo.py
ALLOW_FLAG = "--allow-other-api"
DEMO = "the demo's embedded simulator"


def _path(warehouse: Warehouse) -> Path:
    return warehouse.state_dir / FILE


def _url(base_url: str) -> str:
    return base_url.rstrip("/")


def recorded(warehouse: Warehouse) -> dict[str, Any] | None:
    """The origin the warehouse remembers, or None (never synced, or from before)."""
    try:
        value = orjson.loads(_path(warehouse).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        # a demo warehouse synced before origins were recorded
        demo = (warehouse.state_dir / DEMO_MARKER).exists()
        return {"base_url": DEMO, "org_id": None, "demo": True} if demo else None
    return value if isinstance(value, dict) and value.get("base_url") else None


def _describe(origin: dict[str, Any]) -> str:
    if origin.get("demo"):
        return DEMO
    org = f" (organization {origin['org_id']})" if origin.get("org_id") else ""
    return f"{origin['base_url']}{org}"


def check(warehouse: Warehouse, config: Any) -> None:
    """Raise ConfigError when the warehouse was filled from another API than `config`'s.

    The organization counts only when both sides name one.
    """
    origin = recorded(warehouse)
    if origin is None:
        return
    same_url = origin["base_url"] == _url(config.base_url)
    org = origin.get("org_id")
    same_org = not org or not config.org_id or org == config.org_id
    if same_url and same_org:
        return
    here = _describe({"base_url": _url(config.base_url), "org_id": config.org_id})
    raise ConfigError(
        "base_url",
        f"the warehouse {warehouse.root} holds data from {_describe(origin)}, not {here}: "
        f"sync into another folder (--warehouse DIR), delete {warehouse.root} to start "
        f"clean, or pass {ALLOW_FLAG} to add this API's data to it",
    )


def remember(warehouse: Warehouse, config: Any, *, demo: bool = False) -> None:
    """Record `config`'s API as the warehouse's origin (once the key is known good)."""
    old = recorded(warehouse) or {}
    url = _url(config.base_url)
    demo = demo or bool(old.get("demo") and old["base_url"] == url)  # the demo's own sync
    origin = {"base_url": url, "org_id": config.org_id, "demo": demo}
    if old != origin:
        atomic_write(_path(warehouse), orjson.dumps(origin))


def forget(warehouse: Warehouse) -> None:
    """Drop the recorded origin: the next sync records its own API (`--allow-other-api`)."""
    _path(warehouse).unlink(missing_ok=True)


def claim_for_demo(warehouse: Warehouse) -> None:
    """Raise ConfigError unless the demo may sync into `warehouse` (new, or the demo's)."""
    origin = recorded(warehouse)
    if origin is not None and not origin.get("demo"):
        raise ConfigError(
            "warehouse",
            f"{warehouse.root} holds data from {_describe(origin)}; the demo writes into a "
            "folder of its own: hs-sync demo --warehouse demo-warehouse",
        )
