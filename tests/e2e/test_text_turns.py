"""Typed turns over a real Socket.IO connection, providers through the real openai SDK + stub."""

from __future__ import annotations

import asyncio
import base64

from flow.testing.servers import voicegraph
from flow.testing.speech import mp3_seconds


async def test_text_message_gets_the_full_protocol_sequence(stub, clients) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "What time is it?")
        resp = await c.wait("ai-response")
        msg = c.of("message-received")[0]
        assert msg["text"] == "What time is it?" and msg["source"] == "text"
        assert isinstance(msg["id"], str) and isinstance(msg["timestamp"], int)
        assert resp["replyTo"] == msg["id"]
        assert resp["text"] == "You said: What time is it?. Here is my answer."
        assert resp["audioFormat"] == "mp3"
        assert mp3_seconds(base64.b64decode(resp["audio"])) > 0.5
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        order = [e for _, e, _ in c.events]
        assert order == ["message-received", "ai-typing", "ai-response", "ai-typing"]
        chat = stub.of("chat")[0]
        assert chat.body["model"] == "gpt-4o-mini" and chat.body["stream"] is True
        assert chat.body["messages"][0]["role"] == "system"
        assert stub.of("speech")[0].body["voice"] == "alloy"


async def test_object_payload_and_history_is_kept(stub, clients) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", {"text": "first"})
        await c.wait("ai-response")
        await c.emit("text-message", {"text": "second"})
        await c.wait("ai-response", count=2)
        messages = stub.of("chat")[1].body["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
        assert messages[1]["content"] == "first" and messages[3]["content"] == "second"


async def test_interrupt_cancels_the_slow_reply_upstream(stub, clients) -> None:
    stub.chat.first_token_latency = 5.0
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "tell me a long story")
        await stub.wait_for(lambda: len(stub.of("chat")) == 1)
        await c.emit("interrupt", {})
        await stub.wait_for(lambda: stub.of("chat")[0].cancelled_at is not None, timeout=5)
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        await c.quiet(0.5)
        assert c.of("ai-response") == []
        assert stub.of("speech") == []


async def test_newer_turn_cancels_older_and_only_newer_is_answered(stub, clients) -> None:
    stub.chat.first_token_latency = 1.0
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "old question")
        await stub.wait_for(lambda: len(stub.of("chat")) == 1)
        stub.chat.first_token_latency = 0.0
        await c.emit("text-message", "new question")
        resp = await c.wait("ai-response")
        await c.quiet(1.5)
        responses = c.of("ai-response")
        assert len(responses) == 1 and "new question" in responses[0]["text"]
        new_id = c.of("message-received")[1]["id"]
        assert responses[0]["replyTo"] == new_id == resp["replyTo"]
        assert stub.of("chat")[0].cancelled_at is not None


async def test_llm_failure_is_an_error_and_the_session_goes_on(stub, clients) -> None:
    stub.chat.status = 500
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "hello")
        err = await c.wait("error")
        assert err["code"] == "llm_failed" and "500" in err["message"]
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        stub.chat.status = 200
        await c.emit("text-message", "hello again")
        resp = await c.wait("ai-response")
        assert "hello again" in resp["text"]


async def test_llm_timeout_is_bounded(stub, clients) -> None:
    stub.chat.hang = True
    async with voicegraph(stub=stub, env={"OPENAI_TIMEOUT": "0.5"}) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "hello")
        err = await c.wait("error", timeout=10)
        assert err["code"] == "llm_failed" and "timed out" in err["message"]


async def test_tts_failure_still_sends_the_text_with_null_audio(stub, clients) -> None:
    stub.tts.status = 500
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "hello")
        resp = await c.wait("ai-response")
        assert resp["audio"] is None and "hello" in resp["text"]
        assert c.of("error")[0]["code"] == "tts_failed"


async def test_api_key_never_reaches_client_or_errors(stub, clients) -> None:
    stub.chat.status = 401
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "hello")
        err = await c.wait("error")
        assert "sk-test-key" not in str(err)


async def test_disconnect_mid_turn_leaves_no_task(stub, clients) -> None:
    stub.chat.first_token_latency = 5.0
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "hello")
        await stub.wait_for(lambda: len(stub.of("chat")) == 1)
        session = next(iter(srv.server.sessions.values()))
        assert session.ctx.task_count >= 1
        await c.close()
        await stub.wait_for(lambda: stub.of("chat")[0].cancelled_at is not None, timeout=5)
        for _ in range(100):
            if not srv.server.sessions:
                break
            await asyncio.sleep(0.02)
        assert srv.server.sessions == {}
        assert session.ctx.task_count == 0 and session.ctx.closed
        leftover = [t for t in asyncio.all_tasks() if "turn" in t.get_name() or t.get_name().startswith("send-")]
        assert leftover == []


async def test_a_superseded_turn_still_counts_as_said(stub, clients) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "one")
        await c.emit("text-message", "two")  # may supersede "one" before its work even starts
        await c.wait("ai-response", lambda r: "two" in r["text"])
        await c.emit("text-message", "three")
        await c.wait("ai-response", lambda r: "three" in r["text"])
        users = [m["content"] for m in stub.of("chat")[-1].body["messages"] if m["role"] == "user"]
        assert users == ["one", "two", "three"]
