"""Every graph validation error, with its file, line, node and port."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from flow.cli import main
from flow.config import Settings
from flow.contract.messages import AudioChunk, Cancel, ReplyText, TextInput, Transcript, UserTurn
from flow.contract.node import In, Node, NoParams
from flow.contract.resources import Resources
from flow.graph.loader import GraphError, load_graph_text
from flow.graph.registry import register


class EchoParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    gain: int = Field(1, ge=0, le=10)


@register("test_text_to_turn")
class TextToTurn(Node[EchoParams]):
    Params = EchoParams
    inputs = {"text": In(TextInput), "extra": In(Transcript, required=False)}
    outputs = {"turn": UserTurn}


@register("test_turn_relay")
class TurnRelay(Node[EchoParams]):
    Params = EchoParams
    inputs = {"turn": In(UserTurn)}
    outputs = {"turn": UserTurn}


@register("test_audio_sink")
class AudioSink(Node[EchoParams]):
    Params = EchoParams
    inputs = {"audio": In(AudioChunk)}
    outputs = {}


@register("test_worker")
class Worker(Node[NoParams]):
    inputs = {"turn": In(UserTurn), "cancel": In(Cancel, required=False, control=True)}
    outputs = {"reply": ReplyText}


@register("test_worker_data_cancel")
class WorkerDataCancel(Node[NoParams]):
    """A `cancel` input not marked `control`: a loop through it is a cycle."""

    inputs = {"turn": In(UserTurn), "cancel": In(Cancel, required=False)}
    outputs = {"reply": ReplyText}


@register("test_canceller")
class Canceller(Node[NoParams]):
    inputs = {"reply": In(ReplyText)}
    outputs = {"reply": ReplyText, "cancel": Cancel}


def load(yaml_text: str, env: dict[str, str] | None = None, resources=None):
    return load_graph_text(textwrap.dedent(yaml_text).lstrip(), "g.yaml", env or {}, resources)


def issues(yaml_text: str, env: dict[str, str] | None = None, resources=None) -> list:
    with pytest.raises(GraphError) as info:
        load(yaml_text, env, resources)
    return info.value.issues


GOOD = """
version: 1
name: good
nodes:
  a: {type: test_text_to_turn}
  b: {type: test_turn_relay, params: {gain: 3}}
edges:
  - client.text -> a.text
  - a.turn -> b.turn
  - b.turn -> client.message
