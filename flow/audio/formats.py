"""Audio formats and PCM helpers: what a client declared, what bytes look like, level, resampling.

Everything here is pure and cheap per chunk (C-level `audioop`/numpy), so it may run on the loop;
container decoding, which is not cheap, lives in `flow.audio.decoder` and runs off the loop.
"""

from __future__ import annotations

import io
import math
import warnings
import wave
from typing import Any

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # stdlib up to 3.12; the `audioop-lts` package on 3.13+

from flow.contract.messages import AudioFormat
from flow.sizing import quote

CONTAINERS = ("webm", "ogg", "wav", "mp3")
SILENCE_DBFS = -100.0
"""Level reported for digital silence (whose true level is -inf)."""

_MIME = {
    "audio/webm": "webm", "video/webm": "webm",
    "audio/ogg": "ogg", "audio/opus": "ogg",
    "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3", "audio/mp3": "mp3",
    "audio/pcm": "pcm16", "audio/l16": "pcm16", "audio/raw": "pcm16",
}
_FORMATS = {"webm": "webm", "ogg": "ogg", "opus": "ogg", "wav": "wav", "mp3": "mp3",
            "pcm16": "pcm16", "pcm": "pcm16", "s16le": "pcm16", "l16": "pcm16"}


def _int_in(value: Any, lo: int, hi: int, what: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be a number, got {quote(value)}") from err
    if not lo <= n <= hi or (isinstance(value, float) and value != n):
        raise ValueError(f"{what} must be between {lo} and {hi}, got {quote(value)}")
    return n


def parse_start_payload(payload: dict[str, Any]) -> AudioFormat | None:
    """The audio format a `start-recording` payload declares (`mimeType` or `format`), if any."""
    rate: Any = payload.get("sampleRate")
    channels: Any = payload.get("channels")
    container: str | None = None
    mime = payload.get("mimeType")
    if mime is not None:
        if not isinstance(mime, str):
            raise ValueError("mimeType must be a string")
        base, *params = [p.strip() for p in mime.lower().split(";")]
        container = _MIME.get(base)
        if container is None:
            raise ValueError(f"unsupported mimeType {quote(mime)} (webm, ogg, wav, mp3 or audio/pcm)")
        for param in params:
            key, _, value = param.partition("=")
            if key == "rate" and rate is None:
                rate = value
            elif key == "channels" and channels is None:
                channels = value
    fmt = payload.get("format")
    if fmt is not None and container is None:
        if not isinstance(fmt, str) or fmt.lower() not in _FORMATS:
            raise ValueError(f"unsupported format {quote(fmt)} (webm, ogg, wav, mp3 or pcm16)")
        container = _FORMATS[fmt.lower()]
    if container is None:
        return None
    if container != "pcm16":
        return AudioFormat(container)
    return AudioFormat(
        "pcm16",
        _int_in(rate if rate is not None else 16_000, 8_000, 192_000, "sampleRate"),
        _int_in(channels if channels is not None else 1, 1, 8, "channels"),
    )


def sniff_format(first: bytes) -> str | None:
    """The container the first bytes of a recording announce, or None (raw PCM)."""
    if first[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if first[:4] == b"OggS":
        return "ogg"
    if first[:4] == b"RIFF" and first[8:12] == b"WAVE":
        return "wav"
    if first[:3] == b"ID3" or (len(first) > 2 and first[0] == 0xFF and (first[1] & 0xE0) == 0xE0
                               and (first[1] & 0x06) != 0):
        return "mp3"
    return None


class PcmConverter:
    """Stateful s16le (any rate, any channel count) → mono s16le at `dst_rate`.

    Chunks are arbitrary byte slices, so a partial frame is kept for the next call, and the
    resampler keeps its state across chunks (no clicks at chunk boundaries).
    """

    def __init__(self, src_rate: int, src_channels: int = 1, dst_rate: int = 16_000) -> None:
        self.src_rate = src_rate
        self.src_channels = src_channels
        self.dst_rate = dst_rate
        self._frame = 2 * src_channels
        self._rest = b""
        self._state: Any = None

    def convert(self, chunk: bytes) -> bytes:
        data = self._rest + chunk
        usable = len(data) - len(data) % self._frame
        data, self._rest = data[:usable], data[usable:]
        if not data:
            return b""
        if self.src_channels > 1:
            frames = np.frombuffer(data, dtype="<i2").reshape(-1, self.src_channels)
            data = frames.mean(axis=1).astype("<i2").tobytes()
        if self.src_rate != self.dst_rate:
            data, self._state = audioop.ratecv(data, 2, 1, self.src_rate, self.dst_rate, self._state)
        return data


def level_dbfs(pcm: bytes) -> float:
    """RMS level of s16le PCM in dBFS; `SILENCE_DBFS` for digital silence or no samples.

    `audioop.rms` works on the bytes in C: on the hot path (two 20 ms frames per chunk) it costs a
    fraction of what building numpy arrays for such small frames does.
    """
    usable = len(pcm) - len(pcm) % 2
    rms = audioop.rms(pcm[:usable], 2) if usable else 0
    return max(SILENCE_DBFS, 20 * math.log10(rms / 32768.0)) if rms else SILENCE_DBFS


def wav_bytes(pcm: bytes, rate: int, width: int = 2, channels: int = 1) -> bytes:
    """A complete WAV file around raw PCM (what speech-to-text APIs take)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()
