"""Provider faults, through the loopback stub and the real openai SDK, on the default and streaming graphs.

Each fault (an HTTP status, a hang past the timeout, a stream that stalls or is cut mid-way, a
malformed or empty answer, an error quoting the Authorization header) must become the stage's
coded error (`stt_failed`, `llm_failed`, `tts_failed`) with a short message, end the turn
(`ai-typing` false), leave no traceback in the log, and leave the session able to take its next
turn. Whether the quoted key is redacted is `test_secrets`'s business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from flow.testing.client import Recorder
from flow.testing.openai_stub import Behaviour, OpenAIStub
from flow.testing.servers import voicegraph
from flow.testing.speech import MIME, encode, speak_piper

pytestmark = pytest.mark.timeout(60)

TIMEOUT = {"OPENAI_TIMEOUT": "0.5"}
"""A hang or a stall ends half a second in."""
LONG = "The sky is clear over Paris today. Expect a high of twenty degrees. Rain returns on Sunday evening."
Fault = Callable[[Behaviour], None]


def _set(**values: object) -> Fault:
    def apply(b: Behaviour) -> None:
        for k, v in values.items():
            setattr(b, k, v)

    return apply


HTTP = {"500": _set(status=500), "429": _set(status=429), "401": _set(status=401),
        "hang": _set(hang=True), "echoed-auth": _set(status=401, echo_auth=True)}
STT = {**HTTP, "malformed": _set(malformed=True)}
LLM = {**HTTP, "stall": _set(stall_after=9), "cut": _set(cut_after=9), "malformed": _set(malformed=True),
       "empty": _set(empty=True)}
TTS = HTTP
GRAPHS = ("default", "streaming")


@pytest.fixture(scope="module")
def question() -> bytes:
    return encode(speak_piper("What is the weather like?"), "pcm16_16k", pad_s=0.3)


async def voice_turn(c: Recorder, audio: bytes) -> None:
    await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
    await c.stream(audio, 32_000)
    await c.emit("stop-recording")


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [f"{r.name}: {r.getMessage()}" for r in caplog.records
           if r.exc_info or "Traceback" in r.getMessage()]
    assert not bad, bad


def clean(error: dict) -> None:
    """A coded error a client can show: short, no traceback, no parser's text."""
    message = error["message"]
    assert len(message) < 300 and "Traceback" not in message, message
    for parser_text in ("Expecting", "char ", "line 1 column", "JSONDecodeError", "RemoteProtocolError"):
        assert parser_text not in message, message


async def turn_is_over(c: Recorder) -> None:
    """Typing, if it started, has stopped, and nothing else comes for the turn."""
    await c.quiet(0.3)
    typing = c.of("ai-typing")
    assert not typing or typing[-1] == {"isTyping": False}, [e for _, e, _ in c.events]


async def next_turn_works(stub: OpenAIStub, c: Recorder, *, voice: bytes | None = None) -> None:
    stub.heal()
    errors, replies = len(c.of("error")), len(c.of("ai-response"))
    stopped = len([p for p in c.of("ai-typing") if not p["isTyping"]])
    if voice is not None:
        await voice_turn(c, voice)
    else:
        await c.emit("text-message", "and now?")
    reply = await c.wait("ai-response", count=replies + 1)
    assert reply["audio"] and reply["text"]
    await c.wait("ai-typing", lambda p: p == {"isTyping": False}, count=stopped + 1)
    assert len(c.of("error")) == errors, c.of("error")


@pytest.mark.parametrize("graph", GRAPHS)
@pytest.mark.parametrize("fault", list(STT))
async def test_transcription_faults(stub, clients, caplog, question, graph, fault) -> None:
    caplog.set_level(logging.INFO)
    STT[fault](stub.stt)
    async with voicegraph(graph, stub=stub, env=TIMEOUT) as srv:
        c = await clients(srv.url)
        await voice_turn(c, question)
        error = await c.wait("error")
        assert error["code"] == "stt_failed", error
        clean(error)
        await turn_is_over(c)
        assert c.of("ai-response") == [] and {e["code"] for e in c.of("error")} == {"stt_failed"}
        await next_turn_works(stub, c, voice=question)
        await c.close()  # before the server stops: its shutdown then waits for no one
    no_tracebacks(caplog)


