"""Record a real session (espeak speech, a typed turn, an interrupt) on the offline graph, then
replay it: through the same graph the transcripts are the same; through a graph with a longer
`silence_ms`, the pause between two spoken phrases no longer ends an utterance, so they become
one transcript (the difference the README documents)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from flow.replay.command import replay_locally
from flow.replay.recording import list_recordings, read_recording
from flow.testing.servers import voicegraph
from flow.testing.speech import pcm16, speak_espeak

STORY = " ".join(f"Once upon a time there was a village number {i} by a very long river." for i in range(8))


def _silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(16_000 * seconds)


@pytest.fixture(scope="module")
def spoken() -> bytes:
    """Two phrases 0.9 s apart, then 1.5 s of silence: two utterances at `silence_ms` 700."""
    return (_silence(0.3) + pcm16(speak_espeak("turn on the kitchen lights")) + _silence(0.9)
            + pcm16(speak_espeak("what time is it now")) + _silence(1.5))


async def record_session(clients, directory, spoken: bytes):
    async with voicegraph("default", record_dir=str(directory)) as srv:  # offline: pocketsphinx, echo, piper
        c = await clients(srv.url)
        await c.emit("start-recording", {"mimeType": "audio/pcm;rate=16000"})
        await c.stream(spoken, 1280, pace_s=0.01)  # 40 ms slices, four times real time
        await c.emit("stop-recording")
        await c.wait("speech-result", count=2, timeout=60)
        await c.quiet(1.0)
        await c.emit("text-message", STORY)
        await c.wait("message-received", lambda p: p["source"] == "text", timeout=30)
        await c.emit("interrupt", {})
        await c.quiet(0.5)
        await c.emit("text-message", "thank you")
        await c.wait("ai-response", lambda p: p["text"].startswith("thank you") or "thank you" in p["text"],
                     timeout=60)
        sid = c.sio.get_sid()
        await c.close()
        for _ in range(500):
            if sid not in srv.server.sessions:
                break
            await asyncio.sleep(0.01)
    [meta] = list_recordings(directory)  # the server stopped: its recorder closed the file
    return read_recording(meta["path"])


async def test_a_recorded_session_replays_with_the_same_transcripts_and_differs_on_silence_ms(
        clients, tmp_path, spoken) -> None:
    rec = await record_session(clients, tmp_path / "rec", spoken)
    assert rec.end is not None and rec.end["dropped"] == 0
    events = [e.event for e in rec.inbound]
    assert events[0] == "start-recording" and events.count("audio-stream") > 50
    assert events[-4:] == ["stop-recording", "text-message", "interrupt", "text-message"]

    same = await replay_locally(rec, None, 1.0, env={})  # the recorded graph, at the recorded pace
    assert same.graph == "default"
    assert len(same.recorded.transcripts) == 2
    assert same.replayed.transcripts == same.recorded.transcripts
    assert [(t.source, t.text) for t in same.replayed.turns] == [(t.source, t.text) for t in same.recorded.turns]
    story = [t for t in (same.recorded.turns, same.replayed.turns) for t in t if t.text == STORY]
    assert [t.outcome for t in story] == ["cancelled", "cancelled"]
    thanks = [t for t in same.replayed.turns if t.text == "thank you"]
    assert thanks[0].outcome == "answered" and thanks[0].reply and thanks[0].ms["first_audio"] > 0

    slower = tmp_path / "slow.yaml"
    slower.write_text("version: 1\nextends: default\nname: slow_endpointing\n"
                      "nodes:\n  finalizer: {params: {silence_ms: 1500}}\n")
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "flow.cli", "replay", str(rec.path), "--speed", "max",
                         "--graph", str(slower), "--expect-same-transcripts"],
        capture_output=True, text=True, timeout=240, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "replayed through 'slow_endpointing' at speed max" in done.stdout
    # two phrases, one utterance: one transcript where the recording had two
    assert "DIFFERENT transcript 2:" in done.stdout, done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("≠ transcript 2 "))
    assert row.rstrip().endswith("—"), row  # nothing on the replay's side


async def test_replay_exits_zero_when_the_transcripts_are_the_same(clients, tmp_path) -> None:
    async with voicegraph("default", record_dir=str(tmp_path)) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "hello there")
        await c.wait("ai-response", timeout=60)
        await c.close()
        for _ in range(500):
            if not srv.server.sessions:
                break
            await asyncio.sleep(0.01)
    [meta] = list_recordings(tmp_path)
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "flow.cli", "replay", meta["path"], "--speed", "max",
                         "--expect-same-transcripts"],
        capture_output=True, text=True, timeout=240, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "transcripts: the same" in done.stdout
    assert "'hello there'" in done.stdout

    # to a running server (--url), with its token from the environment
    async with voicegraph("default", token="replay-token-123") as srv:
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "flow.cli", "replay", meta["path"], "--speed", "max",
                             "--url", srv.url], capture_output=True, text=True, timeout=240,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VOICEGRAPH_TOKEN": "replay-token-123"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"replayed through '{srv.url}'" in done.stdout
    assert done.stdout.count("'hello there'") >= 2  # the turn, on both sides


def test_replay_refuses_a_file_that_is_not_a_recording(tmp_path) -> None:
    other = tmp_path / "notes.jsonl"
    other.write_text('{"hello": 1}\n')
    done = subprocess.run([sys.executable, "-m", "flow.cli", "replay", str(other)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "not a voicegraph recording" in done.stdout, done.stdout + done.stderr
