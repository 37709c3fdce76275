"""Let only the current turn's response reach the client, and say when a turn's work is stale.

In:  turn: UserTurn, response: ReplyText, pieces: ReplyPiece, interrupt: Interrupt,
     speech: SpeechStarted (barge-in on speech, opt-in), failed: NodeFailed (control),
     withdrawn: Withdrawn (speculation)
Out: response: ReplyText, pieces: ReplyPiece, typing: Typing, events: ClientEvent, cancel: Cancel

This is where barge-in is decided, in one place. A newer accepted turn, an `interrupt` (for the
reply in flight, or naming it by `responseId`), or — with `barge_in_on_speech` — the user
starting to speak, makes the current turn stale: the gate sends `Cancel` on `cancel`, which the
graph wires to every node doing per-turn work (their LLM streams and syntheses stop) and to the
client (queued replies of that turn are dropped), and nothing of that turn passes here any more.
On `events` go the extensions `response-cancelled {id, reason}` (stop playing what you have) and
`turn-metrics` (when each stage of a turn happened). A failure on `failed` after which no reply
will come (`llm_failed`) ends the turn: typing stops, and a reply of which pieces were already
sent ends with `response-cancelled {id, reason: "llm_failed"}`.

Speculation: a tentative turn (the user paused, the finalizer is not sure they finished) makes
older turns stale like any newer turn, and its work runs, but what it makes is held here: nothing
of it reaches the client until the same turn comes committed, and then all that was held goes at
once. Speech resuming (`withdrawn`, naming its utterance) cancels it with reason `withdrawn`, and
so does an interrupt; neither tells the client anything, since it never saw that turn.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict
from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.messages import (
    Cancel,
    ClientEvent,
    Interrupt,
    NodeFailed,
    ReplyPiece,
    ReplyText,
    SpeechStarted,
    SpokenPiece,
    Typing,
    UserTurn,
    Withdrawn,
    now_ms,
)
from flow.contract.node import In, Node

log = logging.getLogger("voicegraph.turns")
ENDS_TURN = frozenset({"llm_failed"})
"""Failure codes after which no response will come for the turn (typing must stop)."""
STAGES = ("speech_end", "speculated", "endpointed", "transcript", "accepted", "first_token", "first_audio",
          "last_token", "last_audio", "cancelled")


class InterruptGateParams(BaseModel):
    """`params:` of `type: interrupt_gate`."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    barge_in_on_speech: bool = False
    """Treat the start of user speech (`speech` input) as an interrupt of the reply in flight."""


