"""Turn `audio-stream` byte slices into canonical PCM chunks, decoding as the chunks arrive.

In:  audio: AudioData, start: RecordingStarted, stop: RecordingStopped
Out: audio: AudioChunk, ended: RecordingEnded

Containers (webm/ogg/wav/mp3) are decoded by one ffmpeg process per recording, off the event loop;
raw PCM16 is only resampled. The format comes from `start-recording`, else the first bytes, else
raw PCM16 at `pcm_rate`. Undecodable input sends one `bad_audio` and the session goes on: the
rest of that recording is dropped, the next `start-recording`/`stop-recording` starts afresh.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable
from reactivex.subject import Subject

from flow.audio.decoder import StreamDecoder, make_decoder
from flow.audio.formats import sniff_format
from flow.contract.messages import (
    AudioChunk,
    AudioData,
    AudioFormat,
    RecordingEnded,
    RecordingStarted,
    RecordingStopped,
)
from flow.contract.node import In, Node


class ChunkBufferParams(BaseModel):
    """`params:` of `type: chunk_buffer`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rate: int = Field(16_000, ge=8_000, le=48_000)
    """Sample rate of the canonical PCM the graph works on (mono, 16-bit)."""
    pcm_rate: int = Field(16_000, ge=8_000, le=192_000)
    """Rate assumed for raw PCM16 when the client did not say (`start-recording` `sampleRate`)."""
    max_backlog_s: float = Field(30.0, gt=0, le=600)
    """Audio (at 256 kbit/s worst case) waiting to be decoded before chunks are refused."""


class _Recording:
    """One recording's decoder and its position in audio time."""

    def __init__(self, decoder: StreamDecoder, fmt: AudioFormat) -> None:
        self.decoder = decoder
        self.format = fmt
        self.samples = 0
        self.failed = False


class ChunkBuffer(Node[ChunkBufferParams]):
    """Decode each recording incrementally into `AudioChunk`s at the graph's canonical format."""

    Params = ChunkBufferParams
    inputs = {
        "audio": In(AudioData),
        "start": In(RecordingStarted, required=False),
        "stop": In(RecordingStopped, required=False),
    }
    outputs = {"audio": AudioChunk, "ended": RecordingEnded}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.chunks: Subject[AudioChunk] = Subject()
        self.ended: Subject[RecordingEnded] = Subject()
        self.rec: _Recording | None = None
        self.declared: AudioFormat | None = None
        self.dropping = False
        handlers = {"audio": self._on_audio, "start": self._on_start, "stop": self._on_stop}
        self.route(inputs, handlers)
        self.ctx.on_close(self._close)
        return {"audio": self.chunks, "ended": self.ended}

    @property
    def backlog_limit(self) -> int:
        return int(self.params.max_backlog_s * 32_000)

    def _on_start(self, msg: RecordingStarted) -> None:
        self._finish_recording(emit_end=False)
        self.declared = msg.format
        self.dropping = False

    def _on_stop(self, _msg: RecordingStopped) -> None:
        self._finish_recording(emit_end=True)
        self.declared = None
        self.dropping = False

    def _on_audio(self, msg: AudioData) -> None:
        if self.dropping:
            return
        if self.rec is None:
            self.rec = self._open(msg.data)
        rec = self.rec
        if rec.decoder.pending_bytes + len(msg.data) > self.backlog_limit:
            self.fail("rate_limited", f"{self.id}: audio arrives faster than it can be decoded; "
                      "chunk dropped")
            return
        rec.decoder.feed(msg.data)
        probe = self.ctx.probe
        if probe.monitor.watched:  # the fill is only worth computing for an observer
            probe.backlog(rec.decoder.pending_bytes / self.backlog_limit)

    def _open(self, first: bytes) -> _Recording:
        fmt = self.declared or _sniffed(first, self.params.pcm_rate)
        holder: list[_Recording] = []

        def on_pcm(pcm: bytes) -> None:
            rec = holder[0]
            ts = 1000.0 * rec.samples / self.params.rate
            rec.samples += len(pcm) // 2
            self.ctx.count(self.id, "out")
            self.chunks.on_next(AudioChunk(self.ctx.session, pcm, self.params.rate, 2, 1, ts))

        def on_error(message: str) -> None:
            rec = holder[0]
            rec.failed = True
            if self.rec is rec:
                self.dropping = True
                self.rec = None
            self.fail("bad_audio", f"could not decode {fmt.container} audio: {message}")

        decoder = make_decoder(fmt, self.params.rate, on_pcm, on_error)
        holder.append(_Recording(decoder, fmt))
        return holder[0]

    def _finish_recording(self, emit_end: bool) -> None:
        rec, self.rec = self.rec, None
        if rec is None:
            if emit_end:
                self.ended.on_next(RecordingEnded(self.ctx.session))
            return

        async def finish() -> None:
            try:
                await rec.decoder.finish()
            finally:
                await rec.decoder.aclose()
                if emit_end:
                    self.ended.on_next(RecordingEnded(self.ctx.session))

        self.ctx.spawn(finish(), name=f"{self.id}-finish")

    async def _close(self) -> None:
        if self.rec is not None:
            await self.rec.decoder.aclose()
            self.rec = None


def _sniffed(first: bytes, pcm_rate: int) -> AudioFormat:
    container = sniff_format(first)
    return AudioFormat(container) if container else AudioFormat("pcm16", pcm_rate, 1)
