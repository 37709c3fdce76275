"""What the dashboard knows, rebuilt from monitoring events alone (never from session internals).

`DashboardState.apply` folds `MonitorEvent`s into one `SessionView` per client: its state, level,
speech/silence timeline, transcripts, replies, errors and per-turn stage times. Everything is
bounded, so a long-running server or a client that talks for hours cannot grow it. Pages read it
on their own timers (throttled rendering); `version` tells them whether anything changed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flow.monitor import MonitorEvent, Subscription
from ui.tap_model import TapStore

log = logging.getLogger("voicegraph.ui")

TIMELINE_POINTS = 300
"""Level/speech samples kept per session (30 s at the monitor's 10 Hz)."""
KEEP_TURNS = 20
KEEP_REPLIES = 10
KEEP_ERRORS = 20
KEEP_CLOSED = 50
WORKER_SILENT_MS = 5_000.0
"""A worker whose figures (sent every second while watched) stop this long is gone: its sessions
are shown closed."""
INTERRUPTED_SHOW_S = 2.0
"""How long `interrupted` stays the state before the session reads idle/listening again."""
SETTLING_STATES = ("interrupted", "nothing heard", "failed")
"""States shown for `INTERRUPTED_SHOW_S`, then the session reads idle/listening again: an
interruption, an utterance transcribed to no words, a node failure that ended the turn."""
KEEP_SPANS = 50
"""Bot speech spans and interrupts kept per session for the timeline."""
KEEP_PIECES = 50
"""Streamed pieces listed per reply."""
KEEP_FAILED_NODES = 50

STAGES = ("speech_end", "endpointed", "transcript", "first_token", "first_audio")
"""The stages the latency chart shows, in order (text turns start at `accepted`)."""
STAGE_LABELS = {
    "endpointed": "end of speech → endpointed",
    "transcript": "→ transcript",
    "first_token": "→ first token",
    "first_audio": "→ first audio",
}


REPLY_AUDIO_PATH = "/reply-audio"
"""Where the dashboard serves a reply's MP3 by its monitor reference (`ui.app`): events carry none."""


def audio_url(ref: str | None) -> str | None:
    """Where the dashboard serves the reply audio of monitor reference `ref`."""
    return f"{REPLY_AUDIO_PATH}/{ref}" if ref else None


@dataclass
class Piece:
    """One streamed piece of a reply (`ai-response-chunk`)."""

    seq: int
    text: str
    audio_ref: str | None
    seconds: float
    at_ms: float

    @property
    def audio_url(self) -> str | None:
        return audio_url(self.audio_ref)


@dataclass
class Reply:
    id: str
    reply_to: str
    text: str
    audio_ref: str | None
    """The monitor's reference to the reply's audio (`flow.monitor.ReplyAudio`), None if silent."""
    at_ms: float
    pieces: list[Piece] = field(default_factory=list)
    """A streamed reply's pieces, in order (empty for a reply sent whole)."""

    @property
    def audio_url(self) -> str | None:
        return audio_url(self.audio_ref)


@dataclass
class SessionView:
    """One client, as the dashboard shows it."""

    sid: str
    opened_ms: float
    worker: str = ""
    """The server process that serves it (one of a cluster's workers)."""
    graph: str = ""
    remote: str = ""
    agent: str = ""
    label: str = ""
    state: str = "idle"
    state_ms: float = 0.0
    recording: bool = False
    level_db: float = -120.0
    speech: bool = False
    backlog: float = 0.0
    bytes_in: int = 0
    speaking_until: float = 0.0
    closed_ms: float | None = None
    timeline: deque[tuple[float, float, bool]] = field(default_factory=lambda: deque(maxlen=TIMELINE_POINTS))
    """(time ms, level dBFS, speech) samples."""
    transcripts: deque[tuple[float, str, str]] = field(default_factory=lambda: deque(maxlen=KEEP_TURNS))
    """(time ms, source, text) of accepted user turns."""
    replies: deque[Reply] = field(default_factory=lambda: deque(maxlen=KEEP_REPLIES))
    errors: deque[tuple[float, str, str]] = field(default_factory=lambda: deque(maxlen=KEEP_ERRORS))
    turns: dict[int, dict[str, float]] = field(default_factory=dict)
    bot_speech: deque[list[float]] = field(default_factory=lambda: deque(maxlen=KEEP_SPANS))
    """[start ms, end ms] of the assistant's speech (as long as its audio plays)."""
    interrupts: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP_SPANS))
    """When the user interrupted (or a reply was cancelled)."""
    ended: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Turn number → its `turn-metrics` payload, once the turn is over (the monitor's `turn`)."""
    failed: dict[str, tuple[float, str, str]] = field(default_factory=dict)
    """Node id → (time ms, code, message) of its latest failure."""
    version: int = 0

    def current_state(self, now_ms: float | None = None) -> str:
        """The state, with the time-based transitions (a reply finished playing) applied."""
        now = time.time() * 1000 if now_ms is None else now_ms
        if self.closed_ms is not None:
            return "closed"
        if self.state == "speaking" and now >= self.speaking_until:
            return "listening" if self.recording else "idle"
        if self.state in SETTLING_STATES and now - self.state_ms >= INTERRUPTED_SHOW_S * 1000:
            return "listening" if self.recording else "idle"
        return self.state

    def peak_db(self, now_ms: float, window_ms: float = 1000.0) -> float:
        """The loudest level of the last `window_ms` (what a once-a-second list should show)."""
        recent = [db for t, db, _ in reversed(self.timeline) if now_ms - t <= window_ms]
        return max(recent, default=-120.0)

    def stage_latencies(self) -> list[tuple[int, dict[str, float]]]:
        """Per turn (oldest first): ms spent in each stage of `STAGE_LABELS`."""
        out = []
        for turn in sorted(self.turns):
            marks = self.turns[turn]
            prev = marks.get("speech_end", marks.get("accepted"))
            if prev is None:
                continue
            spans: dict[str, float] = {}
            for stage in STAGES[1:]:
                if stage in marks:
                    spans[stage] = round(max(0.0, marks[stage] - prev), 1)
                    prev = marks[stage]
            if "cancelled" in marks:
                spans["cancelled"] = 1.0
            out.append((turn, spans))
        return out

    def turn_rows(self) -> list[dict[str, Any]]:
        """The latency table: per turn (newest first), ms of each stage and how the turn ended."""
        rows = []
        for turn, spans in reversed(self.stage_latencies()):
            marks = self.turns[turn]
            status = ("cancelled" if "cancelled" in marks else
                      "answered" if "first_audio" in marks else "in flight")
            rows.append({"turn": turn, "status": status, "speculation": speculation(self.ended.get(turn)),
                         **{stage: spans.get(stage, "") for stage in STAGE_LABELS}})
        return rows

    # ------------------------------------------------------------------ folding events

    def _set(self, state: str, at_ms: float) -> None:
        self.state = state
        self.state_ms = at_ms

    def apply(self, ev: MonitorEvent) -> None:
        d, at = ev.data, ev.at_ms
        kind = ev.kind
        if kind == "tick":
            self.level_db, self.speech, self.backlog = d["level_db"], d["speech"], d["backlog"]
            self.bytes_in = d["bytes_in"]
            self.timeline.append((at, self.level_db, self.speech))
        elif kind == "speech":
            self._set("speech" if d["state"] == "start" else "transcribing", at)
        elif kind == "stage":
            self.turns.setdefault(d["turn"], {})[d["stage"]] = d["at_ms"]
            while len(self.turns) > KEEP_TURNS:
                del self.turns[min(self.turns)]
        elif kind == "in":
            self._client_event(d["event"], at)
        elif kind == "out":
            self._server_event(d["event"], d["payload"], at)
        elif kind == "open":
            self.graph, self.remote = d.get("graph", ""), d.get("remote", "")
            self.agent, self.label = d.get("agent", ""), d.get("label", "")
        elif kind == "failed":
            self._failed(d, at)
        elif kind == "turn":
            self._turn_ended(d, at)
        elif kind == "close":
            self.closed_ms = at
        self.version += 1

    def _settle(self, state: str, at: float) -> None:
        """A turn ended without a reply: show why for a moment, then listening/idle. Not while the
        user speaks again (what ended was the turn before; this one goes on)."""
        if self.state in ("transcribing", "thinking"):
            self._set(state, at)

    def _failed(self, d: dict[str, Any], at: float) -> None:
        node = str(d.get("node") or "")
        if node:
            self.failed.pop(node, None)
            self.failed[node] = (at, str(d.get("code", "")), str(d.get("message", "")))
            while len(self.failed) > KEEP_FAILED_NODES:
                del self.failed[next(iter(self.failed))]

    def recently_failed(self, now_ms: float, window_ms: float = 60_000.0) -> list[str]:
        """Nodes that failed within `window_ms` (the drawing marks them)."""
        return [node for node, (at, _, _) in self.failed.items() if now_ms - at <= window_ms]

    def _client_event(self, event: str, at: float) -> None:
        if event == "start-recording":
            self.recording = True
            self._set("listening", at)
        elif event == "stop-recording":
            self.recording = False
            self.level_db, self.speech, self.backlog = -120.0, False, 0.0  # no ticks come after a stop
            self.timeline.append((at, self.level_db, False))
            if self.state == "listening":
                self._set("idle", at)
        elif event == "interrupt":
            self._interrupted(at)  # the client stops playing; `interrupted` only if the server cut something

    def _turn_ended(self, d: dict[str, Any], at: float) -> None:
        """A turn is over (the interrupt gate's record): `interrupted` shows when the latest turn
        was cancelled — its reply or the work on it cut — not for an interrupt that found the
        reply already whole (then nothing was cut: the turn reads answered)."""
        turn, metrics = d.get("turn"), d.get("metrics")
        if not isinstance(turn, int):
            return
        self.ended[turn] = metrics if isinstance(metrics, dict) else {}
        while len(self.ended) > KEEP_TURNS:
            del self.ended[min(self.ended)]
        latest = turn >= max(self.turns, default=turn)
        # (not over the user speaking again; `ai-typing false` may have read the turn over already)
        if d.get("outcome") == "cancelled" and latest and self.state != "speech":
            self._set("interrupted", at)
            self._interrupted(at)

    def _interrupted(self, at: float) -> None:
        self.interrupts.append(at)
        if self.bot_speech and self.bot_speech[-1][1] > at:
            self.bot_speech[-1][1] = at  # the rest of the reply is not played
        self.speaking_until = min(self.speaking_until, at)

    def _server_event(self, event: str, p: Any, at: float) -> None:
        if event == "speech-result" and p.get("isFinal", True) and not str(p.get("text", "")).strip():
            self.transcripts.append((at, "nothing heard", ""))
            self._settle("nothing heard", at)
        elif event == "message-received":
            self.transcripts.append((at, p.get("source", ""), p.get("text", "")))
            self._set("thinking", at)
        elif event == "ai-typing" and p.get("isTyping") and self.state not in ("speaking",):
            self._set("thinking", at)
        elif event == "ai-typing" and not p.get("isTyping") and self.state == "thinking":
            self._set("listening" if self.recording else "idle", at)  # the turn ended with no reply
        elif event == "ai-response-chunk":
            self._piece(p, at)
            self._speak(_audio(p), at, extend=True)
        elif event == "ai-response":
            streamed = self.state == "speaking" and self.speaking_until > at
            mine = self._reply(p, at)
            mine.text, mine.audio_ref = p.get("text", ""), _audio(p).get("ref")
            if not streamed:
                self._speak(_audio(p), at, extend=False)
        elif event == "response-cancelled":  # the rest of a reply was cut (or its LLM failed)
            if p.get("reason") != "llm_failed":
                self._set("interrupted", at)
            self._interrupted(at)
            self.speaking_until = 0.0
        elif event == "error":
            self.errors.append((at, p.get("code", ""), p.get("message", "")))
            self._settle("failed", at)

    def _reply(self, p: dict[str, Any], at: float) -> Reply:
        """The reply `p` belongs to (by id), made and listed if it is new."""
        rid = p.get("id", "")
        for reply in reversed(self.replies):
            if rid and reply.id == rid:
                return reply
        reply = Reply(rid, p.get("replyTo", ""), "", None, at)
        self.replies.append(reply)
        return reply

    def _piece(self, p: dict[str, Any], at: float) -> None:
        reply = self._reply(p, at)
        audio = _audio(p)
        seq = p.get("seq")
        if len(reply.pieces) < KEEP_PIECES:
            reply.pieces.append(Piece(seq if isinstance(seq, int) else len(reply.pieces), str(p.get("text", "")),
                                      audio.get("ref"), float(audio.get("seconds") or 0.0), at))
        reply.text = (reply.text + " " + str(p.get("text", ""))).strip()

    def _speak(self, audio: dict[str, Any], at: float, extend: bool) -> None:
        seconds = audio.get("seconds") or 0.0
        start = max(at, self.speaking_until) if extend else at
        self.speaking_until = start + seconds * 1000
        if seconds:
            if self.bot_speech and self.bot_speech[-1][1] >= start - 1:
                self.bot_speech[-1][1] = self.speaking_until
            else:
                self.bot_speech.append([start, self.speaking_until])
        if self.state != "speaking":
            self._set("speaking", at)


class DashboardState:
    """Every session of one server (or, later, several), folded from the monitor's events."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionView] = {}
        self.closed: deque[SessionView] = deque(maxlen=KEEP_CLOSED)
        self.server: dict[str, Any] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        """Each worker's latest figures (`server` events), by worker name."""
        self.applied: dict[str, dict[str, Any]] = {}
        """Each worker's verdict on the latest Apply of a cluster (`applied` events)."""
        self.graph_events = 0
        self.taps = TapStore()
        """What flowed on the edges of the sessions someone taps (`ui.tap_model`)."""
        self.dropped = 0
        self.version = 0
        """Bumped when sessions come or go (lists re-render); per-session changes bump theirs."""

    def apply(self, ev: MonitorEvent) -> None:
        if ev.kind == "server":
            self.workers[ev.server] = {**ev.data, "heard_ms": time.time() * 1000}
            if not self.server or self.server.get("worker", ev.server) == ev.server:
                self.server = {**ev.data, "worker": ev.server}  # the first worker heard of: whose graph is drawn
            return
        if ev.kind == "applied":
            self.applied[ev.server] = ev.data
            return
        if ev.kind == "graph":
            self.graph_events += 1
            self.server = {**self.server, "graph": ev.data["name"], "path": ev.data["path"]}
            return
        if ev.kind == "tap":
            self.taps.apply(ev)
            return
        if ev.kind == "close":
            self.taps.apply(ev)
        view = self.sessions.get(ev.session)
        if view is None:
            if ev.kind == "close" or not ev.session:
                return
            view = self.sessions[ev.session] = SessionView(ev.session, ev.at_ms, ev.server)
            self.version += 1
        view.apply(ev)
        if ev.kind == "close":
            self.closed.appendleft(self.sessions.pop(ev.session))
            self.version += 1

    def forget_silent_workers(self, now_ms: float, after_ms: float = WORKER_SILENT_MS) -> None:
        """Close the sessions of workers that stopped reporting (killed: no `close` will come)."""
        silent = {w for w, figures in self.workers.items() if now_ms - figures["heard_ms"] > after_ms}
        for sid in [sid for sid, view in self.sessions.items() if view.worker in silent]:
            view = self.sessions.pop(sid)
            view.closed_ms = now_ms
            self.closed.appendleft(view)
            self.version += 1
        for w in silent:
            del self.workers[w]

    def find(self, sid: str) -> SessionView | None:
        return self.sessions.get(sid) or next((v for v in self.closed if v.sid == sid), None)

    async def follow(self, sub: Subscription) -> None:
        """Fold a subscription's events in until cancelled (one task per dashboard); closes it."""
        try:
            while True:
                for ev in await sub.batch():
                    try:
                        self.apply(ev)
                    except Exception:  # one odd event (e.g. a custom graph's payload) must not
                        log.exception("dashboard could not show %s event", ev.kind)  # freeze the view
                self.dropped = sub.dropped
        finally:
            sub.close()


def speculation(metrics: dict[str, Any] | None) -> str:
    """A turn's speculation, as the turn table says it: answered ahead of the commit (and the
    time that saved: its work started at `speculated` instead of `endpointed`), tentative turns
    withdrawn before it (their work thrown away); "" for a turn without speculation."""
    if not metrics:
        return ""
    parts = []
    ms = metrics.get("ms") or {}
    if metrics.get("speculative"):
        saved = saved_ms(ms)
        parts.append("ahead" + (f", saved {saved:.0f} ms" if saved is not None else ""))
    withdrawn = metrics.get("withdrawn") or 0
    if withdrawn:
        parts.append(f"{withdrawn} withdrawn")
    return " · ".join(parts)


def saved_ms(ms: dict[str, Any]) -> float | None:
    """How much sooner a speculative turn's work started than a committed one's would have."""
    speculated, endpointed = ms.get("speculated"), ms.get("endpointed")
    if isinstance(speculated, int | float) and isinstance(endpointed, int | float):
        return max(0.0, endpointed - speculated)
    return None


def _audio(payload: dict[str, Any]) -> dict[str, Any]:
    """The audio reference of a reply event (`{bytes, seconds, ref}`), `{}` if it has none."""
    audio = payload.get("audio")
    return audio if isinstance(audio, dict) else {}
