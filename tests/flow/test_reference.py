"""The node reference: read from the node classes, printed by `voicegraph nodes`, kept in docs/nodes.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from flow.contract.messages import TextInput, UserTurn
from flow.contract.node import In, Node
from flow.graph import registry
from flow.graph.reference import reference
from flow.graph.reference_format import MARKDOWN_COMMAND, as_markdown, as_text

ROOT = Path(__file__).resolve().parents[2]
BUILTINS = {"chunk_buffer", "silence_finalizer", "transcriber", "responder", "synthesizer", "interrupt_gate",
            "turn_taker", "playback_pacer"}


def nodes(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flow.cli", "nodes", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_docs_nodes_md_is_current() -> None:
    written = (ROOT / "docs" / "nodes.md").read_text(encoding="utf-8")
    assert written == as_markdown(reference(builtin_only=True)), \
        f"docs/nodes.md is stale: regenerate it with `{MARKDOWN_COMMAND}`"


def test_every_builtin_param_and_port_says_what_it_is() -> None:
    ref = reference(sorted(BUILTINS))
    for n in ref.nodes:
        assert n.package.startswith("voicegraph ") and not n.error and n.doc, n.name
        for p in n.params:
            assert p.doc, f"{n.name}.params.{p.name} has no description"
        for port in (*n.inputs, *n.outputs):
            assert port.doc, f"{n.name}.{port.name} has no doc"


def test_params_come_from_the_pydantic_model() -> None:
    finalizer = next(n for n in reference(["silence_finalizer"]).nodes)
    silence = next(p for p in finalizer.params if p.name == "silence_ms")
    assert (silence.type, silence.default, silence.constraints) == ("int", 700, {"ge": 100, "le": 5000})
    assert silence.doc == "Trailing non-speech that ends an utterance."
    detector = next(p for p in finalizer.params if p.name == "detector")
    assert detector.constraints["choices"] == ["energy", "webrtc", "silero"]
    audio = next(p for p in finalizer.inputs if p.name == "audio")
    assert audio.types == ("AudioChunk",) and audio.required
    assert [p.name for p in finalizer.outputs] == ["utterance", "started", "tentative", "withdrawn", "error"]


class _TaggerParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tag: str = Field("#", min_length=1, max_length=4, description="put before every turn's text")
    times: int = Field(..., ge=1)


@registry.register("test_reference_tagger")
class _Tagger(Node[_TaggerParams]):
    """Tag turns (a type registered in code, as a test does)."""

    Params = _TaggerParams
    inputs = {"text": In(TextInput)}
    outputs = {"turn": UserTurn}


def test_a_type_registered_in_code_and_a_required_param() -> None:
    ref = reference(["test_reference_tagger"])
    (tagger,) = ref.nodes
    assert tagger.package.startswith("registered in code")
    tag, times = tagger.params
    assert tag.constraints == {"min_length": 1, "max_length": 4} and tag.doc == "put before every turn's text"
    assert times.required and "times: int = required  (≥ 1)" in as_text(ref)


def test_nodes_command_text_json_markdown() -> None:
    run = nodes()
    assert run.returncode == 0, run.stderr
    for name in BUILTINS:
        assert f"\n{name}  (voicegraph " in "\n" + run.stdout
    assert "silence_ms: int = 700  (≥ 100, ≤ 5000)" in run.stdout
    assert "client  (voicegraph" in run.stdout

    run = nodes("transcriber", "--format", "json")
    data = json.loads(run.stdout)
    (stt,) = data["nodes"]
    assert stt["name"] == "transcriber" and stt["package"].startswith("voicegraph ")
    assert {"name": "utterance", "types": ["Utterance"], "required": True, "control": False,
            "doc": stt["inputs"][0]["doc"]} == stt["inputs"][0]
    assert {p["name"] for p in stt["params"]} >= {"provider", "model", "max_queued"}

    run = nodes("--builtin", "--format", "markdown")
    assert run.stdout == (ROOT / "docs" / "nodes.md").read_text(encoding="utf-8")


def test_nodes_command_shows_the_client_node() -> None:
    run = nodes("client")
    assert run.returncode == 0 and run.stdout.startswith("client  (voicegraph")
    assert "    text       TextInput" in run.stdout and "speech_result  Transcript" in run.stdout


def test_nodes_command_unknown_type() -> None:
    run = nodes("transcribr")
    assert run.returncode == 1
    assert "unknown node type 'transcribr' (did you mean 'transcriber'?); installed node types: chunk_buffer" \
        in run.stderr


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    """`voicegraph nodes | head`: the pipe closes before all is written; no BrokenPipeError trace."""
    import os

    for command in (["nodes"], ["graph", "default"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first write: every write fails
        try:
            done = subprocess.run([sys.executable, "-m", "flow.cli", *command], stdout=write_end,
                                  stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT)
        finally:
            os.close(write_end)
        assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
        assert done.returncode == 141, (command, done.returncode)
