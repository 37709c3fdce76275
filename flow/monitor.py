"""The monitoring channel: what the dashboard (or any other observer) learns about live sessions.

The audio path must not pay for being watched. So nothing here is polled from the hot path:
sessions *publish* small events, and publishing is a no-op while nobody subscribes. Each
subscriber has its own bounded buffer; a slow observer loses its oldest events (and is told how
many), it never slows a session down or grows memory without bound. High-rate signals — the input
level, the decoder backlog — are coalesced per session to at most `TICK_HZ` updates a second.

Events are plain, JSON-friendly records naming their server process (`server`), so the same
stream can later be relayed from several processes to one dashboard.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

TICK_HZ = 10.0
"""Most level/backlog updates per second and session that reach observers."""
QUEUE_EVENTS = 20_000
"""Per-subscriber buffer; beyond it the oldest events are dropped (and counted)."""


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    """One observation: `kind` says what happened to `session` (empty for server-wide events)."""

    kind: str
    session: str
    data: dict[str, Any]
    at_ms: float = field(default_factory=lambda: time.time() * 1000)
    server: str = ""


class Subscription:
    """A bounded buffer of events for one observer. Iterate with `batch()`; `close()` when done."""

    def __init__(self, monitor: Monitor, size: int) -> None:
        self._monitor = monitor
        self._events: deque[MonitorEvent] = deque(maxlen=size)
        self._ready = asyncio.Event()
        self.dropped = 0
        """Events lost because this observer fell more than `size` events behind."""

    def put(self, event: MonitorEvent) -> None:
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
        self._events.append(event)
        self._ready.set()

    def drain(self) -> list[MonitorEvent]:
        """Every buffered event, oldest first (non-blocking)."""
        out = list(self._events)
        self._events.clear()
        self._ready.clear()
        return out

    async def batch(self, timeout: float | None = None) -> list[MonitorEvent]:
        """Wait for at least one event (or the timeout), then return all buffered ones."""
        if not self._events:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return []
        return self.drain()

    def close(self) -> None:
        self._monitor.unsubscribe(self)


class Monitor:
    """In-process event bus of one server process."""

    def __init__(self, server: str | None = None) -> None:
        self.server = server or f"{socket.gethostname()}:{os.getpid()}"
        self._subs: list[Subscription] = []

    @property
    def watched(self) -> bool:
        """Whether anyone listens; publishers skip even building events when not."""
        return bool(self._subs)

    def subscribe(self, size: int = QUEUE_EVENTS) -> Subscription:
        sub = Subscription(self, size)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, kind: str, session: str = "", **data: Any) -> None:
        if not self._subs:
            return
        event = MonitorEvent(kind, session, data, server=self.server)
        for sub in self._subs:
            sub.put(event)

    def probe(self, session: str) -> SessionProbe:
        return SessionProbe(self, session)


class SessionProbe:
    """One session's side of the channel: plain events, plus coalesced level/backlog ticks."""

    __slots__ = ("_backlog", "_bytes", "_level_db", "_next_tick", "_speech", "monitor", "session")

    def __init__(self, monitor: Monitor, session: str) -> None:
        self.monitor = monitor
        self.session = session
        self._level_db = -120.0
        self._speech = False
        self._backlog = 0.0
        self._bytes = 0
        self._next_tick = 0.0

    def publish(self, kind: str, **data: Any) -> None:
        self.monitor.publish(kind, self.session, **data)

    def audio_in(self, nbytes: int) -> None:
        """Bytes of audio received (hot path: one addition)."""
        self._bytes += nbytes

    def level(self, level_db: float, speech: bool) -> None:
        """The input level of the latest decoded audio and whether the detector hears speech."""
        if not self.monitor._subs:
            return
        self._level_db = max(self._level_db, level_db)  # the loudest since the last tick
        self._speech = self._speech or speech
        self._tick()

    def backlog(self, fill: float) -> None:
        """Undecoded audio waiting, as a fraction of the buffer's limit (0..1)."""
        if not self.monitor._subs:
            return
        self._backlog = max(self._backlog, fill)
        self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + 1.0 / TICK_HZ
        self.monitor.publish("tick", self.session, level_db=round(self._level_db, 1), speech=self._speech,
                             backlog=round(self._backlog, 3), bytes_in=self._bytes)
        self._level_db = -120.0
        self._speech = False
        self._backlog = 0.0
