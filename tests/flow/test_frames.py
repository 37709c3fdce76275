"""The websocket loop (`flow.transport.frames`): a frame costs no task, and what engine.io's own
loop did still happens (the polling upgrade is covered in test_outbox)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from flow.testing.rawclient import RawSocketIO
from flow.testing.servers import voicegraph

pytestmark = pytest.mark.timeout(60)


@contextlib.contextmanager
def counting_tasks():
    """How many tasks the running loop creates inside the block (the server runs in this loop)."""
    loop = asyncio.get_running_loop()
    before = loop.get_task_factory()
    created = [0]

    def factory(loop, coro, context=None):
        created[0] += 1
        if before is not None:
            return before(loop, coro) if context is None else before(loop, coro, context=context)
        return asyncio.Task(coro, loop=loop, context=context)

    loop.set_task_factory(factory)
    try:
        yield created
    finally:
        loop.set_task_factory(before)


async def test_an_audio_chunk_starts_no_task(stub) -> None:
    """Two frames per chunk, 25 chunks a second per session: engine.io's loop made a task and a
    timeout per frame (400 tasks for these 200 chunks). Ours reads the next frame directly."""
    async with voicegraph(stub=stub) as srv:
        c = RawSocketIO(rcvbuf=1 << 20)
        await c.connect(srv.url)
        try:
            await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
            await asyncio.sleep(0.2)
            chunk = b"\x01\x00" * 640  # 40 ms of (near) silence
            with counting_tasks() as created:
                for _ in range(200):
                    await c.emit_binary("audio-stream", chunk)
                (session,) = srv.server.sessions.values()
                deadline = time.monotonic() + 10
                while session.ctx.counters.get("buffer", {}).get("in.audio", 0) < 200:
                    assert time.monotonic() < deadline, session.ctx.counters
                    await asyncio.sleep(0.02)
            assert created[0] < 20, f"{created[0]} tasks for 200 chunks"
            await c.emit("text-message", "still there?")  # and the session answers after them
            events = await c.events(15, until=lambda evs: any(n == "ai-response" for n, _ in evs))
            assert any(n == "ai-response" for n, _ in events)
        finally:
            c.close()
