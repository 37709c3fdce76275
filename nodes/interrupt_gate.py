"""Let only the current turn's response reach the client; `interrupt` makes it stale.

In:  turn: UserTurn, response: ReplyText, interrupt: Interrupt,
     speech: SpeechStarted (barge-in on speech, opt-in)
Out: response: ReplyText, typing: Typing

`interrupt` marks the current turn stale on the session's control plane (`ctx.mark_stale`): nodes
doing work for it cancel that work (LLM streams and syntheses are aborted), and nothing of it
passes here any more. Newer turns (from `turn`) make older responses stale the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from reactivex import Observable
from reactivex.subject import Subject

from flow.messages import Interrupt, NodeFailed, ReplyText, SpeechStarted, Typing, UserTurn
from flow.node import In, Node

ENDS_TURN = frozenset({"llm_failed"})
"""Failure codes after which no response will come for the turn (typing must stop)."""


class InterruptGateParams(BaseModel):
    """`params:` of `type: interrupt_gate`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    barge_in_on_speech: bool = False
    """Treat the start of user speech (`speech` input) as an interrupt of the reply in flight."""


class InterruptGate(Node[InterruptGateParams]):
    """Pass the current turn's response once; drop anything stale."""

    Params = InterruptGateParams
    inputs = {
        "turn": In(UserTurn),
        "response": In(ReplyText),
        "interrupt": In(Interrupt, required=False),
        "speech": In(SpeechStarted, required=False),
    }
    outputs = {"response": ReplyText, "typing": Typing}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.current = 0
        self.in_flight = False
        self.responses: Subject[ReplyText] = Subject()
        self.typing: Subject[Typing] = Subject()
        handlers = {
            "turn": self._on_turn,
            "response": self._on_response,
            "interrupt": lambda _m: self._interrupt(),
            "speech": self._on_speech,
        }
        self.route(inputs, handlers)
        self.ctx.disposables.add(self.ctx.failures.subscribe(on_next=self._on_failure))
        return {"response": self.responses, "typing": self.typing}

    def _on_turn(self, t: UserTurn) -> None:
        self.current = max(self.current, t.turn)
        self.in_flight = True

    def _is_current(self, turn: int) -> bool:
        return self.in_flight and turn == self.current and turn > self.ctx.stale_through

    def _interrupt(self) -> None:
        self.ctx.mark_stale(self.current)
        if self.in_flight:
            self.in_flight = False
            self.ctx.count(self.id, "interrupts")
            self.typing.on_next(Typing(self.ctx.session, self.current, False))

    def _on_speech(self, _s: SpeechStarted) -> None:
        if self.params.barge_in_on_speech and self.in_flight:
            self._interrupt()

    def _on_response(self, r: ReplyText) -> None:
        if not self._is_current(r.turn):
            self.ctx.count(self.id, "dropped")
            return
        self.in_flight = False
        self.ctx.count(self.id, "out")
        self.responses.on_next(r)
        self.typing.on_next(Typing(r.session, r.turn, False))

    def _on_failure(self, f: NodeFailed) -> None:
        if f.code in ENDS_TURN and f.turn is not None and self._is_current(f.turn):
            self.in_flight = False
            self.typing.on_next(Typing(f.session, f.turn, False))
