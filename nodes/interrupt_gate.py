"""Let only the current turn's response reach the client; `interrupt` makes it stale.

In:  turn: UserTurn, response: ReplyText, pieces: ReplyPiece, interrupt: Interrupt,
     speech: SpeechStarted (barge-in on speech, opt-in)
Out: response: ReplyText, pieces: ReplyPiece, typing: Typing, events: ClientEvent

`interrupt` marks the current turn stale on the session's control plane (`ctx.mark_stale`): nodes
doing work for it cancel that work (LLM streams and syntheses are aborted), and nothing of it
passes here any more. Newer turns (from `turn`) make older responses stale the same way. On
`events` go the extensions `response-cancelled {id}` (stop playing what you have) and
`turn-metrics` (when each stage of a turn happened).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict
from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.messages import (
    ClientEvent,
    Interrupt,
    NodeFailed,
    ReplyPiece,
    ReplyText,
    SpeechStarted,
    SpokenPiece,
    Typing,
    UserTurn,
)
from flow.contract.node import In, Node

log = logging.getLogger("voicegraph.turns")
ENDS_TURN = frozenset({"llm_failed"})
"""Failure codes after which no response will come for the turn (typing must stop)."""
STAGES = ("speech_end", "endpointed", "transcript", "accepted", "first_token", "first_audio", "last_token",
          "last_audio", "cancelled")


class InterruptGateParams(BaseModel):
    """`params:` of `type: interrupt_gate`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    barge_in_on_speech: bool = False
    """Treat the start of user speech (`speech` input) as an interrupt of the reply in flight."""


class InterruptGate(Node[InterruptGateParams]):
    """Pass the current turn's response (and its pieces) once; drop anything stale."""

    Params = InterruptGateParams
    inputs = {
        "turn": In(UserTurn),
        "response": In(ReplyText, required=False),
        "pieces": In(ReplyPiece, required=False),
        "interrupt": In(Interrupt, required=False),
        "speech": In(SpeechStarted, required=False),
    }
    outputs = {"response": ReplyText, "pieces": ReplyPiece, "typing": Typing, "events": ClientEvent}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.current: UserTurn | None = None
        self.in_flight = False
        self.response_id: str | None = None
        self.ends_with_response = "response" in inputs
        self.responses: Subject[ReplyText] = Subject()
        self.pieces: Subject[ReplyPiece] = Subject()
        self.typing: Subject[Typing] = Subject()
        self.events: Subject[ClientEvent] = Subject()
        self.route(inputs, {
            "turn": self._on_turn,
            "response": self._on_response,
            "pieces": self._on_piece,
            "interrupt": lambda _m: self._interrupt("interrupt"),
            "speech": self._on_speech,
        })
        self.ctx.disposables.add(self.ctx.failures.subscribe(on_next=self._on_failure))
        return {"response": self.responses, "pieces": self.pieces, "typing": self.typing, "events": self.events}

    @property
    def turn(self) -> int:
        return self.current.turn if self.current else 0

    def _on_turn(self, t: UserTurn) -> None:
        if t.turn <= self.turn:
            return
        if self.in_flight:
            self._cancelled("newer turn")
        self.current, self.in_flight, self.response_id = t, True, None

    def _is_current(self, turn: int) -> bool:
        return self.in_flight and turn == self.turn and turn > self.ctx.stale_through

    def _interrupt(self, why: str) -> None:
        self.ctx.mark_stale(self.turn)
        if self.in_flight:
            self.ctx.count(self.id, "interrupts")
            self.typing.on_next(Typing(self.ctx.session, self.turn, False))
            self._cancelled(why)

    def _cancelled(self, why: str) -> None:
        self.in_flight = False
        self.ctx.mark(self.turn, "cancelled")
        if self.response_id is not None:
            self.events.on_next(ClientEvent(self.ctx.session, "response-cancelled",
                                            {"id": self.response_id, "reason": why}))
        self._metrics(cancelled=True)

    def _on_speech(self, _s: SpeechStarted) -> None:
        if self.params.barge_in_on_speech and self.in_flight:
            self._interrupt("speech")

    def _on_piece(self, p: ReplyPiece) -> None:
        if not self._is_current(p.turn):
            self.ctx.count(self.id, "dropped")
            return
        self.response_id = p.id
        if isinstance(p, SpokenPiece) and p.audio:
            self.ctx.mark(p.turn, "first_audio")
        self.pieces.on_next(p)
        if p.final:
            self.ctx.mark(p.turn, "last_audio")
            if not self.ends_with_response:
                self._done(p.turn)

    def _on_response(self, r: ReplyText) -> None:
        if not self._is_current(r.turn):
            self.ctx.count(self.id, "dropped")
            return
        self.response_id = r.id
        self.ctx.mark(r.turn, "first_audio")
        self.ctx.mark(r.turn, "last_audio")
        self.ctx.count(self.id, "out")
        self.responses.on_next(r)
        self._done(r.turn)

    def _done(self, turn: int) -> None:
        self.in_flight = False
        self.typing.on_next(Typing(self.ctx.session, turn, False))
        self._metrics(cancelled=False)

    def _on_failure(self, f: NodeFailed) -> None:
        if f.code in ENDS_TURN and f.turn is not None and self._is_current(f.turn):
            self.in_flight = False
            self.typing.on_next(Typing(f.session, f.turn, False))

    def _metrics(self, cancelled: bool) -> None:
        if self.current is None:
            return
        marks = self.ctx.metrics.get(self.turn, {})
        origin = marks.get("speech_end", marks.get("accepted"))
        payload = {
            "id": self.current.id,
            "responseId": self.response_id,
            "source": self.current.source,
            "cancelled": cancelled,
            "ms": {k: round(marks[k] - origin, 1) for k in STAGES if k in marks and origin is not None},
        }
        log.info("turn-metrics %s", payload)
        self.events.on_next(ClientEvent(self.ctx.session, "turn-metrics", payload))
