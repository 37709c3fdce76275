"""Read a graph file, and the graphs it `extends:`, into entries that remember their file and line.

A child graph starts from its base's nodes and edges, then removes (`remove_edges:`, then
`remove_nodes:` with their edges), overrides params (a `nodes:` entry without `type` merges its
params key by key), replaces or adds nodes (an entry with `type`) and adds `edges:`. Nothing is
validated against node types here: `flow.graph.loader` validates the result, and since every entry
keeps where it was written, an error in the base names the base file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from flow.graph.yaml_tree import GraphIssue, compose, construct, interpolate_graph, line_of, mapping_items

TOP_KEYS = ("version", "name", "description", "extends", "nodes", "edges", "remove_edges", "remove_nodes")


def hint(name: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the nearest of `choices`, or nothing."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Param:
    """One `params:` value and where it was written."""

    value: Any
    file: str
    line: int


@dataclass(frozen=True)
class RawNode:
    """A `nodes:` entry after merging; `type` is None when the entry was already reported broken."""

    id: str
    file: str
    line: int
    type: str | None
    type_line: int = 0
    params: dict[str, Param] | Param = field(default_factory=dict)
    """Per key, or one `Param` holding whatever non-mapping value was written (it fails validation)."""


@dataclass(frozen=True)
class RawEdge:
    """An `edges:` entry: `src -> dst`, both still `node.port` text."""

    src: str
    dst: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst}"


@dataclass
class RawGraph:
    """A graph file with its bases applied, not yet checked against node types."""

    path: str
    text: str
    name: str | None = None
    description: str | None = None
    nodes: dict[str, RawNode] = field(default_factory=dict)
    edges: list[RawEdge] = field(default_factory=list)
    removed: dict[str, tuple[str, int]] = field(default_factory=dict)
    """`node.port` input -> file and line of the `remove_edges:` entry that unwired it."""
    bases: list[str] = field(default_factory=list)


def node_of(endpoint: str) -> str:
    return endpoint.partition(".")[0].strip()


def bundled_graphs() -> dict[str, Path]:
    """The graphs shipped in the `graphs` package, by name."""
    return {p.name[:-5]: Path(str(p)) for p in files("graphs").iterdir() if p.name.endswith(".yaml")}


class _Reader:
    def __init__(self, env: Mapping[str, str], issues: list[GraphIssue]) -> None:
        self.env, self.issues = env, issues

    def issue(self, file: str, line: int, message: str, node: str = "", port: str = "") -> None:
        self.issues.append(GraphIssue(file, line, message, node, port))

    def read(self, text: str, path: str, base_dir: Path, chain: list[tuple[Path, str]],
             read_env: bool = True) -> RawGraph | None:
        """The graph in `text` with its bases applied; None when it (or a base) cannot be read.
        `read_env` False: `text`'s `${VAR}`s read no environment (its bases, files of the server, do)."""
        before = len(self.issues)
        root = compose(text, path, self.issues)
        if root is None:
            if len(self.issues) == before:
                self.issue(path, 1, "the file is empty: a graph needs 'version', 'nodes' and 'edges'")
            return None
        interpolate_graph(root, self.env if read_env else None, path, self.issues)
        if not isinstance(root, yaml.MappingNode):
            self.issue(path, line_of(root), "a graph file is a mapping with 'version', 'nodes' and 'edges'")
            return None
        sections: dict[str, yaml.Node] = {}
        for key, knode, value in mapping_items(root):
            if key not in TOP_KEYS:
                self.issue(path, line_of(knode), f"unknown top-level key {key!r}{hint(key, TOP_KEYS)}")
            sections[key] = value
        version = construct(sections["version"]) if "version" in sections else None
        if version != 1:
            self.issue(path, line_of(sections.get("version")) or 1, f"'version: 1' is required (got {version!r})")
        meta = {k: construct(sections[k]) for k in ("name", "description") if k in sections}
        graph = RawGraph(path, text)
        extends = "extends" in sections
        if extends:
            base = self._base(sections["extends"], path, base_dir, chain)
            if base is None:
                return None
            graph = replace(base, path=path, text=text, bases=[base.path, *base.bases])
            self._remove_edges(graph, sections.get("remove_edges"))
            self._remove_nodes(graph, sections.get("remove_nodes"))
        for key in ("remove_edges", "remove_nodes"):
            if key in sections and not extends:
                self.issue(path, line_of(sections[key]), f"{key!r} needs 'extends:': there is no base graph")
        graph.name = str(meta["name"]) if meta.get("name") else None
        if meta.get("description"):
            graph.description = str(meta["description"])
        self._nodes(graph, sections.get("nodes"), extends)
        if extends and not graph.nodes:
            self.issue(path, line_of(sections.get("remove_nodes")) or 1, "no nodes are left of the base graph")
        edges = sections.get("edges")
        if edges is not None and not isinstance(edges, yaml.SequenceNode):
            self.issue(path, line_of(edges), "'edges' must be a list of 'node.port -> node.port'")
        elif edges is not None:
            for item in edges.value:
                edge = self._edge(item, path)
                if edge is not None:
                    graph.edges.append(edge)
        return graph

    # ---------------------------------------------------------------- extends

    def _base(self, value: yaml.Node, path: str, base_dir: Path,
              chain: list[tuple[Path, str]]) -> RawGraph | None:
        line = line_of(value)
        ref = construct(value)
        if not isinstance(ref, str) or not ref.strip():
            self.issue(path, line, "'extends' names a bundled graph (default) or a graph file (base.yaml)")
            return None
        ref = ref.strip()
        if "/" in ref and not ref.endswith((".yaml", ".yml")):
            self.issue(path, line, f"a base graph file ends in .yaml or .yml, not {Path(ref).name!r}")
            return None
        if ref.endswith((".yaml", ".yml")):
            base_path = Path(os.path.normpath(base_dir / ref))
        else:
            bundled = bundled_graphs()
            if ref not in bundled:
                self.issue(path, line, f"unknown bundled graph {ref!r}{hint(ref, bundled)}; bundled graphs are: "
                           f"{', '.join(sorted(bundled))} (a file path ends in .yaml)")
                return None
            base_path = bundled[ref]
        key = base_path.resolve()
        if key in [k for k, _ in chain]:
            names = [name for _, name in chain[[k for k, _ in chain].index(key):]]
            self.issue(path, line, f"extends cycle: {' -> '.join([*names, str(base_path)])}")
            return None
        try:
            text = base_path.read_text(encoding="utf-8")
        except OSError as err:
            siblings = [p.name for p in base_path.parent.glob("*.y*ml")] if base_path.parent.is_dir() else []
            self.issue(path, line, f"cannot read base graph {str(base_path)!r}: {err.strerror or err}"
                       f"{hint(base_path.name, siblings)}")
            return None
        return self.read(text, str(base_path), base_path.parent, [*chain, (key, str(base_path))])

    def _remove_edges(self, graph: RawGraph, items: yaml.Node | None) -> None:
        for item in self._list(items, graph.path, "remove_edges", "'node.port -> node.port'"):
            edge = self._edge(item, graph.path)
            if edge is None:
                continue
            found = next((e for e in graph.edges if (e.src, e.dst) == (edge.src, edge.dst)), None)
            if found is None:
                self.issue(graph.path, edge.line, f"cannot remove {edge}: the base graph has no such edge"
                           f"{hint(str(edge), [str(e) for e in graph.edges])}", node_of(edge.dst))
                continue
            graph.edges.remove(found)
            graph.removed[edge.dst] = (graph.path, edge.line)

    def _remove_nodes(self, graph: RawGraph, items: yaml.Node | None) -> None:
        for item in self._list(items, graph.path, "remove_nodes", "node ids"):
            node_id = str(construct(item))
            if node_id not in graph.nodes:
                self.issue(graph.path, line_of(item), f"cannot remove node {node_id!r}: the base graph has no such "
                           f"node{hint(node_id, graph.nodes)}", node_id)
                continue
            del graph.nodes[node_id]
            graph.edges = [e for e in graph.edges if node_id not in (node_of(e.src), node_of(e.dst))]

    def _list(self, items: yaml.Node | None, path: str, key: str, what: str) -> list[yaml.Node]:
        if items is None:
            return []
        if not isinstance(items, yaml.SequenceNode):
            self.issue(path, line_of(items), f"{key!r} must be a list of {what}")
            return []
        return items.value

    # ---------------------------------------------------------------- nodes and edges

    def _nodes(self, graph: RawGraph, nodes: yaml.Node | None, extends: bool) -> None:
        path = graph.path
        if extends and (nodes is None or (isinstance(nodes, yaml.ScalarNode) and construct(nodes) is None)):
            nodes = yaml.MappingNode("tag:yaml.org,2002:map", [])
        if not isinstance(nodes, yaml.MappingNode) or not (nodes.value or extends):
            self.issue(path, line_of(nodes) or 1, "'nodes' must be a non-empty mapping of id -> {type, params}")
            return
        lines: dict[str, int] = {}
        for node_id, knode, value in mapping_items(nodes):
            line = line_of(knode)
            if node_id in lines:
                self.issue(path, line, f"duplicate node id (first defined on line {lines[node_id]})", node_id)
                continue
            lines[node_id] = line
            base = graph.nodes.get(node_id) if extends else None
            fields = {k: (kn, v) for k, kn, v in mapping_items(value)}
            for key, (kn, _v) in fields.items():
                if key not in ("type", "params"):
                    self.issue(path, line_of(kn), f"unknown key {key!r} (a node has 'type' and 'params')", node_id)
            params = self._params(fields["params"][1], path) if "params" in fields else {}
            if isinstance(value, yaml.MappingNode) and "type" in fields:
                type_node = fields["type"][1]
                graph.nodes[node_id] = RawNode(node_id, path, line, str(construct(type_node)), line_of(type_node),
                                               params)
            elif isinstance(value, yaml.MappingNode) and base is not None:
                merged = {**base.params, **params} if isinstance(base.params, dict) and isinstance(params, dict) \
                    else params
                graph.nodes[node_id] = replace(base, params=merged)
            else:
                more = ""
                if extends and base is None:
                    more = f"; {node_id!r} is not a node of the base graph{hint(node_id, graph.nodes)}, so it " \
                           "is new and needs 'type'"
                self.issue(path, line, "a node needs 'type' (and optional 'params')" + more, node_id)
                graph.nodes[node_id] = RawNode(node_id, path, line, None)

    @staticmethod
    def _params(node: yaml.Node, path: str) -> dict[str, Param] | Param:
        if isinstance(node, yaml.MappingNode):
            return {k: Param(construct(v), path, line_of(kn)) for k, kn, v in mapping_items(node)}
        value = construct(node)
        return {} if value is None else Param(value, path, line_of(node))

    def _edge(self, item: yaml.Node, path: str) -> RawEdge | None:
        line = line_of(item)
        text = str(construct(item)) if isinstance(item, yaml.ScalarNode) else ""
        if "->" not in text:
            self.issue(path, line, f"an edge is 'node.port -> node.port', got {text or 'a non-string'!r}")
            return None
        left, _, right = text.partition("->")
        return RawEdge(left.strip(), right.strip(), path, line)


def read_graph(text: str, path: str, env: Mapping[str, str], issues: list[GraphIssue],
               base_dir: Path, file: Path | None = None, read_env: bool = True) -> RawGraph | None:
    """`text` (of `file`, if it is one) with every base applied; issues are appended to `issues`.

    `extends:` paths are relative to `base_dir`. `${VAR}`s read `env` (see
    `flow.graph.yaml_tree.interpolate_graph`); with `read_env` False, those of `text` itself read
    nothing (its bases still read `env`). None when the graph or a base cannot be read at all.
    """
    chain = [(file.resolve(), path)] if file is not None else []
    return _Reader(env, issues).read(text, path, base_dir, chain, read_env)
