"""What one turn may cost, through a real server on the offline graph (issue 16, items 2 and 3).

A short text the English voice cannot say (Chinese, Ethiopic, emoji) or a long run-on English one
took 0.9-3.6 GB and kept it; each must now get its answer with the server's memory bounded while
it is answered and given back after, another session's short turn must not wait behind a long
reply, and queued audio is bounded.
"""

from __future__ import annotations

import asyncio
import base64

import pytest

from flow.contract.cpu_pool import CpuPool
from flow.testing.client import Recorder
from flow.testing.memory import reset_peak, status_kb
from flow.testing.servers import served, voicegraph
from flow.testing.speech import mp3_seconds, pcm16, speak_piper

KEPT_MB = 50
"""The issue's goal: what one message may leave the server holding, a long (3,990-character)
English reply included (measured: -14 to +25 MB, alone and with three busy-looping processes on
the 2 cores; a long reply kept up to +154 MB while the model's arena kept what short runs had
used, before every run shrank it)."""
PEAK_MB = 400
"""Peak growth while one message is answered. The model's working memory is about 0.45 MB per
phoneme id of the run in flight, so `max_piece_phonemes` (400) bounds it at about 200 MB
(measured: 47-67 MB for the short English around a hostile text, 190-350 MB for a long English
reply; before the bounds: 0.9-3.6 GB, all of it kept)."""
ENGLISH = ("the quick brown fox jumps over the lazy dog while the band plays on and on " * 60)[:3990]
HOSTILE = {
    "cjk": "".join(chr(0x4E00 + 37 * i) for i in range(500)),
    "ethiopic": "".join(chr(0x1200 + i % 0x158) for i in range(500)),
    "emoji": "".join(chr(0x1F600 + i % 80) for i in range(500)),
    "english": ENGLISH,
}


async def answer(c: Recorder, n: int, timeout: float = 180) -> dict:
    """The `n`-th ai-response; with `audio: null` there must be a coded error for it."""
    resp = await c.wait("ai-response", timeout=timeout, count=n)
    if resp["audio"] is None:
        assert any(e["code"] == "tts_failed" for e in c.of("error")), c.of("error")
    return resp


@pytest.fixture(scope="module")
def server():
    # the server gives freed heap back by trimming it every VOICEGRAPH_HEAP_TRIM_S (30 s by default):
    # every second here, so what it keeps is read after a trim without waiting half a minute
    with served({"VOICEGRAPH_PRELOAD": "1", "VOICEGRAPH_HEAP_TRIM_S": "1"}, "--no-ui", "--graph", "offline",
                timeout=120) as s:
        yield s


async def test_one_hostile_message_costs_megabytes_not_gigabytes(server, clients, figures) -> None:
    c = await clients(server.url)
    await c.emit("text-message", "Good morning.")  # warm: voice loaded, pools started
    assert (await answer(c, 1, timeout=60))["audio"]
    cost = {}
    for n, (name, text) in enumerate(HOSTILE.items(), start=2):
        await asyncio.sleep(1.0)
        before = status_kb(server.pid, "VmRSS")
        if not reset_peak(server.pid):
            pytest.skip("cannot reset the server's peak RSS here")
        await c.emit("text-message", text)
        resp = await answer(c, n)
        assert text.strip() in resp["text"], name  # the text is whole, whatever was spoken
        peak = status_kb(server.pid, "VmHWM")
        # given back: at least one heap trim after the voice's pool thread shrank its arena, which it
        # does after the reply went out (on a loaded machine seconds later: a CI run read +172 MB
        # for the English reply 2.5 s after it, while every quiet run reads -3 to +25 MB)
        for _ in range(20):
            await asyncio.sleep(0.5)
            kept = (status_kb(server.pid, "VmRSS") - before) / 1024
            if kept < KEPT_MB:
                await asyncio.sleep(1.5)  # the next trim, for the figure
                kept = (status_kb(server.pid, "VmRSS") - before) / 1024
                break
        cost[name] = ((peak - before) / 1024, kept)
    print("RSS growth per message, (peak, kept) MB:", {k: (round(p), round(k_)) for k, (p, k_) in cost.items()})
    for name, (peak, kept) in cost.items():
        figures.record("worst single-message memory growth", kept, unit="MB kept", goal=f"≤ +{KEPT_MB} MB kept",
                       part=name)
        figures.record("worst single-message memory peak", peak, unit="MB", goal=f"< {PEAK_MB} MB", part=name)
    assert all(peak < PEAK_MB for peak, _ in cost.values()), cost
    assert all(kept < KEPT_MB for _, kept in cost.values()), cost
    errors = [e["code"] for e in c.of("error")]
    assert set(errors) <= {"tts_failed"}, errors


async def test_what_the_voice_cannot_say_is_skipped_but_the_rest_is_spoken(server, clients) -> None:
    c = await clients(server.url)
    await c.emit("text-message", "Hello " + HOSTILE["cjk"][:50] + " world " + HOSTILE["emoji"][:20])
    resp = await answer(c, 1, timeout=60)
    assert resp["audio"]  # "You said: hello world …" is spoken; the rest is only in the text
    assert c.of("error") == []