"""


def test_valid_graph_loads_in_topological_order() -> None:
    spec = load(GOOD)
    assert spec.name == "good" and spec.order == ("a", "b")
    assert spec.nodes["b"].params.gain == 3
    assert [str(e) for e in spec.edges] == ["client.text -> a.text", "a.turn -> b.turn", "b.turn -> client.message"]
    assert spec.edges[1].line == 8


def test_order_follows_edges_not_yaml_order() -> None:
    spec = load(GOOD.replace("  a: {type: test_text_to_turn}\n  b: {type: test_turn_relay, params: {gain: 3}}",
                             "  b: {type: test_turn_relay, params: {gain: 3}}\n  a: {type: test_text_to_turn}"))
    assert spec.order == ("a", "b")


def test_unknown_type_suggests_nearest() -> None:
    [i] = issues(GOOD.replace("test_turn_relay", "test_turn_rely"))
    assert (i.line, i.node) == (5, "b")
    assert "unknown node type 'test_turn_rely'" in i.message and "did you mean 'test_turn_relay'" in i.message
    assert str(i).startswith("g.yaml:5: node 'b': ")


def test_unknown_output_port_suggests_and_lists() -> None:
    [i] = issues(GOOD.replace("a.turn -> b.turn", "a.trun -> b.turn"))
    assert (i.line, i.node, i.port) == (8, "a", "trun")
    assert "did you mean 'turn'" in i.message


def test_input_used_as_source_is_explained() -> None:
    [i] = issues(GOOD.replace("a.turn -> b.turn", "a.text -> b.turn"))
    assert (i.line, i.node, i.port) == (8, "a", "text") and "is an input, not an output" in i.message


def test_unknown_node_in_edge() -> None:
    found = issues(GOOD.replace("b.turn -> client.message", "c.turn -> client.message"))
    assert [(i.line, i.node) for i in found] == [(9, "c")]
    assert "unknown node 'c'" in found[0].message


def test_type_mismatch_names_both_types() -> None:
    text = GOOD.replace("  - a.turn -> b.turn\n", "  - a.turn -> b.turn\n  - client.audio -> a.text\n")
    [i] = issues(text)
    assert (i.line, i.node, i.port) == (9, "a", "text")
    assert "AudioData" in i.message and "TextInput" in i.message


def test_invalid_params_use_pydantic_message_and_param_line() -> None:
    text = GOOD.replace("  b: {type: test_turn_relay, params: {gain: 3}}",
                        "  b:\n    type: test_turn_relay\n    params:\n      gain: 99")
    [i] = issues(text)
    assert (i.line, i.node) == (8, "b") and "gain" in i.message and "less than or equal to 10" in i.message


def test_unknown_param_is_rejected() -> None:
    [i] = issues(GOOD.replace("params: {gain: 3}", "params: {gian: 3}"))
    assert i.node == "b" and "gian" in i.message and "Extra inputs are not permitted" in i.message


def test_unconnected_required_input() -> None:
    text = GOOD.replace("  - a.turn -> b.turn\n", "")
    [i] = issues(text)
    assert (i.line, i.node, i.port) == (5, "b", "turn") and "not connected" in i.message


def test_cycle_names_its_nodes() -> None:
    text = """
    version: 1
    nodes:
      a: {type: test_turn_relay}
      b: {type: test_turn_relay}
    edges:
      - a.turn -> b.turn
      - b.turn -> a.turn
      - b.turn -> client.message
    """
    [i] = issues(text)
    assert i.line == 3 and "cycle" in i.message and "a, b" in i.message


def test_duplicate_node_id() -> None:
    text = GOOD.replace("  b: {type: test_turn_relay, params: {gain: 3}}",
                        "  b: {type: test_turn_relay, params: {gain: 3}}\n  b: {type: test_turn_relay}")
    [i] = issues(text)
    assert (i.line, i.node) == (6, "b") and "duplicate node id" in i.message and "line 5" in i.message


def test_duplicate_edge() -> None:
    [i] = issues(GOOD.replace("  - a.turn -> b.turn\n", "  - a.turn -> b.turn\n  - a.turn -> b.turn\n"))
    assert i.line == 9 and "duplicate edge" in i.message


def test_reserved_client_id_and_bad_edge_syntax_reported_together() -> None:
    text = GOOD.replace("  a: {type: test_text_to_turn}",
                        "  a: {type: test_text_to_turn}\n  client: {type: test_turn_relay}")
    text = text.replace("  - a.turn -> b.turn\n", "  - a.turn -> b.turn\n  - a.turn b.turn\n")
    found = issues(text)
    assert [(i.line, "reserved" in i.message or "an edge is" in i.message) for i in found] == [(5, True), (10, True)]


def test_top_level_typo_version_and_missing_nodes() -> None:
    found = issues("version: 2\nnodse: {}\nedges: []\n")
    messages = " | ".join(f"{i.line}:{i.message}" for i in found)
    assert "1:'version: 1' is required" in messages
    assert "2:unknown top-level key 'nodse' (did you mean 'nodes'?)" in messages
    assert "'nodes' must be a non-empty mapping" in messages


def test_yaml_syntax_error_has_its_line() -> None:
    [i] = issues("version: 1\nnodes:\n  a: {type: test_turn_relay\nedges: []\n")
    assert i.line in (3, 4) and "YAML syntax error" in i.message


def test_env_interpolation_types_and_defaults() -> None:
    text = GOOD.replace("params: {gain: 3}", 'params: {gain: "${VOICEGRAPH_GAIN:-4}"}')
    assert load(text).nodes["b"].params.gain == 4
    assert load(text, {"VOICEGRAPH_GAIN": "7"}).nodes["b"].params.gain == 7


def test_missing_env_variable_without_default() -> None:
    i = issues(GOOD.replace("params: {gain: 3}", 'params: {gain: "${VOICEGRAPH_GAIN}"}'))[0]
    assert i.line == 5 and "VOICEGRAPH_GAIN is not set" in i.message


def test_variables_are_substituted_only_in_params_values() -> None:
    text = """
    version: 1
    name: "${VOICEGRAPH_NAME:-x}"
    nodes:
      a: {type: "${VOICEGRAPH_TYPE:-test_text_to_turn}"}
      "${VOICEGRAPH_ID:-b}": {type: test_turn_relay, params: {"${VOICEGRAPH_KEY:-gain}": 3}}
    edges:
      - client.text -> ${VOICEGRAPH_EDGE:-a}.text
    """
    found = {(i.line, i.message.split(":")[0]) for i in issues(text, {"VOICEGRAPH_NAME": "n"})
             if "substituted only in params values" in i.message}
    assert found == {(2, "${VOICEGRAPH_NAME} in 'name'"), (4, "${VOICEGRAPH_TYPE} in 'type'"),
                     (5, "${VOICEGRAPH_ID} in a node id"), (5, "${VOICEGRAPH_KEY} in a key"),
                     (7, "${VOICEGRAPH_EDGE} in 'edges'")}


def test_a_graph_reads_only_its_own_variables_and_never_a_secret() -> None:
    def gain(var: str) -> str:
        return GOOD.replace("params: {gain: 3}", f'params: {{gain: "${{{var}:-2}}"}}')

    env = {"OPENAI_API_KEY": "sk-never-shown-1234", "HOME": "/root", "VOICEGRAPH_TOKEN": "tok-never-shown",
           "OPENAI_MODEL": "5", "VOICEGRAPH_GAIN": "6"}
    for var in ("OPENAI_API_KEY", "HOME", "VOICEGRAPH_TOKEN", "AWS_SECRET_ACCESS_KEY"):
        found = issues(gain(var), env)
        i = found[0]
        assert "never-shown" not in " ".join(map(str, found)) and "/root" not in " ".join(map(str, found))
        assert i.line == 5 and i.node == "b" and i.message.startswith(f"${{{var}}}: a graph may read only")
    assert load(gain("OPENAI_MODEL"), env).nodes["b"].params.gain == 5
    assert load(gain("VOICEGRAPH_GAIN"), env).nodes["b"].params.gain == 6


def test_text_from_a_client_reads_no_environment() -> None:
    text = GOOD.replace("params: {gain: 3}", 'params: {gain: "${VOICEGRAPH_GAIN:-4}"}')
    env = {"VOICEGRAPH_GAIN": "7"}
    assert load_graph_text(textwrap.dedent(text), "editor", env, read_env=False).nodes["b"].params.gain == 4
    with pytest.raises(GraphError) as info:
        load_graph_text(textwrap.dedent(text.replace(":-4", "")), "editor", env, read_env=False)
    i = info.value.issues[0]
    assert "VOICEGRAPH_GAIN has no default, and a graph from the dashboard editor reads no" in i.message


def test_provider_checks_run_with_resources() -> None:
    text = """
    version: 1
    nodes:
      llm: {type: responder, params: {provider: openai}}
    edges:
      - client.text -> llm.turn
    """
    found = issues(text, resources=Resources(Settings()))
    # client.text is TextInput, llm.turn takes UserTurn; and openai is not configured
    messages = [i.message for i in found]
    assert any("OPENAI_API_KEY" in m for m in messages)
    assert any("type mismatch" in m for m in messages)


LOOP = """
version: 1
nodes:
  gate: {type: test_canceller}
  work: {type: test_worker}
  turns: {type: test_text_to_turn}
