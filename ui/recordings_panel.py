"""Recordings: the sessions this server recorded (`--record DIR`), one opened as a timeline, and
"Replay through the current graph" beside it.

Opening reads and decodes the file in a thread (a recording may be tens of megabytes); the replay
is a real Socket.IO client of this server (`flow.replay`), so it goes through the graph new
sessions get now, the one the Graph tab may just have changed. Both runs' transcripts, turns,
replies, outcomes and stage times are then shown side by side, with their events.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nicegui import ui

from flow.replay.command import Outcome, replay_to_server
from flow.replay.compare import rows as compare_rows
from flow.replay.compare import summarize
from flow.replay.recording import Event, Recording, list_recordings, read_recording
from flow.replay.timeline import VOICED_DBFS, levels

if TYPE_CHECKING:
    from ui.dashboard import Dashboard

FLOOR_DB = -70.0
SHOWN_OUT = ("speech-result", "message-received", "ai-response", "ai-response-chunk", "response-cancelled",
             "error", "turn-metrics")
MAX_EVENT_ROWS = 400
"""Events listed per run (a long session has thousands of audio chunks: those are drawn, not listed)."""


def timeline(rec: Recording, points: list[tuple[float, float]]) -> dict[str, Any]:
    """ECharts option: input level, voiced spans, and the session's events as marks on a time axis (s)."""
    client = [e for e in rec.inbound if e.event != "audio-stream"]
    server = [e for e in rec.outbound if e.event in SHOWN_OUT]
    return {
        "animation": False,
        "tooltip": {"trigger": "item"},
        "legend": {"top": 0, "textStyle": {"fontSize": 10}},
        "grid": {"left": 40, "right": 10, "top": 25, "bottom": 25},
        "xAxis": {"type": "value", "name": "s", "min": 0},
        "yAxis": {"type": "value", "min": FLOOR_DB, "max": 0},
        "series": [
            {"name": "level dBFS", "type": "line", "showSymbol": False,
             "data": [[t / 1000, max(db, FLOOR_DB)] for t, db in points]},
            {"name": f"voiced (> {VOICED_DBFS:g} dBFS)", "type": "line", "step": "end", "showSymbol": False,
             "areaStyle": {"opacity": 0.2, "origin": "start"}, "lineStyle": {"width": 0},
             "data": [[t / 1000, 0 if db > VOICED_DBFS else FLOOR_DB] for t, db in points]},
            {"name": "client events", "type": "scatter", "symbolSize": 9,
             "data": [{"value": [e.t / 1000, -8], "name": e.event} for e in client]},
            {"name": "server events", "type": "scatter", "symbolSize": 7,
             "data": [{"value": [e.t / 1000, -20], "name": e.event} for e in server]},
        ],
    }


def event_rows(events: list[Event], inbound: list[Event] = ()) -> list[dict[str, Any]]:
    """Rows for an event table: time, direction, name, the gist of the payload."""
    rows = [{"t": f"{e.t / 1000:.2f}", "dir": "in", "event": e.event, "gist": _gist(e.data)}
            for e in inbound if e.event != "audio-stream"]
    rows += [{"t": f"{e.t / 1000:.2f}", "dir": "out", "event": e.event, "gist": _gist(e.data)}
             for e in events if e.event in SHOWN_OUT]
    rows.sort(key=lambda r: float(r["t"]))
    return [{**r, "n": i} for i, r in enumerate(rows[:MAX_EVENT_ROWS])]


def _gist(data: Any) -> str:
    if isinstance(data, dict):
        for key in ("text", "code", "reason", "ms"):
            if key in data:
                return f"{key}: {str(data[key])[:80]}"
        return ", ".join(list(data)[:4])
    return "" if data is None else str(data)[:80]


EVENT_COLUMNS = [{"name": c, "label": c, "field": c, "align": "left"} for c in ("t", "dir", "event", "gist")]


