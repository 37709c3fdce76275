"""Graphs that load but cannot work: what `voicegraph check` finds by following the edges.

A graph whose ports and types all match may still never answer: a reply that goes nowhere leaves
a turn's `ai-typing: true` on forever; a node no client event reaches never runs. These are
questions about paths, asked of the whole graph once it has loaded:

- *runs*: a node some client output reaches (through any edge; a node without inputs runs on its own);
- *answers*: a node one of whose outputs (not `error`) reaches a client input on some path.

Errors (the graph cannot do its job): nothing the client sends can reach it back; a node on a
turn's path whose work reaches no client input (the turn's reply is thrown away); `ai-typing` sent
by a graph where no node that gets the reply sends it too (a turn would never end).
Warnings (probably a mistake, harmless to the rest): a node that never runs, a node off the turns'
path that answers nothing, a client `text` or `audio` output the graph ignores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flow.contract.messages import ReplyPiece, ReplyText, UserTurn
from flow.contract.node import ERROR_PORT
from flow.graph.spec import CLIENT, CLIENT_INPUTS, CLIENT_OUTPUTS, EdgeSpec, NodeSpec
from flow.graph.yaml_tree import GraphIssue

REPLIES = (ReplyText, ReplyPiece)
IGNORED = {"text": "typed messages (text-message) get no answer",
           "audio": "audio (audio-stream) is ignored: voice turns get no answer"}


class Paths:
    """What runs and what answers, in one graph (`nodes` without the client)."""

    def __init__(self, path: str, nodes: dict[str, NodeSpec], edges: Iterable[EdgeSpec],
                 removed: Mapping[str, tuple[str, int]] | None = None) -> None:
        self.path, self.nodes, self.edges = path, nodes, list(edges)
        self.removed = removed or {}
        """`node.port` input -> where a `remove_edges:` entry unwired it (the likely cause)."""
        self.runs = self._runs()
        self.answers = self._answers()
        self.turn_fed = self._downstream_of(lambda e: self._emits(e, (UserTurn,)))

    def _out_type(self, edge: EdgeSpec) -> type:
        if edge.src == CLIENT:
            return CLIENT_OUTPUTS[edge.src_port]
        return self.nodes[edge.src].cls.output_ports()[edge.src_port]

    def _emits(self, edge: EdgeSpec, types: tuple[type, ...]) -> bool:
        return issubclass(self._out_type(edge), types)

    def _live(self, edge: EdgeSpec) -> bool:
        return edge.src == CLIENT or edge.src in self.runs

    def _runs(self) -> set[str]:
        runs = {n for n, spec in self.nodes.items() if not spec.cls.inputs}
        grew = True
        while grew:
            grew = False
            for e in self.edges:
                if e.dst != CLIENT and e.dst not in runs and (e.src == CLIENT or e.src in runs):
                    runs.add(e.dst)
                    grew = True
        return runs

    def _answers(self) -> set[str]:
        answers: set[str] = set()
        grew = True
        while grew:
            grew = False
            for e in self.edges:
                if (e.src != CLIENT and e.src not in answers and e.src_port != ERROR_PORT
                        and (e.dst == CLIENT or e.dst in answers)):
                    answers.add(e.src)
                    grew = True
        return answers

    def _downstream_of(self, starts) -> set[str]:
        """Nodes reached (not through `error` outputs) from the edges `starts` picks."""
        found = {e.dst for e in self.edges if e.dst != CLIENT and self._live(e) and starts(e)}
        grew = True
        while grew:
            grew = False
            for e in self.edges:
                if e.src in found and e.src_port != ERROR_PORT and e.dst != CLIENT and e.dst not in found:
                    found.add(e.dst)
                    grew = True
        return found

    # ------------------------------------------------------------------ findings

    def issues(self) -> tuple[list[GraphIssue], list[GraphIssue]]:
        """(errors, warnings)."""
        errors: list[GraphIssue] = []
        warnings: list[GraphIssue] = []
        if not any(e.dst == CLIENT and e.src_port != ERROR_PORT and self._live(e) for e in self.edges):
            errors.append(GraphIssue(self.path, 0, "nothing the client sends can reach it back: no path leads "
                                     "from a client output (text, audio, …) to a client input (response, …)"))
            return errors, warnings
        for port, why in IGNORED.items():
            if not any(e.src == CLIENT and e.src_port == port for e in self.edges):
                warnings.append(GraphIssue(self.path, 0, f"output not wired: {why}", CLIENT, port, True))
        for node_id, spec in self.nodes.items():
            if node_id not in self.runs:
                warnings.append(GraphIssue(spec.file, spec.line, "never runs: no path from a client output reaches "
                                           "it" + self._unfed(node_id), node_id, warning=True))
            elif node_id not in self.answers and set(spec.cls.outputs):
                on_turns = node_id in self.turn_fed
                issue = GraphIssue(spec.file, spec.line, ("every turn's work here is lost: " if on_turns else "")
                                   + "nothing it sends reaches the client on any path; " + self._dead_end(node_id),
                                   node_id, warning=not on_turns)
                (errors if on_turns else warnings).append(issue)
        errors += self._typing()
        return errors, warnings

    def _unfed(self, node_id: str) -> str:
        wired = sorted({e.dst_port for e in self.edges if e.dst == node_id})
        if not wired:
            return " (none of its inputs is wired)"
        return f" (its inputs {', '.join(wired)} are fed only by nodes that never run)"

    def _dead_end(self, node_id: str) -> str:
        outs = [e for e in self.edges if e.src == node_id and e.src_port != ERROR_PORT]
        if outs:
            to = ", ".join(sorted({e.dst for e in outs}))
            return f"its outputs lead only to {to}, which answer nothing"
        ports = [p for p in self.nodes[node_id].cls.outputs]
        suggestion = self._suggest(node_id, ports)
        return f"no output of it is wired ({', '.join(ports)})" + (f"; e.g. wire {suggestion}" if suggestion else "")

    def _suggest(self, node_id: str, ports: list[str]) -> str:
        """`tts.speech -> gate.response`: an output into an input that takes it, on a node that answers;
        an unwired input first (probably where an edge was lost), the client's own inputs last."""
        cls = self.nodes[node_id].cls
        wired = {(e.dst, e.dst_port) for e in self.edges}
        for port in ports:
            t = cls.output_ports()[port]
            found = [(n, p) for n in self.answers if n != node_id
                     for p, spec in self.nodes[n].cls.inputs.items()
                     if issubclass(t, spec.types) and not spec.control]  # control inputs come from downstream
            found.sort(key=lambda np: ((np[0], np[1]) in wired, np))
            found += [(CLIENT, p) for p, spec in CLIENT_INPUTS.items() if issubclass(t, spec.types)]
            if found:
                dst = f"{found[0][0]}.{found[0][1]}"
                removed = self.removed.get(dst)
                return f"{node_id}.{port} -> {dst}" + (f" (an edge into it was removed in {removed[0]}:{removed[1]})"
                                                      if removed else "")
        return ""

    def _typing(self) -> list[GraphIssue]:
        """A turn's `ai-typing: true` needs a sender of `ai-typing` that gets the reply (and ends it)."""
        senders = [e for e in self.edges if e.dst == CLIENT and e.dst_port == "typing" and self._live(e)]
        if not senders:
            return []
        gets_reply = {e.dst for e in self.edges if e.dst != CLIENT and self._live(e) and self._emits(e, REPLIES)}
        if any(e.src in gets_reply for e in senders):
            return []
        which = ", ".join(str(e) for e in senders)
        why = ""
        for e in senders:
            inputs = self._reply_inputs(e.src) if e.src != CLIENT else []
            if inputs:
                ports = " or ".join(f"{e.src}.{p}" for p in inputs)
                why = f"; {e.src} gets no reply (nothing that runs is wired into {ports})"
                break
        first = min(senders, key=lambda e: e.line)
        return [GraphIssue(first.file, first.line, f"a turn would never end: ai-typing is sent ({which}) but no node "
                           f"that gets the reply sends it{why}", CLIENT, "typing")]

    def _reply_inputs(self, node_id: str) -> list[str]:
        """The inputs of `node_id` that take replies."""
        return [p for p, spec in self.nodes[node_id].cls.inputs.items()
                if any(issubclass(t, REPLIES) for t in spec.types)]


def check_paths(path: str, nodes: dict[str, NodeSpec], edges: Iterable[EdgeSpec],
                removed: Mapping[str, tuple[str, int]] | None = None) -> tuple[list[GraphIssue], list[GraphIssue]]:
    """(errors, warnings) about the paths through a graph that loaded."""
    return Paths(path, nodes, edges, removed).issues()
