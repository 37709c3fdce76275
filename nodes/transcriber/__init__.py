"""Speech to text: one final `Transcript` per utterance, in utterance order.

In:  utterance: Utterance, tentative: Utterance, withdrawn: Withdrawn
Out: transcript: Transcript, tentative: Transcript
A failed recognition sends an `stt_failed` error and still a final, empty transcript, so a client
waiting for the utterance's `speech-result` is never left hanging (an empty text starts no turn).
An utterance is refused the same way (`rate_limited`, then an empty final transcript) when
`max_queued` utterances or `max_queued_s` seconds of audio already wait, so the audio one session
holds here is bounded in bytes, not only in count (an utterance can be 30 s long).

A tentative utterance (speculation) is transcribed at once, beside the queue, and its text goes
out on `tentative`; one at a time (a newer one means the older was withdrawn). Its commit (the
same utterance id on `utterance`) takes that text instead of a second provider call; a
`withdrawn` one has its transcription stopped. A failed tentative transcription is only logged:
the commit transcribes again and reports the failure as usual.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.messages import Transcript, Utterance, Withdrawn
from flow.contract.node import In, Node
from flow.contract.providers import Transcriber
from flow.contract.resources import Resources
from nodes.provider_choice import require, resolve

log = logging.getLogger("voicegraph.stt")
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
    inputs = {
        "utterance": In(Utterance, doc="one spoken turn's audio (from silence_finalizer)"),
        "tentative": In(Utterance, required=False, doc="speculation: transcribe ahead of the commit"),
        "withdrawn": In(Withdrawn, required=False, doc="speculation: stop transcribing that one"),
    }
    outputs = {"transcript": Transcript, "tentative": Transcript}
    output_docs = {"transcript": "one final transcript per utterance, in order, empty when nothing was "
                                 "recognised or the utterance was refused (to client.speech_result, turn_taker)",
                   "tentative": "speculation: the transcript of a tentative utterance (to turn_taker.transcript)"}

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

    def wire(self, utterance: Observable[Utterance], tentative: Observable[Utterance] | None = None,
             withdrawn: Observable[Withdrawn] | None = None) -> dict[str, Observable[Any]]:
        self.provider = self.make_provider()
        self.out: Subject[Transcript] = Subject()
        self.ahead_out: Subject[Transcript] = Subject()
        self._ahead: tuple[str, asyncio.Task[str | None]] | None = None
        """The tentative utterance being (or done being) transcribed: its id and the task."""
        self._committed: dict[str, asyncio.Task[str | None]] = {}
        """Transcriptions started ahead whose commit waits in the queue (by utterance id)."""
        extra = {k: v for k, v in (("tentative", tentative), ("withdrawn", withdrawn)) if v is not None}
        self.route(extra, {"tentative": self._on_tentative, "withdrawn": self._on_withdrawn})
        self._queue: asyncio.Queue[Utterance] = asyncio.Queue(self.params.max_queued)
        self._worker: asyncio.Task | None = None
        self.held_s = 0.0
        """Seconds of audio queued or being transcribed."""
        self.ctx.disposables.add(
            utterance.subscribe(on_next=self._submit, scheduler=self.ctx.scheduler)
        )
        return {"transcript": self.out, "tentative": self.ahead_out}

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
        if self._ahead is not None and self._ahead[0] == utt.id:
            self._committed[utt.id], self._ahead = self._ahead[1], None
        if self._worker is None or self._worker.done():
            self._worker = self.ctx.spawn(self._run(), name=f"{self.id}-stt")

    def _on_tentative(self, utt: Utterance) -> None:
        self._drop_ahead()
        self._ahead = (utt.id, self.ctx.spawn(self._transcribe_ahead(utt), name=f"{self.id}-ahead"))

    def _on_withdrawn(self, w: Withdrawn) -> None:
        if self._ahead is not None and self._ahead[0] == w.utterance_id:
            self._drop_ahead()

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None

    async def _transcribe_ahead(self, utt: Utterance) -> str | None:
        try:
            text = await self._transcribe(utt)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.info("%s: tentative transcription failed (the commit tries again): %s", self.id, err)
            return None
        text = (text or "").strip()
        self.ahead_out.on_next(_transcript(utt, text, tentative=True))
        return text

    async def _ahead_text(self, utt: Utterance) -> str | None:
        """The text of `utt` transcribed while it was tentative, if it was and that worked."""
        task = self._committed.pop(utt.id, None)
        if task is None:
            return None
        await asyncio.wait([task])
        return None if task.cancelled() or task.exception() is not None else task.result()

    async def _transcribe(self, utt: Utterance) -> str:
        with self.ctx.provider_call("stt", self.provider.name):
            return await self.provider.transcribe(
                utt.audio, utt.rate, utt.width, utt.channels,
                language=utt.language or self.params.language, owner=self.ctx.session)

    def _refuse(self, utt: Utterance, why: str) -> None:
        self.fail("rate_limited", f"{self.id}: {why}; this one was dropped")
        self.out.on_next(_transcript(utt, ""))

    async def _run(self) -> None:
        while not self._queue.empty():
            utt = self._queue.get_nowait()
            text = ""
            try:
                text = await self._ahead_text(utt)
                if text is None:
                    text = await self._transcribe(utt)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.fail("stt_failed", f"{self.id}: {err or type(err).__name__}")
            finally:
                self.held_s = 0.0 if self._queue.empty() else self.held_s - utt.duration_ms / 1000
            self.ctx.count(self.id, "out")
            self.out.on_next(_transcript(utt, (text or "").strip()))


def _transcript(utt: Utterance, text: str, tentative: bool = False) -> Transcript:
    """The final transcript of `utt` (empty when nothing was recognised or it was refused)."""
    return Transcript(utt.session, utt.id, text, True, utt.speech_end_ms, utt.voice, utt.endpointed_ms, tentative)
