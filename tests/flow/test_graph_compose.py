"""`extends:` — a graph built from another: overrides, additions, removals, and errors in the right file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from flow.cli import main
from flow.contract.messages import ReplyText, TextInput, UserTurn
from flow.contract.node import In, Node
from flow.graph.loader import GraphError, load_graph, load_graph_text
from flow.graph.registry import register


class WorkParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    gain: int = Field(1, ge=0, le=10)
    label: str = "x"


@register("compose_turns")
class Turns(Node[WorkParams]):
    Params = WorkParams
    inputs = {"text": In(TextInput)}
    outputs = {"turn": UserTurn}


@register("compose_reply")
class Reply(Node[WorkParams]):
    Params = WorkParams
    inputs = {"turn": In(UserTurn)}
    outputs = {"reply": ReplyText}


@register("compose_shout")
class Shout(Node[WorkParams]):
    Params = WorkParams
    inputs = {"turn": In(UserTurn)}
    outputs = {"shout": ReplyText}


BASE = """
version: 1
name: base
description: the base graph
nodes:
  turns: {type: compose_turns}
  reply: {type: compose_reply, params: {gain: 2, label: "${VOICEGRAPH_LABEL:-base}"}}
  echo:  {type: compose_reply}
edges:
  - client.text -> turns.text
  - turns.turn -> client.message
  - turns.turn -> reply.turn
  - reply.reply -> client.response
  - turns.turn -> echo.turn
  - echo.reply -> client.response
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def issues_of(path: Path, env: dict[str, str] | None = None) -> list:
    with pytest.raises(GraphError) as info:
        load_graph(path, env=env or {})
    return info.value.issues


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write(tmp_path, "base.yaml", BASE)


def test_child_overrides_adds_and_removes(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path, "child.yaml", """
        version: 1
        extends: base.yaml
        nodes:
          reply: {params: {gain: 5}}
          shout: {type: compose_shout}
        remove_edges:
          - turns.turn -> client.message
        remove_nodes: [echo]
        edges:
          - turns.turn -> shout.turn
          - shout.shout -> client.response
        """)
    spec = load_graph(child, env={})
    assert (spec.name, spec.description) == ("child", "the base graph")
    assert spec.bases == (str(base),) and spec.source.startswith("version: 1\nextends: base.yaml")
    assert list(spec.nodes) == ["turns", "reply", "shout"] and spec.order == ("turns", "reply", "shout")
    assert spec.nodes["reply"].params.model_dump() == {"gain": 5, "label": "base"}  # merged key by key
    assert (spec.nodes["reply"].file, spec.nodes["reply"].line) == (str(base), 6)
    assert (spec.nodes["shout"].file, spec.nodes["shout"].line) == (str(child), 5)
    assert [str(e) for e in spec.edges] == ["client.text -> turns.text", "turns.turn -> reply.turn",
                                            "reply.reply -> client.response", "turns.turn -> shout.turn",
                                            "shout.shout -> client.response"]
    assert [(Path(e.file).name, e.line) for e in spec.edges][-2:] == [("child.yaml", 10), ("child.yaml", 11)]


def test_a_node_with_type_replaces_the_base_node_and_keeps_its_edges(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path, "child.yaml", """
        version: 1
        extends: base.yaml
        name: replaced
        description: mine
        nodes:
          reply: {type: compose_reply, params: {label: new}}
        """)
    spec = load_graph(child, env={})
    assert (spec.name, spec.description) == ("replaced", "mine")
    assert spec.nodes["reply"].params.model_dump() == {"gain": 1, "label": "new"}  # base params dropped
    assert spec.nodes["reply"].file == str(child) and "turns.turn -> reply.turn" in [str(e) for e in spec.edges]


def test_extends_is_recursive_and_interpolates_every_file(tmp_path: Path, base: Path) -> None:
    write(tmp_path, "sub/middle.yaml", """
        version: 1
        extends: ../base.yaml
        nodes:
          reply: {params: {gain: "${VOICEGRAPH_GAIN:-3}"}}
        """)
    leaf = write(tmp_path, "sub/leaf.yaml", """
        version: 1
        extends: middle.yaml
        remove_nodes: [echo]
        """)
    spec = load_graph(leaf, env={"VOICEGRAPH_LABEL": "env"})
    assert spec.nodes["reply"].params.model_dump() == {"gain": 3, "label": "env"}
    assert spec.bases == (str(tmp_path / "sub/middle.yaml"), str(base)) and "echo" not in spec.nodes


def test_extends_a_bundled_graph(tmp_path: Path) -> None:
    child = write(tmp_path, "child.yaml", """
        version: 1
        extends: default
        nodes:
          llm: {params: {provider: echo}}
        """)
    spec = load_graph(child, env={})
    assert spec.name == "child" and spec.nodes["llm"].params.provider == "echo"
    assert Path(spec.nodes["llm"].file).name == "default.yaml" and Path(spec.bases[0]).name == "default.yaml"


