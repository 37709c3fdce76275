"""An orjson-backed `json` module for python-socketio: every event's JSON part is parsed with it.

engineio's default `loads` passes `parse_int=`, which makes the standard library build a new
decoder for every packet; with two packets per binary audio chunk that was a visible share of the
server's CPU per chunk. orjson parses faster and bounds integers to 64 bits itself, which is the
protection `parse_int` was there for.

python-socketio keeps its json module in a class attribute, process-wide. NiceGUI installs its own
orjson wrapper there; `for_socketio()` therefore only offers this one when nothing has replaced the
library default yet, so the dashboard's serializer is never swapped out underneath it.
"""

from __future__ import annotations

import types
from typing import Any

import orjson
from engineio import json as _default


def dumps(obj: Any, *, separators: tuple[str, str] | None = None, sort_keys: bool = False, **_: Any) -> str:
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode("utf-8")
    except TypeError:  # what orjson refuses (ints beyond 64 bits, …): exactly what json would make
        return _default.dumps(obj, separators=separators or (",", ":"), sort_keys=sort_keys)


def loads(data: str | bytes, **_: Any) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # e.g. 1e400: let the library default decide, as it did before
        return _default.loads(data)


def for_socketio() -> types.ModuleType | None:
    """This module, unless the process already uses a non-default json for Socket.IO (NiceGUI)."""
    import sys

    from engineio import packet

    return sys.modules[__name__] if packet.Packet.json is _default else None
