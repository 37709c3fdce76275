"""Offline speech to text with PocketSphinx and the US English model shipped in its wheel.

Decoding runs in worker processes (`nodes.transcriber.decoder_pool` says why); this module turns
an utterance into the model's 16 kHz mono PCM, skips what holds no speech, and asks the pool.
"""

from __future__ import annotations

from flow.audio.formats import PcmConverter, level_dbfs
from flow.contract.cpu_pool import CancelToken
from flow.contract.providers import ProviderError
from flow.contract.resources import Resources
from nodes.transcriber.decoder_pool import DecoderPool

RATE = 16_000
"""The bundled acoustic model's sample rate; other input is resampled to it."""
MIN_BYTES = RATE * 2 // 10
"""Less than 100 ms of audio holds no word (and an empty buffer crashes `process_raw`)."""
QUIET_DBFS = -55.0
"""Utterances quieter than this overall hold no speech worth decoding."""

def to_mono_16k(pcm: bytes, rate: int, width: int, channels: int) -> bytes:
    """s16le at any rate and channel count → 16 kHz mono s16le (what the model takes)."""
    if width != 2:
        raise ProviderError(f"pocketsphinx takes 16-bit PCM, got {8 * width}-bit")
    if rate <= 0 or channels <= 0:
        raise ProviderError(f"bad PCM format: rate={rate}, channels={channels}")
    if rate == RATE and channels == 1:
        return pcm
    return PcmConverter(rate, channels, RATE).convert(pcm)


def is_english(language: str | None) -> bool:
    """Whether a BCP-47 hint allows the English-only model (`None` means "no hint")."""
    return language is None or language.strip().lower().replace("_", "-").split("-")[0] == "en"


class PocketsphinxTranscriber:
    """Transcriber protocol on PocketSphinx: English only (its bundled model), lowercase words out."""

    name = "pocketsphinx"

    def __init__(self, resources: Resources, language: str | None = None) -> None:
        if not is_english(language):
            raise ProviderError(f"pocketsphinx has only an English model, not {language!r}")
        self.resources = resources
        self.language = language
        self.pool: DecoderPool = resources.shared(
            "pocketsphinx.decoders", lambda: DecoderPool(resources.cpu_workers))

    async def transcribe(self, pcm: bytes, rate: int, width: int, channels: int, *,
                         language: str | None = None, owner: str | None = None) -> str:
        """The words heard; `owner` (the session) gets its fair share of the CPU pool."""
        if not is_english(language):
            raise ProviderError(f"pocketsphinx has only an English model, not {language!r}")
        return await self.resources.run_cpu(self._transcribe_sync, pcm, rate, width, channels, owner=owner)

    def preload(self) -> None:
        """Blocking: start one decoder worker now (~0.7 s), so the first utterance does not wait."""
        self.pool.preload()

    def _transcribe_sync(self, pcm: bytes, rate: int, width: int, channels: int, *,
                         cancel: CancelToken | None = None) -> str:
        pcm = to_mono_16k(pcm, rate, width, channels)
        if len(pcm) < MIN_BYTES or level_dbfs(pcm) < QUIET_DBFS:
            return ""  # too short or too quiet: the recognizer would only hallucinate a word
        return self.pool.decode(pcm, cancel)
