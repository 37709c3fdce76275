"""Turn `audio-stream` byte slices into canonical PCM chunks, decoding as the chunks arrive.

In:  audio: AudioData, start: RecordingStarted, stop: RecordingStopped
Out: audio: AudioChunk, ended: RecordingEnded

Opus in webm/ogg (what browsers record) is decoded in-process on a decoding thread, other
containers (wav/mp3, or webm/ogg of another codec) by one ffmpeg process per recording, both off
the event loop; raw PCM16 is only resampled. The format comes from `start-recording`, else the first bytes, else
raw PCM16 at `pcm_rate`. Undecodable input sends one `bad_audio` and the session goes on: the
rest of that recording is dropped, the next recording starts afresh.

Recordings are keyed by their number (`recording` on every message). A new recording never waits
for the previous one's decoder, but its chunks are held back until that decoder drained, so the
output is in recording order: every chunk of n-1, `RecordingEnded(n-1)`, then n's chunks. Each
recording ends once (after its `stop-recording`, the next `start-recording` or audio of a newer
recording, or a decode failure), and each chunk's `timestamp_ms` counts from its recording's start.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable
from reactivex.subject import Subject

from flow.audio.decoder import PcmDecoder, StreamDecoder, make_decoder
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

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    rate: int = Field(16_000, ge=8_000, le=48_000)
    """Sample rate of the canonical PCM the graph works on (mono, 16-bit)."""
    pcm_rate: int = Field(16_000, ge=8_000, le=192_000)
    """Rate assumed for raw PCM16 when the client did not say (`start-recording` `sampleRate`)."""
    max_backlog_s: float = Field(30.0, gt=0, le=600)
    """Audio (at 256 kbit/s worst case) waiting to be decoded before chunks are refused."""


DRAIN_TIMEOUT_S = 10.0
"""Longest wait for a stopped recording's decoder to flush; the next recording's chunks wait for it."""


class _Recording:
    """One recording's decoder, its position in audio time, and the chunks it holds back."""

    def __init__(self, recording: int, first: bool) -> None:
        self.id = recording
        self.decoder: StreamDecoder | None = None
        self.samples = 0
        self.held: list[AudioChunk] | None = None if first else []
        """Chunks waiting for the older recordings to end (None: this one's go straight out)."""
        self.held_bytes = 0
        self.drained = False
        """Its decoder has flushed every sample (or there was none): it can end."""


