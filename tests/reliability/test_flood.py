"""A client that never slows down is disconnected; one that bursts and then listens is not.

Through a real server with a raw flooder (it sends as fast as its socket takes it, and reads only
to see what the server answers) and an official client beside it. The flood-disconnect bound is
2 s here (`VOICEGRAPH_FLOOD_DISCONNECT_S`, 10 s by default) to keep the suite fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from flow.config import Settings
from flow.testing.rawclient import RawSocketIO, frame_events
from flow.testing.servers import voicegraph
from flow.transport.ratelimit import FloodWatch

pytestmark = pytest.mark.timeout(60)

JS = Path(__file__).parents[1] / "e2e" / "js"
BOUND_S = 2.0
CHUNK = b"\0" * 65536
"""64 KiB of PCM silence: over 256 KiB/s once the 4 MiB burst is spent (~64 chunks)."""


def told_to_go(events: list) -> bool:
    return any(name == "error" and "disconnecting" in data["message"] for name, data in events)


async def flood(raw: RawSocketIO, kind: str, seconds: float) -> list:
    """Send as fast as the socket takes it, reading only to see the server's answers, until the
    server says it disconnects us (or closes the connection), or `seconds` pass; the events read."""
    if kind == "audio":
        await raw.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
    events: list = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds and not raw.eof and not told_to_go(events):
            for _ in range(8):
                if kind == "audio":
                    await raw.emit_binary("audio-stream", CHUNK)
                else:
                    await raw.emit("interrupt", {})
            events += frame_events(await raw.pump(0))
            await asyncio.sleep(0)
    except OSError:  # the server aborted the connection while we wrote
        pass
    if not raw.eof and not told_to_go(events):
        events += frame_events(await raw.read(5, until=lambda frames: told_to_go(frame_events(frames))))
    return events


async def test_flooders_are_told_then_disconnected_and_a_bystander_is_served(stub, clients, caplog, figures) -> None:
    """Two flooders at once, one over the audio bytes/s limit, one over the control events/s limit."""
    caplog.set_level(logging.INFO)
    async with voicegraph(stub=stub, flood_disconnect_s=BOUND_S) as srv:
        bystander = await clients(srv.url)
        flooders = {kind: RawSocketIO(rcvbuf=1 << 20) for kind in ("audio", "control")}
        sids = {kind: await raw.connect(srv.url) for kind, raw in flooders.items()}
        flooding = asyncio.gather(*(flood(raw, kind, BOUND_S + 8) for kind, raw in flooders.items()))
        await asyncio.sleep(BOUND_S / 2)
        await bystander.emit("text-message", "hello during the flood")  # served while they flood
        assert (await bystander.wait("ai-response", timeout=20))["audio"]
        for kind, events in zip(flooders, await flooding, strict=True):
            codes = [(data["code"], "disconnecting" in data["message"]) for name, data in events if name == "error"]
            assert ("rate_limited", True) in codes, (kind, codes[-3:])  # the last word (the door sends it directly)
            told_first = codes[:codes.index(("rate_limited", True))]
            assert ("rate_limited", False) in told_first, f"{kind}: no rate_limited before the disconnect"
        cut = [r.getMessage() for r in caplog.records if "over its rate limits" in r.getMessage()]
        assert len(cut) == 2, cut  # logged once each
        for kind, sid in sids.items():
            (message,) = [m for m in cut if sid in m]
            spell = float(message.split(" for ")[1].split(" s ")[0])
            assert spell >= BOUND_S, message
            figures.record("flooder disconnected after", spell, unit="s", goal=f"the bound ({BOUND_S:g} s here)",
                           part=kind)
        await asyncio.sleep(0.2)
        assert len(srv.server.sessions) == 1  # the flooders' sessions are gone, the bystander's not
        await bystander.emit("text-message", "and after it?")
        assert (await bystander.wait("ai-response", count=2, timeout=20))["audio"]
        assert bystander.sio.connected and not bystander.of("error")
        assert len(srv.server.sio.eio.sockets) == 1, "a flooder's Engine.IO connection is still open"
        await bystander.close()  # before the server stops: its shutdown then waits for no one
        for raw in flooders.values():  # (its TCP connection is aborted 2 s after, as the door's other cuts)
            raw.close()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_the_official_js_client_flooding_reads_rate_limited_then_why_it_is_cut(stub, caplog) -> None:
    """The older finding: a socket.io-client sending 1 MB chunks as fast as it could for 10 s got
    no event at all. Now it reads `rate_limited` while it floods, then the notice, then the close."""
    caplog.set_level(logging.INFO)
    async with voicegraph(stub=stub, flood_disconnect_s=BOUND_S) as srv:
        node = await asyncio.create_subprocess_exec(
            "node", str(JS / "flood.mjs"), srv.url, str(BOUND_S + 10), cwd=JS,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(node.communicate(), 60)
    report = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
    assert report.get("disconnect"), (report, err.decode()[-500:])  # cut, not still sending at the end
    codes = [(code, "disconnecting" in message) for _, code, message in report["errors"]]
    assert ("rate_limited", True) in codes, codes[-3:]
    assert ("rate_limited", False) in codes[:codes.index(("rate_limited", True))], codes[:3]
    assert report["at"] < BOUND_S + 10 and not [r for r in caplog.records if r.exc_info]


async def test_a_client_that_bursts_and_pauses_is_not_disconnected(stub, clients) -> None:
    """Three bursts over the limits 1.5 s apart (a break of a second, with room for a loaded
    machine's lag): over the bound in all, but never over the limits for it without a break."""
    async with voicegraph(stub=stub, flood_disconnect_s=BOUND_S) as srv:
        c = await clients(srv.url)
        for burst in range(3):
            if burst:
                await asyncio.sleep(1.5)
            for _ in range(40):  # 30 (then 12) pass, the rest are refused
                await c.emit("interrupt", {})
            await c.wait("error", lambda e: e["code"] == "rate_limited", count=burst + 1)
        await c.quiet(0.3)
        assert c.sio.connected and len(srv.server.sessions) == 1
        assert not [e for e in c.of("error") if "disconnecting" in e["message"]]
        await c.emit("text-message", "still here?")
        assert (await c.wait("ai-response", timeout=20))["audio"]
        await c.close()


def test_flood_watch_counts_a_spell_without_a_break() -> None:
    now = [0.0]
    watch = FloodWatch(10.0, gap_s=1.0, clock=lambda: now[0])
    for t in range(0, 100):  # refused every 0.1 s for 9.9 s
        now[0] = t / 10
        assert not watch.refused()
    now[0] = 10.0
    assert watch.refused() and watch.count == 101 and watch.spell_s == 10.0
    now[0] = 11.5  # a break of 1.5 s: a new spell
    assert not watch.refused() and watch.count == 1 and watch.spell_s == 0.0
    never = FloodWatch(0.0, clock=lambda: now[0])
    now[0] = 1000.0
    assert not never.refused()


def test_the_bound_is_a_setting() -> None:
    assert Settings().flood_disconnect_s == 10.0
    assert Settings.from_env({"VOICEGRAPH_FLOOD_DISCONNECT_S": "30"}, dotenv=None).flood_disconnect_s == 30.0
    assert Settings.from_env({"VOICEGRAPH_FLOOD_DISCONNECT_S": "0"}, dotenv=None).flood_disconnect_s == 0.0
