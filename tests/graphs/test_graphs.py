"""Every graph in graphs/ loads, passes `voicegraph check`, and answers a turn on a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flow.config import Settings
from flow.contract.resources import Resources
from flow.graph.loader import load_graph
from flow.testing.servers import voicegraph

GRAPHS = sorted(Path(__file__).resolve().parents[2].joinpath("graphs").glob("*.yaml"))
NEEDS_OPENAI = {"openai", "local_llm"}


def test_there_are_graphs() -> None:
    assert {g.stem for g in GRAPHS} >= {"default", "offline", "openai", "local_llm"}


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.stem)
def test_graph_validates_with_providers(path: Path) -> None:
    settings = Settings(env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"} if path.stem in NEEDS_OPENAI else {})
    spec = load_graph(path, env={}, resources=Resources(settings))
    assert spec.order and spec.source.startswith("version: 1")
    assert spec.warnings == (), [str(w) for w in spec.warnings]


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.stem)
def test_every_path_of_a_bundled_graph_is_an_edge(path: Path) -> None:
    """Cancellation, errors and delivery are edges: every node's failures reach the client (at
    once, or through the gate, which holds a tentative turn's), every node with per-turn work
    hears the gate's cancel, the LLM's history hears what was delivered."""
    spec = load_graph(path, env={})
    edges = {str(e) for e in spec.edges}
    through_gate = "gate.failed -> client.error" in edges
    for node in spec.nodes.values():
        assert (f"{node.id}.error -> client.error" in edges
                or (through_gate and f"{node.id}.error -> gate.failed" in edges)), node.id
        if "cancel" in node.cls.inputs:
            assert f"gate.cancel -> {node.id}.cancel" in edges
    assert {"gate.cancel -> client.cancel", "client.delivered -> llm.delivered", "llm.error -> gate.failed",
            "client.interrupt -> gate.interrupt"} <= edges


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.stem)
async def test_graph_answers_a_text_turn(path: Path, stub, clients) -> None:
    use_stub = stub if path.stem in NEEDS_OPENAI or path.stem == "default" else None
    async with voicegraph(str(path), stub=use_stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "hello graph")
        resp = await c.wait("ai-response", timeout=30)
        assert "hello graph" in resp["text"] and resp["audio"]


def test_check_command_reports_ok_and_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nnodes:\n  stt: {type: transcribr}\nedges: []\n")
    good = GRAPHS[0]
    run = subprocess.run([sys.executable, "-m", "flow.cli", "check", str(good), str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert f"{good}: OK" in run.stdout
    assert f"{bad}:3: node 'stt': unknown node type 'transcribr' (did you mean 'transcriber'?)" in run.stdout


def test_graph_command_prints_mermaid() -> None:
    run = subprocess.run([sys.executable, "-m", "flow.cli", "graph", "default"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("flowchart LR")
    assert 'n_finalizer -- "utterance → utterance" --> n_stt' in run.stdout
