"""The Socket.IO door (issue 16: items 1, 4, 5, 8, 9 and the transport parts of 10), through a real server.

Raw packets (`RawSocketIO`) where the official client cannot produce the input, real
python-socketio clients (`Recorder`) where it can. Memory is judged by what the server buffers
(python-socketio's pending binary packets), not by the clock or the process's RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
import engineio
import pytest
import socketio

from flow.testing.decoders import live_decoders
from flow.testing.rawclient import RawSocketIO, frame_events
from flow.testing.servers import serve_with_dashboard, voicegraph
from flow.testing.speech import MIME, silence
from flow.transport.door import WAITING_CONNECTIONS, DoorPacket, DoorServer, QuietRepeats, Refused

pytestmark = pytest.mark.timeout(90)

PLACEHOLDER = '{"_placeholder":true,"num":0}'


async def raw(url: str, **kwargs) -> RawSocketIO:
    client = RawSocketIO(rcvbuf=1 << 20)
    await client.connect(url, **kwargs)
    return client


def errors(events: list) -> list[dict]:
    return [data for name, data in events if name == "error"]


def tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info]


async def answers(client: RawSocketIO) -> None:
    await client.emit("text-message", "are you still there?")
    events = await client.events(15, until=lambda evs: any(n == "ai-response" for n, _ in evs))
    assert any(n == "ai-response" for n, _ in events), events


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------- 1. reserved names

RESERVED = {
    "connect": ['42["connect",{}]'],
    "connect-bare": ['42["connect"]'],
    "disconnect": ['42["disconnect"]'],
    "wildcard": ['42["*"]'],
    "wildcard-data": ['42["*",{"a":1}]'],
    "message": ['42["message","hi"]'],
    "connect_error": ['42["connect_error",{}]'],
    "disconnect_final": ['42["__disconnect_final"]'],
    "connect-binary": [f'451-["connect",{PLACEHOLDER}]', b"\0" * 640],
}


@pytest.mark.parametrize("frames", RESERVED.values(), ids=RESERVED.keys())
async def test_reserved_names_are_refused_and_never_build_or_close_a_session(stub, caplog, figures, frames) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await raw(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["webm"]})
        await c.emit_binary("audio-stream", silence(1.0, "webm"))
        await until(lambda: live_decoders() > 0)  # the recording's decoder runs
        live, decoders = dict(srv.server.sessions), live_decoders()
        for _ in range(3):
            for frame in frames:
                await (c.send_text(frame) if isinstance(frame, str) else c.send_binary(frame))
        events = await c.events(5, until=lambda evs: len(errors(evs)) >= 3)
        figures.hostile(3 * len(frames), len(tracebacks(caplog)))
        assert [(e["code"], "reserved" in e["message"]) for e in errors(events)] == [("bad_request", True)] * 3
        await c.events(0.3)
        assert srv.server.sessions == live  # the same session object, its rate limits with it
        assert live_decoders() == decoders  # no new decoder, none left behind
        assert not c.eof  # `disconnect` closed nothing, the socket is open and answers
        await answers(c)
        c.close()
        with contextlib.suppress(AssertionError):
            await until(lambda: not srv.server.sessions and not live_decoders())
        figures.add("sessions or decoders left after reserved-name packets",
                    len(srv.server.sessions) + live_decoders(), goal="0")
        assert not srv.server.sessions and not live_decoders(), "left after the client went"
        assert not tracebacks(caplog)


async def test_reserved_names_do_not_reset_the_rate_limits(stub) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await raw(srv.url)
        t0 = time.monotonic()
        for i in range(60):
            if i % 10 == 0:
                await c.send_text('42["connect",{}]')
            await c.emit("text-message", f"message {i}")
        sent_in = time.monotonic() - t0
        events = await c.events(3)
        accepted = sum(1 for n, _ in events if n == "message-received")
        # burst 30 plus 10/s while they arrive; a reset at each `connect` would let all 60 in
        assert accepted <= 30 + 10 * (sent_in + 0.2) and accepted < 60, (accepted, sent_in)
        assert len(srv.server.sessions) == 1


# ---------------------------------------------------------------------------- 4. attachments

def buffered(srv) -> int:
    """Bytes python-socketio holds in binary packets waiting for their attachments (plus one per packet)."""
    pending = srv.server.sio._binary_packet.values()
    return sum(1 + sum(len(a) for a in p.attachments) for p in pending)


@pytest.mark.parametrize("declared", ["9999999999", "2"])
async def test_a_packet_declaring_too_many_attachments_is_refused_before_buffering(stub, caplog, figures,
                                                                                   declared) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await raw(srv.url)
        await c.send_text(f'45{declared}-["audio-stream",{PLACEHOLDER}]')
        events = await c.events(5, until=lambda evs: len(errors(evs)) >= 1)
        assert errors(events)[0]["code"] == "bad_request" and "attachments" in errors(events)[0]["message"]
        most, sent = 0, 0
        with contextlib.suppress(OSError):
            for _ in range(100):
                await c.send_binary(b"\0" * (2 << 20))  # 2 MiB frames: under the engine's limit
                sent += 1
                await asyncio.sleep(0)
                most = max(most, buffered(srv))
        assert most == 0  # nothing was ever held for the packet
        await c.read(8)  # the stray frames are malformed: the connection is cut
        assert c.eof and sent >= 10
        await until(lambda: not srv.server.sessions)
        assert buffered(srv) == 0 and not srv.server.sio._visitors
        figures.hostile(1 + sent, len(tracebacks(caplog)))
        assert len(tracebacks(caplog)) == 0


async def test_one_attachment_still_works_and_placeholders_must_match(stub) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await raw(srv.url)
        await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
        await c.emit_binary("audio-stream", b"\0" * 3200)
        await c.send_text('451-["audio-stream",{"_placeholder":true,"num":5}]')
        events = await c.events(5, until=lambda evs: len(errors(evs)) >= 1)
        assert [e["code"] for e in errors(events)] == ["bad_request"]
        assert buffered(srv) == 0


async def test_the_audio_fast_path_takes_what_python_socketio_would(stub) -> None:
    """The door hands an `audio-stream` attachment to the session itself: an attachment sent as
    text is refused `bad_audio` (python-socketio's path handed it on as the chunk too), the chunks of a
    recording still arrive in order (the STT upload is a run of their concatenation), and the
    session goes on."""
    async with voicegraph(stub=stub) as srv:
        c = await raw(srv.url)
        await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
        await c.send_text('451-["audio-stream",{"_placeholder":true,"num":0}]')
        await c.send_text("4not the binary frame")
        events = await c.events(5, until=lambda evs: len(errors(evs)) >= 1)
        assert [e["code"] for e in errors(events)] == ["bad_audio"]
        chunks = [bytes([i]) * 3200 for i in range(1, 9)]
        for chunk in chunks:
            await c.emit_binary("audio-stream", chunk)
        await c.emit("stop-recording")
        events = await c.events(15, until=lambda evs: any(n == "ai-response" for n, _ in evs))
        assert any(n == "speech-result" for n, _ in events)
        pcm = stub.of("transcriptions")[-1].upload[44:]  # the WAV's samples: a run of the chunks, in order
        assert len(pcm) >= 3 * 3200 and pcm in b"".join(chunks)
        assert buffered(srv) == 0
        await answers(c)


# ---------------------------------------------------------------------------- 5. malformed packets

MALFORMED = ['42[', '4', '42{"a"', '4x', '42["text-message",', '44{}', '42[1]', '42{}', '42[]', '49', '5-[]']


@pytest.mark.parametrize("token", [None, "wrong"], ids=["connected", "refused-token"])
async def test_a_malformed_flood_is_logged_once_and_disconnected(stub, caplog, figures, token) -> None:
    caplog.set_level(logging.INFO)
    settings = {"token": "s3cret"} if token else {}
    async with voicegraph(stub=stub, **settings) as srv:
        c = RawSocketIO(rcvbuf=1 << 20)
        if token:
            with pytest.raises(ConnectionRefusedError):
                await c.connect(srv.url, auth={"token": token})
        else:
            await c.connect(srv.url)
        sent = 0
        with contextlib.suppress(OSError):
            for i in range(1000):
                await c.send_text(MALFORMED[i % len(MALFORMED)])
                sent += 1
        frames = await c.read(8)
        assert c.eof, "a client that keeps sending malformed packets is disconnected"
        codes = [e["code"] for e in errors(frame_events(frames))]
        if token:
            assert codes == []  # no session: nothing to answer with
        else:
            assert codes and set(codes) == {"bad_request"} and len(codes) <= 13
        await until(lambda: not srv.server.sessions and not srv.server.sio._visitors)
    door = [r for r in caplog.records if r.name == "voicegraph.door"]
    figures.hostile(sent, len(tracebacks(caplog)))
    assert len(tracebacks(caplog)) == 0, [r.getMessage() for r in tracebacks(caplog)]
    assert len(door) <= 3, [r.getMessage() for r in door]  # first one, "disconnecting", the count at close
    assert all(len(r.getMessage()) < 500 for r in caplog.records)


async def test_connect_attempts_are_limited_per_connection(stub, caplog, figures) -> None:
    caplog.set_level(logging.INFO)
    async with voicegraph(stub=stub, token="s3cret") as srv:
        c = RawSocketIO(rcvbuf=1 << 20)
        with pytest.raises(ConnectionRefusedError):
            await c.connect(srv.url, auth={"token": "guess-0"})
        sent = 1
        with contextlib.suppress(OSError):
            for i in range(200):
                await c.send_text('40{"token":"guess-' + str(i) + '"}')
                sent += 1
        await c.read(8)
        figures.hostile(sent, len(tracebacks(caplog)))
        assert c.eof
    refused = [r for r in caplog.records if "bad or missing token" in r.getMessage()]
    assert len(refused) <= 6


async def test_engineio_tracebacks_are_not_repeated(stub, caplog, figures) -> None:
    """`7` is an Engine.IO packet type that does not exist: engine.io logs a traceback for each."""
    async with voicegraph(stub=stub) as srv:
        c = await raw(srv.url)
        for _ in range(300):
            await c.send_text("7")
        await c.events(1.0)
        figures.hostile(300, len(tracebacks(caplog)))
        assert len(tracebacks(caplog)) <= 1
        await answers(c)
        for logger in (srv.server.sio.logger, srv.server.sio.eio.logger):  # one handler: the root's
            assert logger.name.startswith("voicegraph.") and not logger.handlers


def test_quiet_repeats_counts_what_it_holds_back() -> None:
    now = [0.0]
    f = QuietRepeats(window_s=60, clock=lambda: now[0])

    def record() -> logging.LogRecord:
        try:
            raise IndexError("x")
        except IndexError as err:
            info = (IndexError, err, err.__traceback__)
            return logging.LogRecord("t", logging.ERROR, __file__, 1, "boom", None, info)

    assert f.filter(record()) and not f.filter(record()) and not f.filter(record())
    now[0] = 61.0
    passed = record()
    assert f.filter(passed) and "2 alike" in passed.getMessage()
    assert f.filter(logging.LogRecord("t", logging.ERROR, __file__, 1, "no traceback", None, None))


# ---------------------------------------------------------------------------- 8. edge-case JSON

EDGE_JSON = [
    '42["text-message",NaN]', '42["text-message",Infinity]', '42["text-message",-Infinity]',
    '42["text-message",1e400]', '42["text-message","\\ud800"]', '42["text-message",{"text":"hi \\udfff"}]',
    '42["start-recording",{"format":"pcm16","sampleRate":1e400}]',
]


@pytest.mark.parametrize("dashboard_json", [False, True], ids=["default-json", "nicegui-json"])
async def test_edge_case_json_is_bad_request(stub, caplog, monkeypatch, figures, dashboard_json) -> None:
    if dashboard_json:  # NiceGUI's import installs its json module process-wide, after ours or before
        from nicegui import json as nicegui_json

        monkeypatch.setattr(socketio.packet.Packet, "json", nicegui_json)
        monkeypatch.setattr(engineio.packet.Packet, "json", nicegui_json)
    async with voicegraph(stub=stub) as srv:
        c = await raw(srv.url)
        for packet in EDGE_JSON:
            await c.send_text(packet)
        events = await c.events(5, until=lambda evs: len(errors(evs)) >= len(EDGE_JSON))
        figures.hostile(len(EDGE_JSON), len(tracebacks(caplog)))
        assert [e["code"] for e in errors(events)] == ["bad_request"] * len(EDGE_JSON)
        await answers(c)
        assert not tracebacks(caplog)


async def test_edge_case_json_is_bad_request_with_the_dashboard_running() -> None:
    """`voicegraph serve` with its dashboard: NiceGUI is imported and running in the same process."""
    with serve_with_dashboard({}, "--graph", "offline") as (url, _):
        c = await raw(url)
        for packet in EDGE_JSON:
            await c.send_text(packet)
        events = await c.events(10, until=lambda evs: len(errors(evs)) >= len(EDGE_JSON))
        c.close()
    assert [e["code"] for e in errors(events)] == ["bad_request"] * len(EDGE_JSON)


def test_door_packet_decodes_strictly() -> None:
    """Socket.IO packets as python-socketio decodes them (the Engine.IO `4` already taken off)."""
    assert DoorPacket(encoded_packet='2["text-message","hi \\ud83d\\ude00"]').data == ["text-message", "hi 😀"]
    assert DoorPacket(encoded_packet=f'51-["audio-stream",{PLACEHOLDER}]').attachment_count == 1
    for bad, reason in [('2["text-message",NaN]', "JSONDecodeError"), ('2["text-message","\\ud800"]', "surrogate"),
                        ('2[1e400]', "infinity"), (f'52-["audio-stream",{PLACEHOLDER}]', "at most 1"),
                        ('5["audio-stream"]', "no attachment"), ("x", "ValueError"), ("7", "packet type"),
                        ('2["connect"]', "not an event"), ('2"text-message"', "list"), ("2[]", "list"),
                        ('51-["audio-stream",{"_placeholder":true,"num":3}]', "placeholder")]:
        with pytest.raises(Refused, match=reason):
            DoorPacket(encoded_packet=bad)
    with pytest.raises(Refused, match="binary frame"):
        DoorPacket(encoded_packet=b"\0\0")


def test_the_python_socketio_hooks_the_door_uses_exist() -> None:
    """The door overrides these (python-socketio 5.x); a release that renames them must fail here."""
    for name in ("_handle_eio_message", "_handle_eio_disconnect", "_handle_event"):
        assert name in vars(socketio.AsyncServer), name
    server = DoorServer(session_of=lambda sid: None, transport_of=lambda eio_sid: None, async_mode="aiohttp")
    assert server.packet_class is DoorPacket and server._binary_packet == {}
    assert server.eio.handlers["message"] == server._handle_eio_message


# ---------------------------------------------------------------------------- 9. echo and rate of errors

async def test_error_messages_quote_at_most_100_characters(stub, clients) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": "x" * 1_000_000})
        await c.emit("y" * 100_000, {"a": 1})
        await c.emit("start-recording", {"format": "z" * 50_000})
        await c.emit("start-recording", {"format": "pcm16", "sampleRate": "9" * 10_000})
        await c.wait("error", count=4)
        for err in c.of("error"):
            assert len(err["message"]) < 250 and "cut" in err["message"], err["message"][:300]


async def test_unknown_events_are_rate_limited(stub, clients, caplog, figures) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        t0 = time.monotonic()
        for i in range(600):
            await c.sio.emit("no-such-event", i)
        sent_in = time.monotonic() - t0
        await c.wait("error", lambda e: e["code"] == "rate_limited")
        await c.quiet(1.0)
        refused = [e for e in c.of("error") if e["code"] == "bad_request"]
        figures.hostile(600, len(tracebacks(caplog)))
        assert len(refused) <= 30 + 10 * (sent_in + 1.5), (len(refused), sent_in)
        assert len(c.of("error")) < 100


# ---------------------------------------------------------------------------- 10. transport

async def test_a_token_of_another_type_is_refused(stub) -> None:
    async with voicegraph(stub=stub, token="s3cret") as srv:
        for auth in ({"token": 12345}, {"token": ["s3cret"]}, {"token": "s3creT"}, {}):
            c = RawSocketIO()
            with pytest.raises(ConnectionRefusedError, match="unauthorized"):
                await c.connect(srv.url, auth=auth)
            c.close()
        c = RawSocketIO()
        await c.connect(srv.url, auth={"token": "s3cret"})
        c.close()


async def test_cors_star_reflects_no_origin_with_credentials(stub) -> None:
    evil = {"Origin": "http://evil.example"}
    async with voicegraph(stub=stub) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.url + "/health", headers=evil) as r:
            assert r.headers.get("Access-Control-Allow-Origin") == "*"
            assert "Access-Control-Allow-Credentials" not in r.headers
        async with http.get(srv.url + "/socket.io/?EIO=4&transport=polling", headers=evil) as r:
            assert r.status == 200
            assert "Access-Control-Allow-Credentials" not in r.headers


async def test_cors_configured_origin_is_reflected_with_credentials(stub) -> None:
    app = {"Origin": "http://app.example"}
    async with voicegraph(stub=stub, cors_origins=("http://app.example",)) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.url + "/socket.io/?EIO=4&transport=polling", headers=app) as r:
            assert r.headers.get("Access-Control-Allow-Origin") == "http://app.example"
            assert r.headers.get("Access-Control-Allow-Credentials") == "true"
        async with http.get(srv.url + "/socket.io/?EIO=4&transport=polling",
                            headers={"Origin": "http://evil.example"}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers


async def test_session_cap_refuses_with_server_full_and_health_shows_it(stub, clients) -> None:
    async with voicegraph(stub=stub, max_sessions=2) as srv, aiohttp.ClientSession() as http:
        first = await clients(srv.url)
        await clients(srv.url)
        refused = RawSocketIO()
        with pytest.raises(ConnectionRefusedError, match="server_full"):
            await refused.connect(srv.url)
        refused.close()
        async with http.get(srv.url + "/health") as r:
            body = await r.json()
        assert body["sessions"] == 2 and body["max_sessions"] == 2
        await first.close()
        await until(lambda: len(srv.server.sessions) == 1)
        await clients(srv.url)


async def test_engineio_connections_without_a_session_are_capped_and_timed_out(stub, clients) -> None:
    """Raw Engine.IO connections that never connect to the namespace count against the cap
    (`max_sessions + WAITING_CONNECTIONS`) and are closed `join_timeout_s` after they opened."""
    async with voicegraph(stub=stub, max_sessions=2) as srv, aiohttp.ClientSession() as http:
        door = srv.server.sio
        door.join_timeout_s = 60.0  # first the cap alone
        cap = 2 + WAITING_CONNECTIONS
        assert door.max_connections == cap
        member = await clients(srv.url)  # a session
        waiting = [await raw(srv.url, namespace=False) for _ in range(cap - 1)]
        with pytest.raises(ConnectionError, match="401") as refused:
            await raw(srv.url, namespace=False)
        assert "server_full" in str(refused.value)
        with pytest.raises(socketio.exceptions.ConnectionError):  # an official client is refused too
            await clients(srv.url)
        async with http.get(srv.url + "/health") as r:
            body = await r.json()
        assert (body["connections"], body["max_connections"], body["sessions"]) == (cap, cap, 1)
        for w in waiting[:3]:
            w.close()
        await until(lambda: len(door.eio.sockets) == cap - 3)
        await clients(srv.url)  # room again
        door.join_timeout_s = 1.0  # now the deadline: these never join
        late = [await raw(srv.url, namespace=False) for _ in range(2)]
        for w in late:
            await w.read(timeout=5)  # returns at the close
            assert w.eof, "a connection without a session was kept past its deadline"
        assert member.sio.connected and len(srv.server.sessions) == 2  # sessions keep theirs
        for w in waiting[3:]:
            w.close()


BIG_BACKLOG = """
version: 1
extends: default
name: big_backlog
nodes:
  buffer: {params: {max_backlog_s: 60}}
"""


async def test_a_chunk_under_the_size_limit_passes_the_door(stub, clients) -> None:
    """The door's own limits (events/s, bytes/s, size) let a 1,000,000-byte chunk through."""
    async with voicegraph(stub=stub, graph_text=BIG_BACKLOG) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
        await c.emit("audio-stream", b"\0" * 1_000_000)
        await c.quiet(1.0)
        assert c.of("error") == []


async def test_a_chunk_under_the_size_limit_is_not_rate_limited_by_the_default_graph(stub, clients) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
        await c.emit("audio-stream", b"\0" * 1_000_000)
        await c.quiet(1.0)
        assert c.of("error") == []


async def test_an_oversize_audio_object_is_payload_too_large(stub, clients) -> None:
    async with voicegraph(stub=stub, max_message_bytes=64 * 1024) as srv:
        c = await clients(srv.url)
        await c.emit("audio-stream", {"audio": b"\0" * (100 * 1024)})
        err = await c.wait("error")
        assert err["code"] == "payload_too_large" and "65536" in err["message"]


async def test_audio_bytes_per_second_are_limited(stub, clients) -> None:
    async with voicegraph(stub=stub, audio_bytes_per_second=16_000, max_message_bytes=64 * 1024) as srv:
        c = await clients(srv.url)  # burst: 16 s of 16,000 B/s = 256,000 bytes
        await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
        for _ in range(40):
            await c.emit("audio-stream", b"\0" * 16_000)
        err = await c.wait("error", lambda e: e["code"] == "rate_limited")
        assert "bytes/s" in err["message"]
        assert srv.server.sessions  # refused chunks, not a closed session
