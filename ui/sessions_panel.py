"""Sessions: every connected client in a paginated table, and the selected one in detail.

Rendering is throttled: the table refreshes once a second, the detail four times a second and
only the parts whose data changed, so 100 live sessions cost the browser ten visible rows.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from nicegui import ui

from ui import charts
from ui.inject_panel import InjectPanel
from ui.model import STAGE_LABELS, SessionView

if TYPE_CHECKING:
    from ui.dashboard import Dashboard

STATE_COLORS = {
    "idle": "grey", "listening": "blue", "speech": "green", "transcribing": "orange",
    "thinking": "purple", "speaking": "teal", "interrupted": "red", "closed": "grey-5",
    "nothing heard": "brown", "failed": "negative",
}
COLUMNS = [
    {"name": "sid", "label": "session", "field": "sid", "align": "left", "headerStyle": "width: 21%"},
    {"name": "label", "label": "client", "field": "label", "align": "left", "headerStyle": "width: 19%"},
    {"name": "state", "label": "state", "field": "state", "align": "left", "headerStyle": "width: 18%"},
    {"name": "level", "label": "dBFS", "field": "level", "headerStyle": "width: 10%"},
    {"name": "backlog", "label": "buffer", "field": "backlog", "headerStyle": "width: 11%"},
    {"name": "turns", "label": "turns", "field": "turns", "headerStyle": "width: 10%"},
    {"name": "errors", "label": "errors", "field": "errors", "headerStyle": "width: 11%"},
    {"name": "worker", "label": "worker", "field": "worker", "align": "left", "headerStyle": "width: 10%"},
]
"""Widths share the table's own (`vg-fit`: a fixed layout, long ids and labels cut with an
ellipsis), so the table never scrolls sideways; `worker` only for a cluster's dashboard."""


def row(view: SessionView, now_ms: float) -> dict[str, Any]:
    return {
        "sid": view.sid,
        "label": view.label or view.remote,
        "worker": view.worker,
        "state": view.current_state(now_ms),
        "level": f"{view.peak_db(now_ms):.0f}",
        "backlog": f"{100 * view.backlog:.0f}%",
        "turns": sum(1 for _, source, _ in view.transcripts if source != "nothing heard"),
        "errors": len(view.errors),
    }