class ChunkBuffer(Node[ChunkBufferParams]):
    """Decode each recording incrementally into `AudioChunk`s at the graph's canonical format."""

    Params = ChunkBufferParams
    inputs = {
        "audio": In(AudioData, doc="audio-stream bytes (from client.audio)"),
        "start": In(RecordingStarted, required=False, doc="start-recording: its declared format (client.start)"),
        "stop": In(RecordingStopped, required=False, doc="stop-recording: the recording ends (client.stop)"),
    }
    outputs = {"audio": AudioChunk, "ended": RecordingEnded}
    output_docs = {"audio": "mono PCM16 at `rate`, in recording order (to silence_finalizer.audio)",
                   "ended": "a recording's last chunk has gone out (to silence_finalizer.ended)"}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.chunks: Subject[AudioChunk] = Subject()
        self.ended: Subject[RecordingEnded] = Subject()
        self.recordings: deque[_Recording] = deque()
        """Recordings not yet ended, oldest first; only the oldest one's chunks go out."""
        self.open: _Recording | None = None
        """The recording audio goes to."""
        self.closed_through = 0
        """Recordings numbered ≤ this take no more audio (stopped, superseded or failed)."""
        self.declared: tuple[int, AudioFormat | None] = (0, None)
        """The format `start-recording` declared, and for which recording."""
        handlers = {"audio": self._on_audio, "start": self._on_start, "stop": self._on_stop}
        self.route(inputs, handlers)
        self.ctx.on_close(self._close)
        return {"audio": self.chunks, "ended": self.ended}

    @property
    def backlog_limit(self) -> int:
        return int(self.params.max_backlog_s * 32_000)

    def _on_start(self, msg: RecordingStarted) -> None:
        if self.open is not None and self.open.id < msg.recording:
            self._finish(self.open)
        self.declared = (msg.recording, msg.format)

    def _on_stop(self, msg: RecordingStopped) -> None:
        if self.open is not None and self.open.id == msg.recording:
            self._finish(self.open)
        elif msg.recording > self.closed_through:  # no audio came: it still ends, in its turn
            self._finish(self._add(msg.recording))

    def _on_audio(self, msg: AudioData) -> None:
        if msg.recording <= self.closed_through:
            return  # the rest of a recording that failed to decode
        if self.open is None or self.open.id != msg.recording:
            if self.open is not None:
                self._finish(self.open)
            self.open = self._add(msg.recording)
        rec = self.open
        if rec.decoder is None:
            rec.decoder = self._decoder(rec, msg.data)
        pending = rec.decoder.pending_bytes + rec.held_bytes
        if pending and pending + len(msg.data) > self.backlog_limit:  # one chunk alone always fits
            self.fail("rate_limited", f"{self.id}: audio arrives faster than it can be decoded; "
                      "chunk dropped")
            return
        rec.decoder.feed(msg.data)
        probe = self.ctx.probe
        if probe.monitor.watched:  # the fill is only worth computing for an observer
            probe.backlog((rec.decoder.pending_bytes + rec.held_bytes) / self.backlog_limit)

    def _add(self, recording: int) -> _Recording:
        rec = _Recording(recording, first=not self.recordings)
        self.recordings.append(rec)
        return rec

    def _decoder(self, rec: _Recording, first: bytes) -> StreamDecoder:
        number, declared = self.declared
        fmt = (declared if number == rec.id else None) or _sniffed(first, self.params.pcm_rate)

        def on_pcm(pcm: bytes) -> None:
            chunk = AudioChunk(self.ctx.session, rec.id, pcm, self.params.rate, 2, 1,
                               1000.0 * rec.samples / self.params.rate)
            rec.samples += len(pcm) // 2
            if rec.held is None:
                self._emit(chunk)
            else:
                rec.held.append(chunk)
                rec.held_bytes += len(pcm)

        def on_error(message: str) -> None:
            if self.open is rec:
                self._finish(rec)  # what was decoded still ends as an utterance
            self.fail("bad_audio", f"could not decode {fmt.container} audio: {message}")

        return make_decoder(fmt, self.params.rate, on_pcm, on_error)

    def _finish(self, rec: _Recording) -> None:
        """No more audio for `rec`: let its decoder drain, then end it after the older ones."""
        if self.open is rec:
            self.open = None
        self.closed_through = max(self.closed_through, rec.id)
        decoder = rec.decoder
        if decoder is None or isinstance(decoder, PcmDecoder):  # converts inline: nothing in flight
            rec.drained = True
            self._advance()
            return

        async def drain() -> None:
            timed_out = False
            try:
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await decoder.finish()
            except TimeoutError:
                timed_out = True
            finally:
                await decoder.aclose()
                rec.drained = True
            # not reached when the session closes (the CancelledError goes on up)
            if timed_out:
                self.fail("bad_audio", f"{self.id}: recording {rec.id} did not finish decoding "
                          f"in {DRAIN_TIMEOUT_S:g} s; its end is lost")
            self._advance()

        self.ctx.spawn(drain(), name=f"{self.id}-finish-{rec.id}")

    def _advance(self) -> None:
        """End every drained recording at the head, in order, releasing the next one's chunks."""
        while self.recordings and self.recordings[0].drained:
            done = self.recordings.popleft()
            done.decoder = None  # (its callbacks hold the recording: no cycle left for the collector)
            self.ended.on_next(RecordingEnded(self.ctx.session, done.id))
            if self.recordings:
                head = self.recordings[0]
                held, head.held, head.held_bytes = head.held or [], None, 0
                for chunk in held:
                    self._emit(chunk)

    def _emit(self, chunk: AudioChunk) -> None:
        self.ctx.count(self.id, "out")
        self.ctx.metrics.audio_seconds.inc(len(chunk.audio) / (chunk.rate * chunk.width * chunk.channels))
        self.chunks.on_next(chunk)

    async def _close(self) -> None:
        # take them all first: a drain finishing while we await may pop from the deque
        self.open, recordings, self.recordings = None, list(self.recordings), deque()
        for rec in recordings:
            if rec.decoder is not None:
                await rec.decoder.aclose()
                rec.decoder = None


def _sniffed(first: bytes, pcm_rate: int) -> AudioFormat:
    container = sniff_format(first)
    return AudioFormat(container) if container else AudioFormat("pcm16", pcm_rate, 1)
