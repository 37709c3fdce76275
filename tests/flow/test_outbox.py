"""The bounded outbound path, against a real python-socketio server on loopback and real clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio
from aiohttp import web

from flow.testing.rawclient import RawSocketIO
from flow.transport.outbox import ENGINE_PACKETS, GRACE_S, Connections, Outbox, environ_transport


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


async def test_a_burst_or_one_large_event_is_not_a_slow_client() -> None:
    async with server(max_bytes=10_000, max_packets=5) as bench:
        got: list[int] = []
        client = socketio.AsyncClient(reconnection=False)
        client.on("e", lambda data: got.append(len(data)))
        await client.connect(bench.url, transports=["websocket"])
        outbox = bench.outboxes[client.get_sid()]
        # handed over in one go (`put` never yields): far over both bounds, but the client keeps up
        sizes = [100_000] + [6_000] * 49
        assert all(outbox.put("e", "y" * n) for n in sizes)
        assert outbox.packets == 50 and outbox.bytes > 10 * outbox.max_bytes
        await until(lambda: len(got) == 50, what="the whole burst")
        assert got == sizes and outbox.evicted is None and client.connected
        await client.disconnect()


async def stall(outbox: Outbox, limit: int = 1000) -> int:
    """Put ~100 KB events (like a spoken reply) until the outbox cuts its client off; how many."""
    for n in range(1, limit):
        if not outbox.put("ai-response", {"text": "a spoken reply", "audio": "A" * 100_000}):
            return n
        await asyncio.sleep(0.005)  # let the pump and engine.io's writer run
        assert outbox.bytes <= outbox.max_bytes + 100_200 and outbox.packets <= outbox.max_packets + 1
        assert outbox.engine_backlog() <= ENGINE_PACKETS + 2
    raise AssertionError("never found too slow")


async def test_a_client_that_never_reads_is_cut_off_by_count_too() -> None:
    async with server(max_bytes=100 << 20, max_packets=10) as bench:
        raw = RawSocketIO(rcvbuf=4096)
        outbox = bench.outboxes[await raw.connect(bench.url)]
        await stall(outbox)
        assert outbox.evicted["code"] == "slow_consumer" and "11 events" in outbox.evicted["message"]
        assert outbox.packets == 0 and outbox.bytes == 0
        raw.close()


async def test_a_client_that_never_reads_is_cut_off_and_the_server_lets_go_of_it() -> None:
    async with server(max_bytes=1_000_000) as bench:
        raw = RawSocketIO(rcvbuf=4096)
        sid = await raw.connect(bench.url)
        outbox = bench.outboxes[sid]
        eio_sid = bench.sio.manager.eio_sid_from_sid(sid, "/")
        await stall(outbox)
        assert outbox.bytes == 0 and outbox.evicted["code"] == "slow_consumer"
        assert bench.evicted == [outbox.evicted]
        assert not outbox.put("ai-response", {"audio": "A"})  # nothing more is queued for it
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
        await stall(outbox)
        await until(lambda: eio_sid not in bench.sio.eio.sockets, GRACE_S + 5, "the aborted socket dropped")
        raw.close()


async def test_the_connection_of_a_client_that_upgraded_from_polling_is_the_websocket_one() -> None:
    async with server() as bench, aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        client = socketio.AsyncClient(reconnection=False, http_session=http)  # a new connection per request,
        await client.connect(bench.url, transports=["polling", "websocket"])  # as a browser's websocket has
        try:
            await until(lambda: client.transport() == "websocket", what="the upgrade")
            sid = client.get_sid()
            outbox = bench.outboxes[sid]
            first = environ_transport(bench.sio, sid)  # the polling request that opened the session
            transport = outbox._transport()
            assert transport is not None and transport is not first
            transport.abort()  # what a cut-off does: the client's live connection ends
            await until(lambda: sid in bench.disconnected, what="the disconnect")
        finally:
            await client.disconnect()
