"""Load and validate a graph before any audio flows; every error names file, line, node and port.

`flow.graph.compose` reads the YAML (and the graphs it `extends:`); this module checks the result
against the node types: ports, message types, params, required inputs, order, and warnings.

All problems are collected, not just the first, so one `voicegraph check` run shows everything to
fix. Nearest-name suggestions come from `difflib`, as a typo is the most common mistake.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flow.contract.node import CANCEL_PORT, ERROR_PORT, In, type_names
from flow.graph import registry
from flow.graph.compose import Param, RawEdge, RawGraph, RawNode, hint, read_graph
from flow.graph.paths import check_paths
from flow.graph.spec import (
    CLIENT,
    CLIENT_INPUTS,
    CLIENT_OUTPUTS,
    EdgeSpec,
    GraphSpec,
    NodeSpec,
)
from flow.graph.yaml_tree import GraphError, GraphIssue

__all__ = ["GraphError", "GraphIssue", "check_files", "graph_path", "load_graph", "load_graph_text", "shown_path"]


class _Loader:
    def __init__(self, graph: RawGraph, issues: list[GraphIssue], resources: Any) -> None:
        self.graph, self.issues, self.resources = graph, issues, resources
        self.nodes: dict[str, NodeSpec] = {}
        self.known: dict[str, RawNode] = graph.nodes
        """Every node id written, including those that failed to load (already reported)."""
        self.edges: list[EdgeSpec] = []
        self.unresolved: set[tuple[str, str]] = set()
        """Inputs whose edge names a node that failed to load (already reported)."""

    def issue(self, file: str, line: int, message: str, node: str = "", port: str = "") -> None:
        self.issues.append(GraphIssue(file, line, message, node, port))

    def load(self) -> GraphSpec:
        for raw in self.graph.nodes.values():
            self._node(raw)
        for edge in self.graph.edges:
            self._edge(edge)
        self._required_inputs()
        if self.issues:
            raise _error(self.issues, self.graph)
        order = self._order()
        if self.issues:
            raise _error(self.issues, self.graph)
        g = self.graph
        errors, warnings = check_paths(g.path, self.nodes, self.edges, g.removed)
        if errors:
            raise _error(self.issues + errors, self.graph)
        return GraphSpec(g.name or Path(g.path).stem, g.description or "", g.path, self.nodes, tuple(self.edges),
                         tuple(order), g.text, tuple(self._warnings() + warnings), tuple(g.bases))

    def _node(self, raw: RawNode) -> None:
        node_id, file, line = raw.id, raw.file, raw.line
        if node_id == CLIENT:
            self.issue(file, line, "'client' is reserved for the Socket.IO connection", node_id)
            return
        if raw.type is None:  # reported while reading
            return
        try:
            cls = registry.get(raw.type)
        except KeyError:
            known = registry.names()
            close = hint(raw.type, known)
            self.issue(file, raw.type_line, f"unknown node type {raw.type!r}" + (close or f": is a plugin missing? "
                       f"installed node types: {', '.join(known)}"), node_id)
            return
        except Exception as err:
            self.issue(file, line, f"node type {raw.type!r} failed to load: {err}", node_id)
            return
        given = raw.params
        values = given.value if isinstance(given, Param) else {k: p.value for k, p in given.items()}
        try:
            params = cls.Params.model_validate(values)
        except ValidationError as err:
            for e in err.errors():
                loc = ".".join(str(p) for p in e["loc"])
                at = given.get(str(e["loc"][0])) if isinstance(given, dict) and e["loc"] else None
                self.issue(at.file if at else file, at.line if at else line,
                           f"invalid params.{loc}: {e['msg']}" if loc else f"invalid params: {e['msg']}", node_id)
            return
        if self.resources is not None:
            try:
                cls.check_params(params, self.resources)
            except ValueError as err:
                self.issue(file, line, str(err), node_id)
        self.nodes[node_id] = NodeSpec(node_id, raw.type, cls, params, line, file)

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

    def _endpoint(self, text: str, edge: RawEdge, direction: str) -> tuple[str, str, tuple[type, ...]] | None:
        node, _, port = text.partition(".")
        node, port = node.strip(), port.strip()
        if not node or not port:
            self.issue(edge.file, edge.line, f"{text!r} is not 'node.port'")
            return None
        if node != CLIENT and node not in self.nodes:
            if node not in self.known:  # a node that failed to load was reported already
                self.issue(edge.file, edge.line, f"unknown node {node!r}{hint(node, [*self.known, CLIENT])}",
                           node, port)
            return None
        ports = self._ports(node, direction) or {}
        if port not in ports:
            other = self._ports(node, "in" if direction == "out" else "out") or {}
            role = "an output" if direction == "out" else "an input"
            if port in other:
                msg = f"is {'an input' if direction == 'out' else 'an output'}, not {role}: edges go output -> input"
            else:
                names = ", ".join(sorted(ports)) or "none"
                msg = f"no such {'output' if direction == 'out' else 'input'}{hint(port, ports)}; {role}s are: {names}"
            spec = self.nodes.get(node)
            if spec is not None and spec.file != edge.file:
                msg += f" (node {node!r} is a {spec.type!r}, defined in {spec.file}:{spec.line})"
            self.issue(edge.file, edge.line, msg, node, port)
            return None
        return node, port, ports[port]

    def _edge(self, raw: RawEdge) -> None:
        src = self._endpoint(raw.src, raw, "out")
        dst = self._endpoint(raw.dst, raw, "in")
        if src is None or dst is None:
            node, _, port = raw.dst.partition(".")
            self.unresolved.add((node.strip(), port.strip()))
            return
        edge = EdgeSpec(src[0], src[1], dst[0], dst[1], raw.line, raw.file)
        first = next((e for e in self.edges if (e.src, e.src_port, e.dst, e.dst_port)
                      == (edge.src, edge.src_port, edge.dst, edge.dst_port)), None)
        if first is not None:
            where = f"line {first.line}" if first.file == edge.file else f"{first.file}:{first.line}"
            self.issue(raw.file, raw.line, f"duplicate edge {edge} (first on {where})", dst[0], dst[1])
            return
        bad = [t for t in src[2] if not issubclass(t, dst[2])]
        if bad:
            self.issue(raw.file, raw.line, f"type mismatch: {edge.src}.{edge.src_port} emits {type_names(src[2])}, "
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
                    removed = self.graph.removed.get(f"{node_id}.{port}")
                    why = f"; its edge was removed in {removed[0]}:{removed[1]}" if removed else ""
                    self.issue(spec.file, spec.line,
                               f"required input is not connected (it takes {type_names(spec_in.type)}){why}",
                               node_id, port)

    def _order(self) -> list[str]:
        """Kahn's algorithm in YAML order; what is left over lies on a cycle.

        An edge into a control input (`cancel`) is no dependency: control may flow back upstream.
        """
        deps = {n: {e.src for e in self.edges if e.dst == n and e.src != CLIENT
                    and not self.nodes[n].cls.inputs[e.dst_port].control} for n in self.nodes}
        order: list[str] = []
        while len(order) < len(self.nodes):
            ready = [n for n in self.nodes if n not in order and deps[n] <= set(order)]
            if not ready:
                stuck = [n for n in self.nodes if n not in order]
                first = self.nodes[stuck[0]]
                self.issue(first.file, first.line, f"cycle among nodes {', '.join(stuck)}: a graph must flow "
                           "from client inputs to client outputs (only control inputs, like 'cancel', may loop "
                           "back)", first.id)
                break
            order.append(ready[0])
        return order

    def _warnings(self) -> list[GraphIssue]:
        """Wiring that loads but is probably a mistake."""
        found = []
        for node_id, spec in self.nodes.items():
            wired_in = {e.dst_port for e in self.edges if e.dst == node_id}
            if CANCEL_PORT in spec.cls.inputs and CANCEL_PORT not in wired_in:
                found.append(GraphIssue(spec.file, spec.line, "input not wired: its stale work would run on after "
                                        "an interrupt (wire e.g. gate.cancel to it)", node_id, "cancel", True))
            if not any(e.src == node_id and e.src_port == ERROR_PORT for e in self.edges):
                found.append(GraphIssue(spec.file, spec.line, f"output not wired: failures are only logged (wire "
                                        f"{node_id}.error -> client.error)", node_id, ERROR_PORT, True))
        return found


def _error(issues: list[GraphIssue], graph: RawGraph | None) -> GraphError:
    """The issues by file (the graph, then its bases, nearest first), each file's by line."""
    files = [graph.path, *graph.bases] if graph is not None else []
    for i in issues:  # a graph that could not be read: files in the order their issues came
        if i.file not in files:
            files.append(i.file)
    return GraphError(sorted(issues, key=lambda i: (files.index(i.file), i.line)))


