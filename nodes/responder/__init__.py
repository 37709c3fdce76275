"""The assistant's answer to each accepted user turn, with a bounded per-session history.

In:  turn: UserTurn        Out: reply: ReplyText
Work for a turn is cancelled (the LLM stream closed) as soon as the turn goes stale. A turn that
was cancelled or failed leaves only the user's words in the history, never a half answer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable

from flow.messages import ReplyText, UserTurn, new_id
from flow.node import In, Node
from flow.providers import ChatMessage, Responder
from flow.resources import Resources
from flow.turns import TurnWorker
from nodes.provider_choice import require, resolve


class ResponderParams(BaseModel):
    """`params:` of `type: responder`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    provider: Literal["auto", "openai", "echo"] = "auto"
    """`auto`: OpenAI when configured, else `echo` (repeats what it heard; not an LLM)."""
    model: str = "gpt-4o-mini"
    system_prompt: str | None = None
    """Default: the server's SYSTEM_PROMPT."""
    max_turns: int = Field(20, ge=0, le=500)
    """User+assistant exchanges kept in the session's history."""
    temperature: float | None = Field(None, ge=0, le=2)
    timeout_s: float | None = Field(None, gt=0, le=600)


class ResponderNode(Node[ResponderParams]):
    """Answer each turn with the configured provider."""

    Params = ResponderParams
    inputs = {"turn": In(UserTurn)}
    outputs = {"reply": ReplyText}

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

    def wire(self, turn: Observable[UserTurn]) -> dict[str, Observable[Any]]:
        self.provider = self.make_provider()
        self.history: deque[ChatMessage] = deque(maxlen=2 * self.params.max_turns or None)
        if self.params.max_turns == 0:
            self.history = deque(maxlen=0)
        worker: TurnWorker[UserTurn, ReplyText] = TurnWorker(self, self._answer, "llm_failed")
        return {"reply": worker.attach(turn)}

    def messages_for(self, turn: UserTurn) -> list[ChatMessage]:
        prompt = self.params.system_prompt or self.ctx.settings.system_prompt
        return [ChatMessage("system", prompt), *self.history, ChatMessage("user", turn.text)]

    async def _answer(self, turn: UserTurn) -> AsyncIterator[ReplyText]:
        messages = self.messages_for(turn)
        self.history.append(ChatMessage("user", turn.text))
        pieces = [piece async for piece in self.provider.reply(messages)]
        text = "".join(pieces).strip()
        if not text:
            raise RuntimeError("the model returned an empty reply")
        self.history.append(ChatMessage("assistant", text))
        yield ReplyText(turn.session, turn.turn, new_id(), turn.id, text)
