"""The offline default end to end: real speech in, pocketsphinx, echo, piper, MP3 out — no key."""

from __future__ import annotations

import base64

import pytest

from flow.testing.servers import voicegraph
from flow.testing.speech import MIME, encode, mp3_seconds, speak_espeak, speak_piper


@pytest.mark.parametrize(("speaker", "sentence", "fmt", "must_hear"), [
    ("piper", "Please set a timer for ten minutes.", "pcm16_16k", {"timer", "ten", "minutes"}),
    ("piper", "What is the weather like in Paris today?", "pcm16_48k", {"weather", "paris", "today"}),
    ("espeak", "what is the weather today", "webm", {"weather", "today"}),
])
async def test_spoken_question_gets_a_spoken_answer(clients, speaker, sentence, fmt, must_hear) -> None:
    wav = speak_piper(sentence) if speaker == "piper" else speak_espeak(sentence)
    audio = encode(wav, fmt)
    slice_bytes = {"pcm16_16k": 1280, "pcm16_48k": 3840, "webm": 400}[fmt]  # ~40 ms slices
    async with voicegraph("default") as srv:  # no key: the default graph runs offline
        assert srv.server.providers() == {"stt": "pocketsphinx", "llm": "echo", "tts": "piper"}
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME[fmt]})
        await c.stream(audio, slice_bytes, pace_s=0.002)
        result = await c.wait("speech-result", timeout=30)
        heard = set(result["text"].split())
        assert len(must_hear & heard) >= len(must_hear) - (1 if speaker == "espeak" else 0), result["text"]
        resp = await c.wait("ai-response", timeout=30)
        assert result["text"] in resp["text"]
        seconds = mp3_seconds(base64.b64decode(resp["audio"]))
        words = len(resp["text"].split())
        assert 0.15 * words < seconds < 0.8 * words  # plausible speaking rate


async def test_a_tone_is_no_words_final_empty_and_no_turn(clients) -> None:
    import numpy as np

    t = np.arange(16000) / 16000
    tone = (np.sin(2 * np.pi * 440 * t) * 0.3 * 32767).astype("<i2").tobytes()  # 1 s: "speech" to the detector
    audio = b"\0" * 9600 + tone + b"\0" * 32000
    async with voicegraph("offline") as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
        await c.stream(audio, 1280)
        result = await c.wait("speech-result", timeout=20)
        assert result["isFinal"] is True and result["text"] == ""
        await c.quiet(1.0)
        assert c.of("message-received") == [] and c.of("ai-response") == [] and c.of("error") == []
