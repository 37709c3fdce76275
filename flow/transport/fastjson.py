"""An orjson-backed `json` module for python-socketio: every event's JSON part is parsed with it.

engineio's default `loads` passes `parse_int=`, which makes the standard library build a new
decoder for every packet; with two packets per binary audio chunk that was a visible share of the
server's CPU per chunk. orjson parses faster and bounds integers to 64 bits itself, which is the
protection `parse_int` was there for.

`loads` is strict: NaN, Infinity, numbers that overflow a double (1e400) and lone surrogates are
not JSON and raise `ValueError` (the standard library accepts them, and they then failed deep in
the graph: an `OverflowError`, a `UnicodeEncodeError` in speech synthesis).

python-socketio keeps its json module in a class attribute, process-wide. NiceGUI installs its own
orjson wrapper there; our server's packet class carries this module as its own attribute
(`flow.transport.door.DoorPacket`), so neither replaces the other. `for_socketio()` offers this
module for a plain `socketio.AsyncServer(json=...)` only while nothing has replaced the default.
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
    """Strict JSON: `orjson.JSONDecodeError` (a `ValueError`) for NaN, Infinity, 1e400, lone surrogates."""
    return orjson.loads(data)


def for_socketio() -> types.ModuleType | None:
    """This module, unless the process already uses a non-default json for Socket.IO (NiceGUI)."""
    import sys

    from engineio import packet

    return sys.modules[__name__] if packet.Packet.json is _default else None
