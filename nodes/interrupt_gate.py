"""Accept user turns and let only the current turn's response reach the client.

In:  transcript: Transcript, text: TextInput, interrupt: Interrupt, response: ReplyText,
     speech: SpeechStarted (barge-in on speech, opt-in)
Out: turn: UserTurn, typing: Typing, response: ReplyText

A newer accepted turn or an `interrupt` marks every older turn stale on the session's control
plane (`ctx.mark_stale`): nodes doing work for those turns cancel it (their LLM streams and
syntheses are aborted), and nothing of them passes here any more.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from reactivex import Observable
from reactivex.subject import Subject

from flow.messages import (
    Interrupt,
    NodeFailed,
    ReplyText,
    SpeechStarted,
    TextInput,
    Transcript,
    Typing,
    UserTurn,
    new_id,
)
from flow.node import In, Node, guarded

ENDS_TURN = frozenset({"llm_failed"})
"""Failure codes after which no response will come for the turn (typing must stop)."""


class InterruptGateParams(BaseModel):
    """`params:` of `type: interrupt_gate`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    barge_in_on_speech: bool = False
    """Treat the start of user speech (from `speech`) as an interrupt of the reply in flight."""


class TurnState:
    """Which turn is current and whether its reply is still in flight; no Rx, testable alone."""

    def __init__(self) -> None:
        self.turn = 0
        self.in_flight = False

    def accept(self) -> int:
        self.turn += 1
        self.in_flight = True
        return self.turn

    def is_current(self, turn: int) -> bool:
        return turn == self.turn and self.in_flight


class InterruptGate(Node[InterruptGateParams]):
    """Turn-taking: number the turns, cancel stale ones, pass only the current response."""

    Params = InterruptGateParams
    inputs = {
        "transcript": In(Transcript, required=False),
        "text": In(TextInput, required=False),
        "interrupt": In(Interrupt, required=False),
        "response": In(ReplyText, required=False),
        "speech": In(SpeechStarted, required=False),
    }
    outputs = {"turn": UserTurn, "typing": Typing, "response": ReplyText}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.state = TurnState()
        self.turns: Subject[UserTurn] = Subject()
        self.typing: Subject[Typing] = Subject()
        self.responses: Subject[ReplyText] = Subject()
        handlers = {
            "transcript": self._on_transcript,
            "text": self._on_text,
            "interrupt": lambda _m: self._interrupt(),
            "response": self._on_response,
            "speech": self._on_speech,
        }
        for port, source in inputs.items():
            self.ctx.disposables.add(
                source.subscribe(on_next=guarded(self, handlers[port]), scheduler=self.ctx.scheduler)
            )
        self.ctx.disposables.add(self.ctx.failures.subscribe(on_next=self._on_failure))
        return {"turn": self.turns, "typing": self.typing, "response": self.responses}

    def _accept(self, session: str, text: str, source: str) -> None:
        if self.state.in_flight:
            self.typing.on_next(Typing(session, self.state.turn, False))
        turn = self.state.accept()
        self.ctx.mark_stale(turn - 1)
        self.ctx.count(self.id, "turns")
        self.turns.on_next(UserTurn(session, turn, new_id(), text, source))
        self.typing.on_next(Typing(session, turn, True))

    def _on_transcript(self, t: Transcript) -> None:
        if t.is_final and t.text.strip():
            self._accept(t.session, t.text.strip(), "voice")

    def _on_text(self, t: TextInput) -> None:
        self._accept(t.session, t.text, "text")

    def _interrupt(self) -> None:
        self.ctx.mark_stale(self.state.turn)
        if self.state.in_flight:
            self.state.in_flight = False
            self.ctx.count(self.id, "interrupts")
            self.typing.on_next(Typing(self.ctx.session, self.state.turn, False))

    def _on_speech(self, _s: SpeechStarted) -> None:
        if self.params.barge_in_on_speech and self.state.in_flight:
            self._interrupt()

    def _on_response(self, r: ReplyText) -> None:
        if not self.state.is_current(r.turn) or r.turn <= self.ctx.stale_through:
            self.ctx.count(self.id, "dropped")
            return
        self.state.in_flight = False
        self.responses.on_next(r)
        self.typing.on_next(Typing(r.session, r.turn, False))

    def _on_failure(self, f: NodeFailed) -> None:
        if f.code in ENDS_TURN and f.turn is not None and self.state.is_current(f.turn):
            self.state.in_flight = False
            self.typing.on_next(Typing(f.session, f.turn, False))
