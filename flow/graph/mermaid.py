"""A graph as a Mermaid flowchart (`voicegraph graph`, and the dashboard's drawing)."""

from __future__ import annotations

import re

from flow.graph.spec import CLIENT, GraphSpec

_UNSAFE = re.compile(r'["<>{}\[\]|#;`]')


def _label(text: str) -> str:
    return _UNSAFE.sub(" ", text).strip()


def _ref(node: str, as_source: bool) -> str:
    if node == CLIENT:
        return "client_in" if as_source else "client_out"
    return "n_" + re.sub(r"\W", "_", node)


def to_mermaid(spec: GraphSpec, counters: dict[str, dict[str, int]] | None = None) -> str:
    """`flowchart LR`: the client drawn twice (events in, events out), edges labelled by port.

    Data edges are solid; control edges (cancellation, failures: `GraphSpec.is_control`) are dotted,
    and a legend says so whenever there are any.
    """
    lines = ["flowchart LR", '  client_in(["client (in)"])', '  client_out(["client (out)"])']
    for node in spec.nodes.values():
        label = f"{node.id}: {node.type}"
        if counters and node.id in counters:
            label += "<br/>" + " ".join(f"{k}={v}" for k, v in sorted(counters[node.id].items()))
            label = _label(label.replace("<br/>", " · "))
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
    return "\n".join(lines) + "\n"
