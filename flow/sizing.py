"""Bounds on what a value costs: a cheap estimate of its JSON size, and a capped quote of it.

Exact sizes would mean serializing every event twice; bounds only need the order of magnitude,
and for the values that matter (long strings, base64 audio, binary chunks) the estimate is the
length itself. Containers nested deeper than `MAX_DEPTH` count as `OPAQUE_BYTES`.

`quote` is how an error message shows a value a client sent: never more than `QUOTE_CHARS` of it,
so a megabyte-long mimeType or event name is not sent back (or logged) whole.
"""

from __future__ import annotations

import reprlib
from typing import Any

SCALAR_BYTES = 8
"""What a number, bool or None counts for (its JSON text is about that long)."""
OPAQUE_BYTES = 64
"""What a value of another type, or nested too deep to walk, counts for."""
MAX_DEPTH = 6
QUOTE_CHARS = 100
"""Most characters of a client's value an error message quotes; a longer one is cut and marked."""


def approx_bytes(value: Any, _depth: int = 0) -> int:
    """About how many bytes `value` takes as JSON (strings by length, bytes by size)."""
    if isinstance(value, str | bytes | bytearray | memoryview):
        return len(value) + 2
    if value is None or isinstance(value, bool | int | float):
        return SCALAR_BYTES
    if _depth >= MAX_DEPTH:
        return OPAQUE_BYTES
    if isinstance(value, dict):
        return 2 + sum(approx_bytes(k, _depth + 1) + approx_bytes(v, _depth + 1) + 2 for k, v in value.items())
    if isinstance(value, list | tuple):
        return 2 + sum(approx_bytes(v, _depth + 1) + 1 for v in value)
    return OPAQUE_BYTES


def quote(value: Any, limit: int = QUOTE_CHARS) -> str:
    """`repr(value)` for a message, cut to about `limit` characters and marked as cut when longer."""
    if isinstance(value, str | bytes | bytearray):
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}… (cut: {len(value):,} in all)"
    shown = reprlib.Repr()  # bounded however large or deep the value is
    shown.maxstring = shown.maxother = limit
    text = shown.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… (cut)"
