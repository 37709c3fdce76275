"""Barge-in on the offline graph, through a real server: a stale piper synthesis stops, and
another session's reply does not wait behind it."""

from __future__ import annotations

import asyncio

from flow.testing.servers import voicegraph
from nodes.synthesizer.piper import VoiceSlot

LONG = " ".join(f"This is sentence number {i} of a very long answer that keeps the voice busy." for i in range(45))


async def until(check, what: str, timeout: float = 30.0) -> None:
    """Poll `check()` until truthy (a liveness bound, not a timing goal)."""
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_a_stale_offline_synthesis_stops_and_frees_the_pool(clients) -> None:
    async with voicegraph("offline") as srv:
        a = await clients(srv.url)
        b = await clients(srv.url)
        pool = srv.server.resources.cpu_pool
        a_sid = a.sio.get_sid()
        await a.emit("text-message", LONG)  # echo repeats it: piper has ~3 minutes of speech to make
        await until(lambda: pool.running(a_sid) > 0, "A's synthesis starts")
        shared = srv.server.resources._shared
        await until(lambda: any(isinstance(v, VoiceSlot) for v in list(shared.values())), "the voice is loaded")
        slot = next(v for v in list(shared.values()) if isinstance(v, VoiceSlot))
        await until(lambda: slot.sentences > 0, "A's first sentence is spoken")
        said_before = slot.sentences
        await a.emit("interrupt", {})
        await until(lambda: pool.running(a_sid) == 0 and pool.queued(a_sid) == 0, "A's work stops")
        stopped_after = slot.sentences - said_before
        # B's reply is the only work left: it does not wait for the rest of A's 45 sentences
        await b.emit("text-message", "Hello there.")
        reply = await b.wait("ai-response")
        assert reply["audio"] and "Hello there." in reply["text"]
        assert slot.cancelled >= 1
        assert stopped_after <= 1, f"{stopped_after} sentences of the stale reply were still spoken"
        assert slot.sentences - said_before <= 1 + 3  # at most A's sentence in flight, then B's reply
        await a.quiet(0.3)
        assert a.of("ai-response") == []
