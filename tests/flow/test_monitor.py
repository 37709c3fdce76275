"""The monitoring channel: free when unwatched, bounded when watched, high-rate signals coalesced."""

from __future__ import annotations

import time

from flow.monitor import TICK_HZ, Monitor


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
