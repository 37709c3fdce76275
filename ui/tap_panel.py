"""Tap: the messages that flowed on each edge of one session, and the path one turn took.

Pick a session (the testbench's own, by default, or any live one — or open the page as
`/?tap=NAME` to tap the live session whose client label, or id, is NAME, whichever connects
next once one closes: how a benchmark taps a client it starts); the dashboard then taps it
(`Tap.watch`, see `flow.tap`) for as long as this browser tab shows it, and no longer: a session
nobody taps pays nothing for the tap. Records are kept after the session closes (`ui.tap_model`).
Filter by node, port and turn; "follow" a turn to list its messages — with the audio, utterance
and transcript it came from — and draw its path on the session's graph. Nodes that failed are
drawn red.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from nicegui import ui

from flow.graph.mermaid import to_mermaid
from ui.graph_panel import DRAWING, readable
from ui.tap_model import TapLog, TapRecord, path

if TYPE_CHECKING:
    from flow.graph.spec import GraphSpec
    from ui.dashboard import Dashboard
    from ui.testbench import Testbench

TESTBENCH = "testbench"
"""The select's value for "whatever session this tab's testbench has"."""
NAMED = "named:"
"""The select's value prefix for "the live session labelled (or with the id) that follows"."""
SHOW_ROWS = 100
"""Most rows the table shows (the newest matching ones); the log keeps more (narrow the filter)."""
REFRESH_S = 0.5
"""How often the tab looks for new records: a table re-rendered more often would cost the browser
(and the server's serializing) more than the tap itself."""
COLUMNS = [
    {"name": "seq", "label": "#", "field": "seq"},
    {"name": "time", "label": "time", "field": "time", "align": "left"},
    {"name": "edge", "label": "edge", "field": "edge", "align": "left"},
    {"name": "type", "label": "type", "field": "type", "align": "left"},
    {"name": "turn", "label": "turn", "field": "turn"},
    {"name": "summary", "label": "payload", "field": "summary", "align": "left",
     "style": "white-space: normal; font-family: monospace; font-size: 11px"},
]


