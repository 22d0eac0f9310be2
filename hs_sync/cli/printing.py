"""Human output that a server cannot forge: control characters escaped, long ids shortened.

Ids, warnings and error messages come from the API. Printed as sent, a newline in
an id forges a summary line, NUL and ESC reach the terminal, and a 10,000-character
id fills the screen. Everything human-readable goes through here; `--json` output
does not (it keeps every value exact).
"""

from __future__ import annotations

import re

import click

ID_LIMIT = 60  # characters of an id shown before an ellipsis
WORD_LIMIT = 120  # a run of non-blank characters longer than this in a message is cut

# C0 and C1 controls, DEL, and the Unicode line separators and direction overrides
# that rearrange or break a terminal line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_LONG_WORD = re.compile(rf"\S{{{WORD_LIMIT + 1},}}")


def _escape(match: re.Match) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def count(n: int, noun: str = "row") -> str:
    """`n` and `noun`, plural unless `n` is 1: "1 row", "2,500 rows"."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def shown(value: object, limit: int = ID_LIMIT) -> str:
    """`value` as one safe line: controls escaped, cut to `limit` characters plus `…`."""
    text = _CONTROL.sub(_escape, str(value))
    return text if len(text) <= limit else text[:limit] + "…"


def line(text: object, *, shorten: bool = True) -> str:
    """A message as one safe line: controls escaped, overlong words (ids) shortened."""
    escaped = _CONTROL.sub(_escape, str(text))
    if not shorten:
        return escaped
    return _LONG_WORD.sub(lambda m: m.group(0)[:ID_LIMIT] + "…", escaped)


def rich(value: object, limit: int = ID_LIMIT) -> str:
    """`shown(value)` for a rich console or table: markup in it is printed, not applied."""
    from rich.markup import escape

    return escape(shown(value, limit))


def rich_line(text: object) -> str:
    """`line(text)` for a rich console: markup in it is printed, not applied."""
    from rich.markup import escape

    return escape(line(text))


def echo(text: object = "", *, err: bool = False, shorten: bool = True) -> None:
    """Print one line of human output (see `line`)."""
    click.echo(line(text, shorten=shorten), err=err)
