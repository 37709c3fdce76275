"""The node reference as terminal text and as Markdown (`voicegraph nodes`, `docs/nodes.md`).

Both only lay out what `flow.graph.reference` read from the code; nothing here knows a node type.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from flow.graph.reference import NodeTypeRef, ParamRef, PortRef, Reference

MARKDOWN_COMMAND = "voicegraph nodes --builtin --format markdown > docs/nodes.md"

_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "length ≥"),
           ("max_length", "length ≤"), ("multiple_of", "multiple of"))


def bounds(p: ParamRef) -> str:
    """`≥ 100, ≤ 5000` (choices are in the type already)."""
    return ", ".join(f"{sign} {_value(p.constraints[key])}" for key, sign in _BOUNDS if key in p.constraints)


def default(p: ParamRef) -> str:
    return "required" if p.required else _value(p.default)


def _value(v: Any) -> str:
    try:
        return json.dumps(v, ensure_ascii=False)
    except TypeError:
        return repr(v)


def _port_flags(p: PortRef, is_input: bool) -> str:
    flags = ["required"] if is_input and p.required else []
    if p.control:
        flags.append("control")
    return ", ".join(flags)


# ---------------------------------------------------------------------- text


def as_text(ref: Reference, width: int = 100) -> str:
    """For a terminal: one block per node type."""
    blocks = [_text_node(n, width) for n in ref.nodes]
    if len(ref.nodes) != 1:  # all of them, or `voicegraph nodes client`
        blocks.append(_text_node(ref.client, width))
    return "\n".join(blocks)


def _text_node(n: NodeTypeRef, width: int) -> str:
    lines = [f"{n.name}  ({n.package}; {n.source})"]
    if n.error:
        return "\n".join([*lines, f"  cannot be loaded: {n.error}", ""])
    lines += textwrap.wrap(n.doc, width, initial_indent="  ", subsequent_indent="  ")
    for title, ports, is_input in (("inputs", n.inputs, True), ("outputs", n.outputs, False)):
        if not ports:
            continue
        lines.append(f"  {title}:")
        name_w = max(len(p.name) for p in ports)
        type_w = max(len(" | ".join(p.types)) for p in ports)
        for p in ports:
            flags = _port_flags(p, is_input)
            head = f"    {p.name:<{name_w}}  {' | '.join(p.types):<{type_w}}  {flags:<17}"
            lines.append((head + p.doc).rstrip())
    if n.params:
        lines.append("  params:")
        for p in n.params:
            bound = bounds(p)
            lines.append(f"    {p.name}: {p.type} = {default(p)}" + (f"  ({bound})" if bound else ""))
            lines += textwrap.wrap(p.doc, width, initial_indent="        ", subsequent_indent="        ")
    return "\n".join([*lines, ""])


# ---------------------------------------------------------------------- markdown


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def as_markdown(ref: Reference, command: str | None = MARKDOWN_COMMAND) -> str:
    """A whole page: contents, one section per node type, the client node, the message types
    (`command`: what made it, said in a comment; None for none)."""
    out = ["# Node types", ""]
    if command:
        out += [f"<!-- generated from the code by `{command}`; do not edit by hand -->", ""]
    out += ["Every node type a graph's `type:` can name, with its ports (what an edge may connect) and its "
           "`params:`. Generated from the node classes and their pydantic `Params` models; "
           "`voicegraph nodes` prints the same for the types installed here, plugins included, and "
           "[writing-a-node.md](writing-a-node.md) shows how to add one. Every node also has an `error` "
           "output; a *control* input may be fed from downstream (a loop through it is no cycle).", ""]
    out += [f"- [`{n.name}`](#{n.name}): {_first_sentence(n.doc)}" for n in ref.nodes]
    out += ["- [`client`](#client): the Socket.IO connection", "- [Message types](#message-types)", ""]
    for n in ref.nodes:
        out += _md_node(n)
    out += _md_node(ref.client)
    out += ["## Message types", "", "What travels on edges (`flow/contract/messages.py`).", "",
            "| type | fields | |", "| --- | --- | --- |"]
    out += [f"| `{m.name}` | {_cell(', '.join(m.fields))} | {_cell(m.doc)} |" for m in ref.messages]
    return "\n".join(out) + "\n"


def _md_node(n: NodeTypeRef) -> list[str]:
    out = [f"## {n.name}", ""]
    out += [f"*{n.package}* · `{n.source}`", ""]
    if n.error:
        return [*out, f"Cannot be loaded: {n.error}", ""]
    out += [n.doc, ""]
    if n.about:
        out += [n.about, ""]
    for title, ports, is_input in (("Inputs", n.inputs, True), ("Outputs", n.outputs, False)):
        if ports:
            out += [f"**{title}**", "", "| port | type | | |", "| --- | --- | --- | --- |"]
            out += [f"| `{p.name}` | {_cell(' | '.join(_code(t) for t in p.types))} | {_port_flags(p, is_input)} "
                    f"| {_cell(p.doc)} |" for p in ports]
            out.append("")
    if n.params:
        out += ["**Params**", "", "| param | type | default | bounds | |", "| --- | --- | --- | --- | --- |"]
        out += [f"| `{p.name}` | {_cell(_code(p.type))} | {_cell(_code(default(p)))} | {_cell(bounds(p))} "
                f"| {_cell(p.doc)} |" for p in n.params]
        out.append("")
    return out


def _first_sentence(doc: str) -> str:
    first = " ".join(doc.split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".")
