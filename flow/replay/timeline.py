"""A recording's input level over time, for the dashboard's timeline (decoded off the event loop).

Each recording (`start-recording` … `stop-recording`, or audio with none open) is decoded whole:
raw PCM16 converted, containers through ffmpeg. Its levels are laid out in audio time from the
arrival of its first chunk (a client that uploads faster than real time has its audio drawn as
it would have been spoken). "Voiced" is a level over `VOICED_DBFS`: a drawing aid, not the
graph's speech detector.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from flow.audio.ffmpeg import ffmpeg_path
from flow.audio.formats import PcmConverter, level_dbfs, parse_start_payload, sniff_format
from flow.contract.messages import AudioFormat
from flow.replay.recording import Recording

RATE = 16_000
STEP_MS = 100
VOICED_DBFS = -40.0


@dataclass
class _Segment:
    t: float
    fmt: AudioFormat | None
    audio: list[bytes] = field(default_factory=list)


def segments(rec: Recording) -> list[_Segment]:
    out: list[_Segment] = []
    open_: _Segment | None = None
    for e in rec.inbound:
        if e.event == "start-recording":
            fmt = None
            try:
                payload = {"mimeType": e.data} if isinstance(e.data, str) else e.data
                fmt = parse_start_payload(payload) if isinstance(payload, dict) else None
            except ValueError:
                pass
            open_ = _Segment(e.t, fmt)
            out.append(open_)
        elif e.event == "stop-recording":
            open_ = None
        elif e.event == "audio-stream":
            data = _audio(e.data)
            if not data:
                continue
            if open_ is None:
                open_ = _Segment(e.t, None)
                out.append(open_)
            if not open_.audio:
                open_.t = e.t
            open_.audio.append(data)
    return [s for s in out if s.audio]


def _audio(payload: object) -> bytes:
    """The bytes of an `audio-stream` payload as the server takes them (bare, or wrapped)."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, dict):
        for key in ("audio", "data", "chunk"):
            if isinstance(payload.get(key), bytes):
                return payload[key]
    return b""


def decode(seg: _Segment) -> bytes:
    """Mono s16le at RATE (blocking: ffmpeg for containers)."""
    data = b"".join(seg.audio)
    container = seg.fmt.container if seg.fmt else (sniff_format(data[:64]) or "pcm16")
    if container == "pcm16":
        fmt = seg.fmt or AudioFormat("pcm16")
        return PcmConverter(fmt.rate, fmt.channels, RATE).convert(data)
    done = subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", "pipe:0", "-ac", "1",
                           "-ar", str(RATE), "-f", "s16le", "pipe:1"], input=data, capture_output=True,
                          timeout=60, check=False)
    return done.stdout


def levels(rec: Recording) -> list[tuple[float, float]]:
    """`(t_ms, dBFS)` every `STEP_MS` of the session's input audio (blocking)."""
    out: list[tuple[float, float]] = []
    step = RATE * 2 * STEP_MS // 1000
    for seg in segments(rec):
        pcm = decode(seg)
        for i in range(0, len(pcm), step):
            out.append((round(seg.t + i / 2 / RATE * 1000, 1), round(level_dbfs(pcm[i:i + step]), 1)))
    return out
