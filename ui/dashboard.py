"""The NiceGUI testbench: one page with Sessions (live view + inject) and Graph (draw, edit, apply).

`Dashboard` is shared by every browser tab of one server. It subscribes to the monitoring channel
only while at least one tab is open, so a server nobody watches pays nothing for having a
dashboard. Each tab renders from `DashboardState` on its own throttled timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from nicegui import ui

from ui.graph_panel import GraphPanel
from ui.model import DashboardState
from ui.recordings_panel import RecordingsPanel
from ui.sessions_panel import SessionsPanel
from ui.tap_panel import TapPanel

if TYPE_CHECKING:
    from flow.graph.spec import GraphSpec
    from flow.transport.server import VoicegraphServer

log = logging.getLogger("voicegraph.ui")


class Dashboard:
    """The testbench of one `VoicegraphServer`; `root` builds the page for one browser tab."""

    def __init__(self, server: VoicegraphServer, url: str | None = None) -> None:
        self.server = server
        self.url = url
        """Where the Socket.IO protocol is served (the testbench connects there); set once bound."""
        self.state = DashboardState()
        self.graph_text = _read(server.spec.path)
        """The YAML of the graph new sessions get (the file's, until a graph is applied here)."""
        self._tabs = 0
        self._follow: asyncio.Task | None = None

    def apply_graph(self, spec: GraphSpec, text: str) -> None:
        """Serve `spec` to new sessions (it was validated by the caller). In a cluster the text goes
        to every worker, this one included, and each validates and applies it itself."""
        self.graph_text = text
        if self.server.cluster is not None:
            self.state.applied.clear()
            task = asyncio.get_running_loop().create_task(self.server.cluster.apply(text), name="apply")
            task.add_done_callback(lambda t: t.cancelled() or t.exception() is None
                                   or log.error("apply to the cluster failed: %s", t.exception()))
            return
        self.server.set_graph(spec)
        log.info("graph %r applied from the dashboard", spec.name)

    # ------------------------------------------------------------------ watching

    def open_tab(self) -> None:
        self._tabs += 1
        if self._follow is None or self._follow.done():
            monitor = self.server.resources.monitor
            sub = monitor.subscribe()  # before announcing, so no event falls in between
            self.state.sessions.clear()
            self.server.announce()
            self._follow = asyncio.get_running_loop().create_task(self.state.follow(sub), name="dashboard")

    def close_tab(self) -> None:
        self._tabs = max(0, self._tabs - 1)
        if self._tabs == 0 and self._follow is not None:
            self._follow.cancel()
            self._follow = None

    def reply_audio(self, ref: str) -> bytes | None:
        """The MP3 of a reply the monitor referred to (None once pushed out of its bounded store)."""
        return self.server.resources.monitor.audio.get(ref)

    @property
    def watching(self) -> bool:
        return self._follow is not None and not self._follow.done()

    async def aclose(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow

    # ------------------------------------------------------------------ the page

    def root(self) -> None:
        ui.page_title("voicegraph")
        ui.add_css(CSS)
        client = ui.context.client
        self.open_tab()
        with ui.header().classes("items-center bg-slate-800 py-1"):
            ui.label("voicegraph").classes("text-lg font-bold")
            status = ui.label().classes("text-sm opacity-80").props("data-testid=server-status")
            ui.link("Node types", "/nodes", new_tab=True).classes("text-sm text-white").props("data-testid=nodes-link")
            with ui.tabs().classes("ml-auto") as tabs:
                sessions_tab = ui.tab("Sessions").props("data-testid=sessions-tab")
                graph_tab = ui.tab("Graph").props("data-testid=graph-tab")
                recordings_tab = ui.tab("Recordings").props("data-testid=recordings-tab")
                tap_tab = ui.tab("Tap").props("data-testid=tap-tab")
            # each tab opens at its top (the Graph tab's editor is below its drawing: a scroll kept
            # from there would hide the Sessions tab's controls under this header)
            tabs.on_value_change(lambda: ui.run_javascript("window.scrollTo(0, 0)"))
        tapping = client.request.query_params.get("tap")
        with ui.tab_panels(tabs, value=tap_tab if tapping else sessions_tab).classes("w-full"):
            with ui.tab_panel(sessions_tab):
                sessions = SessionsPanel(self)
            with ui.tab_panel(graph_tab):
                GraphPanel(self)
            with ui.tab_panel(recordings_tab):
                RecordingsPanel(self)
            with ui.tab_panel(tap_tab):
                tap = TapPanel(self, sessions.inject.bench, tapping)
                sessions.inject.listeners.append(lambda _sid: tap.sync())

        def show_status() -> None:
            s = self.state
            s.forget_silent_workers(time.time() * 1000)
            workers = f" on {len(s.workers)} workers" if len(s.workers) > 1 else ""
            status.set_text(f"{len(s.sessions)} live sessions{workers} · graph {self.server.spec.name}"
                            + (f" · {s.dropped} events dropped" if s.dropped else ""))

        show_status()
        ui.timer(1.0, show_status)

        async def closed() -> None:
            self.close_tab()
            tap.close()
            await sessions.inject.close()

        client.on_delete(closed)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return f"# the graph file {path} cannot be read here\n"


CSS = """
.vg-error-line { background: rgba(255, 0, 0, 0.12); }
.vg-state { min-width: 6.5rem; justify-content: center; }
.vg-fit table { table-layout: fixed; width: 100%; }
.vg-fit .q-table th, .vg-fit .q-table td { overflow: hidden; text-overflow: ellipsis; }
.vg-fit .q-table th { white-space: normal; }
.vg-drawing svg { width: 100% !important; max-width: 100% !important; height: auto; }
"""
