"""API keys and their scopes.

Scope names follow the contract; where it names none the simulator requires
`read:eyetracking` (eye tracking) and `read:deployments` (deployment endpoints).
Health and the signed media URLs need no key; check-access and the
agent-decisions stub need a valid key and no scope.
"""

from __future__ import annotations

import hashlib
import threading

ALL_SCOPES = frozenset(
    {
        "read:events",
        "read:ratings",
        "read:chat",
        "read:videochat",
        "read:sync",
        "read:components",
        "read:eyetracking",
        "read:recordings",
        "read:experiments",
        "read:deployments",
    }
)

SCOPE_FOR_TYPE = {
    "events": "read:events",
    "participants": "read:events",
    "rooms": "read:events",
    "ratings/continuous": "read:ratings",
    "ratings/sparse": "read:ratings",
    "chat": "read:chat",
    "videochat": "read:videochat",
    "sync": "read:sync",
    "components": "read:components",
    "eyetracking": "read:eyetracking",
    "recordings": "read:recordings",
    "deployments": "read:deployments",
    "experiments": "read:experiments",
}


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
