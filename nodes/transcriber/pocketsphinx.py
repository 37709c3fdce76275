"""Offline speech to text with PocketSphinx and the English model shipped in its wheel.

Loading a model takes most of a second and a `Decoder` is not thread-safe, so the process keeps a
small pool of decoders (at most one per CPU worker), each used by one call at a time, and decoding
runs in the shared CPU pool: twenty sessions finishing at once neither block the event loop nor
start twenty decoders.
"""

from __future__ import annotations

import queue
import threading

from flow.audio import PcmConverter, level_dbfs
from flow.resources import Resources

RATE = 16_000
QUIET_DBFS = -55.0
"""Utterances quieter than this overall hold no speech worth decoding."""


class DecoderPool:
    """Up to `size` PocketSphinx decoders, created on demand and reused."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.created = 0
        self.threads: set[str] = set()
        """Names of the threads that decoded (the event loop's must never be among them)."""
        self._free: queue.LifoQueue = queue.LifoQueue()
        self._lock = threading.Lock()

    def _checkout(self):
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self.created < self.size:
                from pocketsphinx import Decoder

                self.created += 1
                # batch CMN: each utterance normalised on its own, so what one session said
                # never shifts what the shared decoder hears for the next
                return Decoder(loglevel="FATAL", cmn="batch")
        return self._free.get()

    def decode(self, pcm: bytes) -> str:
        """Blocking: the hypothesis for 16 kHz mono s16le (run it in a worker thread)."""
        decoder = self._checkout()
        self.threads.add(threading.current_thread().name)
        try:
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            return hyp.hypstr if hyp is not None else ""
        finally:
            self._free.put(decoder)


class PocketsphinxTranscriber:
    """Transcriber protocol on PocketSphinx; English only (its bundled model)."""

    name = "pocketsphinx"

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.pool: DecoderPool = resources.shared(
            "pocketsphinx.decoders", lambda: DecoderPool(resources.cpu_workers))

    async def transcribe(self, pcm: bytes, rate: int, width: int, channels: int, *,
                         language: str | None = None) -> str:
        if width != 2:
            raise ValueError("pocketsphinx takes 16-bit PCM")
        if rate != RATE or channels != 1:
            pcm = PcmConverter(rate, channels, RATE).convert(pcm)
        if len(pcm) < RATE // 10 or level_dbfs(pcm) < QUIET_DBFS:
            return ""  # too short or too quiet: the recognizer would only hallucinate a word
        return (await self.resources.run_cpu(self.pool.decode, pcm)).strip()
