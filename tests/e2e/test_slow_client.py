"""A client that never reads its socket is cut off (`slow_consumer`); the server's memory for it stays
bounded and other clients go on as if nothing happened."""

from __future__ import annotations

import asyncio
import time

import pytest

from flow.testing.rawclient import RawSocketIO
from flow.testing.servers import voicegraph
from flow.transport.outbox import ENGINE_PACKETS, GRACE_S

pytestmark = pytest.mark.timeout(120)

BOUND = 1_000_000
LONG = "Tell me everything about the history of the bicycle, " * 6  # the stub speaks ~20 s for it


async def test_a_client_that_never_reads_is_cut_off_while_another_keeps_its_replies(stub, clients) -> None:
    # a client that never reads never answers a ping either: with the shipped 4 s + 4 s pings the
    # ping timeout would race the outbox's bound (~6 s here); this test is about the bound
    async with voicegraph(stub=stub, max_backlog_bytes=BOUND, ping_interval_s=25, ping_timeout_s=20) as srv:
        good = await clients(srv.url)
        raw = RawSocketIO(rcvbuf=4096)
        sid = await raw.connect(srv.url, auth={"label": "never-reads"})
        outbox = srv.server.outboxes[sid]
        eio_sid = srv.server.sio.manager.eio_sid_from_sid(sid, "/")
        highest = engine_highest = asked = 0
        deadline = time.monotonic() + 60
        while outbox.evicted is None:  # ask for ~100 KB of base64 MP3 eight times a second, read nothing
            assert time.monotonic() < deadline, f"not cut off after {asked} replies"
            await raw.emit("text-message", f"{asked} {LONG}")
            asked += 1
            if asked == 10:
                await good.emit("text-message", "are you there?")
            for _ in range(5):
                await asyncio.sleep(0.025)
                highest = max(highest, outbox.bytes)
                engine_highest = max(engine_highest, outbox.engine_backlog())
        assert len(stub.of("speech")) >= 10  # replies really were made for it
        assert highest <= BOUND and engine_highest <= ENGINE_PACKETS + 2
        assert outbox.evicted["code"] == "slow_consumer" and outbox.bytes == 0
        assert (await good.wait("ai-response"))["audio"]  # the other client got its reply meanwhile
        # the slow client's session closed at once; what is still on its way ends with the reason
        assert sid not in srv.server.sessions and sid not in srv.server.outboxes
        frames = await raw.read(timeout=GRACE_S + 5)
        assert any(f.startswith('42["error"') and "slow_consumer" in f for f in frames)
        deadline = time.monotonic() + GRACE_S + 5
        while eio_sid in srv.server.sio.eio.sockets:  # engine.io let go of its queue
            assert time.monotonic() < deadline, "engine.io still holds the slow client's socket"
            await asyncio.sleep(0.05)
        raw.close()
        before = len(good.of("ai-response"))
        await good.emit("text-message", "still fine?")
        await good.wait("ai-response", count=before + 1)


async def test_a_reading_client_is_never_cut_off_by_long_replies(stub, clients) -> None:
    async with voicegraph(stub=stub, max_backlog_bytes=64 * 1024) as srv:
        c = await clients(srv.url)
        for i in range(5):  # each ~100 KB reply alone exceeds the bound: it still goes out
            await c.emit("text-message", f"{i} {LONG}")
            await c.wait("ai-response", count=i + 1)
        assert not c.of("error") and c.sio.connected
