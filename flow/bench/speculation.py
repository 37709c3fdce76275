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


def _share(total: int, clients: int, k: int) -> int:
    """How many of `total` turns client `k` of `clients` asks."""
    return total // clients + (1 if k < total % clients else 0)


async def first_audio(graph: str, runs: int, paused_runs: int = 0,
                      clients: int = 1) -> tuple[list[float], float, float]:
    """End of speech → first audio (ms) of `runs` whole questions, and cancelled provider requests
    per turn for those and for `paused_runs` questions with a mid-sentence pause, on one server
    (a server start costs more than a quick run's turns). `clients` sessions ask at once, each its
    share of the turns, their starts 1.1 s apart: every turn streams its question in real time, so
    n ≥ 50 per graph fits the full run only this way; the providers are the stub's sleeps, so the
    sessions barely meet on the CPU (the row states how many there were)."""
    event = first_audio_event(graph)
    async with OpenAIStub() as stub, server_process(graph, realistic(stub)) as srv:
        stub.transcript = "Could you tell me what the weather will be like in Paris tomorrow?"
        cs = [await Recorder().connect(srv.url) for _ in range(clients)]
        asked = [0] * clients

        async def phase(paused: bool, total: int) -> list[float]:
            audio, speech_s = question(paused)

            async def one(k: int) -> list[float]:
                await asyncio.sleep(1.1 * k)
                out = []
                for _ in range(_share(total, clients, k)):
                    out.append(await _turn(cs[k], audio, speech_s, asked[k], event))
                    asked[k] += 1
                return out

            return [ms for each in await asyncio.gather(*(one(k) for k in range(clients))) for ms in each]

        out = await phase(False, runs)
        cancelled = len(stub.cancelled)
        await phase(True, paused_runs)
        for c in cs:
            await c.close()
        paused = len(stub.cancelled) - cancelled
    return out, cancelled / max(1, runs), paused / max(1, paused_runs)
