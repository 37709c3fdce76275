"""Random interleavings of text turns, voice turns, interrupts and provider latencies (hypothesis),
through a real server and the stub: nothing stale reaches the client, every abandoned provider
request is really cancelled, and the history the LLM sees is what the user heard.

Checks use only orderings the server guarantees: events of one session leave through one queue.
"""

from __future__ import annotations

import asyncio
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import voicegraph
from flow.testing.speech import encode, speak_piper

REPLY = "First we check the sky. Then we read the wind. Finally we decide what to wear today."
RESPONSE_EVENTS = ("ai-response", "ai-response-chunk", "ai-response-end")

actions = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.integers(0, 99)),
        st.tuples(st.just("voice"), st.just(0)),
        st.tuples(st.just("interrupt"), st.just(0)),
        st.tuples(st.just("wait"), st.sampled_from([0, 50, 150, 400])),
    ),
    min_size=1, max_size=8,
)
latencies = st.fixed_dictionaries({
    "first_token": st.sampled_from([0.0, 0.05, 0.3]),
    "token_delay": st.sampled_from([0.0, 0.01, 0.03]),
    "tts": st.sampled_from([0.0, 0.05, 0.15]),
    "stt": st.sampled_from([0.0, 0.1]),
})


async def scenario(steps, lat, graph: str, voice: bytes):
    stub = OpenAIStub(transcript="what should i wear", reply=REPLY)
    stub.chat.first_token_latency = lat["first_token"]
    stub.chat.token_delay = lat["token_delay"]
    stub.tts.latency = lat["tts"]
    stub.stt.latency = lat["stt"]
    async with stub, voicegraph(graph, stub=stub) as srv:
        c = await Recorder().connect(srv.url)
        for kind, arg in steps:
            if kind == "text":
                await c.emit("text-message", f"question {arg}")
            elif kind == "voice":
                await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
                await c.stream(voice, 16000)
                await c.emit("stop-recording")
            elif kind == "interrupt":
                await c.emit("interrupt", {})
            else:
                await asyncio.sleep(arg / 1000)
        # let everything settle: every reply finishes or is cancelled
        for _ in range(200):
            await asyncio.sleep(0.05)
            if all(call.finished or call.cancelled_at for call in stub.of("chat")) and \
               srv.server.sessions and not any(s.ctx.task_count > 1 for s in srv.server.sessions.values()):
                break
        await asyncio.sleep(0.3)
        # one more turn shows the history the LLM is given
        await c.emit("text-message", "final question")
        await c.wait("ai-response", lambda p: True, count=len(c.of("ai-response")) + 1, timeout=20)
        await c.close()
        return c.events, stub


def check(events, stub) -> None:
    latest: str | None = None
    cancelled: set[str] = set()
    heard: dict[str, list[str]] = {}
    full: dict[str, str] = {}
    turns: list[tuple[str, str]] = []
    for _, name, p in events:
        if name == "message-received":
            latest = p["id"]
            turns.append((p["id"], p["text"]))
        elif name == "turn-metrics" and p["cancelled"]:
            cancelled.add(p["id"])
        elif name in RESPONSE_EVENTS:
            assert p["replyTo"] == latest, f"{name} for an older turn after a newer one was accepted"
            assert p["replyTo"] not in cancelled, f"{name} after its turn was cancelled"
            if name == "ai-response-chunk":
                heard.setdefault(p["replyTo"], []).append(p["text"])
            elif name == "ai-response":
                full[p["replyTo"]] = p["text"]
    # every chat request either ran to its end or was cancelled upstream; none left hanging
    for call in stub.of("chat") + stub.of("speech"):
        assert call.finished or call.cancelled_at, f"a {call.endpoint} request was abandoned, not cancelled"
    # a turn whose reply never fully reached the client must have had its request cancelled
    # (or never started); the last chat request carries the history
    messages = stub.of("chat")[-1].body["messages"][1:-1]
    expected: list[tuple[str, str]] = []
    for tid, text in turns[:-1]:
        expected.append(("user", text))
        if tid in full:
            expected.append(("assistant", full[tid]))
        elif heard.get(tid):
            expected.append(("assistant", " ".join(heard[tid]) + " [interrupted]"))
    got = [(m["role"], re.sub(r"\s+", " ", m["content"]).strip()) for m in messages]
    assert got == expected


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=actions, lat=latencies)
def test_streaming_graph_never_leaks_stale_events(steps, lat) -> None:
    voice = encode(speak_piper("What should I wear?"), "pcm16_16k", pad_s=0.1)
    events, stub = asyncio.run(scenario(steps, lat, "streaming", voice))
    check(events, stub)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=actions, lat=latencies)
def test_sequential_graph_never_leaks_stale_events(steps, lat) -> None:
    voice = encode(speak_piper("What should I wear?"), "pcm16_16k", pad_s=0.1)
    events, stub = asyncio.run(scenario(steps, lat, "default", voice))
    check(events, stub)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=actions, lat=latencies)
def test_offline_speech_graph_never_leaks_stale_events(steps, lat) -> None:
    """Offline STT and TTS (pocketsphinx, piper in the CPU pool) around the stub's LLM."""
    voice = encode(speak_piper("What should I wear?"), "pcm16_16k", pad_s=0.1)
    events, stub = asyncio.run(scenario(steps, lat, "local_llm", voice))
    check(events, stub)
