"""Speech to text: one final `Transcript` per utterance, in utterance order.

In:  utterance: Utterance        Out: transcript: Transcript
A failed recognition sends an `stt_failed` error and still a final, empty transcript, so a client
waiting for the utterance's `speech-result` is never left hanging (an empty text starts no turn).
An utterance is refused the same way (`rate_limited`, then an empty final transcript) when
`max_queued` utterances or `max_queued_s` seconds of audio already wait, so the audio one session
holds here is bounded in bytes, not only in count (an utterance can be 30 s long).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.messages import Transcript, Utterance
from flow.contract.node import In, Node
from flow.contract.providers import Transcriber
from flow.contract.resources import Resources
from nodes.provider_choice import require, resolve

MODULES = {"pocketsphinx": ("pocketsphinx",)}


class TranscriberParams(BaseModel):
    """`params:` of `type: transcriber`."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    provider: Literal["auto", "openai", "pocketsphinx"] = "auto"
    """`auto`: OpenAI when OPENAI_API_KEY/OPENAI_BASE_URL is set, else offline pocketsphinx."""
    model: str = "whisper-1"
    """OpenAI model (`whisper-1`, `gpt-4o-mini-transcribe`, `gpt-4o-transcribe`)."""
    language: str | None = None
    """BCP-47 language hint; `start-recording`'s `language` overrides it."""
    timeout_s: float | None = Field(None, gt=0, le=300)
    """Per-call timeout; default: the server's OPENAI_TIMEOUT."""
    max_queued: int = Field(8, ge=1, le=100)
    """Utterances waiting for transcription; beyond it one is refused (`rate_limited`)."""
    max_queued_s: float = Field(60.0, gt=0, le=3_600)
    """Audio waiting for transcription (the one being transcribed included), in seconds; an
    utterance that would take it over is refused (`rate_limited`). One utterance is always
    accepted when nothing waits, however long. At 16 kHz mono PCM16, 60 s is 1.9 MB."""


class TranscriberNode(Node[TranscriberParams]):
    """Transcribe each utterance with the configured provider."""

    Params = TranscriberParams
    inputs = {"utterance": In(Utterance, doc="one spoken turn's audio (from silence_finalizer)")}
    outputs = {"transcript": Transcript}
    output_docs = {"transcript": "one final transcript per utterance, in order, empty when nothing was "
                                 "recognised or the utterance was refused (to client.speech_result, turn_taker)"}

    @classmethod
    def provider_name(cls, params: TranscriberParams, resources: Resources) -> str:
        return resolve(params.provider, resources, "pocketsphinx")

    @classmethod
    def check_params(cls, params: TranscriberParams, resources: Resources) -> None:
        require(cls.provider_name(params, resources), resources, MODULES)

    async def preload(self) -> None:
        load = getattr(self.provider, "preload", None)
        if load is not None:
            await self.ctx.resources.run_cpu(load)

    def make_provider(self) -> Transcriber:
        name = self.provider_name(self.params, self.ctx.resources)
        if name == "openai":
            from nodes.transcriber.openai import OpenAITranscriber

            return OpenAITranscriber(self.ctx.resources, model=self.params.model,
                                     timeout_s=self.params.timeout_s)
        from nodes.transcriber.pocketsphinx import PocketsphinxTranscriber

        return PocketsphinxTranscriber(self.ctx.resources)

    def wire(self, utterance: Observable[Utterance]) -> dict[str, Observable[Any]]:
        self.provider = self.make_provider()
        self.out: Subject[Transcript] = Subject()
        self._queue: asyncio.Queue[Utterance] = asyncio.Queue(self.params.max_queued)
        self._worker: asyncio.Task | None = None
        self.held_s = 0.0
        """Seconds of audio queued or being transcribed."""
        self.ctx.disposables.add(
            utterance.subscribe(on_next=self._submit, scheduler=self.ctx.scheduler)
        )
        return {"transcript": self.out}

    def _submit(self, utt: Utterance) -> None:
        seconds = utt.duration_ms / 1000
        if self.held_s > 0 and self.held_s + seconds > self.params.max_queued_s:
            self._refuse(utt, f"{self.held_s:.1f} s of audio already wait for transcription "
                         f"(max_queued_s {self.params.max_queued_s:g})")
            return
        try:
            self._queue.put_nowait(utt)
        except asyncio.QueueFull:
            self._refuse(utt, f"{self.params.max_queued} utterances already wait for transcription")
            return
        self.held_s += seconds
        if self._worker is None or self._worker.done():
            self._worker = self.ctx.spawn(self._run(), name=f"{self.id}-stt")

    def _refuse(self, utt: Utterance, why: str) -> None:
        self.fail("rate_limited", f"{self.id}: {why}; this one was dropped")
        self.out.on_next(_transcript(utt, ""))

    async def _run(self) -> None:
        while not self._queue.empty():
            utt = self._queue.get_nowait()
            text = ""
            try:
                with self.ctx.provider_call("stt", self.provider.name):
                    text = await self.provider.transcribe(
                        utt.audio, utt.rate, utt.width, utt.channels,
                        language=utt.language or self.params.language, owner=self.ctx.session,
                    )
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.fail("stt_failed", f"{self.id}: {err or type(err).__name__}")
            finally:
                self.held_s = 0.0 if self._queue.empty() else self.held_s - utt.duration_ms / 1000
            self.ctx.count(self.id, "out")
            self.out.on_next(_transcript(utt, (text or "").strip()))


def _transcript(utt: Utterance, text: str) -> Transcript:
    """The final transcript of `utt` (empty when nothing was recognised or it was refused)."""
    return Transcript(utt.session, utt.id, text, True, utt.speech_end_ms, utt.voice, utt.endpointed_ms)
