"""A learned end of turn: Pipecat's Smart Turn v3 model judges from the audio whether the user
has finished speaking, or paused mid-thought.

The model (`smart-turn-v3.2-cpu.onnx`, about 8 MB, BSD-2-Clause like the `pipecat-ai` wheel that
ships it) is loaded from the installed package's files; nothing of Pipecat is imported (the
optional extra `voicegraph[turn]` installs it). Its input is the last 8 s of 16 kHz audio as
Whisper's log-mel features (80 mel bands, 25 ms windows every 10 ms), computed here with numpy.
A run takes tens of milliseconds of CPU, so it goes to the shared CPU pool, never on the loop.
"""

from __future__ import annotations

import functools
import threading
from importlib.metadata import PackageNotFoundError, files
from pathlib import Path

import numpy as np

RATE = 16_000
WINDOW_S = 8
N_FFT, HOP, N_MELS = 400, 160, 80
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"


def model_path() -> Path:
    """The model file inside the installed `pipecat-ai` distribution (ValueError if absent)."""
    try:
        found = [f for f in files("pipecat-ai") or [] if f.name == MODEL_FILE]
    except PackageNotFoundError:
        found = []
    if not found:
        raise ValueError(f"end_of_turn: smart_turn needs the Smart Turn model ({MODEL_FILE}), shipped in "
                         "the pipecat-ai package: pip install 'voicegraph[turn]'")
    return Path(str(found[0].locate()))


def _slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Hz → mel on the Slaney scale (linear below 1 kHz, logarithmic above), as Whisper uses."""
    hz = np.asarray(hz, dtype=np.float64)
    lin = 3.0 * hz / 200.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * 27.0 / np.log(6.4), lin)


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0), 200.0 * mel / 3.0)


@functools.cache
def mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT//2+1) triangular filters, area-normalised (Slaney), 0 Hz to 8 kHz."""
    edges = _slaney_hz(np.linspace(_slaney_mel(0.0), _slaney_mel(RATE / 2), N_MELS + 2))
    bins = np.linspace(0, RATE / 2, N_FFT // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    tri = np.maximum(0.0, np.minimum(rising, falling))
    return tri * (2.0 / (upper - lower))


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's input features for `audio` (float, 16 kHz): the last 8 s, zero-padded in front
    when shorter, normalised to zero mean and unit variance, then (80, 800) log-mel in about
    [-1, 1]."""
    n = RATE * WINDOW_S
    x = np.asarray(audio, dtype=np.float32)[-n:]
    x = np.pad(x, (n - x.size, 0))
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), (N_FFT // 2, N_FFT // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    window = np.hanning(N_FFT + 1)[:-1]  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # (frames, bins)
    mel = np.log10(np.maximum(mel_filters() @ power.T, 1e-10))[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


class SmartTurn:
    """One ONNX session per process (loaded on first use); `finished(pcm)` → probability."""

    _lock = threading.Lock()
    _session = None

    @classmethod
    def session(cls):
        with cls._lock:
            if cls._session is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1  # the CPU pool gives the parallelism
                opts.inter_op_num_threads = 1
                cls._session = ort.InferenceSession(str(model_path()), sess_options=opts,
                                                    providers=["CPUExecutionProvider"])
            return cls._session

    @classmethod
    def finished(cls, pcm: bytes, rate: int = RATE) -> float:
        """Probability that the speech in `pcm` (mono s16le at 16 kHz) is a finished turn.
        Blocking: run it in the CPU pool."""
        if rate != RATE:
            raise ValueError(f"smart_turn needs 16 kHz audio, not {rate} Hz")
        audio = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
        features = log_mel(audio)[None]
        out = cls.session().run(None, {"input_features": features})
        return float(np.asarray(out[0]).reshape(-1)[0])
