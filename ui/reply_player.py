"""The testbench's speaker: plays the replies of the testbench session as they come (a toggle).

Streamed pieces play one after another in the order they were sent, through one `<audio>`
element that fetches each clip from the dashboard (`/reply-audio/...`; monitoring events carry no
audio). An interrupt (or a cancelled reply) stops it and drops what was queued.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from nicegui import ui

from ui.model import SessionView

if TYPE_CHECKING:
    from ui.dashboard import Dashboard
    from ui.testbench import Testbench

PLAYER_JS = """
window.vgPlayer = window.vgPlayer || {
  queue: [], busy: false,
  el() { return document.querySelector('[data-testid=autoplayer]'); },
  enqueue(url) { this.queue.push(url); if (!this.busy) this.next(); },
  next() {
    const el = this.el();
    const url = this.queue.shift();
    if (!el || !url) { this.busy = false; return; }
    this.busy = true;
    el.onended = el.onerror = () => this.next();
    el.src = url;
    el.play().catch(() => this.next());
  },
  stop() { this.queue = []; this.busy = false; const el = this.el(); if (el) el.pause(); },
};
"""


class ReplyPlayer:
    """The "play replies" switch and the player of one browser tab's testbench session."""

    def __init__(self, dashboard: Dashboard, bench: Testbench) -> None:
        self.dashboard = dashboard
        self.bench = bench
        self._queued: set[str] = set()
        self._interrupts = 0
        self.enabled = ui.switch("play replies", value=True).props("dense data-testid=autoplay")
        ui.element("audio").props("controls data-testid=autoplayer").classes("h-8 w-56")
        ui.add_body_html(f"<script>{PLAYER_JS}</script>")
        ui.timer(0.25, self._tick)

    def _tick(self) -> None:
        view = self.dashboard.state.find(self.bench.sid) if self.bench.sid else None
        if view is None:
            return
        if len(view.interrupts) != self._interrupts:
            self._interrupts = len(view.interrupts)
            ui.run_javascript("window.vgPlayer.stop()")
        for url in self._new_clips(view):
            if self.enabled.value:
                ui.run_javascript(f"window.vgPlayer.enqueue({json.dumps(url)})")

    def _new_clips(self, view: SessionView) -> list[str]:
        """Clips not yet queued, in the order they were sent (a reply's pieces, else the reply);
        marked queued whether played or not, so turning the switch on plays only what comes next."""
        out = []
        for reply in view.replies:
            for url in [p.audio_url for p in reply.pieces] if reply.pieces else [reply.audio_url]:
                if url and url not in self._queued:
                    self._queued.add(url)
                    out.append(url)
        if len(self._queued) > 10_000:  # a very long session: forget what is long played
            self._queued = {u for r in view.replies for u in ([p.audio_url for p in r.pieces] or [r.audio_url]) if u}
        return out
