"""The orjson-backed json module for Socket.IO: same results as the library default, edges included."""

from __future__ import annotations

import json

import pytest
from engineio import json as default

from flow.transport import fastjson


def test_same_json_as_the_default_for_protocol_payloads_and_edges() -> None:
    payloads = [
        ["audio-stream", {"_placeholder": True, "num": 0}],
        ["ai-response", {"id": "a", "text": "héllo ünïcode ✓", "audio": None, "timestamp": 1764000000000}],
        ["turn-metrics", {"ms": {"transcript": 12.5}, "cancelled": False}],
        {"big": 2**70},  # beyond orjson's 64 bits: falls back to the standard library
    ]
    for p in payloads:
        text = fastjson.dumps(p, separators=(",", ":"))
        assert json.loads(text) == p
        assert fastjson.loads(text) == default.loads(text)



def test_loads_is_strict_where_the_standard_library_is_not() -> None:
    for text in ("[NaN]", "[Infinity]", "[-Infinity]", "[1e400]", '["\\ud800"]'):
        default.loads(text)  # accepted by the library default…
        with pytest.raises(ValueError):
            fastjson.loads(text)  # …refused here: not JSON, and failed deep in the graph


def test_offered_only_while_socketio_still_has_its_default() -> None:
    from engineio import packet

    before = packet.Packet.json
    try:
        packet.Packet.json = default
        assert fastjson.for_socketio() is fastjson
        packet.Packet.json = json  # someone (NiceGUI) installed their own: leave it alone
        assert fastjson.for_socketio() is None
    finally:
        packet.Packet.json = before
