"""The embedded offline providers: pocketsphinx, piper and the echo responder, with real speech."""

from __future__ import annotations

import asyncio
import subprocess
import threading

import pytest

from flow.config import Settings
from flow.ffmpeg import ffmpeg_path
from flow.providers import ChatMessage, ProviderError
from flow.resources import Resources
from nodes.responder.echo import EchoResponder
from nodes.synthesizer.piper import PiperSynthesizer
from nodes.transcriber.pocketsphinx import PocketsphinxTranscriber
from tests.support.speech import pcm16, speak_espeak, speak_piper


@pytest.fixture(scope="module")
def resources():
    r = Resources(Settings())
    yield r
    r.cpu_pool.shutdown(wait=True)


def mp3_to_pcm(mp3: bytes) -> bytes:
    return subprocess.run([ffmpeg_path(), "-loglevel", "error", "-f", "mp3", "-i", "pipe:0", "-f", "s16le", "-ac", "1",
                           "-ar", "16000", "pipe:1"], input=mp3, capture_output=True, check=True).stdout


def words(text: str) -> set[str]:
    return set(text.lower().split())


async def test_pocketsphinx_recognises_piper_speech(resources) -> None:
    stt = PocketsphinxTranscriber(resources)
    text = await stt.transcribe(pcm16(speak_piper("What is the weather like in Paris today?")), 16000, 2, 1)
    assert {"weather", "paris", "today"} <= words(text), text


async def test_pocketsphinx_recognises_espeak_at_48k(resources) -> None:
    stt = PocketsphinxTranscriber(resources)
    text = await stt.transcribe(pcm16(speak_espeak("what is the weather today"), 48000), 48000, 2, 1)
    assert {"weather", "today"} & words(text), text  # pocketsphinx hears espeak poorly; piper is the real check


async def test_pocketsphinx_silence_is_empty(resources) -> None:
    stt = PocketsphinxTranscriber(resources)
    assert await stt.transcribe(b"\0" * 32000, 16000, 2, 1) == ""


async def test_twenty_at_once_share_a_bounded_pool_and_the_loop_keeps_running(resources) -> None:
    stt = PocketsphinxTranscriber(resources)
    audio = pcm16(speak_piper("Good morning."))
    texts = await asyncio.gather(*(stt.transcribe(audio, 16000, 2, 1) for _ in range(20)))
    assert all("morning" in t for t in texts)
    assert 1 <= stt.pool.created <= resources.cpu_workers
    loop_thread = threading.current_thread().name
    assert loop_thread not in stt.pool.threads
    assert all(name.startswith("voicegraph-cpu") for name in stt.pool.threads)


async def test_piper_speaks_mp3(resources) -> None:
    tts = PiperSynthesizer(resources)
    mp3 = await tts.synthesize("Good morning. The weather is sunny today.")
    pcm = mp3_to_pcm(mp3)
    assert 1.5 < len(pcm) / 32000 < 6.0
    # round trip: what piper said, pocketsphinx hears
    text = await PocketsphinxTranscriber(resources).transcribe(pcm, 16000, 2, 1)
    # piper samples noise, so each synthesis differs a little: ask for most, not all, words
    assert len({"good", "morning", "weather", "sunny", "today"} & words(text)) >= 4, text


async def test_piper_long_text_is_split_not_cut(resources) -> None:
    tts = PiperSynthesizer(resources)
    long_text = " ".join(f"This is sentence number {i}." for i in range(60))
    mp3 = await tts.synthesize(long_text)
    assert len(mp3) > 50_000


def test_piper_bad_voice_path(resources, tmp_path) -> None:
    with pytest.raises(ProviderError, match="voice not found"):
        PiperSynthesizer(resources, voice=str(tmp_path / "nope.onnx"))


async def test_echo_is_honest_and_counts_turns() -> None:
    echo = EchoResponder()
    history = [ChatMessage("system", "x"), ChatMessage("user", "first"), ChatMessage("assistant", "a"),
               ChatMessage("user", "second one")]
    reply = "".join([p async for p in echo.reply(history)])
    assert reply == 'You said: "second one". That was turn 2 of this conversation.'
    assert "".join([p async for p in echo.reply([ChatMessage("user", " ")])]) == "I did not hear anything."
