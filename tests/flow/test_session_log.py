"""Session recording to disk: what a real server writes, and the writer's caps on real files."""

from __future__ import annotations

import asyncio
import os

from flow.replay.recording import list_recordings, read_recording
from flow.testing.servers import voicegraph
from flow.transport.session_log import SUFFIX, RecordingWriter


async def test_a_served_session_is_recorded_whole(stub, clients, tmp_path) -> None:
    async with voicegraph(stub=stub, record_dir=str(tmp_path)) as srv:
        c = await clients(srv.url, {"label": "tester"})
        await c.emit("text-message", "hello")
        reply = await c.wait("ai-response")
        await c.emit("audio-stream", b"\x00\x01" * 400)
        await c.emit("text-message", 7)
        await c.wait("error")
        sid = c.sio.get_sid()
        await c.close()
        for _ in range(200):  # the session closes on the server, then its file gets its end
            if sid not in srv.server.sessions and srv.server.recorder.flush(0.1):
                found = list_recordings(tmp_path)
                if found and read_recording(found[0]["path"]).end is not None:
                    break
            await asyncio.sleep(0.02)
    [meta] = list_recordings(tmp_path)
    assert meta["session"] == sid and meta["label"] == "tester" and meta["graph"] == "default"
    rec = read_recording(meta["path"])
    assert rec.header["graph"]["path"] == "graphs/default.yaml"
    assert [(e.event, e.data) for e in rec.inbound] == [
        ("text-message", "hello"), ("audio-stream", b"\x00\x01" * 400), ("text-message", 7)]
    times = [e.t for e in rec.inbound]
    assert times == sorted(times) and times[0] >= 0
    sent = {e.event: e.data for e in rec.outbound}
    assert sent["ai-response"] == reply  # audio included, as the client got it
    assert sent["error"]["code"] == "bad_request"
    assert [(t.event, t.data["source"]) for t in rec.turns] == [("answered", "text")]
    assert rec.end is not None and rec.end["dropped"] == 0 and not rec.end["truncated"]


def _session(writer: RecordingWriter, sid: str, chunks: int, size: int = 10_000) -> None:
    log = writer.session(sid, {"format": "voicegraph-recording", "version": 1, "session": sid,
                               "started_unix_ms": 0})
    for _ in range(chunks):
        log.inbound("audio-stream", os.urandom(size))
    log.close()
    assert writer.flush()


def test_the_directory_cap_removes_the_oldest_first(tmp_path) -> None:
    writer = RecordingWriter(tmp_path, max_dir_bytes=200_000)
    try:
        names = []
        for i in range(6):  # ~67 KB each (base64)
            _session(writer, f"s{i}", 5)
            names.append(next(tmp_path.glob(f"*-s{i}{SUFFIX}")).name)
            total = sum(p.stat().st_size for p in tmp_path.iterdir())
            assert total <= 200_000, (i, total)
            os.utime(tmp_path / names[-1], (1_000 + i, 1_000 + i))  # distinct ages, in order
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted(names[-2:]), left  # two fit under the cap: the newest
    finally:
        writer.close()


def test_a_session_stops_at_its_cap_and_says_so(tmp_path) -> None:
    writer = RecordingWriter(tmp_path, max_session_bytes=50_000)
    try:
        _session(writer, "big", 20)
    finally:
        writer.close()
    [path] = tmp_path.iterdir()
    assert path.stat().st_size < 50_000 + 1_000
    rec = read_recording(path)
    assert rec.truncated and rec.end["truncated"] and rec.end["dropped"] == 20 - len(rec.inbound)
    assert 2 <= len(rec.inbound) < 20


def test_a_full_queue_drops_records_and_counts_them(tmp_path) -> None:
    writer = RecordingWriter(tmp_path, queue_bytes=30_000, start=False)  # a disk that is not writing yet
    try:
        log = writer.session("q", {"format": "voicegraph-recording", "version": 1, "session": "q"})
        for _ in range(200):  # 2 MB for a 30 KB queue: two chunks wait, the rest is dropped
            log.inbound("audio-stream", os.urandom(10_000))
        writer.start()
        log.close()
        assert writer.flush()
    finally:
        writer.close()
    rec = read_recording(next(tmp_path.iterdir()))
    assert len(rec.inbound) == 3 and rec.end["dropped"] == 197
