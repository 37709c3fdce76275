"""The assistant's answer to each accepted user turn, with a bounded per-session history.

In:  turn: UserTurn, cancel: Cancel (control), delivered: Delivered (control)
Out: reply: ReplyText, pieces: ReplyPiece
Tokens stream in; `pieces` carries each sentence as soon as it is surely complete (for speaking
while the LLM still writes), `reply` the whole text at the end. Work for a turn is cancelled (the
LLM stream closed) when a `Cancel` for it arrives, or a newer turn does. This node alone owns the
conversation history, one window of `max_turns` exchanges, and it keeps what the user heard, as
the client's `delivered` output reports it: an interrupted reply only up to the last piece sent,
marked as interrupted; nothing if none was sent. Without a `delivered` edge the history holds
only the user's words.

With `remember` (the default) the history is the session's conversation's (`ctx.conversation`,
resolved by the server at connect from the client's `conversationId`): the node starts from what
that conversation held and saves the window to the conversation store (`VOICEGRAPH_STORE`) after
every change, so a client that reconnects, to this worker or another, continues it. That load and
save is this node's own behaviour, not a channel to any other node.

A tentative turn (speculation) is answered at once but enters the history only when the same turn
comes committed (which is then not answered again); cancelled first (withdrawn, interrupted), it
leaves no trace.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable
from reactivex import operators as ops

from flow.contract.messages import Cancel, Delivered, Marks, ReplyPiece, ReplyText, UserTurn, new_id, now_ms
from flow.contract.node import In, Node, cancel_input
from flow.contract.providers import ChatMessage, ProviderError, Responder
from flow.contract.resources import Resources
from flow.contract.turns import TurnWorker
from flow.conversations.store import Exchange
from nodes.provider_choice import require, resolve
from nodes.text_split import SentenceStream

INTERRUPTED = " [interrupted]"


@dataclass
class _Exchange:
    """One user turn, the full reply text (None until the model finished), and what of the reply
    reached the user."""

    turn: int
    user: str
    reply: str | None = None
    heard: list[str] = field(default_factory=list)
    """Pieces delivered (streamed replies)."""
    complete: bool = False
    """The whole reply was delivered."""
    response_id: str | None = None
    played: list[tuple[str, float]] = field(default_factory=list)
    """What was delivered with how long each part plays: pieces, or the whole reply."""
    played_ms: float | None = None
    """An interrupt said this much was played: the history keeps that much of the reply."""


def played_part(played: list[tuple[str, float]], played_ms: float) -> str | None:
    """The text of `played` (parts with how long each plays) heard in `played_ms`, marked as
    interrupted: whole parts, then the share of the next part's words its played time covers
    (no word timings: speech is taken to be even within a part). None when every part was heard
    or a part's length is unknown (then the pieces delivered are what counts)."""
    if not played or any(ms <= 0 for _, ms in played) or played_ms >= sum(ms for _, ms in played):
        return None
    heard: list[str] = []
    left = played_ms
    for text, ms in played:
        if left >= ms:
            heard.append(text)
            left -= ms
            continue
        words = text.split()
        take = int(len(words) * left / ms)
        if take:
            heard.append(" ".join(words[:take]))
        break
    return " ".join(heard) + INTERRUPTED if heard else ""


