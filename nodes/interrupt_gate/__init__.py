"""Let only the current turn's response reach the client, and say when a turn's work is stale.

In:  turn: UserTurn, response: ReplyText, pieces: ReplyPiece, interrupt: Interrupt,
     speech: SpeechStarted (barge-in on speech, opt-in), failed: NodeFailed (control),
     withdrawn: Withdrawn (speculation)
Out: response: ReplyText, pieces: ReplyPiece, typing: Typing, events: ClientEvent, cancel: Cancel,
     failed: NodeFailed

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
so does an interrupt; neither tells the client anything, since it never saw that turn. A failure
of a tentative turn's work (its LLM failed) is held the same way: a speculative graph routes the
answering nodes' errors through here (`failed` out, to `client.error`), so the client gets it
after the commit, as the end of that turn, or never if the tentative turn is withdrawn.
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
)
from flow.contract.node import In, Node
from nodes.interrupt_gate.cancels import Cancels
from nodes.interrupt_gate.held import HeldWork
from nodes.interrupt_gate.turn_record import TurnRecord

log = logging.getLogger("voicegraph.turns")
ENDS_TURN = frozenset({"llm_failed"})
"""Failure codes after which no response will come for the turn (typing must stop)."""


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
               "cancel": Cancel, "failed": NodeFailed}
    output_docs = {"response": "the current turn's reply (to client.response)",
                   "pieces": "the current turn's pieces (to client.chunk)",
                   "typing": "ai-typing false when a turn ends: answered, cancelled or failed (to client.typing)",
                   "events": "response-cancelled and turn-metrics (to client.event)",
                   "cancel": "Cancel for stale turns: wire it to every node's cancel input and to client.cancel",
                   "failed": "the failures on `failed` the client should see, a tentative turn's held until its "
                             "commit and dropped if it is withdrawn (to client.error, instead of llm.error -> "
                             "client.error, on speculative graphs)"}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.current: UserTurn | None = None
        self.record = TurnRecord(lambda stage, at: self.ctx.mark(self.turn, stage, at))
        self.held = HeldWork()
        self.stale = Cancels(self.ctx.session)
        self.in_flight = False
        self.response_id: str | None = None
        self.ends_with_response = "response" in inputs
        self.responses: Subject[ReplyText] = Subject()
        self.pieces: Subject[ReplyPiece] = Subject()
        self.typing: Subject[Typing] = Subject()
        self.events: Subject[ClientEvent] = Subject()
        self.cancels: Subject[Cancel] = Subject()
        self.failures: Subject[NodeFailed] = Subject()
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
                "events": self.events, "cancel": self.cancels, "failed": self.failures}

    @property
    def turn(self) -> int:
        return self.current.turn if self.current else 0

    def _cancel(self, through: int, why: str, played_ms: float | None = None) -> None:
        """Send `Cancel`: every turn ≤ `through` is stale wherever its work runs. An interrupt's
        `playedMs` is passed on even for a reply already over (the history is cut to it)."""
        cancel = self.stale.stale(through, why, self.response_id, played_ms)
        if cancel is not None:
            self.cancels.on_next(cancel)

    def _on_turn(self, t: UserTurn) -> None:
        if t.turn == self.turn and self.held.holding and not t.tentative:
            self._commit(t)
            return
        if t.turn <= self.turn:
            return
        if self.in_flight and not self._tentative:
            self._cancelled("newer turn")
        self._cancel(t.turn - 1, "newer turn")
        self.current, self.in_flight, self.response_id = t, True, None
        self.held.start(t.tentative)
        self.record.start(t)

    def _commit(self, t: UserTurn) -> None:
        """The tentative turn is the user's: send what it made so far, after the turn's own events
        (`message-received`, `ai-typing`) have gone out."""
        self.current = t
        self.record.marks.update(t.marks)
        if self._is_current(t.turn):
            self.ctx.count(self.id, "committed")
            self.ctx.loop.call_soon(self._release, t.turn)

    def _release(self, turn: int) -> None:
        for msg in self.held.take():
            if not self._is_current(turn):
                return
            if isinstance(msg, NodeFailed):
                self._on_failure(msg)
            elif isinstance(msg, ReplyPiece):
                self._on_piece(msg)
            else:
                self._on_response(msg)

    def _on_withdrawn(self, w: Withdrawn) -> None:
        if self._tentative and self.current is not None and self.current.utterance_id == w.utterance_id:
            self.record.withdrawn += 1
            self._interrupt("withdrawn")

    @property
    def _tentative(self) -> bool:
        return self.in_flight and self.current is not None and self.current.tentative

    def _is_current(self, turn: int) -> bool:
        return self.in_flight and turn == self.turn and turn > self.stale.through

    def _on_interrupt(self, msg: Interrupt) -> None:
        if msg.response_id is not None and msg.response_id != self.response_id:
            # meant for another reply (one already over): the reply in flight is not it; what was
            # played of that one still cuts the history (a Cancel that makes nothing new stale)
            self.ctx.count(self.id, "ignored")
            if msg.played_ms is not None:
                self.cancels.on_next(self.stale.cut_history(msg.response_id, msg.played_ms))
            return
        self._interrupt("interrupt", msg.played_ms)

    def _interrupt(self, why: str, played_ms: float | None = None) -> None:
        if self._tentative:
            # never seen by the client: stop its work, tell nobody
            self.in_flight = False
            self.held.drop(self.turn)
            self.ctx.count(self.id, "withdrawn" if why == "withdrawn" else "interrupts")
        elif self.in_flight:
            self.ctx.count(self.id, "interrupts")
            self.typing.on_next(Typing(self.ctx.session, self.turn, False))
            self._cancelled(why)
        self._cancel(self.turn, why, played_ms)

    def _cancelled(self, why: str) -> None:
        self.in_flight = False
        self.record.mark("cancelled")
        if self.response_id is not None:
            self.events.on_next(ClientEvent(self.ctx.session, "response-cancelled",
                                            {"id": self.response_id, "reason": why}))
        self._metrics(cancelled=True, outcome="failed" if why in ENDS_TURN else "cancelled")

    def _on_speech(self, _s: SpeechStarted) -> None:
        if self.params.barge_in_on_speech and self.in_flight:
            self._interrupt("speech")

    def _admit(self, r: ReplyText | ReplyPiece) -> bool:
        """Whether a reply (or piece) goes on now: a stale turn's is dropped, a tentative turn's
        held until the commit; one that goes on names the reply in flight and adds its marks."""
        if not self._is_current(r.turn):
            self.ctx.count(self.id, "dropped")
            return False
        if self.held.hold(r):
            return False
        self.response_id = r.id
        self.record.add(r.marks)
        return True

    def _on_piece(self, p: ReplyPiece) -> None:
        if not self._admit(p):
            return
        if isinstance(p, SpokenPiece) and p.audio:
            self.record.mark("first_audio")
        self.pieces.on_next(p)
        if p.final:
            self.record.mark("last_audio")
            if not self.ends_with_response:
                self._done(p.turn)

    def _on_response(self, r: ReplyText) -> None:
        if not self._admit(r):
            return
        self.record.mark("first_audio")
        self.record.mark("last_audio")
        self.ctx.count(self.id, "out")
        self.responses.on_next(r)
        self._done(r.turn)

    def _done(self, turn: int) -> None:
        self.in_flight = False
        self.typing.on_next(Typing(self.ctx.session, turn, False))
        self._metrics(cancelled=False, outcome="answered")

    def _on_failure(self, f: NodeFailed) -> None:
        """A failure goes on to the client (`failed`), but a tentative turn's waits for its commit
        and a dropped tentative turn's never goes. One after which no reply will come ends the
        turn like a cancellation: typing stops, a reply already partly sent gets
        `response-cancelled {reason: llm_failed}` (its end, since `ai-response-end` would claim it
        whole), and `Cancel` stops work still running for it (the synthesis of pieces the LLM
        wrote before it failed)."""
        current = f.turn is not None and self._is_current(f.turn)
        if current and self.held.hold(f):
            return
        if self.held.never_seen(f.turn):
            self.ctx.count(self.id, "dropped")
            return
        self.failures.on_next(f)
        if f.code in ENDS_TURN and current and f.turn is not None:
            self.typing.on_next(Typing(f.session, f.turn, False))
            self._cancelled(f.code)
            self._cancel(f.turn, f.code)

    def _metrics(self, cancelled: bool, outcome: str) -> None:
        if self.current is None:
            return
        payload = self.record.payload(self.current, self.response_id, cancelled)
        log.info("turn-metrics %s", payload)
        self.ctx.turn_ended(payload, outcome, self.turn)  # Prometheus, the recording and the dashboard observe it
        self.events.on_next(ClientEvent(self.ctx.session, "turn-metrics", payload))
