"""Reading graph YAML with line numbers and `${VAR}` / `${VAR:-default}` interpolation.

Interpolation is narrow on purpose: only in params values, only of `VOICEGRAPH_*` and the few
variables the bundled graphs use, so a graph can never copy a key into its name, a node type or an
error message (`type: "${OPENAI_API_KEY}"` is refused, naming the variable, not its value).

PyYAML's `safe_load` forgets where things were and silently keeps the last of two duplicate keys;
composing the node tree keeps both, so every validation error can name its line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from flow.redact import is_secret_name

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class GraphIssue:
    """One problem in a graph file, with where it is; a `warning` does not stop the graph loading."""

    file: str
    line: int
    message: str
    node: str = ""
    port: str = ""
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        what = []
        if self.node:
            what.append(f"node {self.node!r}")
        if self.port:
            what.append(f"port {self.port!r}")
        prefix = f"{where}: {' '.join(what)}: " if what else f"{where}: "
        return prefix + ("warning: " if self.warning else "") + self.message


class GraphError(Exception):
    """A graph that does not load; `issues` lists every problem found."""

    def __init__(self, issues: list[GraphIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def line_of(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def compose(text: str, path: str, issues: list[GraphIssue]) -> yaml.Node | None:
    """The YAML node tree, or None with a syntax issue recorded."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        issues.append(GraphIssue(path, mark.line + 1 if mark else 0,
                                 f"YAML syntax error: {err.problem or err.context}"))
    except yaml.YAMLError as err:
        issues.append(GraphIssue(path, 0, f"YAML error: {err}"))
    return None


GRAPH_VARIABLES = ("OPENAI_MODEL", "OPENAI_STT_MODEL", "OPENAI_VOICE", "LOCAL_LLM_MODEL")
"""Besides `VOICEGRAPH_*`, the environment variables a graph may read (the bundled graphs do)."""


def graph_may_read(name: str) -> bool:
    """Whether `${name}` may appear in a graph: `VOICEGRAPH_*` and `GRAPH_VARIABLES`, never a
    secret (`VOICEGRAPH_TOKEN`, anything named like a key or password)."""
    return (name.startswith("VOICEGRAPH_") or name in GRAPH_VARIABLES) and not is_secret_name(name)


def interpolate_graph(root: yaml.Node, env: Mapping[str, str] | None, path: str,
                      issues: list[GraphIssue]) -> None:
    """Substitute `${VAR}` in the values under `nodes.<id>.params`, in place; a `${VAR}` anywhere
    else (a name, node id, type, edge, key) is an error, so nothing read from the environment
    ever becomes part of what a graph's errors, `/health` or the log show.

    `env` None: the graph reads no environment (text from a client: the dashboard editor), so
    `${VAR:-default}` is its default and `${VAR}` an error. Errors name a variable, never its value.
    """

    def refuse(node: yaml.Node, where: str, node_id: str = "") -> None:
        _refuse(node, where, path, issues, node_id)

    def walk(node: yaml.Node, where: str, node_id: str = "") -> None:
        if isinstance(node, yaml.ScalarNode):
            refuse(node, where, node_id)
        for item in node.value if isinstance(node, yaml.SequenceNode) else ():
            walk(item, where, node_id)
        for key, value in node.value if isinstance(node, yaml.MappingNode) else ():
            refuse(key, "a key", node_id)
            walk(value, where, node_id)

    if not isinstance(root, yaml.MappingNode):
        walk(root, "the graph")
        return
    for key, section in root.value:
        refuse(key, "a key")
        if key.value != "nodes" or not isinstance(section, yaml.MappingNode):
            walk(section, repr(str(key.value)))
            continue
        for id_node, entry in section.value:
            node_id = str(id_node.value)
            refuse(id_node, "a node id")
            if not isinstance(entry, yaml.MappingNode):
                walk(entry, "a node", node_id)
                continue
            for field, value in entry.value:
                refuse(field, "a key", node_id)
                if field.value == "params":
                    interpolate(value, env, path, issues, node_id)
                else:
                    walk(value, repr(str(field.value)), node_id)


def interpolate(node: yaml.Node, env: Mapping[str, str] | None, path: str, issues: list[GraphIssue],
                node_id: str = "") -> None:
    """Substitute `${VAR}`/`${VAR:-default}` in every scalar value of `node`, in place (see
    `interpolate_graph` for where that is allowed and what `env` None means).

    A scalar that is one whole `${...}` gets its type from the substituted text, so
    `silence_ms: "${VOICEGRAPH_SILENCE_MS:-700}"` is the integer 700.
    """
    if isinstance(node, yaml.ScalarNode):
        value = node.value
        if "${" not in value:
            return
        whole = _VAR.fullmatch(value) is not None

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if not graph_may_read(name):
                issues.append(GraphIssue(path, line_of(node), f"${{{name}}}: a graph may read only VOICEGRAPH_* "
                                         f"variables and {', '.join(GRAPH_VARIABLES)}, never a key or token",
                                         node_id))
                return ""
            if env is not None and env.get(name):
                return env[name]
            if default is not None:
                return default
            why = "is not set and has no default" if env is not None else \
                "has no default, and a graph from the dashboard editor reads no environment variables"
            issues.append(GraphIssue(path, line_of(node), f"environment variable {name} {why} "
                                     f"(write ${{{name}:-default}})", node_id))
            return ""

        node.value = _VAR.sub(sub, value)
        if whole:
            node.tag = yaml.SafeLoader.resolve(_resolver, yaml.ScalarNode, node.value, (True, False))
            node.style = None
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            interpolate(item, env, path, issues, node_id)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _refuse(key, "a key", path, issues, node_id)
            interpolate(value, env, path, issues, node_id)


def _refuse(node: yaml.Node, where: str, path: str, issues: list[GraphIssue], node_id: str = "") -> None:
    """An issue per `${VAR}` in a scalar where none may be: it stays as written, substituted never."""
    if isinstance(node, yaml.ScalarNode):
        for m in _VAR.finditer(node.value):
            issues.append(GraphIssue(path, line_of(node), f"${{{m.group(1)}}} in {where}: variables are "
                                     "substituted only in params values", node_id))


_resolver = yaml.SafeLoader("")


def construct(node: yaml.Node) -> Any:
    """Plain Python data for a (sub)tree."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def mapping_items(node: yaml.Node) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """`(key, key_node, value_node)` of a mapping, duplicates included, in file order."""
    if not isinstance(node, yaml.MappingNode):
        return []
    return [(str(k.value), k, v) for k, v in node.value]