class RecordingsPanel:
    """The Recordings tab of one browser tab."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.server = dashboard.server
        self.recording: Recording | None = None
        recorder = self.server.recorder
        if recorder is None:
            ui.label("Recording is off: start the server with --record DIR (or VOICEGRAPH_RECORD_DIR) to "
                     "record sessions here. Recordings hold the users' audio.").props("data-testid=recordings-off")
            return
        self.directory = Path(recorder.directory)
        with ui.row().classes("items-center"):
            ui.label(f"{self.directory}").classes("text-sm text-gray-600")
            ui.button("Refresh", icon="refresh", on_click=self.refresh).props("flat data-testid=recordings-refresh")
        self.listing = ui.column().classes("gap-0 w-full").props("data-testid=recordings-list")
        self.detail = ui.column().classes("w-full").props("data-testid=recording-detail")
        self.refresh()

    def refresh(self) -> None:
        self.listing.clear()
        found = list_recordings(self.directory)
        with self.listing:
            if not found:
                ui.label("No recordings yet.").classes("text-sm")
            for meta in found[:100]:
                with ui.row().classes("items-center gap-2 text-sm"):
                    ui.button("Open", on_click=lambda m=meta: self.open(m["path"])) \
                        .props(f"dense flat data-testid=open-{meta['session']}")
                    ui.label(f"{meta['started_at']} · {meta['session']} · graph {meta['graph']}"
                             + (f" · {meta['label']}" if meta["label"] else "") + f" · {meta['bytes'] / 1e6:.2f} MB")

    async def open(self, path: str) -> None:
        self.detail.clear()
        with self.detail:
            ui.label(f"opening {Path(path).name}…")
        try:
            rec = await asyncio.to_thread(read_recording, path)
            points = await asyncio.to_thread(levels, rec)
        except (OSError, ValueError) as err:
            self.detail.clear()
            with self.detail:
                ui.label(f"cannot open {Path(path).name}: {err}").classes("text-red-700")
            return
        self.recording = rec
        self.detail.clear()
        with self.detail:
            end = rec.end or {}
            seconds = max(rec.duration_ms, points[-1][0] if points else 0.0) / 1000
            ui.label(f"{Path(path).name} · graph {rec.graph.get('name', '?')} · {seconds:.1f} s · "
                     f"{len(rec.inbound)} events in, {len(rec.outbound)} out"
                     + (" · truncated" if rec.truncated else "") + (f" · {end['dropped']} dropped"
                                                                     if end.get("dropped") else "")) \
                .classes("text-base font-bold").props("data-testid=recording-title")
            ui.echart(timeline(rec, points)).classes("w-full h-56").props("data-testid=recording-timeline")
            with ui.row().classes("items-center"):
                self.speed = ui.select({"max": "as fast as possible", "1": "recorded pace"}, value="max") \
                    .props("dense data-testid=replay-speed")
                self.replay_button = ui.button("Replay through the current graph", icon="replay",
                                               on_click=self.replay).props("data-testid=replay")
                self.replay_status = ui.label().classes("text-sm").props("data-testid=replay-status")
            self.comparison = ui.column().classes("w-full").props("data-testid=replay-comparison")
            with self.comparison:
                run = summarize(rec.outbound, rec.turns)
                self._compare_table([(False, *r[1:3], "") for r in compare_rows(run, run)])
                ui.table(columns=EVENT_COLUMNS, rows=event_rows(rec.outbound, rec.inbound), row_key="n",
                         pagination=15).props("dense flat bordered").classes("w-full") \
                    .props("data-testid=recording-events")

    def _compare_table(self, rows: list[tuple[bool, str, str, str]]) -> None:
        columns = [{"name": c, "label": label, "field": c, "align": "left"}
                   for c, label in (("diff", ""), ("what", "what"), ("recorded", "recorded"), ("replay", "replay"))]
        ui.table(columns=columns, row_key="n", rows=[
            {"n": i, "diff": "≠" if d else "", "what": what, "recorded": a, "replay": b}
            for i, (d, what, a, b) in enumerate(rows)]).props("dense flat bordered").classes("w-full") \
            .props("data-testid=replay-table")

    async def replay(self) -> None:
        rec, url = self.recording, self.dashboard.url
        if rec is None or url is None:
            return
        self.replay_button.disable()
        self.replay_status.set_text(f"replaying through {self.server.spec.name}…")
        speed = None if self.speed.value == "max" else float(self.speed.value)
        try:
            outcome: Outcome = await replay_to_server(self.server, url, rec, speed)
        except Exception as err:  # a refused connection, a timeout: say so, the tab goes on
            self.replay_status.set_text(f"replay failed: {type(err).__name__}: {err}")
            return
        finally:
            self.replay_button.enable()
        rows = compare_rows(outcome.recorded, outcome.replayed)
        differs = sum(1 for r in rows if r[0])
        self.replay_status.set_text(f"replayed through {outcome.graph}: "
                                    + (f"{differs} differences" if differs else "the same"))
        self.comparison.clear()
        with self.comparison:
            self._compare_table(rows)
            with ui.row().classes("w-full no-wrap items-start"):
                for title, events, inbound in (("recorded", rec.outbound, rec.inbound), ("replay", outcome.events, [])):
                    with ui.column().classes("w-1/2"):
                        ui.label(f"{title} events").classes("font-bold")
                        ui.table(columns=EVENT_COLUMNS, rows=event_rows(events, inbound), row_key="n",
                                 pagination=15).props(f"dense flat bordered data-testid=events-{title}") \
                            .classes("w-full")
