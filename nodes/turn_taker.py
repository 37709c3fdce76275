"""Accept user turns: number them and announce them.

In:  transcript: Transcript, text: TextInput        Out: turn: UserTurn, typing: Typing

A final transcript with words, or a typed message, becomes a `UserTurn` (`message-received`) and
`ai-typing: true`. Older turns become stale when the interrupt gate sees the new one (it sends the
`Cancel` that stops their work).
"""

from __future__ import annotations

from typing import Any

from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.messages import TextInput, Transcript, Typing, UserTurn, new_id, now_ms
from flow.contract.node import In, Node, NoParams


class TurnTaker(Node[NoParams]):
    """Turn numbering for one session (the numbers only grow)."""

    inputs = {
        "transcript": In(Transcript, required=False, doc="a final transcript with words starts a turn"),
        "text": In(TextInput, required=False, doc="a typed message starts a turn"),
    }
    outputs = {"turn": UserTurn, "typing": Typing}
    output_docs = {"turn": "the accepted turn (message-received; to the responder and the interrupt gate)",
                   "typing": "ai-typing true for each turn (the interrupt gate ends it)"}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.turn = 0
        self.turns: Subject[UserTurn] = Subject()
        self.typing: Subject[Typing] = Subject()
        handlers = {"transcript": self._on_transcript, "text": self._on_text}
        self.route(inputs, handlers)
        return {"turn": self.turns, "typing": self.typing}

    def _accept(self, session: str, text: str, source: str, speech_end_ms: int | None = None,
                voice: str | None = None, endpointed_ms: int | None = None) -> None:
        self.turn += 1
        now = float(now_ms())
        marks: list[tuple[str, float]] = []
        if speech_end_ms is not None:
            marks.append(("speech_end", speech_end_ms))  # the user stopped speaking
            if endpointed_ms is not None:
                marks.append(("endpointed", endpointed_ms))  # the silence (or a stop) closed it
            marks.append(("transcript", now))
        marks.append(("accepted", now))
        for stage, at in marks:
            self.ctx.mark(self.turn, stage, at)
        self.ctx.count(self.id, "out")
        self.turns.on_next(UserTurn(session, self.turn, new_id(), text, source, voice=voice, marks=tuple(marks)))
        self.typing.on_next(Typing(session, self.turn, True))

    def _on_transcript(self, t: Transcript) -> None:
        if t.is_final and t.text.strip():
            self._accept(t.session, t.text.strip(), "voice", t.speech_end_ms, t.voice, t.endpointed_ms)

    def _on_text(self, t: TextInput) -> None:
        self._accept(t.session, t.text, "text")