class SessionsPanel:
    """The Sessions tab of one browser tab."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.selected: str | None = None
        self._shown: dict[str, Any] = {}
        self.inject = InjectPanel(dashboard, self.select)
        columns = COLUMNS if dashboard.server.cluster is not None else [c for c in COLUMNS if c["name"] != "worker"]
        with ui.row().classes("w-full no-wrap items-start"):
            with ui.column().classes("w-2/5 min-w-0"):  # min-w-0: the row's widths hold, whatever the rows hold
                self.table = ui.table(columns=columns, rows=[], row_key="sid", pagination=10) \
                    .classes("w-full vg-fit").props("dense flat bordered data-testid=sessions")
                self.table.on("rowClick", lambda e: self.select(e.args[1]["sid"]))
            with ui.column().classes("w-3/5 min-w-0") as self.detail:
                self._build_detail()
        self._states: list[tuple[str, str]] = []
        self._refresh_table()
        ui.timer(1.0, self._refresh_table)
        ui.timer(0.25, self._refresh_detail)

    def select(self, sid: str) -> None:
        if sid and sid != self.selected:
            self.selected = sid
            self._shown.clear()
            self._refresh_detail()

    # ------------------------------------------------------------------ table

    def _refresh_table(self) -> None:
        now = time.time() * 1000
        state = self.dashboard.state
        views = [*state.sessions.values(), *list(state.closed)[:10]]
        rows = [row(v, now) for v in views]
        self._states = [(r["sid"], r["state"]) for r in rows]
        if rows != self.table.rows:
            self.table.update_rows(rows, clear_selection=False)

    def _states_changed(self, now: float) -> bool:
        """Whether any listed session's state differs from the table's (checked with the badge, so
        the two never disagree for the table's second)."""
        state = self.dashboard.state
        views = [*state.sessions.values(), *list(state.closed)[:10]]
        return [(v.sid, v.current_state(now)) for v in views] != self._states

    # ------------------------------------------------------------------ detail

    def _build_detail(self) -> None:
        with ui.row().classes("items-center w-full"):
            self.title = ui.label("select a session").classes("text-base font-bold")
            self.badge = ui.badge("none", color="grey").classes("vg-state").props("data-testid=state")
        with ui.row().classes("items-center w-full no-wrap"):
            ui.label("level").classes("w-14 text-xs")
            self.level = ui.linear_progress(value=0, show_value=False, size="12px").props("instant-feedback")
            ui.label("buffer").classes("w-14 text-xs")
            self.backlog = ui.linear_progress(value=0, show_value=False, size="12px", color="orange") \
                .props("instant-feedback")
        self.timeline = ui.echart(charts.timeline(SessionView("", 0), 0)).classes("w-full h-40")
        with ui.row().classes("w-full no-wrap items-start"):
            with ui.column().classes("w-1/2"):
                ui.label("You said").classes("text-sm font-bold")
                self.transcripts = ui.column().classes("gap-0").props("data-testid=transcripts")
            with ui.column().classes("w-1/2"):
                ui.label("Replies").classes("text-sm font-bold")
                self.replies = ui.column().classes("gap-1").props("data-testid=replies")
        ui.label("Per-stage latency (ms)").classes("text-sm font-bold")
        self.latency = ui.echart(charts.latencies(SessionView("", 0))).classes("w-full h-48")
        self.turn_table = ui.table(
            columns=[{"name": "turn", "label": "turn", "field": "turn"},
                     *({"name": k, "label": v, "field": k} for k, v in STAGE_LABELS.items()),
                     {"name": "status", "label": "status", "field": "status"},
                     {"name": "speculation", "label": "speculation", "field": "speculation"}],
            rows=[], row_key="turn").classes("w-full").props("dense flat data-testid=turns")
        ui.label("Errors").classes("text-sm font-bold")
        self.errors = ui.column().classes("gap-0 text-red-700 text-sm").props("data-testid=errors")

    def _changed(self, part: str, signature: Any) -> bool:
        if self._shown.get(part) == signature:
            return False
        self._shown[part] = signature
        return True

    def _refresh_detail(self) -> None:
        view = self.dashboard.state.find(self.selected) if self.selected else None
        if view is None:
            return
        now = time.time() * 1000
        if self._states_changed(now):
            self._refresh_table()
        current = view.current_state(now)
        if self._changed("head", (view.sid, current)):
            self.title.set_text(f"{view.label or 'client'} {view.sid} · {view.graph}")
            self.badge.set_text(current)
            self.badge.props(f"color={STATE_COLORS.get(current, 'grey')}")
        self.level.set_value(charts.meter(view.level_db) if current != "closed" else 0)
        self.backlog.set_value(view.backlog)
        if self._changed("timeline", (view.version, int(now // 500))):
            self.timeline.options.clear()
            self.timeline.options.update(charts.timeline(view, now))
            self.timeline.update()
        if self._changed("transcripts", [t for t, _, _ in view.transcripts]):
            self.transcripts.clear()
            with self.transcripts:
                for _, source, text in reversed(view.transcripts):
                    if source == "nothing heard":
                        ui.label("(nothing heard: the utterance had no words)").classes("text-sm italic opacity-70")
                    else:
                        ui.label(f"{text} ({source})").classes("text-sm")
        if self._changed("replies", [(r.id, r.audio_ref, len(r.pieces)) for r in view.replies]):
            self.replies.clear()
            with self.replies:
                for reply in reversed(view.replies):
                    ui.label(reply.text).classes("text-sm")
                    if reply.audio_url:  # its length fetched at once (the player shows it), the rest when played
                        ui.audio(reply.audio_url).classes("w-full").props("preload=metadata")
                    for piece in reply.pieces:  # a streamed reply: each piece as it came
                        with ui.row().classes("items-center no-wrap w-full gap-1 text-xs").props("data-testid=piece"):
                            ui.label(f"#{piece.seq} +{(piece.at_ms - reply.at_ms) / 1000:.2f} s "
                                     f"({piece.seconds:.1f} s): {piece.text}").classes("grow")
                            if piece.audio_url:
                                ui.audio(piece.audio_url).classes("w-48").props("preload=metadata")
        if self._changed("latency", tuple((t, tuple(s.items())) for t, s in view.stage_latencies())):
            self.latency.options.clear()
            self.latency.options.update(charts.latencies(view))
            self.latency.update()
            self.turn_table.update_rows(view.turn_rows())
        if self._changed("errors", [t for t, _, _ in view.errors]):
            self.errors.clear()
            with self.errors:
                for _, code, message in reversed(view.errors):
                    ui.label(f"{code}: {message}")
