"""`GET /metrics` after real turns through a real server, read with prometheus-client's own parser."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from flow.testing.servers import voicegraph
from flow.testing.speech import MIME, encode, speak_espeak


async def scrape(url: str, headers: dict[str, str] | None = None) -> dict[str, list]:
    """name → samples of every metric family the server exposes."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics", headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(families: dict[str, list], sample: str, **labels: str) -> float:
    """The value of `sample` with (at least) these labels; 0 when absent."""
    name = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum").removesuffix("_bucket")
    for s in families.get(name, []):
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


async def test_metrics_count_real_turns(stub, clients) -> None:
    stub.transcript = "what is the weather today"
    stub.chat.token_delay = 0.05  # a reply long enough to be interrupted
    stub.reply = "First sentence here. " * 12
    async with voicegraph("streaming", stub=stub) as srv:
        c = await clients(srv.url)
        # a voice turn, answered
        await c.emit("start-recording", {"mimeType": MIME["webm"]})
        await c.stream(encode(speak_espeak("what is the weather today"), "webm"), 800)
        await c.emit("stop-recording")
        await c.wait("ai-response", timeout=30)
        # a text turn, interrupted once its first piece is out
        await c.emit("text-message", "tell me a long story")
        await c.wait("ai-response-chunk", lambda p: p["replyTo"] != c.of("message-received")[0]["id"])
        await c.emit("interrupt", {})
        await c.wait("response-cancelled")
        # bad input: an error by code
        await c.emit("text-message", {"nope": 1})
        await c.wait("error", lambda p: p["code"] == "bad_request")
        second = await clients(srv.url)
        m = await scrape(srv.url)

        assert value(m, "voicegraph_sessions") == 2
        assert value(m, "voicegraph_sessions_opened_total") == 2
        assert value(m, "voicegraph_turns_total", source="voice", outcome="answered") == 1
        assert value(m, "voicegraph_turns_total", source="text", outcome="cancelled") == 1
        assert value(m, "voicegraph_turns_total", outcome="failed") == 0
        assert value(m, "voicegraph_errors_total", code="bad_request") == 1
        # every stage of the voice turn is in its histogram, once
        for stage in ("endpointed", "transcript", "first_token", "first_audio"):
            assert value(m, "voicegraph_turn_stage_seconds_count", stage=stage, source="voice") == 1, stage
            assert value(m, "voicegraph_turn_stage_seconds_sum", stage=stage, source="voice") > 0, stage
        assert value(m, "voicegraph_turn_stage_seconds_count", stage="first_token", source="text") == 1
        # provider calls: the transcription, both chat streams' ends are not both calls (one was
        # cancelled: not a latency), the syntheses
        assert value(m, "voicegraph_provider_call_seconds_count", provider="openai", kind="stt", outcome="ok") == 1
        assert value(m, "voicegraph_provider_call_seconds_count", provider="openai", kind="llm", outcome="ok") == 1
        assert value(m, "voicegraph_provider_call_seconds_count", provider="openai", kind="tts", outcome="ok") >= 1
        assert value(m, "voicegraph_event_loop_lag_seconds_count") >= 1
        seconds = value(m, "voicegraph_audio_received_seconds_total")
        assert 1.0 < seconds < 5.0, seconds  # ~1.6 s of speech with 1.8 s of padding
        assert value(m, "voicegraph_received_bytes_total") == len(encode(speak_espeak("what is the weather today"),
                                                                           "webm"))
        assert value(m, "voicegraph_sent_bytes_total") > 1000  # base64 MP3 in the replies
        assert value(m, "voicegraph_node_messages_total", node="stt", counter="in.utterance") == 1
        assert value(m, "voicegraph_node_messages_total", node="buffer", counter="in.audio") > 10

        # a closed session's node counters stay in the totals
        await c.close()
        await second.close()
        for _ in range(100):
            m = await scrape(srv.url)
            if value(m, "voicegraph_sessions") == 0:
                break
            await c.quiet(0.05)
        assert value(m, "voicegraph_sessions") == 0
        assert value(m, "voicegraph_node_messages_total", node="stt", counter="in.utterance") == 1


async def test_metrics_need_the_token_when_one_is_set() -> None:
    async with voicegraph(token="s3cret-token-value") as srv, aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token-value"},
                        {"Authorization": "Basic s3cret-token-value"}):
            async with http.get(f"{srv.url}/metrics", headers=headers) as resp:
                assert resp.status == 401, headers
                assert "voicegraph_" not in await resp.text()
        m = await scrape(srv.url, {"Authorization": "Bearer s3cret-token-value"})
        assert value(m, "voicegraph_sessions") == 0


async def test_two_servers_in_one_process_keep_their_own_figures(clients) -> None:
    async with voicegraph() as a, voicegraph() as b:
        await clients(a.url)
        assert value(await scrape(a.url), "voicegraph_sessions") == 1
        assert value(await scrape(b.url), "voicegraph_sessions") == 0


def test_the_grafana_dashboard_asks_only_for_metrics_the_server_has() -> None:
    import json
    import re
    from pathlib import Path

    from prometheus_client.parser import text_string_to_metric_families as families

    from flow.metrics import Metrics

    m = Metrics()
    m.turn_ended({"source": "voice", "ms": {"first_audio": 900.0}}, "answered")
    m.errors.labels("bad_request").inc()
    m.provider.labels("openai", "stt", "ok").observe(0.1)
    m.retire({"stt": {"in.utterance": 1}})
    exposed = {s.name for f in families(m.exposition().decode()) for s in f.samples}
    dashboard = json.loads((Path(__file__).parents[2] / "deploy/grafana/voicegraph.json").read_text())
    asked = {name for panel in dashboard["panels"] for target in panel["targets"]
             for name in re.findall(r"voicegraph_\w+", target["expr"])}
    assert asked and asked <= exposed, asked - exposed
