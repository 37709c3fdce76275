"""The dashboard's node reference (`/nodes`): what `voicegraph nodes` prints, as a page.

Rendered from `flow.graph.reference` each time it is opened, so it shows the node types installed
in the served process, plugins included, as the code declares them.
"""

from __future__ import annotations

from nicegui import ui

from flow.graph.reference import reference
from flow.graph.reference_format import as_markdown

PATH = "/nodes"


def nodes_page() -> None:
    ui.page_title("voicegraph: node types")
    with ui.column().classes("w-full max-w-5xl mx-auto"):
        ui.link("← dashboard", "/")
        ui.markdown(as_markdown(reference(), command=None)).classes("w-full").props("data-testid=node-reference")
