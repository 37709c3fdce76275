"""The embedded offline providers — pocketsphinx, piper, echo — with real speech, no mocks.

Speech comes from piper (which pocketsphinx hears almost perfectly, though piper's output varies
from run to run) and from espeak-ng's `en-us+f2` voice (the one of its voices pocketsphinx hears
best). The phrases were chosen because pocketsphinx got them right in ten piper runs out of ten
and at every espeak speed from 110 to 140 wpm; the assertions still ask only for most of the
content words.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from flow.audio.ffmpeg import ffmpeg_path
from flow.config import Settings
from flow.contract.providers import ChatMessage, ProviderError, Responder, Synthesizer, Transcriber
from flow.contract.resources import Resources
from flow.testing.speech import pcm16, speak_piper
from nodes.responder.echo import EchoResponder
from nodes.synthesizer.piper import PiperSynthesizer, default_voice
from nodes.transcriber.pocketsphinx import PocketsphinxTranscriber


@pytest.fixture(scope="module")
def resources():
    r = Resources(Settings())
    yield r
    r.cpu_pool.shutdown(wait=True)


@pytest.fixture
def fresh():
    """Resources of their own, so counts (decoders built, voices loaded) start at zero."""
    r = Resources(Settings())
    yield r
    r.cpu_pool.shutdown(wait=True)


@functools.cache
def espeak_pcm(text: str, rate: int = 16_000, channels: int = 1) -> bytes:
    """`text` spoken by espeak-ng as raw s16le at `rate` with `channels`."""
    wav = subprocess.run(["espeak-ng", "-v", "en-us+f2", "-s", "130", "--stdout", text],
                         capture_output=True, check=True).stdout
    return subprocess.run([ffmpeg_path(), "-loglevel", "error", "-i", "pipe:0", "-ac", str(channels),
                           "-ar", str(rate), "-f", "s16le", "pipe:1"],
                          input=wav, capture_output=True, check=True).stdout


def mp3_to_pcm(mp3: bytes) -> bytes:
    return subprocess.run([ffmpeg_path(), "-loglevel", "error", "-f", "mp3", "-i", "pipe:0", "-f", "s16le",
                           "-ac", "1", "-ar", "16000", "pipe:1"], input=mp3, capture_output=True, check=True).stdout


def heard(text: str, expected: set[str]) -> int:
    """How many of the `expected` words are in `text`."""
    return len(expected & set(text.lower().split()))


def test_providers_satisfy_the_protocols(resources) -> None:
    assert isinstance(PocketsphinxTranscriber(resources), Transcriber)
    assert isinstance(PiperSynthesizer(resources), Synthesizer)
    assert isinstance(EchoResponder(resources), Responder)


# --- pocketsphinx ------------------------------------------------------------------------------

async def test_pocketsphinx_hears_piper(resources) -> None:
    text = await PocketsphinxTranscriber(resources).transcribe(
        pcm16(speak_piper("What is the weather like in Paris today?")), 16000, 2, 1)
    assert text == text.lower().strip()
    assert heard(text, {"what", "weather", "paris", "today"}) >= 3, text


@pytest.mark.parametrize(("text", "words", "rate", "channels"), [
    ("i would like a cup of coffee please", {"like", "cup", "coffee", "please"}, 48000, 2),
    ("play some music in the living room", {"play", "music", "living", "room"}, 22050, 1),
])
async def test_pocketsphinx_hears_espeak_at_other_rates(resources, text, words, rate, channels) -> None:
    stt = PocketsphinxTranscriber(resources, language="en-US")
    result = await stt.transcribe(espeak_pcm(text, rate, channels), rate, 2, channels)
    assert heard(result, words) >= 2, result


async def test_pocketsphinx_silence_noise_and_scraps_are_empty(resources) -> None:
    stt = PocketsphinxTranscriber(resources)
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(32000) * 3000).astype("<i2").tobytes()
    assert await stt.transcribe(b"\0" * 32000, 16000, 2, 1) == ""
    assert await stt.transcribe(noise, 16000, 2, 1) == ""
    assert await stt.transcribe(b"", 16000, 2, 1) == ""  # the decoder itself crashes on this
    assert await stt.transcribe(b"\x01\x10" * 300, 16000, 2, 1) == ""  # 19 ms


async def test_pocketsphinx_refuses_what_it_cannot_do(resources) -> None:
    with pytest.raises(ProviderError, match="English"):
        PocketsphinxTranscriber(resources, language="fr")
    stt = PocketsphinxTranscriber(resources)
    with pytest.raises(ProviderError, match="English"):
        await stt.transcribe(b"\0" * 3200, 16000, 2, 1, language="de-DE")
    with pytest.raises(ProviderError, match="16-bit"):
        await stt.transcribe(b"\0" * 3200, 16000, 1, 1)


async def test_twenty_at_once_share_a_bounded_pool_and_the_loop_keeps_running(fresh) -> None:
    stt = PocketsphinxTranscriber(fresh)
    audio = pcm16(speak_piper("Good morning."))
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    texts = await asyncio.gather(*(stt.transcribe(audio, 16000, 2, 1) for _ in range(20)))
    during = ticks - start
    done.set()
    await tick_task
    assert all("morning" in t for t in texts), texts
    assert 1 <= stt.pool.started <= fresh.cpu_workers  # 2 on CI, for 20 calls
    assert PocketsphinxTranscriber(fresh).pool is stt.pool  # one pool per process
    assert threading.current_thread().name not in stt.pool.threads
    assert all(name.startswith("voicegraph-cpu") for name in stt.pool.threads)
    assert during >= 3  # the loop kept ticking while twenty utterances were decoded
    # the decoders run in processes of their own (the binding never releases the GIL)
    assert {w.proc.pid for w in stt.pool.workers()}.isdisjoint({os.getpid()})


async def test_a_crashed_or_closed_decoder_is_replaced(fresh) -> None:
    stt = PocketsphinxTranscriber(fresh)
    audio = pcm16(speak_piper("Good morning."))
    assert "morning" in await stt.transcribe(audio, 16000, 2, 1)
    (worker,) = stt.pool.workers()
    worker.proc.kill()
    worker.proc.wait()
    assert "morning" in await stt.transcribe(audio, 16000, 2, 1)  # a new worker took over
    assert worker not in stt.pool.workers() and stt.pool.started == 2
    stt.pool.close()
    assert stt.pool.workers() == []
    assert "morning" in await stt.transcribe(audio, 16000, 2, 1)
    assert stt.pool.started == 3


# --- piper -------------------------------------------------------------------------------------

async def test_piper_speaks_mp3_that_pocketsphinx_understands(resources) -> None:
    mp3 = await PiperSynthesizer(resources).synthesize(
        "I would like a cup of coffee please. Thank you very much.")
    assert mp3[:3] == b"ID3" or mp3[0] == 0xFF  # an MP3 stream
    pcm = mp3_to_pcm(mp3)
    assert 2.0 < len(pcm) / 32000 < 8.0
    text = await PocketsphinxTranscriber(resources).transcribe(pcm, 16000, 2, 1)
    assert heard(text, {"like", "cup", "coffee", "please", "thank", "very", "much"}) >= 5, text


async def test_piper_long_text_is_split_and_spoken_to_the_end(resources) -> None:
    filler = " ".join(f"Sentence number {i} is here." for i in range(20))
    text = f"{filler} Play some music in the living room."
    tts = PiperSynthesizer(resources)
    assert len(await resources.run_cpu(tts.plan_sync, text)) > 1  # so it is synthesized in pieces
    pcm = mp3_to_pcm(await tts.synthesize(text))
    assert len(pcm) / 32000 > 20.0  # every sentence spoken (~1.3 s each)
    tail = await PocketsphinxTranscriber(resources).transcribe(pcm[-4 * 32000:], 16000, 2, 1)
    assert heard(tail, {"play", "music", "living", "room"}) >= 2, tail


async def test_piper_voice_loads_once_per_process(fresh) -> None:
    a, b = PiperSynthesizer(fresh), PiperSynthesizer(fresh)
    mp3s = await asyncio.gather(*(tts.synthesize("Good morning.") for tts in (a, b, a, b)))
    assert all(len(m) > 1000 for m in mp3s)
    assert a.slot() is b.slot() and a.slot().loads == 1


async def test_piper_computes_on_the_pool_threads_alone(fresh) -> None:
    """onnxruntime's default is a spinning thread per core per session on top of the pool's: with
    a pool thread per core, a model run gets one thread, the caller's."""
    tts = PiperSynthesizer(fresh)
    await fresh.run_cpu(tts.preload)
    options = tts.slot().get().session.get_session_options()
    cores = os.cpu_count() or 1
    assert options.intra_op_num_threads == max(1, cores // fresh.cpu_workers)
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert len(await tts.synthesize("Good morning, how are you today?")) > 1000


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def c_heap_in_use() -> int:
    """Bytes the C heap has handed out and not had back (glibc's `mallinfo2`: heap + mmapped)."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        pytest.skip("no glibc mallinfo2 here")
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return info.uordblks + info.hblkhd


def test_piper_gives_the_model_s_memory_back_after_every_run(fresh) -> None:
    """A run of the model grows onnxruntime's arena by ~0.45 MB per phoneme id; each run must
    shrink it when it ends, short ones too: a long reply whose last run was short left the arena
    holding tens of megabytes (here: 41 MB before, 0.2 MB now)."""
    tts = PiperSynthesizer(fresh)
    short = tts.plan_sync("Good morning. How are you today?")[0]
    tts.job_pcm_sync(short)  # loaded and warm
    before = c_heap_in_use()
    long_text = ("the quick brown fox jumps over the lazy dog while the band plays on " * 8).strip()
    for runs in [*tts.plan_sync(long_text), short, short]:  # long runs, then short ones last
        tts.job_pcm_sync(runs)
    grown = (c_heap_in_use() - before) / 2**20
    assert grown < 12, f"the C heap kept {grown:.0f} MB after the model's runs"


def test_piper_bad_voice_paths(resources, tmp_path) -> None:
    with pytest.raises(ProviderError, match="voice not found"):
        PiperSynthesizer(resources, voice=str(tmp_path / "nope.onnx"))
    (tmp_path / "bare.onnx").write_bytes(b"not a model")
    with pytest.raises(ProviderError, match="config not found"):
        PiperSynthesizer(resources, voice=str(tmp_path / "bare.onnx"))


async def test_piper_per_call_voice_is_a_name_beside_the_configured_one(fresh, tmp_path) -> None:
    src = default_voice()
    for name in ("one", "two"):  # two names for the bundled voice, in a directory of their own
        (tmp_path / f"{name}.onnx").symlink_to(src)
        (tmp_path / f"{name}.onnx.json").symlink_to(Path(f"{src}.json"))
    tts = PiperSynthesizer(fresh, voice=str(tmp_path / "one.onnx"))
    assert len(await tts.synthesize("Good morning.", voice="two")) > 1000
    assert tts.slot("two") is tts.slot()  # the same file behind both names: loaded once
    assert tts.slot().loads == 1
    for bad in ("../one", str(src), "three"):
        with pytest.raises(ProviderError, match="unknown piper voice"):
            await tts.synthesize("Hello.", voice=bad)
    with pytest.raises(ProviderError, match="nothing to say"):
        await tts.synthesize("  ")


# --- echo --------------------------------------------------------------------------------------

async def test_echo_is_honest_counts_turns_and_streams_sentences() -> None:
    echo = EchoResponder()
    history = [ChatMessage("system", "x"), ChatMessage("user", "first"), ChatMessage("assistant", "a"),
               ChatMessage("user", "second one")]
    pieces = [p async for p in echo.reply(history)]
    assert len(pieces) >= 2
    assert "".join(pieces) == 'You said: "second one". That was turn 2 of this conversation.'
    for silent in ([ChatMessage("user", " ")], [ChatMessage("system", "x")]):
        assert "".join([p async for p in echo.reply(silent)]) == "I did not hear anything."


async def test_models_are_preloaded_at_start_up_so_the_first_turn_does_not_wait() -> None:
    import asyncio

    from flow.testing.servers import voicegraph
    from nodes.synthesizer.piper import VoiceSlot
    from nodes.transcriber.decoder_pool import DecoderPool

    async with voicegraph("offline", preload=True) as srv:
        shared = srv.server.resources._shared

        def loaded() -> bool:
            pools = [v for v in shared.values() if isinstance(v, DecoderPool)]
            slots = [v for v in shared.values() if isinstance(v, VoiceSlot)]
            return bool(pools and slots) and pools[0].started == 1 and slots[0].loads == 1

        for _ in range(200):  # no client has connected: only the start-up preload can do this
            if loaded():
                break
            await asyncio.sleep(0.05)
        assert loaded() and not srv.server.sessions
    async with voicegraph("offline") as srv:  # preload off (VOICEGRAPH_PRELOAD=0): nothing loads
        await asyncio.sleep(0.5)
        assert not any(isinstance(v, DecoderPool) and v.started for v in srv.server.resources._shared.values())
