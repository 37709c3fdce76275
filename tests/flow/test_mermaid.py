"""The Mermaid drawing: data edges solid, control edges (cancel, errors) dotted, with a legend."""

from __future__ import annotations

from flow.contract.messages import Cancel, ReplyText, TextInput, UserTurn
from flow.contract.node import In, Node, NoParams
from flow.graph.loader import load_graph_text
from flow.graph.mermaid import to_mermaid
from flow.graph.registry import register


@register("mermaid_worker")
class Worker(Node[NoParams]):
    inputs = {"text": In(TextInput), "cancel": In(Cancel, required=False, control=True)}
    outputs = {"reply": ReplyText, "turn": UserTurn}


@register("mermaid_gate")
class Gate(Node[NoParams]):
    inputs = {"reply": In(ReplyText)}
    outputs = {"reply": ReplyText, "cancel": Cancel}


GRAPH = """version: 1
nodes:
  work: {type: mermaid_worker}
  gate: {type: mermaid_gate}
edges:
  - client.text -> work.text
  - work.reply -> gate.reply
  - gate.reply -> client.response
"""
CONTROL = """  - gate.cancel -> work.cancel
  - work.error -> client.error
"""


def test_control_edges_are_dotted_with_a_legend() -> None:
    drawing = to_mermaid(load_graph_text(GRAPH + CONTROL, env={}))
    assert 'n_work -- "reply → reply" --> n_gate' in drawing
    assert 'n_gate -.->|"cancel → cancel"| n_work' in drawing
    assert 'n_work -.->|"error → error"| client_out' in drawing
    assert "legend: solid edges carry data, dotted edges control" in drawing


def test_no_legend_without_control_edges() -> None:
    drawing = to_mermaid(load_graph_text(GRAPH, env={}))
    assert "-.->" not in drawing and "legend" not in drawing


def test_a_followed_path_and_a_failed_node_are_drawn() -> None:
    spec = load_graph_text(GRAPH)
    chart = to_mermaid(spec, highlight=[1, 0, 99], failed=["gate", "nope"])
    assert "linkStyle 0 stroke:#f59e0b" in chart and "linkStyle 1 " in chart and "linkStyle 99" not in chart
    assert "style n_gate fill:#fee2e2" in chart and "gate: mermaid_gate · failed" in chart
    assert "n_nope" not in chart
