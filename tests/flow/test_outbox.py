"""The bounded outbound path, against a real python-socketio server on loopback and real clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiohttp import web

from flow.testing.rawclient import RawSocketIO
from flow.transport.outbox import ENGINE_PACKETS, GRACE_S, PACKET_OVERHEAD_BYTES, Connections, Outbox


@dataclass
class Bench:
    url: str
    sio: socketio.AsyncServer
    outboxes: dict[str, Outbox] = field(default_factory=dict)
    disconnected: list[str] = field(default_factory=list)
    evicted: list[dict[str, Any]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def server(**bounds: Any) -> AsyncIterator[Bench]:
    """A bare Socket.IO server whose every client gets an `Outbox` with `bounds`."""
    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
    connections = Connections(sio)
    app = web.Application(middlewares=[connections.middleware])
    sio.attach(app)
    bench = Bench("", sio)

    async def connect(sid: str, environ: dict, auth: Any = None) -> None:
        bench.outboxes[sid] = Outbox(sio, sid, transport=lambda: connections.transport(sid),
                                     on_evict=bench.evicted.append, **bounds)

    async def disconnect(sid: str, *args: Any) -> None:
        bench.disconnected.append(sid)
        await bench.outboxes[sid].aclose()

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bench.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    try:
        yield bench
    finally:
        for outbox in bench.outboxes.values():
            await outbox.aclose()
        await runner.cleanup()


async def until(check, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_reading_client_gets_every_event_in_order_and_the_backlog_empties() -> None:
    async with server() as bench:
        got: list[Any] = []
        client = socketio.AsyncClient(reconnection=False)
        client.on("n", lambda data: got.append(data["i"]))
        await client.connect(bench.url, transports=["websocket"])
        try:
            outbox = bench.outboxes[client.get_sid()]
            for i in range(500):
                assert outbox.put("n", {"i": i, "pad": "x" * (i % 7) * 1000})
                if i % 50 == 0:
                    await asyncio.sleep(0)
            await until(lambda: len(got) == 500, what="500 events")
            assert got == list(range(500))
            assert outbox.bytes == 0 and outbox.packets == 0 and outbox.evicted is None
        finally:
            await client.disconnect()


async def test_backlog_bounds_count_bytes_and_let_one_large_event_through() -> None:
    async with server(max_bytes=10_000, max_packets=5) as bench:
        clients = [socketio.AsyncClient(reconnection=False) for _ in range(3)]
        big: list[int] = []
        clients[2].on("big", lambda data: big.append(len(data)))
        for c in clients:
            await c.connect(bench.url, transports=["websocket"])
        sids = [c.get_sid() for c in clients]
        by_count, by_bytes, large = (bench.outboxes[sid] for sid in sids)
        # `put` never yields: nothing is handed on in between, so the backlog only grows
        assert all(by_count.put("small", i) for i in range(5))
        assert not by_count.put("small", 5)  # the sixth waiting event
        assert by_count.evicted["code"] == "slow_consumer" and by_count.bytes == 0
        assert by_bytes.put("mid", "y" * 6_000) and not by_bytes.put("mid", "y" * 6_000)
        assert by_bytes.evicted["code"] == "slow_consumer"
        assert large.put("big", "z" * 100_000)  # ten times the bound, but nothing waits before it
        assert large.bytes == 100_000 + 2 + PACKET_OVERHEAD_BYTES
        await until(lambda: big == [100_000], what="the large event")
        assert large.evicted is None and clients[2].connected
        await until(lambda: not clients[0].connected and not clients[1].connected, what="both cut off")
        assert sorted(bench.disconnected) == sorted(sids[:2])
        assert [e["code"] for e in bench.evicted] == ["slow_consumer", "slow_consumer"]
        for c in clients:
            await c.disconnect()


async def test_a_client_that_never_reads_is_cut_off_and_the_server_lets_go_of_it() -> None:
    async with server(max_bytes=1_000_000) as bench:
        raw = RawSocketIO(rcvbuf=4096)
        sid = await raw.connect(bench.url)
        outbox = bench.outboxes[sid]
        eio_sid = bench.sio.manager.eio_sid_from_sid(sid, "/")
        reply = {"text": "a spoken reply", "audio": "A" * 100_000}  # ~100 KB, like a base64 MP3
        highest = engine_highest = sent = 0
        while outbox.evicted is None:
            assert sent < 1000, "never found too slow"
            outbox.put("ai-response", reply)
            sent += 1
            await asyncio.sleep(0.005)  # let the pump and engine.io's writer run
            highest = max(highest, outbox.bytes)
            engine_highest = max(engine_highest, outbox.engine_backlog())
        assert highest <= 1_000_000 and engine_highest <= ENGINE_PACKETS + 2
        assert outbox.bytes == 0 and outbox.evicted["code"] == "slow_consumer"
        assert not outbox.put("ai-response", reply)  # nothing more is queued for it
        await until(lambda: sid in bench.disconnected, what="the disconnect handler")
        # a client that starts reading now still finds the reason, after what was already on its way
        frames = await raw.read(timeout=GRACE_S + 5)
        errors = [f for f in frames if f.startswith('42["error"')]
        assert errors and "slow_consumer" in errors[0]
        assert frames[-1] in ("41", "1") or raw.eof
        await until(lambda: eio_sid not in bench.sio.eio.sockets, GRACE_S + 5, "engine.io to drop the socket")
        raw.close()


async def test_a_stalled_client_that_never_reads_again_is_aborted_after_the_grace() -> None:
    async with server(max_bytes=300_000) as bench:
        raw = RawSocketIO(rcvbuf=4096)
        sid = await raw.connect(bench.url)
        outbox = bench.outboxes[sid]
        eio_sid = bench.sio.manager.eio_sid_from_sid(sid, "/")
        for _ in range(1000):
            if not outbox.put("ai-response", {"audio": "A" * 100_000}):
                break
            await asyncio.sleep(0.005)
        assert outbox.evicted is not None
        await until(lambda: eio_sid not in bench.sio.eio.sockets, GRACE_S + 5, "the aborted socket dropped")
        raw.close()
