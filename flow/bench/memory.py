"""Memory (scenario 6): server RSS per idle session and per streaming session.

The server runs in its own process; RSS is read from /proc before and after N sessions connect
(idle), and again while each of them is mid-utterance (speech streamed, not yet finalized, so the
decoder, the segmenter's utterance buffer and the graph's subscriptions are all alive).
"""

from __future__ import annotations

import asyncio

from flow.bench.latency import QUESTION
from flow.bench.procs import children, close_all, connect_many, rss_bytes, server_process, tree_rss_bytes
from flow.bench.turns import START, WEBM_START, question_pcm
from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.speech import encode, speak_piper


async def settle(pid: int, seconds: float = 1.0, rss=rss_bytes) -> int:
    """RSS after the allocator has had a moment (and a collection) to settle."""
    await asyncio.sleep(seconds)
    return rss(pid)


async def per_session(sessions: int) -> tuple[float, float]:
    """(KiB per idle session, KiB per streaming session), `sessions` of each, PCM16."""
    idle, streaming, _ = await per_session_codec(sessions, "pcm16")
    return idle, streaming


async def per_session_codec(sessions: int, codec: str) -> tuple[float, float, int]:
    """(KiB per idle session, KiB per streaming session, decoder processes while streaming): the
    server's RSS plus any decoder children's (opus is decoded in-process: none expected)."""
    if codec == "webm":  # 2 s of speech as a browser's first MediaRecorder slices: header, then audio
        data = encode(speak_piper(QUESTION), "webm", pad_s=0.0)
        speech, start, chunk = data[: len(data) // 2], WEBM_START, 1000
    else:
        speech, start, chunk = question_pcm()[: 32000 * 2], START, 32000
    rss = tree_rss_bytes if codec == "webm" else rss_bytes
    async with OpenAIStub() as stub, server_process("default", stub) as srv:
        warm = await Recorder().connect(srv.url)  # first-session costs (imports, pools) not counted
        await warm.emit("start-recording", start)
        await warm.stream(speech, chunk)
        await warm.close()
        base = await settle(srv.pid, rss=rss)
        clients = await connect_many(srv.url, sessions)
        try:
            idle = await settle(srv.pid, rss=rss)
            for c in clients:
                await c.emit("start-recording", start)
                await c.stream(speech, chunk)
            streaming = await settle(srv.pid, rss=rss)
            decoders = len(children(srv.pid))
        finally:
            await close_all(clients)
    return (idle - base) / sessions / 1024, (streaming - base) / sessions / 1024, decoders
