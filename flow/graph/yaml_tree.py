"""Reading graph YAML with line numbers and `${VAR}` / `${VAR:-default}` interpolation.

PyYAML's `safe_load` forgets where things were and silently keeps the last of two duplicate keys;
composing the node tree keeps both, so every validation error can name its line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

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


def interpolate(node: yaml.Node, env: Mapping[str, str], path: str, issues: list[GraphIssue]) -> None:
    """Substitute `${VAR}`/`${VAR:-default}` in every scalar, in place.

    A scalar that is one whole `${...}` gets its type from the substituted text, so
    `silence_ms: "${SILENCE_MS:-700}"` is the integer 700.
    """
    if isinstance(node, yaml.ScalarNode):
        value = node.value
        if "${" not in value:
            return
        whole = _VAR.fullmatch(value) is not None

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if env.get(name):
                return env[name]
            if default is not None:
                return default
            issues.append(GraphIssue(path, line_of(node),
                                     f"environment variable {name} is not set and has no default "
                                     f"(write ${{{name}:-default}})"))
            return ""

        node.value = _VAR.sub(sub, value)
        if whole:
            node.tag = yaml.SafeLoader.resolve(_resolver, yaml.ScalarNode, node.value, (True, False))
            node.style = None
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            interpolate(item, env, path, issues)
    elif isinstance(node, yaml.MappingNode):
        for _key, value in node.value:
            interpolate(value, env, path, issues)


_resolver = yaml.SafeLoader("")


def construct(node: yaml.Node) -> Any:
    """Plain Python data for a (sub)tree."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def mapping_items(node: yaml.Node) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """`(key, key_node, value_node)` of a mapping, duplicates included, in file order."""
    if not isinstance(node, yaml.MappingNode):
        return []
    return [(str(k.value), k, v) for k, v in node.value]
