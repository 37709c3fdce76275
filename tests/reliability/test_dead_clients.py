"""Dead clients: a connection that ends without a goodbye frees its session and its decoder.

Raw Engine.IO clients stream webm (one in-process opus decoder per session), then vanish the ways a
network loses them: the socket closed without a close frame (FIN), reset (RST), an invalid packet
the server itself answers by closing, or a cut network (the socket stays open and goes silent:
only the ping timeout can tell). Sessions and decoders must be gone within a bounded wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from flow.config import Settings
from flow.graph.loader import graph_path, load_graph
from flow.testing.decoders import live_decoders
from flow.testing.memory import peak_mb, reset_peak, rss_mb
from flow.testing.rawclient import RawSocketIO
from flow.testing.servers import Running, served, voicegraph
from flow.testing.speech import MIME, encode, speak_piper
from flow.transport.server import ENGINE_MARGIN_BYTES

pytestmark = pytest.mark.timeout(90)

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def webm() -> bytes:
    return encode(speak_piper("Tell me a long story about the sea and the ships on it."), "webm")


async def until(what: str, pred: Callable[[], bool], timeout: float, step: float = 0.05,
                state: Callable[[], object] = lambda: None) -> float:
    """Seconds until `pred()` held; fails after `timeout` (saying `state()`)."""
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s; {state()}")
        await asyncio.sleep(step)
    return time.monotonic() - start


async def streaming_clients(srv: Running, webm: bytes, n: int) -> list[RawSocketIO]:
    """`n` raw clients that each started a webm recording and sent half of it (decoders running)."""
    raws = []
    for _ in range(n):
        raw = RawSocketIO(rcvbuf=65536)
        await raw.connect(srv.url)
        await raw.emit("start-recording", {"mimeType": MIME["webm"]})
        raws.append(raw)
    half = webm[: len(webm) // 2]
    for i in range(0, len(half), 997):
        for raw in raws:
            await raw.emit_binary("audio-stream", half[i:i + 997])
        for raw in raws:
            await raw.pump(0)  # answer pings, as a live client does
    await until("a decoder per session", lambda: live_decoders() >= n, timeout=10)
    assert len(srv.server.sessions) == n
    return raws


def left(srv: Running) -> dict[str, int]:
    """What the server still holds for its clients."""
    return {"sessions": len(srv.server.sessions), "decoders": live_decoders(),
            "engine.io sockets": len(srv.server.sio.eio.sockets)}


async def all_freed(srv: Running, timeout: float) -> float:
    """Seconds until the server holds no session and no decoder; then engine.io must let
    go of its sockets too (one it closed on a ping timeout waits for its service task's next
    sweep: up to one ping timeout more)."""
    took = await until("sessions and decoders freed", lambda: not left(srv)["sessions"] and not left(srv)["decoders"],
                       timeout, step=0.1, state=lambda: left(srv))
    await until("engine.io sockets dropped", lambda: not srv.server.sio.eio.sockets,
                srv.server.settings.ping_timeout_s * 2 + 1, step=0.1, state=lambda: left(srv))
    return took


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_a_socket_closed_without_a_goodbye_frees_session_and_decoder(stub, caplog, figures, webm, how) -> None:
    caplog.set_level(logging.INFO)
    async with voicegraph(stub=stub) as srv:
        raws = await streaming_clients(srv, webm, 30)
        for raw in raws:
            getattr(raw, how)()  # FIN without a websocket close frame, or RST
        took = await all_freed(srv, timeout=10)
        log.warning("dead-client cleanup (%s, 30 clients): %.2f s", how, took)
        figures.record("dead-client cleanup", took, unit="s", goal="≤ 10 s", part={"close": "FIN", "abort": "RST"}[how])
        assert took < 3
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize("container", ["webm", "mp3"])
async def test_a_client_leaving_with_audio_still_undecoded_frees_its_decoder(stub, caplog, webm, container) -> None:
    """A client sends seconds of audio faster than it is decoded and says goodbye without
    `stop-recording`. mp3 goes through ffmpeg: closing the session stops reading ffmpeg's output;
    ffmpeg, still decoding what it was sent, fills its stdout pipe and blocks: the close must kill
    it, not wait for it (it waited forever: the session never closed, SIGTERM could not stop the
    server). webm/opus is decoded in-process: the close drops what is still queued."""
    import socketio

    caplog.set_level(logging.INFO)
    audio = webm if container == "webm" else encode(speak_piper("Tell me a long story about the sea."), "mp3")
    async with voicegraph(stub=stub) as srv:
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(srv.url, transports=["websocket"])
        await sio.emit("start-recording", {"mimeType": MIME[container]})
        recording = audio * 3  # ~10 s: more PCM than a pipe holds (64 KiB is 2 s at 16 kHz)
        for i in range(0, len(recording), 4096):
            await sio.emit("audio-stream", recording[i:i + 4096])
        await sio.call("audio-stream", b"", timeout=30)  # every chunk before it was taken
        await sio.disconnect()
        await all_freed(srv, timeout=10)
        await until("the session closed", lambda: any("closed (0 live)" in r.getMessage() for r in caplog.records),
                    timeout=5)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize("frame", ["x", ""])
async def test_an_invalid_packet_closes_the_connection_and_its_session(stub, caplog, figures, webm, frame) -> None:
    caplog.set_level(logging.INFO)
    async with voicegraph(stub=stub) as srv:
        [raw, *others] = await streaming_clients(srv, webm, 3)
        await raw.send_text(frame)  # not an Engine.IO packet: the server closes the connection
        await raw.read(timeout=5)
        assert raw.eof, "the server kept the connection open"
        took = await until("its session and decoder freed",
                           lambda: len(srv.server.sessions) == 2 and live_decoders() == 2, timeout=5)
        log.warning("invalid packet %r: session freed in %.2f s", frame, took)
        figures.record("dead-client cleanup", took, unit="s", part="invalid packet")
        assert took < 2
        for other in others:  # the others are untouched
            await other.emit_binary("audio-stream", webm[len(webm) // 2:][:997])
            await other.pump(0.05)
            assert not other.eof
        raw.close()
        for other in others:
            other.close()
        await all_freed(srv, timeout=5)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_a_cut_network_is_found_by_the_ping_timeout(stub, webm) -> None:
    """Short test settings: pings every second, a second to answer."""
    async with voicegraph(stub=stub, ping_interval_s=1, ping_timeout_s=1) as srv:
        raws = await streaming_clients(srv, webm, 10)
        for _ in range(3):  # alive: pings answered for a while
            await asyncio.sleep(0.5)
            for raw in raws:
                await raw.pump(0)
        assert len(srv.server.sessions) == 10
        took = await all_freed(srv, timeout=6)  # now silent, sockets open
        log.warning("cut network, 1 s + 1 s pings: freed in %.2f s", took)
        assert took <= 1 + 1 + 0.5
        for raw in raws:
            await raw.read(timeout=0.2)
            assert raw.eof, "the dead peer's TCP connection was kept"
            raw.close()


async def test_a_live_client_that_says_nothing_keeps_its_session(stub, clients) -> None:
    """Silence is not death: a client that only answers pings (1 s + 1 s here) stays connected."""
    async with voicegraph(stub=stub, ping_interval_s=1, ping_timeout_s=1) as srv:
        c = await clients(srv.url)
        await asyncio.sleep(4.5)  # more than twice interval + timeout without a word
        assert c.sio.connected and len(srv.server.sessions) == 1
        await c.emit("text-message", "still there?")
        assert (await c.wait("ai-response"))["audio"]
        await c.close()


async def test_a_cut_network_with_the_default_pings_is_freed_within_ten_seconds(stub, figures, webm) -> None:
    """The issue's case with the shipped settings: 30 clients streaming webm whose network vanishes."""
    async with voicegraph(stub=stub) as srv:
        raws = await streaming_clients(srv, webm, 30)
        took = await all_freed(srv, timeout=12)
        log.warning("cut network, default pings (4 s + 4 s), 30 clients: freed in %.2f s", took)
        figures.record("dead-client cleanup", took, unit="s", part="cut network")
        assert took <= 10
        for raw in raws:
            raw.close()


