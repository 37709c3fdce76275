"""A graph as a Mermaid flowchart (`voicegraph graph`, and the dashboard's drawing)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from flow.graph.spec import CLIENT, GraphSpec

_UNSAFE = re.compile(r'["<>{}\[\]|#;`]')


def _label(text: str) -> str:
    return _UNSAFE.sub(" ", text).strip()


def _ref(node: str, as_source: bool) -> str:
    if node == CLIENT:
        return "client_in" if as_source else "client_out"
    return "n_" + re.sub(r"\W", "_", node)


HIGHLIGHT = "stroke:#f59e0b,stroke-width:4px"
"""How a followed turn's edges are drawn (the dashboard's message tap)."""
FAILED = "fill:#fee2e2,stroke:#dc2626,stroke-width:3px"
"""How a node that failed is drawn."""


def to_mermaid(spec: GraphSpec, counters: dict[str, dict[str, int]] | None = None, *,
               highlight: Iterable[int] = (), failed: Iterable[str] = ()) -> str:
    """`flowchart LR`: the client drawn twice (events in, events out), edges labelled by port.

    Data edges are solid; control edges (cancellation, failures: `GraphSpec.is_control`) are dotted,
    and a legend says so whenever there are any. `highlight` names edges (by their index in
    `spec.edges`) to draw thick and amber, e.g. the path one turn took; `failed` names nodes drawn
    red and marked "failed".
    """
    failed = set(failed)
    lines = ["flowchart LR", '  client_in(["client (in)"])', '  client_out(["client (out)"])']
    for node in spec.nodes.values():
        label = f"{node.id}: {node.type}"
        if counters and node.id in counters:
            label += "<br/>" + " ".join(f"{k}={v}" for k, v in sorted(counters[node.id].items()))
            label = _label(label.replace("<br/>", " · "))
        if node.id in failed:
            label += " · failed"
        lines.append(f'  {_ref(node.id, True)}["{_label(label)}"]')
    for e in spec.edges:
        label = f"{_label(e.src_port)} → {_label(e.dst_port)}"
        if spec.is_control(e):
            lines.append(f'  {_ref(e.src, True)} -.->|"{label}"| {_ref(e.dst, False)}')
        else:
            lines.append(f'  {_ref(e.src, True)} -- "{label}" --> {_ref(e.dst, False)}')
    if any(spec.is_control(e) for e in spec.edges):
        lines += ['  legend["legend: solid edges carry data, dotted edges control (cancellation, delivery, errors)"]',
                  "  style legend fill:none,stroke:none"]
    lines += [f"  linkStyle {i} {HIGHLIGHT}" for i in sorted(set(highlight)) if 0 <= i < len(spec.edges)]
    lines += [f"  style {_ref(node, True)} {FAILED}" for node in sorted(failed) if node in spec.nodes]
    return "\n".join(lines) + "\n"
