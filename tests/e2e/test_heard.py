"""Barge-in that knows what was heard: paced streaming and `interrupt {playedMs}`.

The streaming graph sends a reply's pieces at playback speed (`playback_pacer`), so an interrupt
one second into a long reply still finds pieces to cancel; `playedMs` cuts the history the LLM
sees next turn to what the user's player had played.
"""

from __future__ import annotations

from flow.audio.mp3 import mp3_seconds_b64
from flow.testing.servers import voicegraph

FIVE = ("The sky is clear over Paris today. Expect a high of twenty degrees. Rain returns on Sunday "
        "evening. The wind comes from the west. Tomorrow will be a little cooler.")


async def test_an_interrupt_one_second_in_leaves_the_rest_unsent_and_unsynthesized(stub, clients) -> None:
    stub.reply = FIVE
    stub.tts.latency = 1.5  # synthesis slower than the LLM: pieces 3 and 4 are still being made
    async with voicegraph("streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "weather please")
        first = await c.wait("ai-response-chunk")
        await c.quiet(1.0)
        assert len(c.of("ai-response-chunk")) == 1  # the second one waits for the first to play
        await c.emit("interrupt", {"responseId": first["id"], "playedMs": 1000})
        cancelled = await c.wait("response-cancelled")
        assert cancelled["id"] == first["id"]
        await stub.wait_for(lambda: len(stub.cancelled) >= 1, timeout=5)
        await c.quiet(2.5)
        assert len(c.of("ai-response-chunk")) == 1 and c.of("ai-response") == []
        spoken = [call.body["input"] for call in stub.of("speech")]
        assert "Tomorrow will be a little cooler." not in spoken  # never even started
        assert all(call.cancelled_at is not None for call in stub.of("speech")
                   if call.body["input"] not in spoken[:2])  # what was being made was stopped
        # the history keeps what was played: 1 s of a first piece that plays longer
        await c.emit("text-message", "what did you say?")
        stub.tts.latency = 0
        await c.wait("ai-response")
        said = stub.of("chat")[1].body["messages"][2]
        d1 = mp3_seconds_b64(first["audio"])
        words = first["text"].split()
        expected = " ".join(words[: int(len(words) * 1.0 / d1)]) + " [interrupted]"
        assert said == {"role": "assistant", "content": expected}


async def test_played_ms_cuts_the_history_within_a_piece(stub, clients) -> None:
    stub.reply = FIVE
    async with voicegraph("streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "weather please")
        second = await c.wait("ai-response-chunk", count=2)
        first = c.of("ai-response-chunk")[0]
        d1, d2 = mp3_seconds_b64(first["audio"]), mp3_seconds_b64(second["audio"])
        await c.emit("interrupt", {"responseId": first["id"], "playedMs": 1000 * (d1 + d2 / 2)})
        await c.wait("response-cancelled")
        await c.emit("text-message", "what did you say?")
        await c.wait("ai-response")
        words = second["text"].split()
        heard = f"{first['text']} {' '.join(words[: len(words) // 2])} [interrupted]"
        assert stub.of("chat")[1].body["messages"][2] == {"role": "assistant", "content": heard}


async def test_played_ms_after_a_whole_reply_cuts_it_too(stub, clients) -> None:
    stub.reply = FIVE
    async with voicegraph("default", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "weather please")
        resp = await c.wait("ai-response")
        await c.emit("interrupt", {"responseId": resp["id"], "playedMs": 0})  # stopped before it played
        await c.emit("text-message", "hello?")
        await c.wait("ai-response", count=2)
        roles = [m["role"] for m in stub.of("chat")[1].body["messages"]]
        assert roles == ["system", "user", "user"]
        await c.emit("text-message", "again")
        await c.wait("ai-response", count=3)
        # the second reply was not interrupted: whole in the history
        assert stub.of("chat")[2].body["messages"][3]["content"] == c.of("ai-response")[1]["text"]


async def test_a_bad_played_ms_is_a_clear_error(stub, clients) -> None:
    async with voicegraph("streaming", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("interrupt", {"playedMs": "lots"})
        err = await c.wait("error")
        assert err["code"] == "bad_request" and "playedMs" in err["message"]
        await c.emit("text-message", "still there?")
        await c.wait("ai-response")


async def test_played_ms_of_an_older_reply_cuts_its_history_and_leaves_the_newer_reply(stub, clients) -> None:
    stub.reply = FIVE
    async with voicegraph("default", stub=stub) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "weather please")
        old = await c.wait("ai-response")
        stub.chat.first_token_latency = 1.0
        await c.emit("text-message", "and tomorrow?")
        await stub.wait_for(lambda: len(stub.of("chat")) == 2)
        # the user had heard nothing of the first reply (their player was stopped): say so late
        await c.emit("interrupt", {"responseId": old["id"], "playedMs": 0})
        new = await c.wait("ai-response", count=2)  # the reply in flight is not cancelled
        assert new["id"] != old["id"] and c.of("response-cancelled") == []
        stub.chat.first_token_latency = 0
        await c.emit("text-message", "thanks")
        await c.wait("ai-response", count=3)
        said = [(m["role"], m["content"]) for m in stub.of("chat")[2].body["messages"][1:]]
        assert said == [("user", "weather please"), ("user", "and tomorrow?"), ("assistant", new["text"]),
                        ("user", "thanks")]
