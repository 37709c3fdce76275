"""Speculative turns: end of speech → first audio, default graph vs `fast`, on the same stub.

A client streams real piper speech in real time (40 ms chunks) to a `voicegraph serve` process;
the clock starts when the last chunk holding speech is sent (the user stopped talking) and stops
at the reply's first audio (`ai-response`, or the first `ai-response-chunk` on a streaming
graph). The stub has the realistic latencies of the latency bench (STT 300 ms, first token
350 ms, 20 ms per token, TTS 250 ms); `silence_ms` is 700 and `speculate_after_ms` 250. Also
counted: provider requests thrown away (cancelled) per committed turn, for questions with and
without a mid-sentence pause (450 ms: past 250, short of 700).
"""

from __future__ import annotations

import asyncio
import functools

import numpy as np

from flow.bench.latency import realistic, stream_real_time
from flow.bench.procs import server_process
from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.speech import pcm16, speak_piper

FIRST, REST = "Could you tell me what the weather will be like", "in Paris tomorrow?"


def _trimmed(text: str) -> bytes:
    pcm = pcm16(speak_piper(text))
    x = np.abs(np.frombuffer(pcm, "<i2").astype(np.int32))
    return pcm[: (int(np.nonzero(x > 0.02 * 32768)[0][-1]) + 800) * 2]


@functools.cache  # piper speaks it once per run, not once per server
def question(paused: bool) -> tuple[bytes, float]:
    """The PCM of the question (with a 450 ms pause after FIRST if `paused`) and where its speech
    ends, in seconds."""
    lead = b"\0" * 9600
    speech = (_trimmed(FIRST) + b"\0" * (450 * 32) + _trimmed(REST)) if paused else _trimmed(f"{FIRST} {REST}")
    return lead + speech + b"\0" * 64000, (len(lead) + len(speech)) / 32000


def first_audio_event(graph: str) -> str:
    return "ai-response-chunk" if "streaming" in graph else "ai-response"


async def _turn(c: Recorder, audio: bytes, speech_s: float, i: int, event: str) -> float:
    end_of_speech = await stream_real_time(c, audio, speech_s, answers=i)
    await c.wait("ai-response", count=i + 1, timeout=30)
    ids = [p["id"] for _, e, p in c.events if e == "ai-response"]
    t = next(t for t, e, p in c.events if e == event and p["id"] == ids[i])
    await c.wait("ai-typing", lambda p: p == {"isTyping": False}, count=i + 1, timeout=30)
    await c.emit("stop-recording")
    await asyncio.sleep(0.3)
    return 1000 * (t - end_of_speech)


async def first_audio(graph: str, runs: int, paused_runs: int = 0) -> tuple[list[float], float, float]:
    """End of speech → first audio (ms) of `runs` whole questions, and cancelled provider requests
    per turn for those and for `paused_runs` questions with a mid-sentence pause, on one server
    (a server start costs more than a quick run's turns)."""
    out: list[float] = []
    async with OpenAIStub() as stub, server_process(graph, realistic(stub)) as srv:
        stub.transcript = "Could you tell me what the weather will be like in Paris tomorrow?"
        c = await Recorder().connect(srv.url)
        audio, speech_s = question(False)
        for i in range(runs):
            out.append(await _turn(c, audio, speech_s, i, first_audio_event(graph)))
        cancelled = len(stub.cancelled)
        audio, speech_s = question(True)
        for i in range(runs, runs + paused_runs):
            await _turn(c, audio, speech_s, i, first_audio_event(graph))
        await c.close()
        paused = len(stub.cancelled) - cancelled
    return out, cancelled / max(1, runs), paused / max(1, paused_runs)