class TapPanel:
    """The Tap tab of one browser tab."""

    def __init__(self, dashboard: Dashboard, bench: Testbench, name: str | None = None) -> None:
        self.dashboard = dashboard
        self.bench = bench
        self.watched: str | None = None
        self._label: str | None = None
        """The client label this tab waits for (`/?tap=LABEL`), armed in `flow.tap`."""
        self._specs: dict[str, GraphSpec] = {}
        """The graph each session shown here ran (kept for closed sessions: the drawing needs it)."""
        self._shown: Any = None
        self._drawn = ""
        with ui.row().classes("items-end w-full"):
            first = NAMED + name if name else TESTBENCH
            self.pick = ui.select({first: first}, value=first, label="session",
                                  on_change=lambda: self.sync()).classes("w-72").props("data-testid=tap-session")
            self.node = ui.input("node").classes("w-28").props("clearable data-testid=tap-node")
            self.port = ui.input("port").classes("w-28").props("clearable data-testid=tap-port")
            self.turn = ui.input("turn (follow)").classes("w-28").props("clearable data-testid=tap-turn")
            ui.button("last turn", on_click=self._last_turn).props("outline data-testid=tap-last-turn")
            self.status = ui.label().classes("text-sm opacity-70").props("data-testid=tap-status")
        # the drawing across the tab's width, the table under it (half a window shows a graph tiny)
        self.path = ui.label().classes("text-xs").props("data-testid=tap-path")
        self.failed = ui.label().classes("text-xs text-red-700").props("data-testid=tap-failed")
        self.drawing = ui.mermaid("flowchart TD\n  empty[\"no session\"]\n", DRAWING) \
            .classes("w-full vg-drawing").props("data-testid=tap-graph")
        self.table = ui.table(columns=COLUMNS, rows=[], row_key="seq").classes("w-full") \
            .props("dense flat bordered data-testid=tap-table")
        ui.timer(REFRESH_S, self.refresh)

    # ------------------------------------------------------------------ which session

    def target(self) -> str | None:
        picked = self.pick.value
        if picked == TESTBENCH:
            return self.bench.sid or None
        if picked.startswith(NAMED):
            name = picked[len(NAMED):]
            if self.watched in self.dashboard.server.sessions:
                return self.watched  # keep the one found while it lives
            found = next((sid for sid, view in self.dashboard.state.sessions.items() if name in (sid, view.label)),
                         None)
            return found or self.watched  # after it closed, its records until the next one comes
        return picked

    def sync(self) -> None:
        """Tap the picked session (and stop tapping the one before)."""
        tap = self.dashboard.server.resources.monitor.tap
        label = self.pick.value[len(NAMED):] if self.pick.value.startswith(NAMED) else None
        if label != self._label:  # sessions with this label are tapped from their first message
            if self._label is not None:
                tap.unwatch_label(self._label)
            if label is not None:
                tap.watch_label(label)
            self._label = label
        sid = self.target()
        if sid == self.watched:
            return
        if self.watched is not None:
            tap.unwatch(self.watched)
        self.watched = sid
        if sid is not None:
            tap.watch(sid)
            session = self.dashboard.server.sessions.get(sid)
            if session is not None:
                self._specs[sid] = session.spec
        self._shown = None
        self.refresh()

    def close(self) -> None:
        if self._label is not None:
            self.dashboard.server.resources.monitor.tap.unwatch_label(self._label)
            self._label = None
        if self.watched is not None:
            self.dashboard.server.resources.monitor.tap.unwatch(self.watched)
            self.watched = None

    def _options(self) -> dict[str, str]:
        state = self.dashboard.state
        options = {TESTBENCH: "testbench session"}
        for sid, view in state.sessions.items():
            if sid != self.bench.sid:
                options[sid] = f"{view.label or view.remote or 'client'} {sid[:8]}"
        for sid, log in state.taps.logs.items():
            if log.closed and sid not in options:
                options[sid] = f"{sid[:8]} (closed, {len(log.records)} messages kept)"
        if self.pick.value.startswith(NAMED):
            options[self.pick.value] = f"named {self.pick.value[len(NAMED):]!r}"
        elif self.pick.value not in options:
            options[self.pick.value] = f"{self.pick.value[:8]} (gone)"
        return options

    # ------------------------------------------------------------------ showing

    def _last_turn(self) -> None:
        log = self._log()
        turns = log.turns() if log else []
        if turns:
            self.turn.set_value(str(turns[-1]))
            self.refresh()

    def _log(self) -> TapLog | None:
        return self.dashboard.state.taps.get(self.watched) if self.watched else None

    def _followed(self) -> int | None:
        text = (self.turn.value or "").strip()
        return int(text) if text.isdigit() else None

    def refresh(self) -> None:
        self.sync()
        options = self._options()
        if options != self.pick.options:
            self.pick.set_options(options, value=self.pick.value)
        log = self._log()
        view = self.dashboard.state.find(self.watched) if self.watched else None
        failed = view.recently_failed(time.time() * 1000) if view else []
        turn = self._followed()
        signature = (self.watched, log.version if log else -1, self.node.value, self.port.value, turn,
                     tuple(failed))
        if signature == self._shown:
            return
        self._shown = signature
        records = self._records(log, turn)
        self.table.update_rows([_row(r) for r in records[-SHOW_ROWS:]])
        edges = path(records) if turn is not None else []
        self.path.set_text(f"path of turn {turn}: " + ", ".join(label for _, label in edges) if edges else
                           "type a turn (or press 'last turn') to follow its path")
        self.failed.set_text("failed: " + ", ".join(
            f"{node} ({view.failed[node][1]})" for node in failed) if view and failed else "")
        kept = f"{len(log.records)} messages" + (f", {log.dropped} older dropped" if log.dropped else "") \
            + (" · session closed" if log.closed else "") if log else "no messages yet"
        self.status.set_text(f"{self.watched or 'no session'}: {kept}")
        self._draw([i for i, _ in edges], failed)

    def _records(self, log: TapLog | None, turn: int | None) -> list[TapRecord]:
        if log is None:
            return []
        records = log.follow(turn) if turn is not None else log.ordered()
        node, port = (self.node.value or "").strip(), (self.port.value or "").strip()
        return [r for r in records if r.matches(node, port)] if node or port else records

    def _draw(self, highlight: list[int], failed: list[str]) -> None:
        spec = self._specs.get(self.watched or "") or self.dashboard.server.spec
        chart = readable(to_mermaid(spec, highlight=highlight, failed=failed))
        if chart != self._drawn:
            self._drawn = chart
            self.drawing.set_content(chart)


def _row(r: TapRecord) -> dict[str, Any]:
    clock = time.strftime("%H:%M:%S", time.localtime(r.at_ms / 1000)) + f".{int(r.at_ms % 1000):03d}"
    return {"seq": r.seq, "time": clock, "edge": r.label, "type": r.type,
            "turn": "" if r.turn is None else r.turn, "summary": r.summary}
