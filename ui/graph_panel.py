"""Graph: the active graph drawn with live per-node counters, and a YAML editor that hot-reloads.

The editor validates as you type with the same loader `voicegraph serve` uses (providers
included), marks the offending lines (click a problem to go to its line), draws a valid draft
beside the active graph's drawing, and "Apply" swaps the server's graph only when the text
loads cleanly: new sessions get it, live sessions finish on the graph they started with.
"Save as…" writes the draft into the graphs directory (`ui.graph_files`), "Download" hands it to
the browser. Nodes that failed in a live session within the last minute are drawn red.

Text typed here reads no environment variables (a `${VAR}` could otherwise show a server's
setting to whoever opens the page): `${VAR:-default}` is its default. The graph files it
`extends:` are the server's own and read the server's `VOICEGRAPH_*` as when they are served.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import TYPE_CHECKING

from nicegui import ui

from flow.graph.loader import GraphError, load_graph_text
from flow.graph.mermaid import to_mermaid
from flow.graph.spec import GraphSpec
from ui.graph_files import SaveError, graphs_dir, save_graph

if TYPE_CHECKING:
    from ui.dashboard import Dashboard

DRAWING = {"flowchart": {"nodeSpacing": 18, "rankSpacing": 28, "padding": 6, "diagramPadding": 4}}
"""Mermaid's settings for the graph drawings (here and in the Tap tab; Mermaid keeps one set per
page): tighter spacing than its default, so a graph with many edges is drawn at a readable scale."""

_SAME_PORT = re.compile(r'"(\w+) → \1"')


def readable(chart: str) -> str:
    """A `to_mermaid` chart as the dashboard draws it, across the tab's full width: top-down, and an
    edge between two ports of one name (`error → error`) labelled once. A graph's many edges to the
    client lie side by side, each as wide as its label, so this halves the drawing's natural width
    and doubles the scale it is shown at."""
    return _SAME_PORT.sub(r'"\1"', chart.replace("flowchart LR", "flowchart TD", 1))


VALIDATE_AFTER_S = 0.4
"""Typing pause before the text is validated."""


class GraphPanel:
    """The Graph tab of one browser tab."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.server = dashboard.server
        self._pending: asyncio.Task | None = None
        self._drawn: tuple[int, str] | None = None
        self._draft: GraphSpec | None = None
        """The editor's text when it is valid and differs from the active graph: drawn instead."""
        # the drawing across the tab's width (a graph's drawing is wide: half a window shows it tiny)
        self.caption = ui.label().classes("text-base font-bold").props("data-testid=graph-name")
        self.mermaid = ui.mermaid(self._chart(), DRAWING).classes("w-full vg-drawing") \
            .props("data-testid=graph-drawing")
        with ui.row().classes("w-full no-wrap items-start"):
            with ui.column().classes("w-1/3 min-w-0"):
                ui.label("Messages per node").classes("text-base font-bold")
                self.counters = ui.table(
                    columns=[{"name": c, "label": c, "field": c, "align": "left" if c == "node" else "right"}
                             for c in ("node", "in", "out", "errors")],
                    rows=[], row_key="node").props("dense flat bordered").classes("w-full")
            with ui.column().classes("w-2/3 min-w-0"):
                ui.label("Edit (YAML)").classes("text-base font-bold")
                ui.label("${VAR:-default} is its default here: the editor reads no environment variables "
                         "(a graph it extends does, as when served)").classes("text-xs text-gray-600")
                self.editor = ui.codemirror(dashboard.graph_text, language="YAML", on_change=self._typed) \
                    .classes("w-full h-96 border").props("data-testid=editor")
                with ui.row().classes("items-center"):
                    self.apply_button = ui.button("Apply", icon="published_with_changes", on_click=self.apply) \
                        .props("data-testid=apply")
                    ui.button("Revert", on_click=self._revert).props("flat")
                    ui.button("Download", icon="download", on_click=self._download).props("flat data-testid=download")
                    self.verdict = ui.label().classes("text-sm").props("data-testid=verdict")
                self.applied = ui.label().classes("text-sm").props("data-testid=applied")
                with ui.row().classes("items-center"):
                    self.save_name = ui.input("file name", placeholder="my_graph").classes("w-40") \
                        .props("dense data-testid=save-name")
                    self.replace = ui.checkbox("replace").props("dense data-testid=save-replace")
                    ui.button("Save as…", icon="save", on_click=self.save_as).props("outline data-testid=save-as")
                    self.saved = ui.label().classes("text-sm").props("data-testid=save-result")
                self.issues = ui.column().classes("gap-0 text-sm text-red-700 font-mono") \
                    .props("data-testid=graph-issues")
        self._refresh()
        ui.timer(2.0, self._refresh)

    # ------------------------------------------------------------------ live drawing

    def _chart(self) -> str:
        if self._draft is not None:
            chart = to_mermaid(self._draft)
        else:
            now = time.time() * 1000
            failed = {node for view in list(self.dashboard.state.sessions.values())
                      for node in view.recently_failed(now)}
            chart = to_mermaid(self.server.spec, self.dashboard.state.server.get("counters") or None,
                               failed=failed)
        return readable(chart)

    def _refresh(self) -> None:
        spec = self.server.spec
        if self._draft is not None:
            self.caption.set_text(f"draft {self._draft.name} (not applied; active: {spec.name})")
        else:
            self.caption.set_text(f"{spec.name} ({spec.path})")
        chart = self._chart()
        if self._drawn != (id(self._draft or spec), chart):
            self._drawn = (id(self._draft or spec), chart)
            self.mermaid.set_content(chart)
        counters = self.dashboard.state.server.get("counters") or {}
        rows = [{"node": node,
                 "in": sum(n for k, n in c.items() if k.startswith("in.")),
                 "out": c.get("out", 0), "errors": c.get("errors", 0)}
                for node, c in sorted(counters.items())]
        if rows != self.counters.rows:
            self.counters.update_rows(rows)
        applied = self.dashboard.state.applied  # a cluster's Apply: each worker's verdict
        self.applied.set_text(" · ".join(f"{w}: {'✓' if a.get('ok') else '✗'} {a.get('message', '')}"
                                         for w, a in sorted(applied.items())))

    # ------------------------------------------------------------------ editing

    def _typed(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        self._pending = asyncio.get_running_loop().create_task(self._validate_later())

    async def _validate_later(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(VALIDATE_AFTER_S)
            self.validate()

    def validate(self) -> GraphSpec | None:
        """Load the editor's text; show the verdict and mark each issue's line."""
        text = self.editor.value or ""
        self.issues.clear()
        try:
            spec = load_graph_text(text, path="editor", env=self.server.settings.env,
                                   resources=self.server.resources, read_env=False)
        except GraphError as err:
            self.verdict.set_text(f"{len(err.issues)} problem(s): not applicable")
            self.verdict.classes(replace="text-sm text-red-700")
            with self.issues:
                for issue in err.issues:
                    shown = ui.label(str(issue))
                    if issue.file == "editor" and issue.line > 0:
                        shown.classes("cursor-pointer underline").on("click", lambda _, n=issue.line: self.goto(n))
            self._set_draft(None)
            self.editor.decorations = [  # only the editor's own lines: an `extends:` base has its own file
                {"kind": "line", "line": i.line, "class": "vg-error-line", "attributes": {"title": i.message}}
                for i in err.issues if i.file == "editor" and 0 < i.line <= text.count("\n") + 1
            ]
            return None
        self.verdict.set_text(f"valid: graph {spec.name!r}, {len(spec.nodes)} nodes")
        self.verdict.classes(replace="text-sm text-green-700")
        self.editor.decorations = []
        self._set_draft(spec if text != self.dashboard.graph_text else None)
        return spec

    def _set_draft(self, spec: GraphSpec | None) -> None:
        if spec is not self._draft:
            self._draft = spec
            self._refresh()

    def goto(self, line: int) -> None:
        """Put the editor's cursor on `line` (1-based) and scroll it into view."""
        ui.run_javascript(
            f"const v = getElement({self.editor.id}).editor;"
            f"const l = v.state.doc.line(Math.min({int(line)}, v.state.doc.lines));"
            "v.dispatch({selection: {anchor: l.from}, scrollIntoView: true}); v.focus();")

    def save_as(self) -> None:
        """Write the editor's text into the graphs directory, if it loads cleanly."""
        spec = self.validate()
        if spec is None:
            self._saved("not saved: fix the problems listed under the editor", ok=False)
            return
        directory = graphs_dir(self.server.settings.env, self.server.spec.path)
        try:
            path = save_graph(self.editor.value or "", directory, self.save_name.value or spec.name,
                              replace=bool(self.replace.value))
        except SaveError as err:
            self._saved(f"not saved: {err}", ok=False)
            return
        self._saved(f"saved {path}", ok=True)

    def _saved(self, text: str, ok: bool) -> None:
        self.saved.set_text(text)
        self.saved.classes(replace="text-sm " + ("text-green-700" if ok else "text-red-700"))
        ui.notify(text, type="positive" if ok else "negative")

    def _download(self) -> None:
        name = (self.save_name.value or "").strip() or (self._draft or self.server.spec).name or "graph"
        ui.download.content(self.editor.value or "", f"{name.removesuffix('.yaml')}.yaml", "application/yaml")

    def apply(self) -> None:
        spec = self.validate()
        if spec is None:
            ui.notify("not applied: fix the problems listed under the editor", type="negative")
            return
        live = len(self.server.sessions)
        self.dashboard.apply_graph(spec, self.editor.value or "")
        self._set_draft(None)
        self._refresh()
        ui.notify(f"applied {spec.name!r}: new sessions use it; {live} live session(s) keep their graph "
                  "(the file on disk is unchanged)", type="positive")

    def _revert(self) -> None:
        self.editor.value = self.dashboard.graph_text
        self._set_draft(None)
