"""Reply audio stays out of the monitoring events; the dashboard serves it, behind its token."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import serve_with_dashboard, voicegraph

pytestmark = pytest.mark.timeout(90)


async def test_out_events_refer_to_reply_audio_and_never_carry_it(stub, clients) -> None:
    async with voicegraph("streaming", stub=stub) as srv:
        monitor = srv.server.resources.monitor
        sub = monitor.subscribe()
        c = await clients(srv.url)
        await c.emit("text-message", "Tell me a story. Make it two sentences.")
        reply = await c.wait("ai-response")
        chunks = c.of("ai-response-chunk")
        assert reply["audio"] and chunks
        out = [e.data for e in sub.drain() if e.kind == "out"]
        sent_audio = [reply["audio"], *(ch["audio"] for ch in chunks if ch["audio"])]
        assert not any(audio[:64] in str(ev) for audio in sent_audio for ev in out)  # no audio bytes
        [whole] = [ev["payload"]["audio"] for ev in out if ev["event"] == "ai-response"]
        assert whole["ref"] == f"{reply['id']}/full"
        assert whole["bytes"] == len(base64.b64decode(reply["audio"])) and whole["seconds"] > 0.5
        assert monitor.audio.get(whole["ref"]) == base64.b64decode(reply["audio"])
        refs = [ev["payload"]["audio"]["ref"] for ev in out if ev["event"] == "ai-response-chunk"]
        assert refs == [f"{ch['id']}/{ch['seq']}" for ch in chunks if ch["audio"]]
        sub.close()
        assert monitor.audio.get(whole["ref"]) is None  # nobody watches: nothing kept


async def test_the_dashboard_serves_a_reply_s_mp3_only_with_the_token() -> None:
    stub = OpenAIStub().start_in_thread()
    env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test", "VOICEGRAPH_TOKEN": "s3cret"}
    try:
        with serve_with_dashboard(env, "--graph", "default") as (url, ui_url):
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                async with http.get(ui_url + "/?token=s3cret") as r:  # a tab opens: the dashboard watches
                    assert r.status == 200
                c = await Recorder().connect(url, auth={"token": "s3cret"})
                try:
                    await c.emit("text-message", "What's the weather like?")
                    reply = await c.wait("ai-response")
                finally:
                    await c.close()
                audio_url = f"{ui_url}/reply-audio/{reply['id']}/full"
                async with aiohttp.ClientSession() as stranger, stranger.get(audio_url) as r:
                    assert r.status == 401 and "token" in await r.text()
                mp3 = base64.b64decode(reply["audio"])
                async with http.get(audio_url) as r:
                    assert r.status == 200 and r.content_type == "audio/mpeg"
                    assert r.headers["Accept-Ranges"] == "bytes" and r.content_length == len(mp3)
                    assert await r.read() == mp3
                # byte ranges, as a browser's <audio preload="metadata"> asks to learn the length
                for asked, start, end in (("bytes=0-99", 0, 99), ("bytes=100-", 100, len(mp3) - 1),
                                          ("bytes=-50", len(mp3) - 50, len(mp3) - 1),
                                          ("bytes=10-999999999", 10, len(mp3) - 1)):
                    async with http.get(audio_url, headers={"Range": asked}) as r:
                        assert r.status == 206 and r.content_type == "audio/mpeg", asked
                        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(mp3)}", asked
                        assert await r.read() == mp3[start:end + 1], asked
                async with http.get(audio_url, headers={"Range": f"bytes={len(mp3)}-"}) as r:
                    assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(mp3)}"
                async with http.get(f"{ui_url}/reply-audio/no-such-reply/full") as r:
                    assert r.status == 404
    finally:
        stub.stop_thread()
