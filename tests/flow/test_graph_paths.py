"""`voicegraph check` follows the edges: graphs that load but cannot work are flagged."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flow.contract.messages import AudioChunk, TextInput, Transcript
from flow.contract.node import In, Node, NoParams
from flow.graph.loader import GraphError, load_graph, load_graph_text
from flow.graph.registry import register

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = sorted((ROOT / "graphs").glob("*.yaml"))


@register("test_paths_level")
class Level(Node[NoParams]):
    """Audio in, a transcript-like note out (a side branch off the turns' path)."""

    inputs = {"audio": In(AudioChunk)}
    outputs = {"note": Transcript}


@register("test_paths_text_sink")
class TextSink(Node[NoParams]):
    """Takes text and declares no outputs: a sink on purpose, never a dead end."""

    inputs = {"text": In(TextInput)}
    outputs = {}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flow.cli", "check", *args], capture_output=True, text=True,
                          cwd=ROOT)


DANGLING = """
    version: 1
    extends: default
    name: dangling
    remove_edges:
      - tts.speech -> gate.response
    """

ORPHAN = """
    version: 1
    extends: default
    name: orphan
    nodes:
      spare: {type: turn_taker}
    edges:
      - spare.turn  -> client.message
      - spare.error -> client.error
    """


def test_a_reply_that_goes_nowhere_is_an_error(tmp_path: Path) -> None:
    """Served, this graph answers a text message with ai-typing true and then nothing, forever."""
    path = write(tmp_path, "dangling.yaml", DANGLING)
    with pytest.raises(GraphError) as info:
        load_graph(path, env={})
    found = {(i.node, i.port): i for i in info.value.issues}
    assert set(found) == {("llm", ""), ("tts", ""), ("client", "typing")}
    assert not any(i.warning for i in info.value.issues)
    tts = found[("tts", "")]
    assert "every turn's work here is lost: nothing it sends reaches the client on any path" in tts.message
    assert f"e.g. wire tts.speech -> gate.response (an edge into it was removed in {path}:5)" in tts.message
    assert "its outputs lead only to tts, which answer nothing" in found[("llm", "")].message
    typing = found[("client", "typing")].message
    assert typing.startswith("a turn would never end: ai-typing is sent (turns.typing -> client.typing, "
                             "gate.typing -> client.typing)")
    assert "gate gets no reply (nothing that runs is wired into gate.response or gate.pieces)" in typing

    run = check(str(path))
    assert run.returncode == 1 and "OK" not in run.stdout
    assert "node 'tts': every turn's work here is lost" in run.stdout


def test_typing_that_nothing_ends_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "g.yaml", """
        version: 1
        extends: default
        remove_edges:
          - gate.typing -> client.typing
        """)
    with pytest.raises(GraphError) as info:
        load_graph(path, env={})
    [issue] = info.value.issues
    assert issue.message == ("a turn would never end: ai-typing is sent (turns.typing -> client.typing) but no node "
                             "that gets the reply sends it")


def test_an_orphan_node_is_a_warning_and_strict_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "orphan.yaml", ORPHAN)
    spec = load_graph(path, env={})
    [w] = spec.warnings
    assert (w.node, w.line, w.warning) == ("spare", 5, True)
    assert w.message == "never runs: no path from a client output reaches it (none of its inputs is wired)"

    run = check(str(path))
    assert run.returncode == 0
    assert f"{path}:5: node 'spare': warning: never runs" in run.stdout and f"{path}: OK" in run.stdout
    run = check("--strict", str(path))
    assert run.returncode == 1
    assert f"{path}: FAILED with --strict (graph 'orphan': 8 nodes, 33 edges" in run.stdout


def test_a_node_fed_only_by_an_orphan_never_runs(tmp_path: Path) -> None:
    spec = load_graph(write(tmp_path, "g.yaml", """
        version: 1
        extends: default
        nodes:
          spare: {type: turn_taker}
          gate2: {type: interrupt_gate}
        edges:
          - spare.turn -> gate2.turn
          - gate2.response -> client.response
        """), env={})
    assert {w.node: w.message for w in spec.warnings if w.node in ("spare", "gate2")} == {
        "spare": "never runs: no path from a client output reaches it (none of its inputs is wired)",
        "gate2": "never runs: no path from a client output reaches it (its inputs turn are fed only by nodes that "
                 "never run)",
    }


def test_a_dead_end_off_the_turns_path_is_a_warning_and_a_sink_is_fine() -> None:
    spec = load_graph_text(textwrap.dedent("""
        version: 1
        extends: default
        nodes:
          level: {type: test_paths_level}
          sink:  {type: test_paths_text_sink}
        edges:
          - buffer.audio -> level.audio
          - client.text  -> sink.text
          - level.error  -> client.error
          - sink.error   -> client.error
        """), env={})
    [w] = spec.warnings
    assert (w.node, w.warning) == ("level", True)
    assert w.message == ("nothing it sends reaches the client on any path; no output of it is wired (note); "
                         "e.g. wire level.note -> turns.transcript")


def test_ignored_client_inputs_are_warnings() -> None:
    text_only = load_graph_text("version: 1\nextends: default\nremove_nodes: [buffer, finalizer, stt]\n", env={})
    assert [str(w) for w in text_only.warnings] == [
        "<text>: node 'client' port 'audio': warning: output not wired: audio (audio-stream) is ignored: voice "
        "turns get no answer"]
    voice_only = load_graph_text("version: 1\nextends: default\nremove_edges: [client.text -> turns.text]\n", env={})
    assert [(w.node, w.port) for w in voice_only.warnings] == [("client", "text")]
    assert "typed messages (text-message) get no answer" in voice_only.warnings[0].message


def test_a_graph_that_answers_nothing_is_an_error() -> None:
    with pytest.raises(GraphError) as info:
        load_graph_text("version: 1\nnodes:\n  turns: {type: turn_taker}\nedges:\n  - client.text -> turns.text\n",
                        env={})
    [issue] = info.value.issues
    assert issue.message.startswith("nothing the client sends can reach it back")


def test_an_unknown_type_asks_whether_a_plugin_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "g.yaml", """
        version: 1
        nodes:
          vad: {type: smart_turn_detector}
        edges: []
        """)
    run = check(str(path))
    assert run.returncode == 1
    assert (f"{path}:3: node 'vad': unknown node type 'smart_turn_detector': is a plugin missing? installed node "
            "types: chunk_buffer, ") in run.stdout
    assert "turn_taker" in run.stdout


def test_bundled_graphs_pass_strict() -> None:
    run = check("--strict", *map(str, BUNDLED))
    assert run.returncode == 0, run.stdout
    assert run.stdout.count(": OK (") == len(BUNDLED) and "warning" not in run.stdout
