"""Speculative turns (graphs/fast.yaml) over a real server, real speech and the stub at latencies.

The client streams at real-time pace, so a pause in its speech is a pause on the server's clock
too: the tentative utterance goes out after `speculate_after_ms`, and the test can see its
provider calls start (and be cancelled) before the commit.
"""

from __future__ import annotations

import numpy as np
import pytest

from flow.testing.servers import voicegraph
from flow.testing.speech import MIME, pcm16, seconds_of_wav, speak_espeak

FIRST, REST = "What is the weather", "in Paris today"
SLICE = 3200  # 100 ms of 16 kHz PCM16
MS = 32  # bytes per ms


def zeros(ms: int) -> bytes:
    return b"\0" * (ms * MS)


def spoken(text: str) -> bytes:
    """espeak-ng's speech of `text` without the half second of silence it ends with."""
    pcm = pcm16(speak_espeak(text))
    x = np.abs(np.frombuffer(pcm, "<i2").astype(np.int32))
    last = int(np.nonzero(x > 0.02 * 32768)[0][-1])
    return pcm[: (last + 800) * 2]  # + 50 ms


@pytest.fixture(scope="module")
def paused() -> bytes:
    """The question with a 450 ms pause mid-sentence (longer than 250, shorter than 700)."""
    return zeros(300) + spoken(FIRST) + zeros(450) + spoken(REST) + zeros(1500)


@pytest.fixture(scope="module")
def plain() -> bytes:
    return zeros(300) + spoken(f"{FIRST} {REST}") + zeros(1500)


def by_length(data: bytes) -> str:
    """The stub 'recognises' the whole question only in an upload long enough to hold all of it."""
    return f"{FIRST} {REST}".lower() if seconds_of_wav(data) > 2.2 else FIRST.lower()


async def speak(c, audio: bytes) -> None:
    await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
    await c.stream(audio, SLICE, pace_s=0.1)


async def test_a_mid_sentence_pause_yields_one_whole_turn(stub, clients, paused) -> None:
    stub.transcript = by_length
    stub.chat.first_token_latency = 1.0  # still thinking when the user goes on
    async with voicegraph("fast", stub=stub) as srv:
        c = await clients(srv.url)
        await speak(c, paused)
        msg = await c.wait("message-received")
        resp = await c.wait("ai-response")
        await c.quiet(1.0)
        assert [m["text"] for m in c.of("message-received")] == [f"{FIRST} {REST}".lower()]
        assert [r["text"] for r in c.of("speech-result")] == [msg["text"]]
        assert len(c.of("ai-response")) == 1 and resp["replyTo"] == msg["id"]
        # the answer to the first half was started and cancelled; the whole question answered
        chats = stub.of("chat")
        assert chats[0].body["messages"][-1]["content"] == FIRST.lower()
        assert chats[0].cancelled_at is not None
        assert chats[-1].body["messages"][-1]["content"] == msg["text"] and chats[-1].cancelled_at is None
        assert c.of("error") == []
        # the history holds committed turns only: the withdrawn half never happened
        stub.chat.first_token_latency = 0
        await c.emit("text-message", "and tomorrow?")
        await c.wait("ai-response", count=2)
        roles = [(m["role"], m["content"]) for m in stub.of("chat")[-1].body["messages"][1:]]
        assert roles == [("user", msg["text"]), ("assistant", resp["text"]), ("user", "and tomorrow?")]


async def test_an_ordinary_question_is_answered_ahead_of_the_commit(stub, clients, plain) -> None:
    stub.transcript = by_length
    async with voicegraph("fast", stub=stub) as srv:
        c = await clients(srv.url)
        await speak(c, plain)
        msg = await c.wait("message-received")
        await c.wait("ai-response")
        await c.quiet(0.5)
        # one transcription, one answer: the commit took what speculation made
        assert len(stub.of("transcriptions")) == 1 and len(stub.of("chat")) == 1
        assert len(stub.of("speech")) == 1 and stub.cancelled == []
        assert stub.of("chat")[0].started < stub.of("chat")[0].finished
        events = [e for _, e, _ in c.events]
        assert events[:4] == ["speech-result", "message-received", "ai-typing", "ai-response"]
        assert msg["text"] == f"{FIRST} {REST}".lower()
        # the speech synthesis was finished before the turn was even announced
        t_msg = next(t for t, e, _ in c.events if e == "message-received")
        assert stub.of("speech")[0].finished is not None
        assert stub.of("speech")[0].finished < t_msg + 0.05


