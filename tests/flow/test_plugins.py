"""A node type from another installed package, found through the `voicegraph.nodes` entry points."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from flow.graph import registry
from flow.testing.servers import voicegraph

PLUGIN = '''
"""A third-party node type: shouts every turn back as the reply."""
from reactivex import operators as ops
from flow.contract.messages import ReplyText, UserTurn, new_id
from flow.contract.node import In, Node, NoParams


class Shout(Node[NoParams]):
    inputs = {"turn": In(UserTurn)}
    outputs = {"reply": ReplyText}

    def wire(self, turn):
        return {"reply": turn.pipe(ops.map(
            lambda t: ReplyText(t.session, t.turn, new_id(), t.id, t.text.upper() + "!")))}
'''

GRAPH = """
version: 1
name: shouting
nodes:
  turns: {type: turn_taker}
  shout: {type: shout}
  gate:  {type: interrupt_gate}
edges:
  - client.text -> turns.text
  - turns.turn -> client.message
  - turns.turn -> shout.turn
  - turns.turn -> gate.turn
  - shout.reply -> gate.response
  - gate.response -> client.response
"""


@pytest.fixture
def installed_plugin(tmp_path: Path):
    """Lay the plugin out as pip installs it: the package plus a dist-info with entry_points.txt."""
    (tmp_path / "vg_shout").mkdir()
    (tmp_path / "vg_shout" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "vg_shout-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vg-shout\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[voicegraph.nodes]\nshout = vg_shout:Shout\n")
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    yield
    sys.path.remove(str(tmp_path))
    registry._registered.pop("shout", None)
    sys.modules.pop("vg_shout", None)


async def test_entry_point_node_is_used_from_yaml(installed_plugin, clients) -> None:
    assert "shout" in registry.names()
    async with voicegraph(graph_text=GRAPH) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "hello plugin")
        resp = await c.wait("ai-response")
        assert resp["text"] == "HELLO PLUGIN!" and resp["audio"] is None


def test_builtins_come_from_the_same_entry_points() -> None:
    names = registry.names()
    for builtin in ("chunk_buffer", "silence_finalizer", "transcriber", "responder", "synthesizer",
                    "interrupt_gate", "turn_taker"):
        assert builtin in names
