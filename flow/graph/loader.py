"""Load and validate a graph before any audio flows; every error names file, line, node and port.

All problems are collected, not just the first, so one `voicegraph check` run shows everything to
fix. Nearest-name suggestions come from `difflib`, as a typo is the most common mistake.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flow.contract.node import In, type_names
from flow.graph import registry
from flow.graph.spec import CLIENT, CLIENT_INPUTS, CLIENT_OUTPUTS, EdgeSpec, GraphSpec, NodeSpec
from flow.graph.yaml_tree import (
    GraphError,
    GraphIssue,
    compose,
    construct,
    interpolate,
    line_of,
    mapping_items,
)

__all__ = ["GraphError", "GraphIssue", "check_files", "graph_path", "load_graph", "load_graph_text"]

TOP_KEYS = ("version", "name", "description", "nodes", "edges")


def _hint(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Loader:
    def __init__(self, text: str, path: str, env: Mapping[str, str], resources: Any) -> None:
        self.text, self.path, self.env, self.resources = text, path, env, resources
        self.issues: list[GraphIssue] = []
        self.nodes: dict[str, NodeSpec] = {}
        self.node_lines: dict[str, int] = {}
        self.edges: list[EdgeSpec] = []
        self.unresolved: set[tuple[str, str]] = set()
        """Inputs whose edge names a node that failed to load (already reported)."""

    def issue(self, line: int, message: str, node: str = "", port: str = "") -> None:
        self.issues.append(GraphIssue(self.path, line, message, node, port))

    def load(self) -> GraphSpec:
        root = compose(self.text, self.path, self.issues)
        if root is None and not self.issues:
            self.issue(1, "the file is empty: a graph needs 'version', 'nodes' and 'edges'")
        if root is not None:
            interpolate(root, self.env, self.path, self.issues)
            self._root(root)
        if self.issues:
            raise GraphError(self.issues)
        order = self._order()
        if self.issues:
            raise GraphError(self.issues)
        meta = self.meta
        return GraphSpec(str(meta.get("name") or Path(self.path).stem), str(meta.get("description") or ""),
                         self.path, self.nodes, tuple(self.edges), tuple(order), self.text)

    def _root(self, root: yaml.Node) -> None:
        if not isinstance(root, yaml.MappingNode):
            self.issue(line_of(root), "a graph file is a mapping with 'version', 'nodes' and 'edges'")
            return
        sections = {}
        for key, knode, value in mapping_items(root):
            if key not in TOP_KEYS:
                self.issue(line_of(knode), f"unknown top-level key {key!r}{_hint(key, TOP_KEYS)}")
            sections[key] = value
        self.meta = {k: construct(v) for k, v in sections.items() if k in ("name", "description")}
        version = construct(sections["version"]) if "version" in sections else None
        if version != 1:
            self.issue(line_of(sections.get("version")) or 1,
                       f"'version: 1' is required (got {version!r})")
        nodes = sections.get("nodes")
        if nodes is None or not isinstance(nodes, yaml.MappingNode) or not nodes.value:
            self.issue(line_of(nodes) or 1, "'nodes' must be a non-empty mapping of id -> {type, params}")
        else:
            for node_id, knode, value in mapping_items(nodes):
                self._node(node_id, knode, value)
        edges = sections.get("edges")
        if edges is not None and not isinstance(edges, yaml.SequenceNode):
            self.issue(line_of(edges), "'edges' must be a list of 'node.port -> node.port'")
        elif edges is not None:
            for item in edges.value:
                self._edge(item)
        self._required_inputs()

    def _node(self, node_id: str, knode: yaml.Node, value: yaml.Node) -> None:
        line = line_of(knode)
        if node_id == CLIENT:
            self.issue(line, "'client' is reserved for the Socket.IO connection", node_id)
            return
        if node_id in self.node_lines:
            self.issue(line, f"duplicate node id (first defined on line {self.node_lines[node_id]})", node_id)
            return
        self.node_lines[node_id] = line
        fields = {k: (kn, v) for k, kn, v in mapping_items(value)}
        if not isinstance(value, yaml.MappingNode) or "type" not in fields:
            self.issue(line, "a node needs 'type' (and optional 'params')", node_id)
            return
        for key, (kn, _v) in fields.items():
            if key not in ("type", "params"):
                self.issue(line_of(kn), f"unknown key {key!r} (a node has 'type' and 'params')", node_id)
        type_name = str(construct(fields["type"][1]))
        try:
            cls = registry.get(type_name)
        except KeyError:
            self.issue(line_of(fields["type"][1]),
                       f"unknown node type {type_name!r}{_hint(type_name, registry.names())}", node_id)
            return
        except Exception as err:
            self.issue(line, f"node type {type_name!r} failed to load: {err}", node_id)
            return
        params_node = fields.get("params", (None, None))[1]
        raw = construct(params_node) if params_node is not None else {}
        if raw is None:
            raw = {}
        try:
            params = cls.Params.model_validate(raw)
        except ValidationError as err:
            for e in err.errors():
                loc = ".".join(str(p) for p in e["loc"])
                pline = next((line_of(kn) for k, kn, _ in mapping_items(params_node) if k == str(e["loc"][0])),
                             line) if e["loc"] and params_node is not None else line
                self.issue(pline, f"invalid params.{loc}: {e['msg']}" if loc else f"invalid params: {e['msg']}",
                           node_id)
            return
        if self.resources is not None:
            try:
                cls.check_params(params, self.resources)
            except ValueError as err:
                self.issue(line, str(err), node_id)
        self.nodes[node_id] = NodeSpec(node_id, type_name, cls, params, line)

    # ---------------------------------------------------------------- edges

    def _ports(self, node: str, direction: str) -> dict[str, tuple[type, ...]] | None:
        if node == CLIENT:
            ports = CLIENT_OUTPUTS if direction == "out" else {k: v.types for k, v in CLIENT_INPUTS.items()}
        elif node in self.nodes:
            cls = self.nodes[node].cls
            ports = cls.output_ports() if direction == "out" else {k: v.types for k, v in cls.inputs.items()}
        else:
            return None
        return {k: (v if isinstance(v, tuple) else (v,)) for k, v in ports.items()}

    def _endpoint(self, text: str, line: int, direction: str) -> tuple[str, str, tuple[type, ...]] | None:
        node, _, port = text.strip().partition(".")
        if not node or not port:
            self.issue(line, f"{text.strip()!r} is not 'node.port'")
            return None
        if node != CLIENT and node not in self.nodes:
            if node not in self.node_lines:  # a node that failed to load was reported already
                self.issue(line, f"unknown node {node!r}{_hint(node, [*self.node_lines, CLIENT])}", node, port)
            return None
        ports = self._ports(node, direction) or {}
        if port not in ports:
            other = self._ports(node, "in" if direction == "out" else "out") or {}
            role = "an output" if direction == "out" else "an input"
            if port in other:
                msg = f"is {'an input' if direction == 'out' else 'an output'}, not {role}: edges go output -> input"
            else:
                names = ", ".join(sorted(ports)) or "none"
                msg = f"no such {'output' if direction == 'out' else 'input'}{_hint(port, ports)}; {role}s are: {names}"
            self.issue(line, msg, node, port)
            return None
        return node, port, ports[port]

    def _edge(self, item: yaml.Node) -> None:
        line = line_of(item)
        text = str(construct(item)) if isinstance(item, yaml.ScalarNode) else ""
        if "->" not in text:
            self.issue(line, f"an edge is 'node.port -> node.port', got {text or 'a non-string'!r}")
            return
        left, _, right = text.partition("->")
        src = self._endpoint(left, line, "out")
        dst = self._endpoint(right, line, "in")
        if src is None or dst is None:
            node, _, port = right.strip().partition(".")
            self.unresolved.add((node, port))
            return
        edge = EdgeSpec(src[0], src[1], dst[0], dst[1], line)
        if any((e.src, e.src_port, e.dst, e.dst_port) == (edge.src, edge.src_port, edge.dst, edge.dst_port)
               for e in self.edges):
            self.issue(line, f"duplicate edge {edge}", dst[0], dst[1])
            return
        bad = [t for t in src[2] if not issubclass(t, dst[2])]
        if bad:
            self.issue(line, f"type mismatch: {edge.src}.{edge.src_port} emits {type_names(src[2])}, "
                       f"{edge.dst}.{edge.dst_port} accepts {type_names(dst[2])}", dst[0], dst[1])
            return
        self.edges.append(edge)

    def _required_inputs(self) -> None:
        for node_id, spec in self.nodes.items():
            port: str
            spec_in: In
            for port, spec_in in spec.cls.inputs.items():
                if (node_id, port) in self.unresolved:
                    continue
                if spec_in.required and not any(e.dst == node_id and e.dst_port == port for e in self.edges):
                    self.issue(spec.line, f"required input is not connected (it takes {type_names(spec_in.type)})",
                               node_id, port)

    def _order(self) -> list[str]:
        """Kahn's algorithm in YAML order; what is left over lies on a cycle. Edges into control
        inputs (cancellation, delivery, failures) may point upstream: they are no dependency."""
        deps = {n: {e.src for e in self.edges if e.dst == n and e.src != CLIENT
                    and not self.nodes[n].cls.inputs[e.dst_port].control} for n in self.nodes}
        order: list[str] = []
        while len(order) < len(self.nodes):
            ready = [n for n in self.nodes if n not in order and deps[n] <= set(order)]
            if not ready:
                stuck = [n for n in self.nodes if n not in order]
                first = min(stuck, key=lambda n: self.nodes[n].line)
                self.issue(self.nodes[first].line, f"cycle among nodes {', '.join(stuck)}: "
                           "a graph must flow from client inputs to client outputs", first)
                break
            order.append(ready[0])
        return order


def load_graph_text(text: str, path: str = "<text>", env: Mapping[str, str] | None = None,
                    resources: Any = None) -> GraphSpec:
    """Validate YAML text into a `GraphSpec`; raise `GraphError` listing every issue.

    With `resources`, each node's `check_params` also runs (providers installed and configured).
    """
    return _Loader(text, path, os.environ if env is None else env, resources).load()


def load_graph(path: str | Path, env: Mapping[str, str] | None = None, resources: Any = None) -> GraphSpec:
    """`load_graph_text` of a file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise GraphError([GraphIssue(str(path), 0, f"cannot read: {err.strerror or err}")]) from err
    return load_graph_text(text, str(path), env, resources)


def check_files(paths: Iterable[str | Path], resources: Any = None) -> list[tuple[str, GraphError | None]]:
    """`(path, error or None)` per file, for `voicegraph check`."""
    results: list[tuple[str, GraphError | None]] = []
    for p in paths:
        try:
            load_graph(p, resources=resources)
            results.append((str(p), None))
        except GraphError as err:
            results.append((str(p), err))
    return results


def graph_path(name: str | None) -> Path:
    """A graph file path, or the name of a bundled graph (`default`, `offline`, …)."""
    if not name:
        name = "default"
    p = Path(name)
    if p.exists() or p.suffix in (".yaml", ".yml") or "/" in name:
        return p
    return Path(str(files("graphs").joinpath(f"{name}.yaml")))