class InterruptGate(Node[InterruptGateParams]):
    """Pass the current turn's response (and its pieces) once; cancel and drop anything stale."""

    Params = InterruptGateParams
    inputs = {
        "turn": In(UserTurn, doc="every accepted turn: a newer one makes the older stale"),
        "response": In(ReplyText, required=False, doc="the whole reply; passed once if still current, ends the turn"),
        "pieces": In(ReplyPiece, required=False, doc="a streamed reply's pieces; the final one ends the turn"),
        "interrupt": In(Interrupt, required=False, doc="the client's interrupt (from client.interrupt)"),
        "speech": In(SpeechStarted, required=False,
                     doc="user speech began (from silence_finalizer.started): barge-in if barge_in_on_speech"),
        "failed": In(NodeFailed, required=False, control=True,
                     doc="failures of the nodes answering (llm_failed ends the turn)"),
        "withdrawn": In(Withdrawn, required=False, doc="speculation: that tentative turn is off"),
    }
    outputs = {"response": ReplyText, "pieces": ReplyPiece, "typing": Typing, "events": ClientEvent,
               "cancel": Cancel}
    output_docs = {"response": "the current turn's reply (to client.response)",
                   "pieces": "the current turn's pieces (to client.chunk)",
                   "typing": "ai-typing false when a turn ends: answered, cancelled or failed (to client.typing)",
                   "events": "response-cancelled and turn-metrics (to client.event)",
                   "cancel": "Cancel for stale turns: wire it to every node's cancel input and to client.cancel"}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.current: UserTurn | None = None
        self.marks: dict[str, float] = {}
        """When the current turn's stages happened, as its messages told (for `turn-metrics`)."""
        self.in_flight = False
        self.response_id: str | None = None
        self.cancelled_through = 0
        self.held: list[ReplyText | ReplyPiece] | None = None
        """What the current turn made while it was tentative (None: it is not)."""
        self.speculative = False
        """The current turn was answered ahead of its commit."""
        self.withdrawn = 0
        """Tentative turns withdrawn (their work thrown away) since the last committed turn."""
        self.ends_with_response = "response" in inputs
        self.responses: Subject[ReplyText] = Subject()
        self.pieces: Subject[ReplyPiece] = Subject()
        self.typing: Subject[Typing] = Subject()
        self.events: Subject[ClientEvent] = Subject()
        self.cancels: Subject[Cancel] = Subject()
        self.route(inputs, {
            "turn": self._on_turn,
            "response": self._on_response,
            "pieces": self._on_piece,
            "interrupt": self._on_interrupt,
            "speech": self._on_speech,
            "failed": self._on_failure,
            "withdrawn": self._on_withdrawn,
        })
        return {"response": self.responses, "pieces": self.pieces, "typing": self.typing,
                "events": self.events, "cancel": self.cancels}

    @property
    def turn(self) -> int:
        return self.current.turn if self.current else 0

    def _cancel(self, through: int, why: str, played_ms: float | None = None) -> None:
        """Send `Cancel`: every turn ≤ `through` is stale wherever its work runs. An interrupt's
        `playedMs` is passed on even for a reply already over (the history is cut to it)."""
        if through > self.cancelled_through:
            self.cancelled_through = through
            self.cancels.on_next(Cancel(self.ctx.session, through, why, self.response_id, played_ms))
        elif played_ms is not None and self.response_id is not None:
            self.cancels.on_next(Cancel(self.ctx.session, through, why, self.response_id, played_ms))

    def _on_turn(self, t: UserTurn) -> None:
        if t.turn == self.turn and self.held is not None and not t.tentative:
            self._commit(t)
            return
        if t.turn <= self.turn:
            return
        if self.in_flight and not self._tentative:
            self._cancelled("newer turn")
        self._cancel(t.turn - 1, "newer turn")
        self.current, self.in_flight, self.response_id = t, True, None
        self.held = [] if t.tentative else None
        self.speculative = t.tentative
        self.marks = dict(t.marks)

    def _commit(self, t: UserTurn) -> None:
        """The tentative turn is the user's: send what it made so far, after the turn's own events
        (`message-received`, `ai-typing`) have gone out."""
        self.current = t
        self.marks.update(t.marks)
        if self._is_current(t.turn):
            self.ctx.count(self.id, "committed")
            self.ctx.loop.call_soon(self._release, t.turn)

    def _release(self, turn: int) -> None:
        held, self.held = self.held or [], None
        for msg in held:
            if not self._is_current(turn):
                return
            (self._on_piece if isinstance(msg, ReplyPiece) else self._on_response)(msg)

    def _on_withdrawn(self, w: Withdrawn) -> None:
        if self._tentative and self.current is not None and self.current.utterance_id == w.utterance_id:
            self.withdrawn += 1
            self._interrupt("withdrawn")

    @property
    def _tentative(self) -> bool:
        return self.in_flight and self.current is not None and self.current.tentative

    def _holds(self, msg: ReplyText | ReplyPiece) -> bool:
        """Keep `msg` back while its turn is tentative (or committed, until what it made is out)."""
        if self.held is None:
            return False
        self.held.append(msg)
        return True

    def _is_current(self, turn: int) -> bool:
        return self.in_flight and turn == self.turn and turn > self.cancelled_through

    def _on_interrupt(self, msg: Interrupt) -> None:
        if msg.response_id is not None and msg.response_id != self.response_id:
            # meant for another reply (one already over): the reply in flight is not it; what was
            # played of that one still cuts the history (a Cancel that makes nothing new stale)
            self.ctx.count(self.id, "ignored")
            if msg.played_ms is not None:
                self.cancels.on_next(Cancel(self.ctx.session, self.cancelled_through, "interrupt",
                                            msg.response_id, msg.played_ms))
            return
        self._interrupt("interrupt", msg.played_ms)

    def _interrupt(self, why: str, played_ms: float | None = None) -> None:
        if self._tentative:
            # never seen by the client: stop its work, tell nobody
            self.in_flight, self.held = False, None
            self.ctx.count(self.id, "withdrawn" if why == "withdrawn" else "interrupts")
        elif self.in_flight:
            self.ctx.count(self.id, "interrupts")
            self.typing.on_next(Typing(self.ctx.session, self.turn, False))
            self._cancelled(why)
        self._cancel(self.turn, why, played_ms)

    def _mark(self, stage: str, at_ms: float | None = None) -> None:
        """Note a stage of the current turn (first time only) and tell observers."""
        if stage not in self.marks:
            self.marks[stage] = float(now_ms()) if at_ms is None else at_ms
            self.ctx.mark(self.turn, stage, self.marks[stage])

    def _cancelled(self, why: str) -> None:
        self.in_flight = False
        self._mark("cancelled")
        if self.response_id is not None:
            self.events.on_next(ClientEvent(self.ctx.session, "response-cancelled",
                                            {"id": self.response_id, "reason": why}))
        self._metrics(cancelled=True, outcome="failed" if why in ENDS_TURN else "cancelled")

    def _on_speech(self, _s: SpeechStarted) -> None:
        if self.params.barge_in_on_speech and self.in_flight:
            self._interrupt("speech")

    def _on_piece(self, p: ReplyPiece) -> None:
        if not self._is_current(p.turn):
            self.ctx.count(self.id, "dropped")
            return
        if self._holds(p):
            return
        self.response_id = p.id
        self.marks.update((k, v) for k, v in p.marks if k not in self.marks)
        if isinstance(p, SpokenPiece) and p.audio:
            self._mark("first_audio")
        self.pieces.on_next(p)
        if p.final:
            self._mark("last_audio")
            if not self.ends_with_response:
                self._done(p.turn)

    def _on_response(self, r: ReplyText) -> None:
        if not self._is_current(r.turn):
            self.ctx.count(self.id, "dropped")
            return
        if self._holds(r):
            return
        self.response_id = r.id
        self.marks.update((k, v) for k, v in r.marks if k not in self.marks)
        self._mark("first_audio")
        self._mark("last_audio")
        self.ctx.count(self.id, "out")
        self.responses.on_next(r)
        self._done(r.turn)

    def _done(self, turn: int) -> None:
        self.in_flight = False
        self.typing.on_next(Typing(self.ctx.session, turn, False))
        self._metrics(cancelled=False, outcome="answered")

    def _on_failure(self, f: NodeFailed) -> None:
        """A failure after which no reply will come ends the turn like a cancellation: typing
        stops, a reply already partly sent gets `response-cancelled {reason: llm_failed}` (its
        end, since `ai-response-end` would claim it whole), and `Cancel` stops work still running
        for it (the synthesis of pieces the LLM wrote before it failed)."""
        if f.code in ENDS_TURN and f.turn is not None and self._is_current(f.turn):
            if self._tentative:
                self._interrupt(f.code)  # a tentative turn: the commit will answer it anew
                return
            self.typing.on_next(Typing(f.session, f.turn, False))
            self._cancelled(f.code)
            self._cancel(f.turn, f.code)

    def _metrics(self, cancelled: bool, outcome: str) -> None:
        if self.current is None:
            return
        marks = self.marks
        origin = marks.get("speech_end", marks.get("accepted"))
        payload = {
            "id": self.current.id,
            "responseId": self.response_id,
            "source": self.current.source,
            "cancelled": cancelled,
            "speculative": self.speculative,
            "withdrawn": self.withdrawn,
            "ms": {k: round(marks[k] - origin, 1) for k in STAGES if k in marks and origin is not None},
        }
        self.withdrawn = 0
        log.info("turn-metrics %s", payload)
        self.ctx.turn_ended(payload, outcome, self.turn)  # Prometheus and the session recording observe it
        self.events.on_next(ClientEvent(self.ctx.session, "turn-metrics", payload))
