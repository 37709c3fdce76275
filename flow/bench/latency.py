"""Turn latency and offline real-time factors (`voicegraph bench` runs it; alone: `python -m flow.bench.latency`).

Not a test: figures for closing notes and for judging changes. Every figure comes from a real
`voicegraph serve` process on loopback, driven by real Socket.IO clients (and the stub) in this
process, with real speech.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import wave

from flow.bench.figures import pct as pct  # re-exported: rows added elsewhere import it from here
from flow.bench.figures import spread
from flow.bench.procs import server_process
from flow.config import Settings
from flow.contract.resources import Resources
from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.speech import encode, pcm16, speak_piper
from nodes.synthesizer.piper import PiperSynthesizer
from nodes.transcriber.pocketsphinx import PocketsphinxTranscriber

QUESTION = "Could you tell me what the weather will be like in Paris tomorrow?"
REPLY = "Tomorrow in Paris it will be sunny with a light breeze. Expect a high of twenty one degrees."



async def stop_to_response(runs: int) -> list[float]:
    """`stop-recording` → `ai-response`, providers at zero latency (the stub)."""
    audio = encode(speak_piper(QUESTION), "pcm16_16k", pad_s=0.0)
    out: list[float] = []
    async with OpenAIStub() as stub, server_process("default", stub) as srv:
        c = await Recorder().connect(srv.url)
        for i in range(runs):
            await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
            await c.stream(audio, 32000)  # 1 s chunks: many runs must stay under the flood limit
            t0 = time.monotonic()
            await c.emit("stop-recording")
            await c.wait("ai-response", count=i + 1)
            t_resp = [t for t, e, _ in c.events if e == "ai-response"][i]
            out.append(1000 * (t_resp - t0))
            await c.wait("ai-typing", lambda p: p == {"isTyping": False}, count=i + 1)
            await asyncio.sleep(0.25)  # stay under the control-event rate limit (10/s)
        await c.close()
    return out


THREE = "The sky is clear over Paris today. Expect a high of twenty degrees. Rain returns on Sunday evening."


STT_S, FIRST_TOKEN_S, TOKEN_S, TTS_S = 0.3, 0.35, 0.02, 0.25
REALISTIC = (f"STT {STT_S * 1000:.0f} ms, first token {FIRST_TOKEN_S * 1000:.0f} ms, {TOKEN_S * 1000:.0f} ms/token, "
             f"TTS {TTS_S * 1000:.0f} ms")


def floor_s(graph: str) -> float:
    """The provider floor of first audio: the stub's configured critical path, what a server
    adding nothing would still wait. Sequential: STT, the whole reply's tokens, TTS of it all.
    Streaming: STT, the tokens of the first sentence, TTS of that sentence."""
    from flow.testing.openai_stub import _tokens

    text = THREE if graph != "streaming" else THREE.split(". ")[0] + "."
    return STT_S + FIRST_TOKEN_S + TOKEN_S * max(0, len(_tokens(text)) - 1) + TTS_S


def realistic(stub: OpenAIStub) -> OpenAIStub:
    """STT 300 ms, first token 350 ms, 20 ms per token, TTS 250 ms per call."""
    stub.reply = THREE
    stub.stt.latency, stub.chat.first_token_latency, stub.chat.token_delay = STT_S, FIRST_TOKEN_S, TOKEN_S
    stub.tts.latency = TTS_S
    return stub


async def first_audio(graph: str, runs: int) -> list[float]:
    """`stop-recording` → first audio: `ai-response-chunk` (streaming) or `ai-response` (sequential)."""
    audio = encode(speak_piper(QUESTION), "pcm16_16k", pad_s=0.0)
    event = "ai-response-chunk" if graph == "streaming" else "ai-response"
    out: list[float] = []
    async with OpenAIStub() as stub, server_process(graph, realistic(stub)) as srv:
        c = await Recorder().connect(srv.url)
        for i in range(runs):
            await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
            await c.stream(audio, 32000)
            t0 = time.monotonic()
            await c.emit("stop-recording")
            await c.wait(event, count=i + 1 if graph != "streaming" else 3 * i + 1, timeout=30)
            t = [t for t, e, _ in c.events if e == event][i if graph != "streaming" else 3 * i]
            out.append(1000 * (t - t0))
            await c.wait("ai-typing", lambda p: p == {"isTyping": False}, count=i + 1, timeout=30)
            await asyncio.sleep(0.25)
        await c.close()
    return out


async def barge_in(runs: int) -> tuple[list[float], list[float]]:
    """`interrupt` during a streamed reply → last event of it at the client, and → the stub seeing
    its chat request cancelled."""
    to_last: list[float] = []
    to_upstream: list[float] = []
    async with OpenAIStub() as stub, server_process("streaming", realistic(stub)) as srv:
        stub.reply = THREE + " " + THREE + " " + THREE
        c = await Recorder().connect(srv.url)
        for i in range(runs):
            await c.emit("text-message", f"talk {i}")
            turn = await c.wait("message-received", count=i + 1)
            first = await c.wait("ai-response-chunk", lambda p, t=turn: p["replyTo"] == t["id"])
            t0 = time.monotonic()
            await c.emit("interrupt", {"responseId": first["id"]})
            await stub.wait_for(lambda n=i: stub.of("chat")[n].cancelled_at is not None, timeout=5)
            await c.quiet(0.5)
            last = max(t for t, e, p in c.events if isinstance(p, dict) and p.get("id") == first["id"])
            to_last.append(max(0.0, 1000 * (last - t0)))
            to_upstream.append(1000 * (stub.of("chat")[i].cancelled_at - t0))
            await asyncio.sleep(0.2)
        await c.close()
    return to_last, to_upstream


async def stream_real_time(c: Recorder, audio: bytes, speech_end_s: float, answers: int) -> float:
    """Start a PCM16 16 kHz recording and send `audio` in 40 ms chunks at real-time pace until it
    ends or the `answers`+1-th `ai-response` arrives; returns when speech ended (monotonic clock:
    the chunk that carries `speech_end_s` seconds of audio was sent)."""
    chunk = 1280  # 40 ms
    await c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
    start = time.monotonic()
    end_of_speech = None
    for pos in range(0, len(audio), chunk):
        await c.sio.emit("audio-stream", audio[pos:pos + chunk])
        sent_s = (pos + chunk) / 32000
        if end_of_speech is None and sent_s >= speech_end_s:
            end_of_speech = time.monotonic()
        await asyncio.sleep(max(0.0, start + sent_s - time.monotonic()))
        if len(c.of("ai-response")) > answers:
            break
    return end_of_speech or start


async def offline_end_of_speech_to_response(runs: int) -> tuple[list[float], float]:
    """Offline graph, question streamed in real time (40 ms chunks): end of speech → `ai-response`."""
    wav = speak_piper(QUESTION)
    with wave.open(str(wav)) as w:
        speech_s = w.getnframes() / w.getframerate()
    lead = 0.3
    audio = encode(wav, "pcm16_16k", pad_s=2.0, lead_s=lead)
    out: list[float] = []
    async with server_process("offline") as srv:
        for _ in range(runs):
            c = await Recorder().connect(srv.url)
            end_of_speech = await stream_real_time(c, audio, lead + speech_s, answers=0)
            await c.wait("ai-response", timeout=30)
            t_resp = next(t for t, e, _ in c.events if e == "ai-response")
            out.append(1000 * (t_resp - end_of_speech))
            await c.close()
    return out, speech_s


async def real_time_factors(runs: int = 1) -> dict[str, float]:
    """Offline STT and TTS real-time factors: the median of `runs` calls after a first one (which
    loads the model and is reported apart)."""
    r = Resources(Settings())
    stt, tts = PocketsphinxTranscriber(r), PiperSynthesizer(r)
    pcm = pcm16(speak_piper(QUESTION))
    t = time.monotonic()
    await stt.transcribe(pcm, 16000, 2, 1)
    first_stt = time.monotonic() - t
    stt_s = []
    for _ in range(runs):
        t = time.monotonic()
        await stt.transcribe(pcm, 16000, 2, 1)
        stt_s.append(time.monotonic() - t)
    t = time.monotonic()
    mp3 = await tts.synthesize(REPLY)
    first_tts = time.monotonic() - t
    tts_s = []
    for _ in range(runs):
        t = time.monotonic()
        mp3 = await tts.synthesize(REPLY)
        tts_s.append(time.monotonic() - t)
    from flow.testing.speech import mp3_seconds

    reply_s = mp3_seconds(mp3)
    r.cpu_pool.shutdown()
    return {"stt_audio_s": len(pcm) / 32000, "stt_rtf": statistics.median(stt_s) / (len(pcm) / 32000),
            "stt_first_call_s": first_stt, "tts_audio_s": reply_s, "tts_rtf": statistics.median(tts_s) / reply_s,
            "tts_first_call_s": first_tts, "runs": runs,
            "stt_rtf_max": max(stt_s) / (len(pcm) / 32000), "tts_rtf_max": max(tts_s) / reply_s}


async def main(runs: int) -> None:
    rtf = await real_time_factors()
    stop = await stop_to_response(runs)
    offline, speech_s = await offline_end_of_speech_to_response(max(3, runs // 4))
    streaming = await first_audio("streaming", max(3, runs // 2))
    sequential = await first_audio("default", max(3, runs // 2))
    to_last, to_upstream = await barge_in(max(3, runs // 2))
    rows = [
        ("stop-recording → ai-response, stub at 0 ms (ms)", stop),
        (f"offline: end of {speech_s:.1f} s question → ai-response (ms, silence_ms=700)", offline),
        ("realistic stub: stop-recording → first audio, streaming graph (ms)", streaming),
        ("realistic stub: stop-recording → ai-response, sequential graph (ms)", sequential),
        ("barge-in: interrupt → last event of the stale reply (ms)", to_last),
        ("barge-in: interrupt → upstream chat request cancelled (ms)", to_upstream),
    ]
    print("| measure | figures |\n| --- | --- |")
    for name, vals in rows:
        print(f"| {name} | {spread(vals)} |")
    ratio = statistics.median(streaming) / statistics.median(sequential)
    print(f"\nstreaming first audio / sequential ai-response (p50): {ratio:.2f}")
    print()
    print("| offline provider | audio (s) | real-time factor | first call incl. model load (s) |")
    print("| --- | --- | --- | --- |")
    print(f"| pocketsphinx STT | {rtf['stt_audio_s']:.2f} | {rtf['stt_rtf']:.3f} | {rtf['stt_first_call_s']:.2f} |")
    print(f"| piper TTS + MP3 | {rtf['tts_audio_s']:.2f} | {rtf['tts_rtf']:.3f} | {rtf['tts_first_call_s']:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