edges:
  - client.text -> turns.text
  - turns.turn -> work.turn
  - work.reply -> gate.reply
  - gate.reply -> client.response
  - gate.cancel -> work.cancel
  - turns.error -> client.error
  - work.error -> client.error
  - gate.error -> client.error
"""


def test_a_loop_through_a_control_input_is_no_cycle() -> None:
    spec = load(LOOP)
    assert spec.order == ("turns", "work", "gate")
    assert [(w.node, w.port) for w in spec.warnings] == [("client", "audio")]  # a text-only graph


def test_a_loop_through_a_data_input_is_a_cycle() -> None:
    [i] = issues(LOOP.replace("type: test_worker}", "type: test_worker_data_cancel}"))
    assert (i.line, i.node) == (3, "gate") and "cycle among nodes gate, work" in i.message
    assert "only control inputs" in i.message


def test_unwired_cancel_input_and_error_outputs_are_warnings() -> None:
    text = LOOP.replace("  - gate.cancel -> work.cancel\n", "").replace("  - gate.error -> client.error\n", "")
    spec = load(text)
    assert [(w.line, w.node, w.port, w.warning) for w in spec.warnings] == [
        (3, "gate", "error", True), (4, "work", "cancel", True), (0, "client", "audio", True)]
    assert str(spec.warnings[0]) == ("g.yaml:3: node 'gate' port 'error': warning: output not wired: failures are "
                                     "only logged (wire gate.error -> client.error)")
    assert "its stale work would run on after an interrupt" in spec.warnings[1].message


def test_error_output_is_implicit_and_typed() -> None:
    [i] = issues(LOOP.replace("  - gate.error -> client.error\n", "  - gate.error -> work.turn\n"))
    assert (i.line, i.node, i.port) == (14, "work", "turn") and "NodeFailed" in i.message


def test_check_with_only_warnings_exits_zero_and_prints_them(tmp_path: Path, capsys) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(textwrap.dedent(LOOP).lstrip().replace("  - gate.cancel -> work.cancel\n", ""))
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{path}:4: node 'work' port 'cancel': warning: input not wired: its stale work would run on "
                   "after an interrupt (wire e.g. gate.cancel to it)",
                   f"{path}: node 'client' port 'audio': warning: output not wired: audio (audio-stream) is "
                   "ignored: voice turns get no answer",
                   f"{path}: OK (graph 'warn': 3 nodes, 7 edges; 2 warning(s))"]
