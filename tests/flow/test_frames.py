"""The websocket loop (`flow.transport.frames`): a frame costs no task, and what engine.io's own
loop did still happens (the polling upgrade is covered in test_outbox)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import engineio
import pytest
from engineio.async_socket import AsyncSocket

from flow.testing.rawclient import RawSocketIO
from flow.testing.servers import voicegraph
from flow.transport import frames

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


async def test_a_cancelled_connection_ends_its_writer_and_closes_the_socket() -> None:
    """The request's task cancelled while a packet is being handled (a server shutting down):
    the loop's writer is ended and the engine.io socket closed, no task left on the queue."""
    server = engineio.AsyncServer(async_mode="aiohttp")
    sock = AsyncSocket(server, "sid-1")
    handling = asyncio.Event()

    async def receive(pkt) -> None:  # a handler that takes its time
        handling.set()
        await asyncio.Event().wait()

    sock.receive = receive

    class Ws:
        closed = False

        async def wait(self) -> str:
            return "4hello"

        async def send(self, data) -> None:
            pass

        async def close(self) -> None:
            self.closed = True

    ws = Ws()
    task = asyncio.ensure_future(frames.serve(sock, ws))
    await asyncio.wait_for(handling.wait(), 5)
    writers = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "_write"]
    assert len(writers) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert writers[0].done() and ws.closed
    assert sock.closed