async def test_the_pings_are_settings_the_clients_are_told(stub) -> None:
    from flow.config import Settings

    s = Settings.from_env({"VOICEGRAPH_PING_INTERVAL": "10", "VOICEGRAPH_PING_TIMEOUT": "3"})
    assert (s.ping_interval_s, s.ping_timeout_s) == (10, 3)
    assert (Settings().ping_interval_s, Settings().ping_timeout_s) == (4, 4)
    async with voicegraph(stub=stub, ping_interval_s=10, ping_timeout_s=3) as srv:
        raw = RawSocketIO()
        await raw.connect(srv.url)
        assert raw.opened["pingInterval"] == 10_000 and raw.opened["pingTimeout"] == 3_000
        raw.close()


VOICE_PEAK_MB = 400
"""What one run of the offline voice may take at its peak (`test_turn_cost.PEAK_MB`, README's
limits: `max_piece_phonemes`): the flood's speech is transcribed and its echo spoken meanwhile."""


def audio_bound_mb(graph: str) -> float:
    """The audio one connection may make the server hold on `graph`, by its configuration: one
    message being read (the engine's limit), the decoder's backlog, the longest utterance and the
    transcription queue (PCM16 at 16 kHz: 32,000 bytes a second)."""
    settings, spec = Settings(), load_graph(graph_path(graph), env={})
    params = {node.type: node.params for node in spec.nodes.values()}
    held_s = (params["chunk_buffer"].max_backlog_s + params["silence_finalizer"].max_seconds
              + params["transcriber"].max_queued_s)
    return (settings.max_message_bytes * 2 + ENGINE_MARGIN_BYTES + held_s * 32_000) / 2**20