def test_text_graph_resolves_extends_from_the_current_directory(tmp_path: Path, base: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = load_graph_text("version: 1\nextends: base.yaml\nremove_nodes: [echo]\n", "editor", env={})
    assert spec.path == "editor" and spec.bases == ("base.yaml",) and list(spec.nodes) == ["turns", "reply"]


def test_editor_text_reads_no_environment_but_its_base_file_does(tmp_path: Path, base: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = 'version: 1\nextends: base.yaml\nnodes:\n  echo: {params: {label: "${VOICEGRAPH_LABEL:-mine}"}}\n'
    spec = load_graph_text(text, "editor", env={"VOICEGRAPH_LABEL": "env"}, read_env=False)
    assert spec.nodes["reply"].params.label == "env"  # the base file, as when it is served
    assert spec.nodes["echo"].params.label == "mine"  # the editor's own text: its default


def test_a_base_file_must_be_a_yaml_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-never-read-1234\n", encoding="utf-8")
    [i] = issues_of(write(tmp_path, "child.yaml", "version: 1\nextends: ./.env\n"))
    assert i.line == 2 and "a base graph file ends in .yaml or .yml, not '.env'" in i.message


def test_errors_name_the_file_that_has_them(tmp_path: Path, base: Path) -> None:
    write(tmp_path, "base.yaml", BASE.replace("type: compose_turns", "type: compose_turn"))
    child = write(tmp_path, "child.yaml", """
        version: 1
        extends: base.yaml
        nodes:
          echo: {params: {gain: 99}}
        edges:
          - reply.rpely -> client.response
        """)
    found = issues_of(child)
    assert [(Path(i.file).name, i.line, i.node) for i in found] == [
        ("child.yaml", 4, "echo"), ("child.yaml", 6, "reply"), ("base.yaml", 5, "turns")]
    assert "less than or equal to 10" in found[0].message and "did you mean 'reply'" in found[1].message
    assert "did you mean 'compose_turns'" in found[2].message
    assert str(found[2]).startswith(f"{base}:5: node 'turns': unknown node type")


def test_a_base_edge_broken_by_a_replacement_says_where_the_node_is(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path, "child.yaml", "version: 1\nextends: base.yaml\nnodes:\n  echo: {type: compose_shout}\n")
    found = issues_of(child)
    assert [(Path(i.file).name, i.line, i.port) for i in found] == [("base.yaml", 14, "reply")]
    assert f"defined in {child}:4" in found[0].message and "outputs are: error, shout" in found[0].message


def test_removing_what_is_not_there(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path, "child.yaml", """
        version: 1
        extends: base.yaml
        remove_edges:
          - turns.turn -> reply.trun
          - turns.turn -> client.message
        remove_nodes: [ecko]
        nodes:
          shout: {params: {gain: 2}}
        """)
    found = issues_of(child)
    assert [(Path(i.file).name, i.line) for i in found] == [("child.yaml", 4), ("child.yaml", 6), ("child.yaml", 8)]
    assert "cannot remove turns.turn -> reply.trun: the base graph has no such edge" in found[0].message
    assert "did you mean 'turns.turn -> reply.turn'" in found[0].message
    assert "cannot remove node 'ecko'" in found[1].message and "did you mean 'echo'" in found[1].message
    assert "'shout' is not a node of the base graph" in found[2].message and "needs 'type'" in found[2].message


def test_an_input_unwired_by_a_removal_names_the_removal(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path, "child.yaml", "version: 1\nextends: base.yaml\nremove_edges:\n"
                                          "  - turns.turn -> reply.turn\n")
    [i] = issues_of(child)
    assert (Path(i.file).name, i.line, i.node, i.port) == ("base.yaml", 6, "reply", "turn")
    assert f"its edge was removed in {child}:4" in i.message


def test_duplicate_of_a_base_edge(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path, "child.yaml", "version: 1\nextends: base.yaml\nedges:\n  - turns.turn -> reply.turn\n")
    [i] = issues_of(child)
    assert (i.file, i.line) == (str(child), 4) and f"first on {base}:11" in i.message


def test_extends_cycle(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "version: 1\nextends: b.yaml\n")
    b = write(tmp_path, "b.yaml", "version: 1\nname: b\nextends: a.yaml\n")
    [i] = issues_of(a)
    assert (i.file, i.line) == (str(b), 3) and f"extends cycle: {a} -> {b} -> {a}" in i.message
    itself = write(tmp_path, "self.yaml", "version: 1\nextends: self.yaml\n")
    [i] = issues_of(itself)
    assert "extends cycle" in i.message


def test_unknown_base(tmp_path: Path) -> None:
    child = write(tmp_path, "child.yaml", "version: 1\nextends: defualt\n")
    [i] = issues_of(child)
    assert (i.file, i.line) == (str(child), 2)
    assert "unknown bundled graph 'defualt' (did you mean 'default'?)" in i.message and "offline" in i.message
    write(tmp_path, "base.yaml", BASE)
    child = write(tmp_path, "child.yaml", "version: 1\nextends: bsae.yaml\n")
    [i] = issues_of(child)
    assert i.line == 2 and "cannot read base graph" in i.message and "did you mean 'base.yaml'" in i.message


def test_base_with_syntax_error_is_reported_in_the_base(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", "version: 1\nnodes:\n  a: {type: x\n")
    child = write(tmp_path, "child.yaml", "version: 1\nextends: base.yaml\n")
    [i] = issues_of(child)
    assert i.file == str(base) and "YAML syntax error" in i.message


def test_removals_need_extends(tmp_path: Path) -> None:
    graph = write(tmp_path, "g.yaml", BASE + "remove_nodes: [echo]\n")
    [i] = issues_of(graph)
    assert i.line == 15 and "'remove_nodes' needs 'extends:'" in i.message


def test_cli_shows_the_resolved_graph(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEGRAPH_LABEL", "cli")
    child = write(tmp_path, "child.yaml", """
        version: 1
        extends: base.yaml
        remove_nodes: [echo]
        edges:
          - turns.error -> client.error
          - reply.error -> client.error
        """)
    assert main(["check", str(child)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]  # after a warning: a text-only graph ignores audio
    assert last == f"{child}: OK (graph 'child': 2 nodes, 6 edges; extends {base}; 1 warning(s))"
    assert main(["graph", str(child)]) == 0
    drawing = capsys.readouterr().out
    assert 'n_turns -- "turn → turn" --> n_reply' in drawing and "n_echo" not in drawing
