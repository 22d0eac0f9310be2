"""API keys and their scopes.

Scope names follow the docs: `read:events` also covers participants and rooms
(as does `read:participants`), eye tracking is read with `read:events` (the docs
name no scope of its own), deployments with `read:experiments`. `read:*` grants
every read scope and `*` every scope. Health and the signed media URLs need no
key; check-access and the agent-data endpoints need a valid key and no scope.
"""

from __future__ import annotations

import hashlib
import threading

ALL_SCOPES = frozenset(
    {
        "read:events",
        "read:participants",
        "read:ratings",
        "read:chat",
        "read:videochat",
        "read:sync",
        "read:components",
        "read:recordings",
        "read:experiments",
    }
)

# data type -> the scopes that grant it (the first is the one an error names)
SCOPE_FOR_TYPE: dict[str, tuple[str, ...]] = {
    "events": ("read:events",),
    "participants": ("read:events", "read:participants"),
    "rooms": ("read:events", "read:participants"),
    "ratings/continuous": ("read:ratings",),
    "ratings/sparse": ("read:ratings",),
    "chat": ("read:chat",),
    "videochat": ("read:videochat",),
    "sync": ("read:sync",),
    "components": ("read:components",),
    "eyetracking": ("read:events",),
    "recordings": ("read:recordings",),
    "deployments": ("read:experiments",),
    "experiments": ("read:experiments",),
}


def grants(scopes: frozenset[str], wanted: tuple[str, ...] | str) -> bool:
    """Whether a key holding `scopes` may use an endpoint that needs any of `wanted`."""
    if isinstance(wanted, str):
        wanted = (wanted,)
    if "*" in scopes:
        return True
    return any(w in scopes or (w.startswith("read:") and "read:*" in scopes) for w in wanted)


def default_key(seed: int) -> str:
    """`hst_test_` and 64 hex characters, derived from the seed."""
    return "hst_test_" + hashlib.sha256(f"hs-sync-simulator-key:{seed}".encode()).hexdigest()


class KeyRing:
    def __init__(self) -> None:
        self._keys: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def add(self, key: str, scopes: set[str] | frozenset[str] | None = None) -> None:
        with self._lock:
            self._keys[key] = ALL_SCOPES if scopes is None else frozenset(scopes)

    def remove(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def scopes(self, key: str | None) -> frozenset[str] | None:
        """The key's scopes, or None when the key is unknown (401)."""
        if not key:
            return None
        with self._lock:
            return self._keys.get(key)
