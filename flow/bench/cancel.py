"""Cancellation of offline work: how soon a cancelled piper synthesis or pocketsphinx decode stops.

Real providers on the real CPU pool. Each call is cancelled at a random point of a long job; the
figure is the time from `task.cancel()` on the loop to the moment the pool thread let go of the
job (piper) or the decoder process was gone (pocketsphinx). The last row is the case that made
this matter: another session's short reply, asked for right after long ones were cancelled.

`python -m flow.bench.cancel [cancels]` prints the rows; `rows()` gives them to `voicegraph bench`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from flow.config import Settings
from flow.contract.cpu_pool import CancelToken
from flow.contract.resources import Resources

LONG = " ".join(f"This is sentence number {i} of a long answer that nobody will hear to the end."
                for i in range(20))
SHORT = "Good morning."


def stats_ms(values: list[float]) -> str:
    from flow.bench.figures import spread

    return spread(values, digits=1)


async def _cancel_at(task: asyncio.Task[Any], delay_s: float) -> float:
    """Cancel `task` after `delay_s`; the `perf_counter` of the cancel."""
    await asyncio.sleep(delay_s)
    at = time.perf_counter()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return at


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll thread-side state from the loop every millisecond (the pool offers nothing to await)."""
    for _ in range(30_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise RuntimeError(f"gave up waiting: {what}")


async def _until_free(r: Resources, owner: str) -> None:
    await _until(lambda: not r.cpu_pool.running(owner), f"{owner}'s jobs let go of their threads")


async def piper_stops(r: Resources, cancels: int, rng: random.Random) -> list[float]:
    """ms from cancel to the pool thread free again, cancels anywhere in a ~10 s synthesis."""
    from nodes.synthesizer.piper import PiperSynthesizer

    tts = PiperSynthesizer(r)
    await r.run_cpu(tts.preload)
    freed: list[float] = []

    def job(cancel: CancelToken) -> None:
        try:
            tts.synthesize_sync(LONG, cancel=cancel)
        finally:
            freed.append(time.perf_counter())

    delays = []
    for _ in range(cancels):
        freed.clear()
        at = await _cancel_at(asyncio.create_task(r.run_cpu(job, owner="bench")), rng.uniform(0.02, 4.0))
        await _until_free(r, "bench")
        delays.append(1000 * (freed[0] - at))
    return delays


async def pocketsphinx_kills(r: Resources, cancels: int, rng: random.Random) -> list[float]:
    """ms from cancel to the decoder process gone, cancels anywhere in the first second of a decode."""
    from flow.testing.speech import pcm16, speak_piper
    from nodes.transcriber.pocketsphinx import PocketsphinxTranscriber

    stt = PocketsphinxTranscriber(r)
    audio = pcm16(speak_piper(SHORT)) * 40  # ~40 s of speech: seconds of decoding
    delays = []
    for _ in range(cancels):
        await r.run_cpu(stt.preload)  # a worker ready (the last one was killed): not measured
        task = asyncio.create_task(stt.transcribe(audio, 16000, 2, 1, owner="bench"))
        await _until(lambda: any(w.busy for w in stt.pool.workers()), "decoding")
        (worker,) = [w for w in stt.pool.workers() if w.busy]

        def gone(proc: Any = worker.proc) -> float:
            proc.wait()
            return time.perf_counter()

        exited = asyncio.create_task(asyncio.to_thread(gone))
        at = await _cancel_at(task, rng.uniform(0.0, 1.0))
        delays.append(1000 * (await exited - at))
        await _until_free(r, "bench")
    return delays


async def other_session_waits(r: Resources, rounds: int, rng: random.Random,
                              cancellable: bool = True) -> list[float]:
    """ms session b's short reply waited for a thread, asked right after every worker's long reply
    of session a was cancelled. `cancellable=False` runs the long replies as before this pool
    could stop them (a job without a `cancel` parameter runs to its end)."""
    from nodes.synthesizer.piper import PiperSynthesizer

    tts = PiperSynthesizer(r)
    await r.run_cpu(tts.preload)
    started: list[float] = []

    def short() -> None:
        started.append(time.perf_counter())
        tts.synthesize_sync(SHORT)

    def long(cancel: CancelToken) -> None:
        tts.synthesize_sync(LONG, cancel=cancel if cancellable else None)

    waits = []
    for _ in range(rounds):
        longs = [asyncio.create_task(r.run_cpu(long, owner="a")) for _ in range(r.cpu_workers)]
        await _until(lambda: r.cpu_pool.running("a") == r.cpu_workers, "every worker on a long reply")
        await asyncio.sleep(rng.uniform(0.1, 1.0))
        for task in longs:
            task.cancel()
        started.clear()
        asked = time.perf_counter()
        await r.run_cpu(short, owner="b")
        waits.append(1000 * (started[0] - asked))
        await asyncio.gather(*longs, return_exceptions=True)
        await _until_free(r, "a")
    return waits


async def rows(cancels: int = 20, seed: int = 1, compare: bool = True) -> list[tuple[str, str, str]]:
    """(scenario, measure, figures) rows in `voicegraph bench`'s table; `compare` adds one round of
    the uncancellable case (~10 s of CPU)."""
    rng = random.Random(seed)
    r = Resources(Settings())
    try:
        piper = await piper_stops(r, cancels, rng)
        sphinx = await pocketsphinx_kills(r, cancels, rng)
        waits = await other_session_waits(r, max(2, cancels // 4), rng)
        before = await other_session_waits(r, 1, rng, cancellable=False) if compare else []
    finally:
        r.cpu_pool.shutdown(wait=True, cancel_futures=True)
        await r.aclose()
    figures = stats_ms(waits) + (f" (jobs that ignore the cancel: {stats_ms(before)})" if before else "")
    return [
        ("9 cancellation", "cancel → piper synthesis stopped, pool thread free (ms)", stats_ms(piper)),
        ("9 cancellation", "cancel → pocketsphinx decoder process killed (ms)", stats_ms(sphinx)),
        ("9 cancellation", f"another session's reply waited for a thread, asked right after {r.cpu_workers} "
         "long replies were cancelled (ms)", figures),
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for scenario, measure, figures in asyncio.run(rows(int(args[0]) if args else 20)):
        print(f"| {scenario} | {measure} | {figures} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
