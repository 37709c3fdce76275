"""A cheap estimate of how many bytes a JSON-like value takes, for bounds that count memory.

Exact sizes would mean serializing every event twice; bounds only need the order of magnitude,
and for the values that matter (long strings, base64 audio, binary chunks) the estimate is the
length itself. Containers nested deeper than `MAX_DEPTH` count as `OPAQUE_BYTES`.
"""

from __future__ import annotations

from typing import Any

SCALAR_BYTES = 8
"""What a number, bool or None counts for (its JSON text is about that long)."""
OPAQUE_BYTES = 64
"""What a value of another type, or nested too deep to walk, counts for."""
MAX_DEPTH = 6


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
