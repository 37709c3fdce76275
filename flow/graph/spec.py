"""A loaded, validated graph: which node types with which params, and which ports are wired.

This is what `flow.graph.loader` produces from YAML and what `flow.graph.runtime` instantiates once per
session; keeping it a plain immutable description means validation happens once, at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from flow.contract.messages import (
    AudioData,
    Cancel,
    ClientEvent,
    Delivered,
    Interrupt,
    NodeFailed,
    RecordingStarted,
    RecordingStopped,
    ReplyPiece,
    ReplyText,
    TextInput,
    Transcript,
    Typing,
    UserTurn,
)
from flow.contract.node import ERROR_PORT, In, Node
from flow.graph.yaml_tree import GraphIssue

CLIENT = "client"
"""The reserved node id for the Socket.IO connection: its outputs are client events, its inputs
are what the server emits to the client."""

CLIENT_OUTPUTS: dict[str, type] = {
    "audio": AudioData,
    "start": RecordingStarted,
    "stop": RecordingStopped,
    "text": TextInput,
    "interrupt": Interrupt,
    "delivered": Delivered,
}
CLIENT_OUTPUT_DOCS: dict[str, str] = {
    "audio": "audio-stream: undecoded bytes of the recording",
    "start": "start-recording {mimeType, format, sampleRate, channels, language, voice}",
    "stop": "stop-recording: the utterance ends now",
    "text": "text-message",
    "interrupt": "interrupt {responseId?}",
    "delivered": "what was written to the socket (what the user heard): wire it to the responder's history",
}
CLIENT_INPUTS: dict[str, In] = {
    "speech_result": In(Transcript, required=False, doc="speech-result"),
    "message": In(UserTurn, required=False, doc="message-received"),
    "typing": In(Typing, required=False, doc="ai-typing"),
    "response": In(ReplyText, required=False, doc="ai-response (audio null without TTS)"),
    "chunk": In(ReplyPiece, required=False, doc="ai-response-chunk, and ai-response-end after the final one"),
    "error": In(NodeFailed, required=False, doc="error"),
    "event": In(ClientEvent, required=False, doc="any extension event"),
    "cancel": In(Cancel, required=False, control=True,
                 doc="replies of cancelled turns still queued for the socket are dropped"),
}



@dataclass(frozen=True)
class NodeSpec:
    """One entry of `nodes:`: id, registered type name, node class, validated params."""

    id: str
    type: str
    cls: type[Node]
    params: BaseModel
    line: int = 0
    file: str = ""
    """The graph file that defines it (a base graph's, for a node a child only overrides)."""


@dataclass(frozen=True)
class EdgeSpec:
    """One entry of `edges:` — `src.src_port -> dst.dst_port`."""

    src: str
    src_port: str
    dst: str
    dst_port: str
    line: int = 0
    file: str = ""

    def __str__(self) -> str:
        return f"{self.src}.{self.src_port} -> {self.dst}.{self.dst_port}"


@dataclass(frozen=True)
class GraphSpec:
    """A whole validated graph. `order` lists node ids so that every node comes after its
    upstream nodes (the client node is not in it)."""

    name: str
    description: str
    path: str
    nodes: dict[str, NodeSpec]
    edges: tuple[EdgeSpec, ...]
    order: tuple[str, ...]
    source: str = field(default="", repr=False)
    """The YAML text it was loaded from (the dashboard shows and edits it); for a graph that
    `extends:` another, the child's text, not the resolved graph."""
    warnings: tuple[GraphIssue, ...] = ()
    """What loads but is probably a mistake (an unwired `cancel` input or `error` output)."""
    bases: tuple[str, ...] = ()
    """The files it extends, nearest first."""

    def edges_into(self, node: str) -> list[EdgeSpec]:
        return [e for e in self.edges if e.dst == node]

    def is_control(self, edge: EdgeSpec) -> bool:
        """Whether `edge` carries control rather than data: it feeds a control input (`cancel`),
        leaves an `error` output, or goes into `client.error`."""
        if edge.dst == CLIENT:
            return edge.dst_port == ERROR_PORT or CLIENT_INPUTS[edge.dst_port].control
        if edge.src != CLIENT and edge.src_port == ERROR_PORT:
            return True
        port = self.nodes[edge.dst].cls.inputs.get(edge.dst_port)
        return port is not None and port.control
