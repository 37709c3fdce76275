"""Bad input gets a clear `error` event and the session goes on; the door checks (auth, size, CORS)."""

from __future__ import annotations

import aiohttp
import pytest
import socketio

from flow.testing.servers import voicegraph
from flow.testing.speech import MIME, encode, speak_piper


async def still_answers(c) -> None:
    before = len(c.of("ai-response"))
    await c.emit("text-message", "are you still there?")
    await c.wait("ai-response", count=before + 1)


@pytest.mark.parametrize(("event", "payload", "code"), [
    ("audio-stream", "not bytes", "bad_audio"),
    ("audio-stream", {"some": "object"}, "bad_audio"),
    ("text-message", 42, "bad_request"),
    ("text-message", "   ", "bad_request"),
    ("text-message", {"txt": "typo"}, "bad_request"),
    ("text-message", "x" * 5000, "payload_too_large"),
    ("start-recording", {"mimeType": "video/quicktime"}, "bad_audio"),
    ("start-recording", {"format": "pcm16", "sampleRate": 5}, "bad_audio"),
    ("start-recording", 12, "bad_request"),
    ("no-such-event", {"a": 1}, "bad_request"),
])
async def test_bad_payload_is_an_error_and_session_goes_on(stub, clients, event, payload, code) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit(event, payload)
        err = await c.wait("error")
        assert err["code"] == code and err["message"]
        await still_answers(c)


async def test_oversized_chunk_is_refused_not_disconnected(stub, clients) -> None:
    async with voicegraph(stub=stub, max_message_bytes=64 * 1024) as srv:
        c = await clients(srv.url)
        await c.emit("audio-stream", b"\0" * (100 * 1024))
        err = await c.wait("error")
        assert err["code"] == "payload_too_large" and "65536" in err["message"]
        assert c.sio.connected
        await still_answers(c)


async def test_undecodable_audio_then_a_good_recording(stub, clients) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["webm"]})
        for _ in range(5):
            await c.emit("audio-stream", b"this is not webm at all " * 100)
        err = await c.wait("error")
        assert err["code"] == "bad_audio" and "webm" in err["message"]
        await c.emit("stop-recording")
        await c.quiet(0.3)
        assert len(c.of("error")) == 1  # one error per broken recording, not one per chunk
        await c.emit("start-recording", {"mimeType": MIME["ogg"]})
        await c.stream(encode(speak_piper("Good morning to you."), "ogg"), 1500)
        assert (await c.wait("speech-result"))["isFinal"]


async def test_flood_is_rate_limited_and_other_clients_unaffected(stub, clients) -> None:
    async with voicegraph(stub=stub) as srv:
        flooder = await clients(srv.url)
        other = await clients(srv.url)
        for _ in range(300):
            await flooder.sio.emit("text-message", "spam")
        for _ in range(2500):
            await flooder.sio.emit("audio-stream", b"\0" * 640)
        err = await flooder.wait("error", lambda e: e["code"] == "rate_limited", timeout=30)
        assert "slow down" in err["message"]
        await still_answers(other)
        assert len(flooder.of("error")) < 50  # errors about the flood are themselves rate-limited


async def test_health_reports_state(stub, clients) -> None:
    async with voicegraph(stub=stub) as srv:
        await clients(srv.url)
        async with aiohttp.ClientSession() as http, http.get(srv.url + "/health") as r:
            assert r.status == 200
            body = await r.json()
        assert body["status"] == "ok" and body["sessions"] == 1 and body["uptime"] >= 0
        assert body["graph"]["name"] == "default"
        assert body["providers"] == {"stt": "openai", "llm": "openai", "tts": "openai"}
        assert "sk-test-key" not in str(body)


async def test_health_offline_providers(clients) -> None:
    async with voicegraph() as srv, aiohttp.ClientSession() as http, http.get(srv.url + "/health") as r:
        body = await r.json()
    assert body["providers"] == {"stt": "pocketsphinx", "llm": "echo", "tts": "piper"}


async def test_token_auth(stub, clients) -> None:
    async with voicegraph(stub=stub, token="s3cret") as srv:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await clients(srv.url)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await clients(srv.url, auth={"token": "wrong"})
        c = await clients(srv.url, auth={"token": "s3cret"})
        await still_answers(c)


async def test_cors_origin(stub) -> None:
    async with voicegraph(stub=stub, cors_origins=("http://app.example",)) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.url + "/health", headers={"Origin": "http://app.example"}) as r:
            assert r.headers.get("Access-Control-Allow-Origin") == "http://app.example"
        async with http.get(srv.url + "/health", headers={"Origin": "http://evil.example"}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