async def test_an_interrupt_during_speculation_leaves_nothing(stub, clients, plain) -> None:
    stub.transcript = by_length
    stub.chat.first_token_latency = 0.6
    async with voicegraph("fast", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
        await c.stream(plain[: len(plain) - len(zeros(1200))], SLICE, pace_s=0.1)  # a pause: speculation starts
        await stub.wait_for(lambda: len(stub.of("chat")) == 1)
        await c.emit("interrupt")
        await stub.wait_for(lambda: stub.of("chat")[0].cancelled_at is not None, timeout=5)
        assert c.events == []  # the client saw nothing of the tentative turn
        await c.stream(zeros(1200), SLICE, pace_s=0.1)  # the commit: answered anew
        msg = await c.wait("message-received")
        await c.wait("ai-response")
        await c.quiet(0.5)
        assert len(c.of("message-received")) == 1 and len(c.of("ai-response")) == 1
        assert c.of("response-cancelled") == [] and c.of("error") == []
        assert [m["role"] for m in stub.of("chat")[-1].body["messages"]] == ["system", "user"]
        assert stub.of("chat")[-1].body["messages"][-1]["content"] == msg["text"]


EARLY = """
version: 1
extends: fast_streaming
name: early
nodes:
  finalizer: {params: {commit_early_ms: 300}}
edges:
  - stt.tentative -> finalizer.heard
"""


@pytest.mark.parametrize(("heard", "early"), [("What is the weather in Paris today?", True),
                                              ("What is the weather in Paris and", False)])
async def test_commit_early_after_a_finished_sentence(stub, clients, plain, heard, early) -> None:
    stub.transcript = heard
    async with voicegraph(graph_text=EARLY, stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
        speech = plain[: len(plain) - len(zeros(1500))]
        await c.stream(speech, SLICE, pace_s=0.1)
        # the pause comes slower than real time, so the hint has time to arrive whatever the load:
        # what is measured is audio time
        await c.stream(zeros(1500), SLICE, pace_s=0.3)
        metrics = (await c.wait("turn-metrics"))["ms"]
        assert metrics["speech_end"] == 0
        if early:
            assert 300 <= metrics["endpointed"] < 700
        else:
            assert metrics["endpointed"] >= 700
        assert len(c.of("message-received")) == 1


async def test_streamed_pieces_are_held_until_the_commit_then_sent_in_order(stub, clients, plain) -> None:
    stub.transcript = by_length
    stub.reply = "Well, the weather in Paris today is mild, with a light breeze. Rain comes on Sunday."
    async with voicegraph("fast_streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
        await c.stream(plain[: len(plain) - len(zeros(1500))], SLICE, pace_s=0.1)
        await c.stream(zeros(1500), SLICE, pace_s=0.3)  # a slow pause: speculation wins whatever the load
        await c.wait("ai-response")
        metrics = await c.wait("turn-metrics")
        events = [e for _, e, _ in c.events]
        assert events.index("message-received") < events.index("ai-response-chunk")
        chunks = c.of("ai-response-chunk")
        assert [ch["seq"] for ch in chunks] == list(range(len(chunks)))
        assert chunks[0]["text"] == "Well, the weather in Paris today is mild,"  # the first clause
        assert " ".join(ch["text"] for ch in chunks) == stub.reply
        assert metrics["speculative"] is True and metrics["cancelled"] is False
        ms = metrics["ms"]
        # (speech_end is endpointed less the pause in audio time; the pause was streamed slower)
        assert ms["speculated"] < ms["endpointed"] <= ms["first_audio"]
        # the answer was written before the commit: the speculation is what saved the time
        assert ms["first_token"] < ms["endpointed"]
        assert metrics["savedMs"] > 0 and abs(metrics["savedMs"] - (ms["endpointed"] - ms["speculated"])) <= 0.2


SMART = """
version: 1
extends: fast_streaming
name: smart
nodes:
  finalizer: {params: {end_of_turn: smart_turn, hesitation_ms: 2000}}
"""


async def test_smart_turn_commits_a_finished_sentence_early(stub, clients) -> None:
    stub.transcript = "please turn off the kitchen lights"
    audio = zeros(300) + spoken("Please turn off the kitchen lights.")
    async with voicegraph(graph_text=SMART, stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
        await c.stream(audio, SLICE, pace_s=0.1)
        await c.stream(zeros(1500), SLICE, pace_s=0.3)  # slower than real time: audio time is measured
        metrics = (await c.wait("turn-metrics"))["ms"]
        assert metrics["endpointed"] < 700  # the model heard a finished turn: no wait for silence_ms


async def test_smart_turn_waits_through_a_hesitation(stub, clients) -> None:
    stub.transcript = by_length
    # a 1 s pause after a cut-off phrase: the silence alone (700 ms) would end the turn there
    audio = zeros(300) + spoken("What is the weather like in") + zeros(1000) + spoken("Paris today") + zeros(2500)
    async with voicegraph(graph_text=SMART, stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
        await c.stream(audio, SLICE, pace_s=0.1)
        await c.wait("ai-response")
        await c.quiet(0.5)
        assert len(c.of("message-received")) == 1
        assert len(stub.of("transcriptions")) == 2  # the tentative first half, then the whole
        assert c.of("message-received")[0]["text"] == f"{FIRST} {REST}".lower()


async def test_turn_metrics_count_the_work_thrown_away(stub, clients, paused) -> None:
    stub.transcript = by_length
    stub.chat.first_token_latency = 1.0
    async with voicegraph("fast_streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await speak(c, paused)
        metrics = await c.wait("turn-metrics")
        assert metrics["speculative"] is True and metrics["withdrawn"] == 1 and metrics["cancelled"] is False
        assert len(c.of("turn-metrics")) == 1 and len(c.of("message-received")) == 1


async def test_a_held_reply_is_paced_from_its_release_not_from_the_speculation(stub, clients, plain) -> None:
    """The pacer's clock starts at the commit: the second piece reaches the client when the first
    (sent at the commit) has `lead_ms` left to play, not sooner by the time the turn was held."""
    from flow.audio.mp3 import mp3_seconds_b64

    stub.transcript = by_length
    stub.reply = ("The weather in Paris today is mild and sunny, with a light breeze from the west. "
                  "Rain comes on Sunday.")
    async with voicegraph("fast_streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
        await c.stream(plain[: len(plain) - len(zeros(1500))], SLICE, pace_s=0.1)
        # a slow pause: the reply is made well before the commit (about 1.35 s of held time)
        await c.stream(zeros(1500), SLICE, pace_s=0.3)
        await c.wait("ai-response-chunk", count=2)
        metrics = await c.wait("turn-metrics")
        assert metrics["speculative"] is True and metrics["ms"]["first_token"] < metrics["ms"]["endpointed"]
        (t1, first), (t2, _second) = [(t, p) for t, e, p in c.events if e == "ai-response-chunk"][:2]
        assert first["text"] == "The weather in Paris today is mild and sunny,"
        lead_s = 0.4  # the streaming graph's lead_ms
        plays = mp3_seconds_b64(first["audio"])
        assert plays > 2.0
        # paced from the speculation, the second piece would come ~1.35 s early; 0.25 s of slack
        # covers the delivery of the first piece
        assert t2 - t1 >= plays - lead_s - 0.25, (t2 - t1, plays)


async def test_an_llm_failure_during_speculation_is_held_until_the_commit(stub, clients, plain) -> None:
    stub.transcript = by_length
    stub.chat.status = 500  # every chat request fails at once: the tentative turn's fails before the commit
    async with voicegraph("fast", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": MIME["pcm16_16k"]})
        await c.stream(plain[: len(plain) - len(zeros(1500))], SLICE, pace_s=0.1)
        await c.stream(zeros(1500), SLICE, pace_s=0.3)  # a slow pause: the failure comes well before the commit
        err = await c.wait("error")
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        await c.quiet(1.0)
        assert err["code"] == "llm_failed"
        assert len(c.of("error")) == 1 and c.of("ai-response") == []
        events = [e for _, e, _ in c.events]
        assert events.index("message-received") < events.index("error")  # told after the turn, not before
        t_msg = next(t for t, e, _ in c.events if e == "message-received")
        chats = stub.of("chat")
        assert chats and all(call.started < t_msg for call in chats)
        # the failure was the speculation's, held: the commit did not ask the LLM again
        assert len(stub.of("transcriptions")) == 1
        # the session goes on
        stub.heal()
        await c.emit("text-message", "hello again")
        assert "hello again" in (await c.wait("ai-response"))["text"]


async def test_an_llm_failure_of_a_withdrawn_speculation_never_reaches_the_client(stub, clients, paused) -> None:
    import asyncio

    stub.transcript = by_length
    stub.chat.status = 500  # the first half's answer fails; the whole question's is made after a heal
    async with voicegraph("fast", stub=stub) as srv:
        c = await clients(srv.url)
        talking = asyncio.create_task(speak(c, paused))
        await stub.wait_for(lambda: bool(stub.of("chat")), timeout=20)
        await asyncio.sleep(0.2)  # its 500 answered
        stub.heal()
        await talking
        msg = await c.wait("message-received")
        await c.wait("ai-response")
        await c.quiet(1.0)
        chats = stub.of("chat")
        assert chats[0].body["messages"][-1]["content"] == FIRST.lower()  # the withdrawn half's, failed
        assert chats[0].cancelled_at is None  # (answered with its 500, not cut short by the withdrawal)
        assert msg["text"] == f"{FIRST} {REST}".lower() and len(c.of("message-received")) == 1
        assert c.of("error") == []