def _load(text: str, path: str, env: Mapping[str, str] | None, resources: Any, base_dir: Path,
          file: Path | None, read_env: bool = True) -> GraphSpec:
    issues: list[GraphIssue] = []
    graph = read_graph(text, path, os.environ if env is None else env, issues, base_dir, file, read_env)
    if graph is None:
        raise _error(issues, None)
    return _Loader(graph, issues, resources).load()


def load_graph_text(text: str, path: str = "<text>", env: Mapping[str, str] | None = None,
                    resources: Any = None, base_dir: str | Path | None = None, *,
                    read_env: bool = True) -> GraphSpec:
    """Validate YAML text into a `GraphSpec`; raise `GraphError` listing every issue.

    With `resources`, each node's `check_params` also runs (providers installed and configured).
    `extends:` paths are relative to `base_dir` (default: the current directory). `${VAR}`s in
    params values read `env` (default: the process environment), only the variables a graph may
    read; `read_env=False` is for text from a client (the dashboard editor): its own `${VAR}`s
    read nothing, `${VAR:-default}` is its default (the files it extends still read `env`).
    """
    return _load(text, path, env, resources, Path(base_dir) if base_dir is not None else Path(), None,
                 read_env)


def load_graph(path: str | Path, env: Mapping[str, str] | None = None, resources: Any = None) -> GraphSpec:
    """`load_graph_text` of a file; `extends:` paths are relative to it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise GraphError([GraphIssue(str(path), 0, f"cannot read: {err.strerror or err}")]) from err
    return _load(text, str(path), env, resources, Path(path).parent, Path(path))


def check_files(paths: Iterable[str | Path], resources: Any = None) -> list[tuple[str, GraphSpec | GraphError]]:
    """`(path, the loaded graph or its error)` per file, for `voicegraph check`."""
    results: list[tuple[str, GraphSpec | GraphError]] = []
    for p in paths:
        try:
            results.append((str(p), load_graph(p, resources=resources)))
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


def shown_path(path: str) -> str:
    """A graph's file as `/health` shows it, never where the server's files are: `graphs/x.yaml`
    for a bundled graph, a path relative to the current directory for a file under it, else the
    file's name (`editor` for a graph applied from the dashboard)."""
    p = Path(path)
    if not p.is_absolute() and ".." not in p.parts:
        return path
    resolved = p.resolve()
    for root, prefix in ((Path(str(files("graphs"))).resolve(), "graphs/"), (Path.cwd().resolve(), "")):
        if resolved.is_relative_to(root):
            return prefix + resolved.relative_to(root).as_posix()
    return p.name