async def test_a_flooding_client_is_busy_not_silent_and_is_told_to_slow_down(figures, webm) -> None:
    """1 MB webm chunks as fast as the socket takes them, never reading (so never answering a
    ping: its pong would be queued behind the flood, as the JS client's is). With 1 s + 1 s pings
    it was closed as gone after ~2 s (~8 s with the shipped pings) and read no `rate_limited`;
    now the frames count as its answer: it stays connected, keeps being pinged, is told
    `rate_limited`, and is served normally once it stops. The server's peak memory while it floods
    is the figure "memory one connection holds with audio" (after a first turn: the models loaded)."""
    env = {"VOICEGRAPH_PING_INTERVAL": "1", "VOICEGRAPH_PING_TIMEOUT": "1"}
    with served(env, "--no-ui", "--graph", "offline", timeout=120) as srv:
        raw = RawSocketIO(rcvbuf=1 << 20)
        await raw.connect(srv.url)
        await raw.emit("text-message", "hello")
        assert any(n == "ai-response" for n, _ in await raw.events(
            timeout=30, until=lambda evs: any(n == "ai-response" for n, _ in evs)))
        await raw.emit("start-recording", {"mimeType": MIME["webm"]})
        chunk = (webm * (1_000_000 // len(webm) + 1))[:1_000_000]
        before, peak_reset = rss_mb(srv.pid), reset_peak(srv.pid)
        start, sent = time.monotonic(), 0
        while time.monotonic() - start < 4.5:  # over twice interval + timeout
            await raw.emit_binary("audio-stream", chunk)
            sent += 1
        events = await raw.events(timeout=1.0)
        held, bound = peak_mb(srv.pid) - before, audio_bound_mb("offline")
        log.warning("flood: %d chunks of 1 MB in 4.5 s, %d pings meanwhile; server RSS %+.1f MB at its peak",
                    sent, raw.pings, held)
        if peak_reset:
            figures.record("memory one connection holds with audio", held, unit="MB",
                           goal=f"≤ {bound:.1f} MB of audio + a voice run (< {VOICE_PEAK_MB} MB)",
                           part=f"peak RSS growth, {sent} chunks of 1 MB in 4.5 s")
            assert held < bound + VOICE_PEAK_MB
        assert not raw.eof, f"a busy client was closed; server log: {list(srv.log.tail)[-5:]}"
        assert raw.pings >= 3, "the server stopped pinging a busy client (the client would give up on it)"
        codes = [data["code"] for name, data in events if name == "error"]
        assert "rate_limited" in codes, codes
        await raw.emit("stop-recording")
        await raw.emit("text-message", "are you still there?")
        answered = await raw.events(timeout=30, until=lambda evs: any(n == "ai-response" for n, _ in evs))
        assert any(n == "ai-response" for n, _ in answered)
        assert srv.log.tracebacks == 0
        raw.close()