@pytest.mark.parametrize("graph", GRAPHS)
@pytest.mark.parametrize("fault", list(LLM))
async def test_chat_faults(stub, clients, caplog, graph, fault) -> None:
    caplog.set_level(logging.INFO)
    stub.reply = LONG
    LLM[fault](stub.chat)
    async with voicegraph(graph, stub=stub, env=TIMEOUT) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "weather please")
        error = await c.wait("error")
        assert error["code"] == "llm_failed", error
        clean(error)
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        await turn_is_over(c)
        assert c.of("ai-response") == [] and c.of("ai-response-end") == []
        assert {e["code"] for e in c.of("error")} == {"llm_failed"}
        chunks = c.of("ai-response-chunk")
        if chunks:  # a reply begun is ended, and told why
            assert c.of("response-cancelled") == [{"id": chunks[0]["id"], "reason": "llm_failed"}]
        await next_turn_works(stub, c)
        await c.close()
    no_tracebacks(caplog)


@pytest.mark.parametrize("graph", GRAPHS)
@pytest.mark.parametrize("fault", list(TTS))
async def test_speech_faults(stub, clients, caplog, graph, fault) -> None:
    caplog.set_level(logging.INFO)
    TTS[fault](stub.tts)
    async with voicegraph(graph, stub=stub, env=TIMEOUT) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "hello")
        error = await c.wait("error")
        assert error["code"] == "tts_failed", error
        clean(error)
        reply = await c.wait("ai-response")  # the text still comes, without audio
        assert reply["audio"] is None and reply["text"]
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        await turn_is_over(c)
        if graph == "streaming":
            assert c.of("ai-response-end") == [{"id": reply["id"], "replyTo": reply["replyTo"]}]
        assert {e["code"] for e in c.of("error")} == {"tts_failed"}
        await next_turn_works(stub, c)
        await c.close()
    no_tracebacks(caplog)


async def test_a_stalled_llm_ends_a_streamed_reply_it_had_begun(stub, clients, caplog) -> None:
    """The issue's case: sentences were already spoken when the LLM stopped sending."""
    caplog.set_level(logging.INFO)
    stub.reply = LONG
    stub.chat.stall_after = 9  # "The sky is clear over Paris today. Expect a" … and then nothing
    async with voicegraph("streaming", stub=stub, env=TIMEOUT) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "weather please")
        first = await c.wait("ai-response-chunk")
        assert first["text"] == "The sky is clear over Paris today." and first["audio"]
        cancelled = await c.wait("response-cancelled")
        assert cancelled == {"id": first["id"], "reason": "llm_failed"}
        error = c.of("error")
        assert [e["code"] for e in error] == ["llm_failed"] and "stalled" in error[0]["message"]
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        metrics = await c.wait("turn-metrics")
        assert metrics["cancelled"] is True and metrics["responseId"] == first["id"]
        await turn_is_over(c)
        assert c.of("ai-response-end") == [] and c.of("ai-response") == []
        await stub.wait_for(lambda: stub.of("chat")[0].cancelled_at is not None, timeout=5)  # upstream closed
        # the history keeps what was said, marked as cut off
        await next_turn_works(stub, c)
        said = stub.of("chat")[1].body["messages"][2]
        assert said["role"] == "assistant" and said["content"].startswith(first["text"])
        assert said["content"].endswith("[interrupted]")
        await c.close()
    no_tracebacks(caplog)


@pytest.mark.parametrize("graph", GRAPHS)
async def test_a_provider_that_is_down_then_back(stub, clients, caplog, graph) -> None:
    """A closed port: `llm_failed` (cannot reach the provider), then the same session works once it is back."""
    caplog.set_level(logging.INFO)
    port = int(stub.base_url.rsplit(":", 1)[1].split("/")[0])
    async with voicegraph(graph, stub=stub, env=TIMEOUT) as srv:
        c = await clients(srv.url)
        await stub.stop()
        await c.emit("text-message", "anyone there?")
        error = await c.wait("error")
        assert error["code"] == "llm_failed" and "cannot reach" in error["message"], error
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        await turn_is_over(c)
        await stub.start(port)
        await next_turn_works(stub, c)
        await c.close()
    no_tracebacks(caplog)
