"""Format parsing, sniffing, PCM conversion, level, WAV and MP3-duration helpers."""

from __future__ import annotations

import base64
import io
import math
import wave

import numpy as np
import pytest

from flow.audio.formats import SILENCE_DBFS, PcmConverter, level_dbfs, parse_start_payload, sniff_format, wav_bytes
from flow.audio.mp3 import b64_size, encode_mp3_sync, mp3_seconds, mp3_seconds_b64
from flow.contract.messages import AudioFormat
from flow.testing.speech import encode, silence, speak_espeak


@pytest.mark.parametrize(("payload", "expected"), [
    ({"mimeType": "audio/webm;codecs=opus"}, AudioFormat("webm")),
    ({"mimeType": "audio/ogg; codecs=opus"}, AudioFormat("ogg")),
    ({"mimeType": "audio/x-wav"}, AudioFormat("wav")),
    ({"mimeType": "audio/mpeg"}, AudioFormat("mp3")),
    ({"mimeType": "audio/pcm;rate=48000"}, AudioFormat("pcm16", 48000, 1)),
    ({"mimeType": "audio/L16;rate=8000;channels=2"}, AudioFormat("pcm16", 8000, 2)),
    ({"format": "pcm16", "sampleRate": 44100, "channels": 2}, AudioFormat("pcm16", 44100, 2)),
    ({"format": "ogg"}, AudioFormat("ogg")),
    ({"language": "en"}, None),
])
def test_parse_start_payload(payload, expected) -> None:
    assert parse_start_payload(payload) == expected


@pytest.mark.parametrize("payload", [
    {"mimeType": "video/mp4"}, {"format": "flac"}, {"format": "pcm16", "sampleRate": 100},
    {"format": "pcm16", "channels": 0}, {"mimeType": 5}, {"format": "pcm16", "sampleRate": "fast"},
])
def test_parse_start_payload_rejects(payload) -> None:
    with pytest.raises(ValueError):
        parse_start_payload(payload)


@pytest.mark.parametrize("fmt", ["webm", "ogg", "wav", "mp3"])
def test_sniff_real_containers(fmt) -> None:
    assert sniff_format(encode(speak_espeak("sniff me"), fmt)[:64]) == fmt


def test_sniff_raw_pcm_is_none() -> None:
    assert sniff_format(silence(0.5, "pcm16_16k")[:64]) is None
    assert sniff_format(b"") is None


def tone(rate: int, seconds: float, channels: int = 1, amp: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    x = (np.sin(2 * math.pi * 440 * t) * amp * 32767).astype("<i2")
    return np.repeat(x, channels).tobytes()


@pytest.mark.parametrize(("rate", "channels"), [(48000, 1), (48000, 2), (8000, 1), (16000, 2), (44100, 1)])
def test_converter_is_chunking_invariant_and_keeps_duration(rate, channels) -> None:
    data = tone(rate, 1.0, channels)
    whole = PcmConverter(rate, channels).convert(data)
    conv = PcmConverter(rate, channels)
    sliced = b"".join(conv.convert(data[i:i + 997]) for i in range(0, len(data), 997))
    assert abs(len(sliced) - 32000) <= 4 and abs(len(whole) - 32000) <= 4
    assert abs(level_dbfs(sliced) - level_dbfs(whole)) < 0.1
    assert abs(level_dbfs(sliced) - 20 * math.log10(0.5 / math.sqrt(2))) < 0.5


def test_level_of_silence_and_full_scale() -> None:
    assert level_dbfs(b"\0" * 640) == SILENCE_DBFS
    assert level_dbfs(b"") == SILENCE_DBFS
    assert level_dbfs(np.full(320, 32767, "<i2").tobytes()) > -0.01


def test_wav_bytes_roundtrip() -> None:
    pcm = tone(16000, 0.25)
    with wave.open(io.BytesIO(wav_bytes(pcm, 16000))) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (16000, 2, 1)
        assert w.readframes(w.getnframes()) == pcm


def test_mp3_duration_from_the_header_and_garbage_is_zero() -> None:
    three = encode_mp3_sync(bytes(2 * 22050 * 3), 22050)
    b64 = base64.b64encode(three).decode()
    assert b64_size(b64) == len(three) and b64_size(base64.b64encode(b"ab").decode()) == 2
    assert abs(mp3_seconds_b64(b64) - 3.0) < 0.15
    assert abs(mp3_seconds(three[:4096], len(three)) - 3.0) < 0.15
    assert mp3_seconds_b64(base64.b64encode(b"not an mp3 at all").decode()) == 0.0
    assert mp3_seconds_b64("%%% not base64") == 0.0
    assert mp3_seconds_b64(None) == 0.0


async def test_mp3_encoding_keeps_the_speech_and_stops_between_slices_once_cancelled() -> None:
    import asyncio

    from flow.audio.ffmpeg import decode_to_pcm16
    from flow.contract.cpu_pool import CancelToken
    from flow.testing.speech import pcm16

    speech = pcm16(speak_espeak("The offline voice is encoded inside the process."), rate=22050)
    mp3 = encode_mp3_sync(speech, 22050)
    back = np.frombuffer(await decode_to_pcm16(mp3, rate=22050), dtype="<i2").astype(float)
    sent = np.frombuffer(speech, dtype="<i2").astype(float)
    assert abs(len(back) - len(sent)) < 22050 * 0.08  # encoder delay and padding only
    lag = max(range(0, 3000), key=lambda k: float(np.dot(back[k:k + 20000], sent[:20000])))
    aligned = back[lag:lag + len(sent)][: len(sent)]
    assert np.corrcoef(aligned, sent[: len(aligned)])[0, 1] > 0.9  # the same speech, not noise

    class CancelOnSecondLook(CancelToken):
        looks = 0

        def raise_if_cancelled(self) -> None:
            self.looks += 1
            if self.looks == 2:
                self.cancel()
            super().raise_if_cancelled()

    token = CancelOnSecondLook()
    with pytest.raises(asyncio.CancelledError):
        encode_mp3_sync(bytes(2 * 22050 * 60), 22050, cancel=token)  # 60 s: 120 slices
    assert token.looks == 2  # stopped at the first slice boundary after the cancel
