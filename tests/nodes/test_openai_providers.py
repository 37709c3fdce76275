"""OpenAI providers through the real openai SDK against the loopback stub."""

from __future__ import annotations

import asyncio
import io
import wave

import pytest

from flow.config import Settings
from flow.contract.providers import ChatMessage, ProviderError
from flow.contract.resources import Resources
from nodes.responder.openai import OpenAIResponder
from nodes.synthesizer.openai import OpenAISynthesizer
from nodes.transcriber.openai import OpenAITranscriber


@pytest.fixture
async def resources(stub):
    r = Resources(Settings(env={"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test", "OPENAI_TIMEOUT": "2",
                                "OPENAI_MAX_RETRIES": "0"}))
    yield r
    await r.aclose()


async def test_transcription_uploads_a_wav(stub, resources) -> None:
    stub.transcript = "  turn on the lights  "
    stt = OpenAITranscriber(resources, model="gpt-4o-mini-transcribe")
    text = await stt.transcribe(b"\1\0" * 16000, 16000, 2, 1, language="en-US")
    assert text == "turn on the lights"
    [call] = stub.of("transcriptions")
    assert call.body["model"] == "gpt-4o-mini-transcribe" and call.body["language"] == "en"
    with wave.open(io.BytesIO(call.upload)) as w:
        assert (w.getframerate(), w.getnframes()) == (16000, 16000)


async def test_chat_streams_deltas_and_skips_empty_choices(stub, resources) -> None:
    stub.reply = "one two three"
    llm = OpenAIResponder(resources, temperature=0.2)
    pieces = [p async for p in llm.reply([ChatMessage("system", "s"), ChatMessage("user", "count")])]
    assert pieces == ["one", " two", " three"]
    body = stub.of("chat")[0].body
    assert body["stream"] is True and body["temperature"] == 0.2
    assert body["messages"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "count"}]


async def test_cancelling_the_consumer_aborts_the_upstream_request(stub, resources) -> None:
    stub.reply = " ".join(["word"] * 200)
    stub.chat.token_delay = 0.05
    llm = OpenAIResponder(resources)
    got: list[str] = []

    async def consume() -> None:
        async for piece in llm.reply([ChatMessage("user", "talk")]):
            got.append(piece)

    task = asyncio.ensure_future(consume())
    await stub.wait_for(lambda: len(got) >= 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stub.wait_for(lambda: stub.of("chat")[0].cancelled_at is not None, timeout=5)
    assert len(got) < 200


@pytest.mark.parametrize("status", [500, 429, 401])
async def test_http_errors_become_provider_errors(stub, resources, status) -> None:
    stub.chat.status = status
    with pytest.raises(ProviderError, match=f"HTTP {status} stub failure"):
        async for _ in OpenAIResponder(resources).reply([ChatMessage("user", "hi")]):
            pass


@pytest.mark.parametrize(("fault", "reason"), [
    ({"stall_after": 2}, "the stream stalled"),
    ({"cut_after": 2}, "the stream broke off"),
    ({"malformed": True}, "the provider sent a malformed stream"),
])
async def test_a_stream_that_goes_wrong_midway_is_a_provider_error(stub, resources, fault, reason) -> None:
    for k, v in fault.items():
        setattr(stub.chat, k, v)
    llm = OpenAIResponder(resources, timeout_s=0.3)
    got: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for piece in llm.reply([ChatMessage("user", "hi")]):
            got.append(piece)
    assert str(caught.value).startswith(f"chat completion failed: {reason}")  # never the parser's words
    assert len(got) <= 2


async def test_an_empty_stream_is_no_reply(stub, resources) -> None:
    stub.chat.empty = True
    assert [p async for p in OpenAIResponder(resources).reply([ChatMessage("user", "hi")])] == []


async def test_hang_times_out_as_provider_error(stub, resources) -> None:
    stub.stt.hang = True
    stt = OpenAITranscriber(resources, timeout_s=0.3)
    with pytest.raises(ProviderError, match="timed out"):
        await stt.transcribe(b"\0" * 3200, 16000, 2, 1)
    await stub.wait_for(lambda: stub.of("transcriptions")[0].cancelled_at is not None)


async def test_unreachable_server(resources) -> None:
    r = Resources(Settings(env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "k",
                                "OPENAI_MAX_RETRIES": "0"}))
    with pytest.raises(ProviderError, match="cannot reach"):
        await OpenAISynthesizer(r).synthesize("hello")
    await r.aclose()


async def test_speech_is_mp3_and_long_text_is_split(stub, resources) -> None:
    tts = OpenAISynthesizer(resources, voice="nova")
    short = await tts.synthesize("Hello there.")
    assert short[:3] == b"ID3" or short[0] == 0xFF
    long_text = ("This sentence is exactly long enough to matter. " * 100).strip()
    await tts.synthesize(long_text)
    calls = stub.of("speech")[1:]
    assert len(calls) == 2 and all(len(c.body["input"]) <= 4096 for c in calls)
    assert " ".join(c.body["input"] for c in calls) == long_text
    assert {c.body["voice"] for c in stub.of("speech")} == {"nova"}
    assert {c.body["response_format"] for c in stub.of("speech")} == {"mp3"}
