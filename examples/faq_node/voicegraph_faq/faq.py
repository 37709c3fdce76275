"""Answer known questions from a list; pass every other turn on (to the responder, say).

In:  turn: UserTurn        Out: reply: ReplyText, turn: UserTurn

A turn that contains every word of one of the `answers` keys gets that answer as its reply, at
once and without a model; any other turn leaves on `turn` unchanged. The matching is a plain
function (`best_answer`), tested without a graph; the node only routes messages.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.messages import ReplyText, UserTurn, new_id
from flow.contract.node import In, Node

_WORD = re.compile(r"[\w']+")


class FaqParams(BaseModel):
    """`params:` of `type: faq`."""

    # frozen: params are shared by every session; forbid: a YAML typo fails at load;
    # use_attribute_docstrings: the docstrings below become the descriptions `voicegraph nodes` shows
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    answers: dict[str, str] = Field(min_length=1)
    """Keywords -> answer: a turn containing every word of a key gets its answer (the key with the
    most words wins)."""
    max_words: int = Field(30, ge=1, le=1_000)
    """Longer turns always go on: a long message is rarely one of the known questions."""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def best_answer(answers: dict[str, str], text: str, max_words: int) -> str | None:
    """The answer whose key's words all occur in `text` (most words first), or None."""
    said = words(text)
    if len(said) > max_words:
        return None
    heard = set(said)
    matching = [(len(words(key)), key) for key in answers if words(key) and set(words(key)) <= heard]
    return answers[max(matching)[1]] if matching else None


class Faq(Node[FaqParams]):
    """Answer known questions from a list; every other turn goes on unchanged."""

    Params = FaqParams
    inputs = {"turn": In(UserTurn, doc="an accepted user turn (from turn_taker.turn)")}
    outputs = {"reply": ReplyText, "turn": UserTurn}
    output_docs = {"reply": "the known answer (to synthesizer.reply, or interrupt_gate.response)",
                   "turn": "every turn it has no answer for (to responder.turn)"}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.replies: Subject[ReplyText] = Subject()
        self.unanswered: Subject[UserTurn] = Subject()
        # route() subscribes each connected input; an exception in a handler becomes a NodeFailed
        # on this node's `error` output instead of ending the session's stream
        self.route(inputs, {"turn": self._on_turn})
        return {"reply": self.replies, "turn": self.unanswered}

    def _on_turn(self, turn: UserTurn) -> None:
        answer = best_answer(self.params.answers, turn.text, self.params.max_words)
        if answer is None:
            self.unanswered.on_next(turn)
            return
        self.ctx.count(self.id, "answered")
        self.replies.on_next(ReplyText(turn.session, turn.turn, new_id(), turn.id, answer, voice=turn.voice,
                                       marks=turn.marks))