class ResponderParams(BaseModel):
    """`params:` of `type: responder`."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    provider: Literal["auto", "openai", "echo"] = "auto"
    """`auto`: OpenAI when configured, else `echo` (repeats what it heard; not an LLM)."""
    model: str = "gpt-4o-mini"
    """`openai`: the chat model (any model the server at OPENAI_BASE_URL serves, e.g. `llama3.2`)."""
    system_prompt: str | None = None
    """Default: the server's SYSTEM_PROMPT."""
    max_turns: int = Field(20, ge=0, le=500)
    """User+assistant exchanges kept in the session's history."""
    remember: bool = True
    """Start from the session's conversation's history and save it to the conversation store
    after every change (a reconnecting client continues its conversation); false: the history
    lives and dies with the session."""
    temperature: float | None = Field(None, ge=0, le=2)
    """`openai`: sampling temperature; default: the model's own."""
    timeout_s: float | None = Field(None, gt=0, le=600)
    """`openai`: longest wait for the next token; default: the server's OPENAI_TIMEOUT."""
    min_piece_chars: int = Field(20, ge=1, le=1_000)
    """`pieces`: shorter sentences wait to be spoken together with the next."""
    max_piece_chars: int = Field(300, ge=20, le=4_000)
    """`pieces`: a longer run without a sentence end is cut at a space."""
    first_clause_words: int = Field(0, ge=0, le=50)
    """`pieces`: the first piece may end at a comma after at least this many words, so its speech
    starts sooner (0: sentences only)."""


