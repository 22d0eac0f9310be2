"""Helpers for the report tests: headless Chromium, its DOM, and the pixels of a PNG."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # every network request goes to a closed port: the page must need none
    "--proxy-server=127.0.0.1:9",
)


def chromium() -> str:
    """The Chromium binary, or a skip saying how to install it."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run does it)")


def render(page: Path, folder: Path, width: int = 1400, height: int = 3000) -> tuple[str, Path]:
    """Open `page` in headless Chromium once: the DOM after its scripts ran, and a screenshot."""
    png = folder / "screenshot.png"
    done = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={folder / 'profile'}",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=10000",  # let the page's scripts finish before the dump
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert png.exists(), "chromium wrote no screenshot"
    return done.stdout.decode("utf-8"), png


@dataclass
class Chart:
    """What one chart's element holds after rendering: class names and visible text."""

    classes: Counter = field(default_factory=Counter)
    text: list[str] = field(default_factory=list)
    tags: Counter = field(default_factory=Counter)

    def count(self, classes: str) -> int:
        """Elements whose class list starts with `classes` (e.g. 'trace scatter', 'point')."""
        return sum(n for c, n in self.classes.items() if (c + " ").startswith(classes + " "))


class _Charts(HTMLParser):
    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}

    def __init__(self, prefix: str):
        super().__init__(convert_charrefs=True)
        self.prefix = prefix
        self.charts: dict[str, Chart] = {}
        self._current: Chart | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self._current is None:
            if tag == "div" and (a.get("id") or "").startswith(self.prefix):
                self._current = self.charts.setdefault(a["id"][len(self.prefix) :], Chart())
                self._depth = 1
            return
        self._current.tags[tag] += 1
        if a.get("class"):
            self._current.classes[a["class"]] += 1
        if tag not in self._VOID:
            self._depth += 1

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self._current is not None and tag not in self._VOID:
            self._depth -= 1

    def handle_endtag(self, tag):
        if self._current is not None and tag not in self._VOID:
            self._depth -= 1
            if self._depth == 0:
                self._current = None

    def handle_data(self, data):
        if self._current is not None and data.strip():
            self._current.text.append(data)


def charts(dom: str, prefix: str = "chart-") -> dict[str, Chart]:
    """Each rendered chart `<div id="chart-NAME">` of a DOM, by NAME."""
    parser = _Charts(prefix)
    parser.feed(dom)
    return parser.charts


def pixels(path: Path) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG as a (height, width, channels) array (no imaging library)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, "unexpected PNG kind"
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    bpp = 3 if color == 2 else 4
    rows = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    rows = rows.reshape(height, width * bpp + 1)
    out = np.empty((height, width * bpp), dtype=np.uint8)
    prev = np.zeros(width * bpp, dtype=np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum along the row, per channel
            cur = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            cur = line + prev
        else:
            cur = _unfilter(kind, bytearray(line.tobytes()), prev.tobytes(), bpp)
        out[y] = cur
        prev = out[y]
    return out.reshape(height, width, bpp)


def _unfilter(kind: int, cur: bytearray, up: bytes, bpp: int) -> np.ndarray:
    """PNG filters 3 (Average) and 4 (Paeth), which depend on the byte to the left."""
    for i in range(bpp):  # the first pixel has nothing to its left
        cur[i] = (cur[i] + (up[i] >> 1 if kind == 3 else up[i])) & 255
    if kind == 3:
        for i in range(bpp, len(cur)):
            cur[i] = (cur[i] + ((cur[i - bpp] + up[i]) >> 1)) & 255
    else:
        for i in range(bpp, len(cur)):
            a, b, c = cur[i - bpp], up[i], up[i - bpp]
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - c - c)
            cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    return np.frombuffer(bytes(cur), dtype=np.uint8)


def share_near(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12) -> float:
    """The share of pixels within `tolerance` of colour `rgb` in every channel."""
    diff = np.abs(image[..., :3].astype(np.int16) - np.array(rgb, dtype=np.int16))
    return float(np.all(diff <= tolerance, axis=-1).mean())
