"""A HyperStudy v3 API simulator: a real HTTP server over a deterministic dataset.

Written from the wire contract alone; it imports nothing from the client side
of hs_sync. See `simulator.Simulator` for the Python interface, `app` for the
HTTP behaviour chosen where the contract is silent, and `dataset` for the live
clock and ground truth.
"""

from __future__ import annotations

from .series import Series
from .simulator import Simulator

__all__ = ["Series", "Simulator"]
