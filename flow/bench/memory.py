"""Memory (scenario 6): server RSS per idle session and per streaming session.

The server runs in its own process; RSS is read from /proc before and after N sessions connect
(idle), and again while each of them is mid-utterance (speech streamed, not yet finalized, so the
decoder, the segmenter's utterance buffer and the graph's subscriptions are all alive).
"""

from __future__ import annotations

import asyncio

from flow.bench.procs import close_all, connect_many, rss_bytes, server_process
from flow.bench.turns import START, question_pcm
from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub


async def settle(pid: int, seconds: float = 1.0) -> int:
    """RSS after the allocator has had a moment (and a collection) to settle."""
    await asyncio.sleep(seconds)
    return rss_bytes(pid)


async def per_session(sessions: int) -> tuple[float, float]:
    """(KiB per idle session, KiB per streaming session), `sessions` of each."""
    speech = question_pcm()[: 32000 * 2]  # 2 s of speech, no trailing silence: the utterance stays open
    async with OpenAIStub() as stub, server_process("default", stub) as srv:
        warm = await Recorder().connect(srv.url)  # first-session costs (imports, pools) not counted
        await warm.emit("start-recording", START)
        await warm.stream(speech, 1280)
        await warm.close()
        base = await settle(srv.pid)
        clients = await connect_many(srv.url, sessions)
        try:
            idle = await settle(srv.pid)
            for c in clients:
                await c.emit("start-recording", START)
                await c.stream(speech, 32000)
            streaming = await settle(srv.pid)
        finally:
            await close_all(clients)
    return (idle - base) / sessions / 1024, (streaming - base) / sessions / 1024