class ResponderNode(Node[ResponderParams]):
    """Answer each turn with the configured provider."""

    Params = ResponderParams
    inputs = {
        "turn": In(UserTurn, doc="the accepted user turn to answer"),
        "cancel": cancel_input(),
        "delivered": In(Delivered, required=False, control=True,
                        doc="what reached the user (from client.delivered): the history keeps it"),
    }
    outputs = {"reply": ReplyText, "pieces": ReplyPiece}
    output_docs = {"reply": "the whole answer, once the model finished (to synthesizer.reply)",
                   "pieces": "the answer sentence by sentence while the model writes (to synthesizer.pieces)"}

    @classmethod
    def provider_name(cls, params: ResponderParams, resources: Resources) -> str:
        return resolve(params.provider, resources, "echo")

    @classmethod
    def check_params(cls, params: ResponderParams, resources: Resources) -> None:
        require(cls.provider_name(params, resources), resources, {})

    def make_provider(self) -> Responder:
        if self.provider_name(self.params, self.ctx.resources) == "openai":
            from nodes.responder.openai import OpenAIResponder

            return OpenAIResponder(self.ctx.resources, model=self.params.model,
                                   timeout_s=self.params.timeout_s,
                                   temperature=self.params.temperature)
        from nodes.responder.echo import EchoResponder

        return EchoResponder(self.ctx.resources)

    def wire(self, turn: Observable[UserTurn], cancel: Observable[Any] | None = None,
             delivered: Observable[Delivered] | None = None) -> dict[str, Observable[Any]]:
        self.provider = self.make_provider()
        self.history: deque[_Exchange] = deque(maxlen=self.params.max_turns)
        self.pending: dict[int, _Exchange] = {}
        """Tentative turns being answered, not yet in the history (at most one, normally)."""
        self.conversation = self.ctx.conversation if self.params.remember else None
        if self.conversation is not None:
            # earlier exchanges take turn numbers below this session's first (1): always older
            past = self.conversation.history[-self.params.max_turns:] if self.params.max_turns else ()
            for i, ex in enumerate(past):
                self.history.append(_Exchange(i - len(past), ex.user, ex.heard, complete=ex.heard is not None))
        worker: TurnWorker[UserTurn, ReplyText | ReplyPiece] = TurnWorker(self, self._answer, "llm_failed")
        if delivered is not None:
            self.route({"delivered": delivered}, {"delivered": self._on_delivered})
        if cancel is not None:
            self.route({"cancel": cancel}, {"cancel": self._on_cancel})
        # The user's words enter the history when the turn arrives, even if it goes stale before
        # its work starts: the user did say them. A committed tentative turn is already answered.
        out = worker.attach(turn.pipe(ops.filter(self._remember)), cancel)
        return {
            "reply": out.pipe(ops.filter(lambda m: isinstance(m, ReplyText))),
            "pieces": out.pipe(ops.filter(lambda m: isinstance(m, ReplyPiece))),
        }

    def messages_for(self, turn: UserTurn) -> list[ChatMessage]:
        prompt = self.params.system_prompt or self.ctx.settings.system_prompt
        messages = [ChatMessage("system", prompt)]
        for ex in self.history:
            if ex.turn >= turn.turn:
                continue
            messages.append(ChatMessage("user", ex.user))
            heard = self.heard(ex)
            if heard:
                messages.append(ChatMessage("assistant", heard))
        messages.append(ChatMessage("user", turn.text))
        return messages

    @staticmethod
    def heard(ex: _Exchange) -> str | None:
        """What the user heard of a past reply: all of it if it was delivered whole; the pieces
        sent before an interruption, marked; nothing if nothing reached them."""
        if ex.played_ms is not None:
            cut = played_part(ex.played, ex.played_ms)
            if cut is not None:
                return cut
        if ex.complete and ex.reply:
            return ex.reply
        pieces = [p for p in ex.heard if p]
        return " ".join(pieces) + INTERRUPTED if pieces else None

    def _on_delivered(self, d: Delivered) -> None:
        ex = next((ex for ex in self.history if ex.turn == d.turn), None)
        if ex is None:
            return  # older than the history window
        if d.whole:
            ex.reply = ex.reply or d.text
            ex.played = [(d.text, d.audio_ms)]
        else:
            ex.heard.append(d.text)
            ex.played.append((d.text, d.audio_ms))
        ex.complete = ex.complete or d.complete
        self._save()

    def _remember(self, turn: UserTurn) -> bool:
        """Note the turn; whether it needs an answer (not when it commits one answered already)."""
        if turn.tentative:
            self.pending[turn.turn] = _Exchange(turn.turn, turn.text)
            return True
        ahead = self.pending.pop(turn.turn, None)
        if not any(ex.turn == turn.turn for ex in self.history):
            self.history.append(ahead or _Exchange(turn.turn, turn.text))
            self._save()
        return ahead is None

    def _on_cancel(self, c: Cancel) -> None:
        if c.played_ms is not None and c.response_id is not None:
            ex = next((ex for ex in self.history if ex.response_id == c.response_id), None)
            if ex is not None:
                ex.played_ms = c.played_ms
                self._save()
        for number in [n for n in self.pending if n <= c.through_turn]:
            del self.pending[number]

    def _save(self) -> None:
        """Hand the window, as the user heard it, to the conversation store (written soon)."""
        if self.conversation is not None:
            self.conversation.save([Exchange(ex.user, self.heard(ex)) for ex in self.history])

    async def _answer(self, turn: UserTurn) -> AsyncIterator[ReplyText | ReplyPiece]:
        messages = self.messages_for(turn)
        exchange = self.pending.get(turn.turn) or next(
            (ex for ex in self.history if ex.turn == turn.turn), _Exchange(turn.turn, turn.text))
        rid = new_id()
        exchange.response_id = rid
        splitter = SentenceStream(self.params.min_piece_chars, self.params.max_piece_chars,
                                  first_clause_words=self.params.first_clause_words)
        seq = 0
        text = ""
        marks: Marks = ()
        with self.ctx.provider_call("llm", self.provider.name):
            async for token in self.provider.reply(messages):
                if not text:
                    marks = (("first_token", float(now_ms())),)
                    self.ctx.mark(turn.turn, *marks[0])
                text += token
                for piece in splitter.push(token):
                    yield ReplyPiece(turn.session, turn.turn, rid, turn.id, seq, piece, voice=turn.voice,
                                     marks=marks)
                    seq += 1
        text = text.strip()
        if not text:
            raise ProviderError("the model returned an empty reply")
        marks += (("last_token", float(now_ms())),)
        self.ctx.mark(turn.turn, *marks[-1])
        rest = " ".join(splitter.flush())
        # the last piece carries `final`; if the stream ended right after a sentence, it is empty
        yield ReplyPiece(turn.session, turn.turn, rid, turn.id, seq, rest, final=True, voice=turn.voice,
                         marks=marks)
        exchange.reply = text
        if exchange.complete:  # every piece was delivered before the whole text was known
            self._save()
        yield ReplyText(turn.session, turn.turn, rid, turn.id, text, voice=turn.voice, marks=marks)
