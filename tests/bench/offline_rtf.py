"""Real-time factors of the offline providers, printed as a table (`python -m tests.bench.offline_rtf`).

Not a test: figures for judging changes. Real-time factor = processing time / audio duration, so
below 1 is faster than real time. "cold" is the first call in a fresh process-wide `Resources`
(decoder build / voice load included; model files already in the OS page cache); "warm" is the
median of `--runs` later calls; "parallel" runs twice `cpu_workers` calls at once and divides the
wall time by the total audio; "loop stall" is the longest the event loop was kept from running
during those parallel calls (what every other session would feel).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable

from flow.audio.ffmpeg import ffmpeg_path
from flow.config import Settings
from flow.contract.resources import Resources
from nodes.synthesizer.piper import PiperSynthesizer
from nodes.transcriber.pocketsphinx import PocketsphinxTranscriber

UTTERANCE = "I would like a cup of coffee please. What is the weather like today?"
"""About 3.5 s when piper speaks it: a typical user turn."""
REPLY = "Tomorrow in Paris it will be sunny with a light breeze. Expect a high of twenty one degrees."
"""A two-sentence assistant reply."""


def mp3_to_pcm16k(mp3: bytes) -> bytes:
    return subprocess.run([ffmpeg_path(), "-loglevel", "error", "-f", "mp3", "-i", "pipe:0", "-ac", "1",
                           "-ar", "16000", "-f", "s16le", "pipe:1"], input=mp3, capture_output=True,
                          check=True).stdout


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    t = time.perf_counter()
    await call()
    return time.perf_counter() - t


async def loop_gaps(stop: asyncio.Event) -> float:
    """The longest the event loop went without running this task (5 ms sleeps), until `stop`."""
    worst, last = 0.0, time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        worst, last = max(worst, now - last - 0.005), now
    return worst


async def measure(call: Callable[[], Awaitable[object]], runs: int, parallel: int) -> tuple[float, ...]:
    """(cold s, warm median s, parallel wall s per call, worst loop stall s) for one provider call."""
    cold = await timed(call)
    warm = statistics.median([await timed(call) for _ in range(runs)])
    await asyncio.gather(*(call() for _ in range(parallel)))  # starts the remaining decoders
    stop = asyncio.Event()
    watcher = asyncio.create_task(loop_gaps(stop))
    t = time.perf_counter()
    await asyncio.gather(*(call() for _ in range(parallel)))
    wall = time.perf_counter() - t
    stop.set()
    return cold, warm, wall / parallel, await watcher


async def main(runs: int) -> None:
    # the test speech is made with a throwaway Resources, so the measured one starts cold
    maker = Resources(Settings())
    speech = mp3_to_pcm16k(await PiperSynthesizer(maker).synthesize(UTTERANCE))
    maker.cpu_pool.shutdown(wait=True)
    speech_s = len(speech) / 32_000

    r = Resources(Settings())
    parallel = 2 * r.cpu_workers
    stt, tts = PocketsphinxTranscriber(r), PiperSynthesizer(r)
    stt_cold, stt_warm, stt_par, stt_stall = await measure(lambda: stt.transcribe(speech, 16000, 2, 1), runs, parallel)
    tts_cold, tts_warm, tts_par, tts_stall = await measure(lambda: tts.synthesize(REPLY), runs, parallel)
    reply_s = len(mp3_to_pcm16k(await tts.synthesize(REPLY))) / 32_000
    heard = await stt.transcribe(speech, 16000, 2, 1)
    r.cpu_pool.shutdown(wait=True)

    print(f"{os.cpu_count()} CPUs, cpu_workers={r.cpu_workers}, {runs} warm runs, {parallel} in parallel")
    print(f"pocketsphinx heard: {heard!r}")
    print()
    print("| provider | audio (s) | cold call (s) | warm RTF | parallel RTF | loop stall (ms) |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| pocketsphinx STT | {speech_s:.2f} | {stt_cold:.2f} | {stt_warm / speech_s:.3f} | "
          f"{stt_par / speech_s:.3f} | {1000 * stt_stall:.0f} |")
    print(f"| piper TTS + MP3 | {reply_s:.2f} | {tts_cold:.2f} | {tts_warm / reply_s:.3f} | "
          f"{tts_par / reply_s:.3f} | {1000 * tts_stall:.0f} |")
    print(f"\npocketsphinx decoders built: {stt.pool.started} (cap {r.cpu_workers}); "
          f"piper voice loads: {tts.slot().loads}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(main(parser.parse_args().runs))
