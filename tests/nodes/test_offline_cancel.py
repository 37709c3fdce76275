"""Cancelling an offline provider call stops its CPU work, not only the await (real piper, real pocketsphinx).

What is asserted are counters and orders that a still-running job could not produce; how fast
work stops is measured by `flow.bench.cancel`, not asserted here.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest

from flow.audio.mp3 import encode_mp3_sync
from flow.config import Settings
from flow.contract.cpu_pool import CancelToken
from flow.contract.resources import Resources
from flow.testing.speech import pcm16, speak_piper
from nodes.synthesizer.piper import PiperSynthesizer
from nodes.transcriber.pocketsphinx import PocketsphinxTranscriber

SENTENCES = 20
LONG = " ".join(f"This is sentence number {i} of a long answer that nobody will hear to the end."
                for i in range(SENTENCES))


@pytest.fixture
def fresh():
    r = Resources(Settings())
    yield r
    r.cpu_pool.shutdown(wait=True, cancel_futures=True)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (on the loop) until `condition()` holds; fail naming `what` after 20 s."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"gave up waiting: {what}")


async def test_cancelled_piper_syntheses_stop_and_another_session_goes_next(fresh) -> None:
    assert len(LONG) > 1500
    tts = PiperSynthesizer(fresh)
    await fresh.run_cpu(tts.preload)
    slot, workers = tts.slot(), fresh.cpu_workers
    longs = [asyncio.create_task(tts.synthesize(LONG, owner="a")) for _ in range(workers)]
    await until(lambda: fresh.cpu_pool.running("a") == workers, "every worker synthesizing a long reply")
    for task in longs:
        task.cancel()
    before = slot.sentences
    # every worker was taken by a long reply: this one can only run once a cancelled one stopped
    mp3 = await tts.synthesize("Good morning.", owner="b")
    assert len(mp3) > 1000
    after = slot.sentences - before
    assert after <= workers + 1, after  # at most the sentence in flight per long reply, and b's
    for task in longs:
        with pytest.raises(asyncio.CancelledError):
            await task
    await until(lambda: fresh.cpu_pool.running("a") == 0, "the long replies let go of their threads")
    assert slot.cancelled == workers
    assert slot.sentences - before <= workers + 1  # nothing more was synthesized since


async def test_a_piper_call_cancelled_before_it_starts_does_no_work(fresh) -> None:
    tts = PiperSynthesizer(fresh)
    await fresh.run_cpu(tts.preload)
    token = CancelToken()
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        tts.synthesize_sync(LONG, cancel=token)
    assert tts.slot().sentences == 0 and tts.slot().cancelled == 1
    with pytest.raises(asyncio.CancelledError):  # no ffmpeg either
        encode_mp3_sync(b"\0" * 32000, 16000, cancel=token)


async def test_a_cancelled_decode_kills_its_worker_and_the_next_decode_works(fresh) -> None:
    stt = PocketsphinxTranscriber(fresh)
    short = pcm16(speak_piper("Good morning."))
    await fresh.run_cpu(stt.preload)
    (worker,) = stt.pool.workers()
    task = asyncio.create_task(stt.transcribe(short * 40, 16000, 2, 1, owner="a"))  # ~40 s of speech
    await until(lambda: worker.busy, "decoding")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(worker.proc.wait, 10) == -signal.SIGKILL
    await until(lambda: fresh.cpu_pool.running("a") == 0, "the decoding thread let go")
    assert worker not in stt.pool.workers() and stt.pool.cancelled == 1
    assert "morning" in await stt.transcribe(short, 16000, 2, 1, owner="b")
    assert stt.pool.started == 2  # a fresh worker took over
