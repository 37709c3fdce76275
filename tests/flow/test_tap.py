"""The message tap: real server, real client; what flowed on each edge, in order, only while watched."""

from __future__ import annotations

import itertools
import re

import pytest

from flow.contract.messages import AudioChunk, Transcript, UserTurn
from flow.tap import links, summarize
from flow.testing.servers import voicegraph
from flow.testing.speech import encode, speak_espeak

pytestmark = pytest.mark.timeout(90)


def test_a_summary_shows_sizes_never_bytes() -> None:
    chunk = AudioChunk("s", 2, b"\x01\x02" * 640, 16_000, 2, 1, 40.0)
    text = summarize(chunk)
    assert "<1,280 B>" in text and "\\x01" not in text and "session" not in text
    assert links(chunk) == (None, None, 2)
    long = summarize(Transcript("s", "u1", "word " * 100))
    assert len(long) <= 161 and "chars" in long
    assert links(UserTurn("s", 3, "t", "hi", "voice")) == (3, None, None)


def _taps(sub) -> list[dict]:
    return [e.data for e in sub.drain() if e.kind == "tap"]


async def test_a_watched_voice_turn_shows_every_edge_in_order(stub, clients) -> None:
    speech = encode(speak_espeak("hello there"), "pcm16_16k")
    async with voicegraph("default", stub=stub) as srv:
        monitor = srv.server.resources.monitor
        sub = monitor.subscribe()
        c = await clients(srv.url)
        sid = c.sio.get_sid()
        await c.emit("text-message", "not watched yet")
        await c.wait("ai-response")
        assert _taps(sub) == []  # subscribed to the monitor, but nobody taps this session

        monitor.tap.watch(sid)
        await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
        await c.stream(speech, 1280)
        reply = await c.wait("ai-response", count=2, timeout=30)
        taps = _taps(sub)
        labels = [t["label"] for t in taps]
        assert labels[0] == "client.start -> buffer.start"
        seqs = [t["seq"] for t in taps]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

        def first(label: str) -> int:
            return labels.index(label)

        path = ["client.audio -> buffer.audio", "buffer.audio -> finalizer.audio",
                "finalizer.utterance -> stt.utterance", "stt.transcript -> turns.transcript",
                "turns.turn -> llm.turn", "llm.reply -> tts.reply", "tts.speech -> gate.response",
                "gate.response -> client.response"]
        assert [first(label) for label in path] == sorted(first(label) for label in path)
        audio = [t for t in taps if t["label"] == "client.audio -> buffer.audio"]
        assert audio and all("<1,280 B>" in t["summary"] for t in audio)  # sizes, never the bytes
        assert all(len(t["summary"]) <= 161 for t in taps)

        # the accepted turn names the transcript it came from; the transcript its utterance
        [turn] = [t for t in taps if t["label"] == "turns.turn -> llm.turn"]
        cause = next(t for t in taps if t["seq"] == turn["cause"])
        assert cause["label"] == "stt.transcript -> turns.transcript" and "hello there" in cause["summary"]
        [utt] = [t for t in taps if t["label"] == "finalizer.utterance -> stt.utterance"]
        assert utt["utterance"] == cause["utterance"] and utt["recording"] == audio[0]["recording"]
        [out] = [t for t in taps if t["label"] == "gate.response -> client.response"]
        assert out["turn"] == turn["turn"] == 2 and reply["text"][:20] in out["summary"]

        monitor.tap.unwatch(sid)  # publishes the audio run still open (the trailing silence)
        audio += [t for t in _taps(sub) if t["label"] == "client.audio -> buffer.audio"]

        def count(summary: str) -> int:
            return int(summary.split(" messages, ")[0]) if " messages, " in summary else 1

        runs = sorted((int(re.search(r"seq=(\d+)", t["summary"]).group(1)), count(t["summary"])) for t in audio)
        assert runs[0][0] == 1
        assert all(start + n == after for (start, n), (after, _) in itertools.pairwise(runs))  # no chunk missing
        assert max(count(t["summary"]) for t in audio) == 25
        await c.emit("text-message", "not watched any more")
        await c.wait("ai-response", count=3)
        assert _taps(sub) == []
        sub.close()
