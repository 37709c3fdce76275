"""Voice turns: real speech in every client format, streamed in slices, transcribed by the stub."""

from __future__ import annotations

import pytest

from flow.testing.servers import voicegraph
from flow.testing.speech import MIME, encode, seconds_of_wav, silence, speak_piper

QUESTION = "What is the weather like in Paris today?"


@pytest.fixture(scope="module")
def question():
    return speak_piper(QUESTION)


def spoken_seconds(question) -> float:
    import wave

    with wave.open(str(question)) as w:
        return w.getnframes() / w.getframerate()


@pytest.mark.parametrize(("fmt", "slice_bytes"), [
    ("webm", 997),   # arbitrary byte boundaries; only the first slice holds the header
    ("webm", 4000),
    ("ogg", 1500),
    ("wav", 3200),
    ("mp3", 1000),
    ("pcm16_16k", 3200),
    ("pcm16_48k", 9600),
])
async def test_recording_becomes_one_turn(stub, clients, question, fmt, slice_bytes) -> None:
    stub.transcript = "what is the weather like in paris today"
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME[fmt]})
        await c.stream(encode(question, fmt), slice_bytes)
        result = await c.wait("speech-result")
        assert result["isFinal"] is True and result["text"] == stub.transcript
        assert isinstance(result["utteranceId"], str)
        msg = await c.wait("message-received")
        assert msg["source"] == "voice" and msg["text"] == stub.transcript
        resp = await c.wait("ai-response")
        assert resp["replyTo"] == msg["id"] and resp["audio"]
        upload = stub.of("transcriptions")[0]
        assert upload.body["model"] == "whisper-1"
        heard = seconds_of_wav(upload.upload)
        # the utterance is the speech plus pre-roll and a short tail, not the padding
        assert spoken_seconds(question) - 0.3 < heard < spoken_seconds(question) + 0.9
        await c.quiet(0.3)
        assert len(c.of("speech-result")) == 1 and len(stub.of("transcriptions")) == 1


async def test_sniffed_format_without_start_recording(stub, clients, question) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.stream(encode(question, "ogg"), 2000)
        assert (await c.wait("speech-result"))["text"] == "hello there"


async def test_format_object_for_raw_pcm(stub, clients, question) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"format": "pcm16", "sampleRate": 48000, "channels": 1, "language": "en"})
        await c.stream(encode(question, "pcm16_48k"), 7680)
        await c.wait("speech-result")
        assert stub.of("transcriptions")[0].body.get("language") == "en"


async def test_silence_only_makes_no_turn_and_no_provider_call(stub, clients) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["webm"]})
        await c.stream(silence(3.0, "webm"), 1000)
        await c.emit("stop-recording")
        await c.quiet(1.0)
        assert c.of("speech-result") == [] and c.of("message-received") == []
        assert stub.calls == []
        assert c.of("error") == []


async def test_stop_recording_finalizes_at_once(stub, clients, question) -> None:
    async with voicegraph(stub=stub, graph_text=None) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["webm"]})
        # the speech without its trailing silence: only stop-recording can end it
        await c.stream(encode(question, "webm", pad_s=0.0), 1200)
        await c.emit("stop-recording")
        result = await c.wait("speech-result", timeout=10)
        assert result["isFinal"]
        upload = stub.of("transcriptions")[0]
        assert seconds_of_wav(upload.upload) > spoken_seconds(question) - 0.3


async def test_two_utterances_in_one_recording(stub, clients, question) -> None:
    stub.chat.first_token_latency = 0.5  # the first reply is still being written when turn two arrives
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
        audio = encode(question, "pcm16_16k")
        await c.stream(audio + audio, 3200)
        await c.wait("speech-result", count=2)
        turns = [await c.wait("message-received", count=n) for n in (1, 2)]
        resp = await c.wait("ai-response")
        await c.quiet(0.5)
        # both utterances arrive faster than real time: the second turn makes the first stale
        assert resp["replyTo"] == turns[1]["id"]
        assert len(c.of("ai-response")) == 1
        events = [e for _, e, _ in c.events]
        assert events.index("speech-result") < events.index("message-received")


async def test_text_turn_during_voice_turn(stub, clients, question) -> None:
    stub.stt.latency = 0.5
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["webm"]})
        await c.stream(encode(question, "webm"), 2000)
        await stub.wait_for(lambda: len(stub.of("transcriptions")) == 1)
        await c.emit("text-message", "typed while talking")
        await c.wait("message-received", count=2)
        await c.wait("speech-result")
        await c.quiet(1.0)
        turns = c.of("message-received")
        assert [t["source"] for t in turns] == ["text", "voice"]
        responses = c.of("ai-response")
        # the voice turn came last, so it is the current one: only its answer is delivered
        assert responses[-1]["replyTo"] == turns[1]["id"]
        assert all(r["replyTo"] != turns[0]["id"] for r in responses[1:])


async def test_stt_failure_gives_error_and_empty_final(stub, clients, question) -> None:
    stub.stt.status = 500
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["webm"]})
        await c.stream(encode(question, "webm"), 2000)
        err = await c.wait("error")
        assert err["code"] == "stt_failed"
        result = await c.wait("speech-result")
        assert result == {"text": "", "isFinal": True, "utteranceId": result["utteranceId"]}
        await c.quiet(0.3)
        assert c.of("message-received") == []


async def test_start_recording_voice_reaches_the_synthesizer(stub, clients, question) -> None:
    async with voicegraph(stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["ogg"], "voice": "nova"})
        await c.stream(encode(question, "ogg"), 1500)
        await c.wait("ai-response")
        assert stub.of("speech")[0].body["voice"] == "nova"
        await c.emit("text-message", "typed turns use the graph's voice")
        await c.wait("ai-response", count=2)
        assert stub.of("speech")[1].body["voice"] == "alloy"
