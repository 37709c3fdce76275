"""Accept user turns: number them and announce them.

In:  transcript: Transcript, text: TextInput, cancelled: Cancel (control)
Out: turn: UserTurn, typing: Typing, tentative: UserTurn

A final transcript with words, or a typed message, becomes a `UserTurn` (`message-received`) and
`ai-typing: true`. Older turns become stale when the interrupt gate sees the new one (it sends the
`Cancel` that stops their work).

Speculation: a tentative transcript (`Transcript.tentative`, of a tentative utterance) becomes a tentative `UserTurn` on
`tentative`, numbered like any turn, announced to nobody: the graph sends it to the nodes that
may start work on it, and the gate holds what they make. When the same utterance is committed,
the committed turn goes out on `turn` with the *same* number and id (so the work already done
belongs to it) — unless that number was cancelled meanwhile (an interrupt, a typed message):
then the committed words are a new turn, answered from the start.
"""

from __future__ import annotations

from typing import Any

from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.messages import Cancel, TextInput, Transcript, Typing, UserTurn, new_id, now_ms
from flow.contract.node import In, Node, NoParams


class TurnTaker(Node[NoParams]):
    """Turn numbering for one session (the numbers only grow)."""

    inputs = {
        "transcript": In(Transcript, required=False, doc="a final transcript with words starts a turn"),
        "text": In(TextInput, required=False, doc="a typed message starts a turn"),
        "cancelled": In(Cancel, required=False, control=True,
                        doc="speculation (from interrupt_gate.cancel): a cancelled tentative turn's words, "
                            "once committed, are a new turn"),
    }
    outputs = {"turn": UserTurn, "typing": Typing, "tentative": UserTurn}
    output_docs = {"turn": "the accepted turn (message-received; to the responder and the interrupt gate)",
                   "typing": "ai-typing true for each turn (the interrupt gate ends it)",
                   "tentative": "speculation: a tentative turn, announced to nobody (to the responder and "
                                "the interrupt gate, which holds what it makes until the commit)"}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.turn = 0
        self.turns: Subject[UserTurn] = Subject()
        self.typing: Subject[Typing] = Subject()
        self.tentative: Subject[UserTurn] = Subject()
        self.ahead: UserTurn | None = None
        """The latest tentative turn, until its utterance is committed."""
        self.cancelled_through = 0
        handlers = {"transcript": self._on_transcript, "text": self._on_text, "cancelled": self._on_cancel}
        self.route(inputs, handlers)
        return {"turn": self.turns, "typing": self.typing, "tentative": self.tentative}

    def _accept(self, session: str, text: str, source: str, speech_end_ms: int | None = None,
                voice: str | None = None, endpointed_ms: int | None = None,
                utterance_id: str | None = None) -> None:
        ahead, self.ahead = self.ahead, None
        if (ahead is not None and utterance_id is not None and ahead.utterance_id == utterance_id
                and ahead.turn > self.cancelled_through):
            number, turn_id = ahead.turn, ahead.id  # the committed tentative turn: same number and id
        else:
            self.turn += 1
            number, turn_id = self.turn, new_id()
        marks = self._marks(number, speech_end_ms, endpointed_ms)
        self.ctx.count(self.id, "out")
        self.turns.on_next(UserTurn(session, number, turn_id, text, source, voice=voice, marks=marks,
                                    utterance_id=utterance_id))
        self.typing.on_next(Typing(session, number, True))

    def _marks(self, number: int, speech_end_ms: int | None, endpointed_ms: int | None,
               ) -> tuple[tuple[str, float], ...]:
        now = float(now_ms())
        marks: list[tuple[str, float]] = []
        if speech_end_ms is not None:
            marks.append(("speech_end", speech_end_ms))  # the user stopped speaking
            if endpointed_ms is not None:
                marks.append(("endpointed", endpointed_ms))  # the silence (or a stop) closed it
            marks.append(("transcript", now))
        marks.append(("accepted", now))
        for stage, at in marks:
            self.ctx.mark(number, stage, at)
        return tuple(marks)

    def _on_transcript(self, t: Transcript) -> None:
        if t.tentative:
            self._on_tentative(t)
        elif t.is_final and t.text.strip():
            self._accept(t.session, t.text.strip(), "voice", t.speech_end_ms, t.voice, t.endpointed_ms,
                         t.utterance_id)
        elif self.ahead is not None and self.ahead.utterance_id == t.utterance_id:
            self.ahead = None

    def _on_text(self, t: TextInput) -> None:
        self._accept(t.session, t.text, "text")

    def _on_tentative(self, t: Transcript) -> None:
        text = t.text.strip()
        if not text:
            return
        self.turn += 1
        now = float(now_ms())
        marks = (("speech_end", float(t.speech_end_ms or now)), ("speculated", float(t.endpointed_ms or now)),
                 ("transcript", now))
        self.ahead = UserTurn(t.session, self.turn, new_id(), text, "voice", voice=t.voice, marks=marks,
                              tentative=True, utterance_id=t.utterance_id)
        self.ctx.count(self.id, "tentative")
        self.tentative.on_next(self.ahead)

    def _on_cancel(self, c: Cancel) -> None:
        self.cancelled_through = max(self.cancelled_through, c.through_turn)
