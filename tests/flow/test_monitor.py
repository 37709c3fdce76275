"""The monitoring channel: free when unwatched, bounded (events, bytes) when watched, no audio in events."""

from __future__ import annotations

import base64
import time

from flow.audio.mp3 import encode_mp3_sync
from flow.monitor import TICK_HZ, Monitor, ReplyAudio


def test_publishing_without_subscribers_builds_nothing() -> None:
    monitor = Monitor("test")
    probe = monitor.probe("s1")
    probe.level(-10.0, True)
    monitor.publish("open", "s1")
    sub = monitor.subscribe()
    assert sub.drain() == []  # nothing was kept from before the subscription
    monitor.publish("open", "s1", graph="g")
    [ev] = sub.drain()
    assert (ev.kind, ev.session, ev.data, ev.server) == ("open", "s1", {"graph": "g"}, "test")


def test_a_slow_subscriber_loses_its_oldest_events_and_is_told_how_many() -> None:
    monitor = Monitor()
    slow, fast = monitor.subscribe(size=5), monitor.subscribe(size=100)
    for i in range(12):
        monitor.publish("in", "s", n=i)
    assert [e.data["n"] for e in slow.drain()] == [7, 8, 9, 10, 11]
    assert slow.dropped == 7
    assert len(fast.drain()) == 12 and fast.dropped == 0
    slow.close()
    fast.close()
    assert not monitor.watched


def test_levels_are_coalesced_to_the_tick_rate_keeping_the_loudest_and_any_speech() -> None:
    monitor = Monitor()
    sub = monitor.subscribe()
    probe = monitor.probe("s")
    probe.audio_in(1280)
    probe.level(-50.0, False)  # first one goes out at once
    t_end = time.monotonic() + 0.35
    n = 0
    while time.monotonic() < t_end:
        probe.level(-30.0 if n == 5 else -60.0, n == 7)
        probe.backlog(0.25 if n == 9 else 0.0)
        n += 1
    ticks = [e for e in sub.drain() if e.kind == "tick"]
    assert n > 100 and 2 <= len(ticks) <= 0.35 * TICK_HZ + 2
    assert ticks[0].data["level_db"] == -50.0 and ticks[0].data["bytes_in"] == 1280
    second = ticks[1].data
    assert second["level_db"] == -30.0 and second["speech"] is True and second["backlog"] == 0.25


def test_a_subscriber_that_never_drains_stays_under_its_byte_bound_and_counts_drops() -> None:
    monitor = Monitor()
    never = monitor.subscribe(size=1_000_000, max_bytes=64 * 1024)
    text = "x" * 3000  # a long typed turn: ~3 KB an event
    for i in range(1000):
        monitor.publish("in", "s", event="text-message", payload=text, n=i)
        assert never.bytes <= 64 * 1024
    kept = never.drain()
    assert 10 < len(kept) < 25 and never.dropped == 1000 - len(kept)
    assert [e.data["n"] for e in kept] == list(range(1000 - len(kept), 1000))  # the newest survive
    assert never.bytes == 0
    monitor.publish("in", "s", event="text-message", payload="y" * 100_000)  # alone over the bound
    assert never.drain() == [] and never.dropped == 1000 - len(kept) + 1


def test_out_events_carry_a_reference_to_the_audio_never_the_audio() -> None:
    mp3 = encode_mp3_sync(bytes(2 * 16000), 16000)  # one second
    b64 = base64.b64encode(mp3).decode()
    monitor = Monitor()
    probe = monitor.probe("s")
    chunk = {"id": "r1", "replyTo": "t1", "seq": 0, "text": "Hi.", "audio": b64, "audioFormat": "mp3"}
    probe.publish_out("ai-response-chunk", chunk)
    assert len(monitor.audio) == 0  # nobody watches: nothing kept, nothing built
    sub = monitor.subscribe()
    probe.publish_out("ai-response-chunk", chunk)
    probe.publish_out("ai-response", {"id": "r1", "replyTo": "t1", "text": "Hi.", "audio": b64})
    probe.publish_out("ai-response", {"id": "r2", "text": "silent", "audio": None})
    probe.publish_out("custom", {"blob": b"\0" * 5000})
    events = sub.drain()
    assert all(b64[:100] not in str(e.data) and "\\x00" not in str(e.data) for e in events)
    first = events[0].data["payload"]["audio"]
    assert first["ref"] == "r1/0" and first["bytes"] == len(mp3) and abs(first["seconds"] - 1.0) < 0.1
    assert events[1].data["payload"]["audio"]["ref"] == "r1/full"
    assert events[2].data["payload"]["audio"] is None
    assert events[3].data["payload"] == {"blob": {"bytes": 5000}}
    assert chunk["audio"] == b64  # what goes to the client is untouched
    assert monitor.audio.get("r1/0") == mp3 and monitor.audio.get("nope/0") is None
    sub.close()
    assert len(monitor.audio) == 0  # the last observer left: the audio goes too


def test_reply_audio_store_is_bounded_by_bytes_oldest_out() -> None:
    store = ReplyAudio(max_bytes=10_000, max_items=100)
    for i in range(10):
        store.put(f"r{i}/full", base64.b64encode(bytes(3000)).decode())  # 4,000 base64 bytes each
        assert store.bytes <= 10_000
    assert [store.get(f"r{i}/full") is not None for i in range(10)] == [False] * 8 + [True] * 2
    store.put("huge/full", "A" * 20_000)  # larger than the whole store: not kept, nothing evicted
    assert store.get("huge/full") is None and len(store) == 2
    many = ReplyAudio(max_bytes=10_000, max_items=3)
    for i in range(5):
        many.put(f"c{i}/0", "AAAA")
    assert len(many) == 3 and many.get("c4/0") == bytes(3)