async def test_a_long_reply_is_cut_at_max_audio_s_with_a_notice(clients) -> None:
    graph = "version: 1\nextends: offline\nnodes:\n  tts: {params: {max_audio_s: 20}}\n"
    async with voicegraph(graph_text=graph) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", ENGLISH[:1200])  # about 80 s of speech
        resp = await answer(c, 1, timeout=60)
        assert ENGLISH[:1200].strip() in resp["text"] and resp["audio"]
        assert 10 < mp3_seconds(base64.b64decode(resp["audio"])) <= 20
        (cut,) = [e for e in c.of("error") if e["code"] == "tts_failed"]
        assert "max_audio_s" in cut["message"]


async def test_a_bystander_turn_runs_between_the_pieces_of_a_long_reply(clients) -> None:
    graph = "version: 1\nextends: offline\nnodes:\n  tts: {params: {max_audio_s: 40}}\n"
    async with voicegraph(graph_text=graph) as srv:
        resources = srv.server.resources
        resources.cpu_pool.shutdown(wait=False)
        resources.cpu_pool = CpuPool(1, name="one-worker")  # one thread: only taking turns can help b
        try:
            a, b = await clients(srv.url), await clients(srv.url)
            a_sid = a.sio.get_sid()
            await a.emit("text-message", ENGLISH)  # minutes of speech, cut at max_audio_s
            for _ in range(3000):
                if resources.cpu_pool.running(a_sid):
                    break
                await asyncio.sleep(0.01)
            await b.emit("text-message", "Hello there.")
            reply = await b.wait("ai-response", timeout=120)
            assert reply["audio"]
            assert a.of("ai-response") == []  # b did not wait for a's whole reply
            assert (await answer(a, 1))["text"].startswith("You said")
        finally:
            resources.cpu_pool.shutdown(wait=True, cancel_futures=True)


async def test_queued_audio_for_transcription_is_bounded_in_seconds(stub, clients) -> None:
    # the STT answers after 3 s, so the first recording is still held when the other two arrive
    # (with the offline recognizer the first one could be done before the third came: a CI flake)
    stub.stt.latency = 3.0
    graph = "version: 1\nextends: default\nnodes:\n  stt: {params: {max_queued_s: 6}}\n"
    speech = pcm16(speak_piper("Please set a timer for ten minutes and then play some music."))
    seconds = len(speech) / 32000
    assert 3.0 < seconds < 6
    async with voicegraph(graph_text=graph, stub=stub) as srv:
        c = await clients(srv.url)
        for _ in range(3):  # three recordings at once: the first is held, the others would pass 6 s
            await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
            await c.stream(speech, 32000)
            await c.emit("stop-recording")
        results = [await c.wait("speech-result", count=n, timeout=60) for n in (1, 2, 3)]
        refused = [e for e in c.of("error") if e["code"] == "rate_limited"]
        assert len(refused) == 2 and all("max_queued_s" in e["message"] for e in refused)
        assert sum(1 for r in results if r["text"] == "") == 2  # the dropped ones still end, empty
        assert any(r["text"] == stub.transcript for r in results)
        assert len(stub.of("transcriptions")) == 1  # the dropped ones cost no provider call
        await c.quiet(0.5)
        assert len(c.of("speech-result")) == 3


async def test_long_texts_sent_without_a_pause_stay_bounded_and_a_bystander_is_answered(server, clients,
                                                                                        figures) -> None:
    """The issue's sustained case: 3,990-character texts at 10 a second (it reached 2.4 GB, and a
    bystander's turn took 16 s). Here 5 s of it: each new text supersedes the reply in flight (its
    synthesis is cancelled, not queued), memory is bounded while it lasts and given back after, and
    another session is answered meanwhile (measured: 1 of 50 answered, peak +328 MB, kept +14 MB)."""
    a, b = await clients(server.url), await clients(server.url)
    await b.emit("text-message", "Good morning.")  # warm
    assert (await answer(b, 1, timeout=60))["audio"]
    await asyncio.sleep(1.5)  # a heap trim since the warm-up
    before = status_kb(server.pid, "VmRSS")
    if not reset_peak(server.pid):
        pytest.skip("cannot reset the server's peak RSS here")
    for i in range(50):
        await a.emit("text-message", ENGLISH)
        if i == 20:
            await b.emit("text-message", "Hello there.")
        await asyncio.sleep(0.1)
    reply = await b.wait("ai-response", timeout=120, count=2)
    assert reply["audio"] and "hello there" in reply["text"].lower()
    await a.wait("ai-response", timeout=180)  # the flood's last admitted text is answered
    await a.quiet(3.0)  # no more replies coming; at least one heap trim since the last
    peak = (status_kb(server.pid, "VmHWM") - before) / 1024
    kept = (status_kb(server.pid, "VmRSS") - before) / 1024
    answered = len(a.of("ai-response"))
    print(f"50 long texts in 5 s: {answered} answered; RSS peak +{peak:.0f} MB, kept {kept:+.0f} MB")
    figures.record("worst single-message memory growth", kept, unit="MB kept", goal=f"≤ +{KEPT_MB} MB kept",
                   part="long texts at 10/s")
    assert 1 <= answered <= 10  # superseded, not 50 long replies queued one behind the other
    assert peak < PEAK_MB and kept < KEPT_MB, (peak, kept)
