"""Streaming replies and barge-in over a real server, providers through the stub at real latencies."""

from __future__ import annotations

import base64

from flow.testing.servers import voicegraph
from flow.testing.speech import MIME, encode, mp3_seconds, speak_piper

THREE = "The sky is clear over Paris today. Expect a high of twenty degrees. Rain returns on Sunday evening."


async def test_pieces_arrive_before_the_llm_has_finished(stub, clients) -> None:
    stub.reply = THREE
    stub.chat.first_token_latency = 0.1
    stub.chat.token_delay = 0.05
    async with voicegraph("streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "weather please")
        first = await c.wait("ai-response-chunk")
        t_first = next(t for t, e, _ in c.events if e == "ai-response-chunk")
        resp = await c.wait("ai-response")
        end = await c.wait("ai-response-end")
        chat = stub.of("chat")[0]
        assert chat.finished is not None and t_first < chat.finished  # spoke while the LLM still wrote
        chunks = c.of("ai-response-chunk")
        assert [ch["seq"] for ch in chunks] == list(range(len(chunks))) and len(chunks) == 3
        assert first["text"] == "The sky is clear over Paris today." and first["audio"]
        assert {ch["id"] for ch in chunks} == {end["id"], resp["id"]}
        assert " ".join(ch["text"] for ch in chunks) == THREE == resp["text"]
        whole = mp3_seconds(base64.b64decode(resp["audio"]))
        parts = sum(mp3_seconds(base64.b64decode(ch["audio"])) for ch in chunks)
        assert abs(whole - parts) < 0.3
        metrics = (await c.wait("turn-metrics"))["ms"]
        events = [e for _, e, _ in c.events]
        assert events[-4:] == ["ai-response-end", "ai-response", "ai-typing", "turn-metrics"]
        assert metrics["accepted"] <= metrics["first_token"] <= metrics["first_audio"] <= metrics["last_audio"]


async def test_interrupt_mid_stream_cancels_everything(stub, clients) -> None:
    stub.reply = THREE + " " + THREE
    stub.chat.token_delay = 0.1
    stub.tts.latency = 0.05
    async with voicegraph("streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "talk for a while")
        first = await c.wait("ai-response-chunk")
        await c.emit("interrupt", {"responseId": first["id"]})
        cancelled = await c.wait("response-cancelled")
        assert cancelled["id"] == first["id"]
        n_chunks = len(c.of("ai-response-chunk"))
        await stub.wait_for(lambda: stub.of("chat")[0].cancelled_at is not None, timeout=5)
        await c.quiet(1.0)
        assert len(c.of("ai-response-chunk")) == n_chunks  # nothing after the interrupt
        assert c.of("ai-response") == [] and c.of("ai-response-end") == []
        assert (await c.wait("turn-metrics"))["cancelled"] is True
        # the history keeps what was heard, marked as interrupted
        await c.emit("text-message", "what did you say?")
        await c.wait("ai-response")
        messages = stub.of("chat")[1].body["messages"]
        assert messages[2]["role"] == "assistant" and messages[2]["content"].endswith("[interrupted]")
        assert messages[2]["content"].startswith(first["text"])


async def test_cancel_before_any_audio_leaves_no_assistant_turn(stub, clients) -> None:
    stub.chat.first_token_latency = 5
    async with voicegraph("streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "first")
        await stub.wait_for(lambda: len(stub.of("chat")) == 1)
        await c.emit("interrupt")
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        assert c.of("response-cancelled") == []  # nothing was playing
        stub.chat.first_token_latency = 0
        await c.emit("text-message", "second")
        await c.wait("ai-response")
        roles = [m["role"] for m in stub.of("chat")[1].body["messages"]]
        assert roles == ["system", "user", "user"]


async def test_user_speech_barges_in_on_a_reply(stub, clients) -> None:
    stub.reply = THREE + " " + THREE
    stub.chat.token_delay = 0.15
    question = encode(speak_piper("Stop talking please."), "pcm16_16k", pad_s=0.2)
    async with voicegraph("streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "tell me about the weather")
        await c.wait("ai-response-chunk")
        await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
        await c.stream(question, 3200)
        cancelled = await c.wait("response-cancelled")
        assert cancelled["reason"] == "speech"
        await stub.wait_for(lambda: stub.of("chat")[0].cancelled_at is not None, timeout=5)
        assert c.of("ai-response") == []


async def test_interrupt_naming_an_older_reply_leaves_the_newer_one_intact(stub, clients) -> None:
    stub.reply = THREE
    async with voicegraph("streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "first question")
        old = await c.wait("ai-response")
        stub.chat.token_delay = 0.1  # the second reply is still being written when the late interrupt comes
        await c.emit("text-message", "second question")
        piece = await c.wait("ai-response-chunk", lambda p: p["id"] != old["id"])
        await c.emit("interrupt", {"responseId": old["id"]})  # late: meant for the reply already over
        new = await c.wait("ai-response", count=2)
        assert new["id"] == piece["id"] and new["text"] == THREE
        assert c.of("response-cancelled") == []
        assert not any(call.cancelled_at for call in stub.of("chat"))
        # the same interrupt naming the reply in flight does cancel it
        await c.emit("text-message", "third question")
        third = await c.wait("ai-response-chunk", lambda p: p["id"] not in (old["id"], new["id"]))
        await c.emit("interrupt", {"responseId": third["id"]})
        cancelled = await c.wait("response-cancelled")
        assert cancelled["id"] == third["id"]
        await stub.wait_for(lambda: stub.of("chat")[2].cancelled_at is not None, timeout=5)
        await c.quiet(0.5)
        assert len(c.of("ai-response")) == 2
