"""The monitoring channel: what the dashboard (or any other observer) learns about live sessions.

The audio path must not pay for being watched. So nothing here is polled from the hot path:
sessions *publish* small events, and publishing is a no-op while nobody subscribes. Each
subscriber has its own buffer, bounded by events and by (estimated) bytes; a slow observer loses
its oldest events (and is told how many), it never slows a session down or grows memory without
bound. High-rate signals — the input level, the decoder backlog — are coalesced per session to at
most `TICK_HZ` updates a second.

Events carry no audio. An outbound event's audio (the base64 MP3 of `ai-response` and
`ai-response-chunk`) is replaced by a reference, `{"bytes", "seconds", "ref"}`, into `ReplyAudio`:
a small per-process store of recent reply audio, filled only while someone watches, from which an
observer fetches the sound it wants to play.

Events are plain, JSON-friendly records naming their server process (`server`), so the same
stream can later be relayed from several processes to one dashboard.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from flow.audio.mp3 import b64_size, mp3_seconds_b64
from flow.sizing import approx_bytes
from flow.tap import Tap

TICK_HZ = 10.0
"""Most level/backlog updates per second and session that reach observers."""
QUEUE_EVENTS = 20_000
"""Per-subscriber buffer in events; beyond it the oldest events are dropped (and counted)."""
QUEUE_BYTES = 4 * 1024 * 1024
"""Per-subscriber buffer in (estimated) bytes, the same way. Audio-free events are ~0.3 KB, so
this is over ten thousand events: seconds of a busy server's output for an observer that drains."""
EVENT_OVERHEAD_BYTES = 200
"""What an event record costs beyond its data (the object, its dict, the strings it names)."""
AUDIO_STORE_BYTES = 8 * 1024 * 1024
"""Recent reply audio kept for observers (base64 bytes): a few minutes of speech, oldest out."""
AUDIO_STORE_ITEMS = 1_000
"""…and at most this many clips, so tiny chunks cannot grow the index instead."""
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

    def __init__(self, monitor: Monitor, size: int, max_bytes: int, relay: bool = False) -> None:
        self._monitor = monitor
        self.relay = relay
        """A relay to other workers (`flow.transport.cluster`): it gets this process's own events
        only, never those relayed from elsewhere."""
        self._events: deque[tuple[MonitorEvent, int]] = deque()
        self._ready = asyncio.Event()
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        """Estimated bytes of the events buffered now (at most `max_bytes`)."""
        self.dropped = 0
        """Events lost because this observer fell more than `size` events or `max_bytes` behind."""

    def put(self, event: MonitorEvent, nbytes: int | None = None) -> None:
        """Buffer `event` (`nbytes`: its estimated size), dropping the oldest beyond the bounds."""
        if nbytes is None:
            nbytes = event_bytes(event.data)
        self._events.append((event, nbytes))
        self.bytes += nbytes
        while self._events and (len(self._events) > self.size or self.bytes > self.max_bytes):
            _, gone = self._events.popleft()
            self.bytes -= gone
            self.dropped += 1
        self._ready.set()

    def drain(self) -> list[MonitorEvent]:
        """Every buffered event, oldest first (non-blocking)."""
        out = [event for event, _ in self._events]
        self._events.clear()
        self.bytes = 0
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
        self.audio = ReplyAudio()
        """Recent reply audio that outbound events refer to (emptied when the last observer leaves)."""
        self.tap = Tap(self)
        """Which sessions' edges are watched message by message (`flow.tap`)."""

    @property
    def watched(self) -> bool:
        """Whether anyone listens; publishers skip even building events when not."""
        return bool(self._subs)

    @property
    def observed(self) -> bool:
        """Whether an observer of this process (not a relay to other workers) listens."""
        return any(not sub.relay for sub in self._subs)

    def subscribe(self, size: int = QUEUE_EVENTS, max_bytes: int = QUEUE_BYTES, relay: bool = False) -> Subscription:
        sub = Subscription(self, size, max_bytes, relay)
        self._subs.append(sub)
        return sub

    def inject(self, event: MonitorEvent) -> None:
        """An event another worker published (relayed over Redis), for this process's observers."""
        nbytes = event_bytes(event.data)
        for sub in self._subs:
            if not sub.relay:
                sub.put(event, nbytes)

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        if not self._subs:
            self.audio.clear()

    def publish(self, kind: str, session: str = "", **data: Any) -> None:
        if not self._subs:
            return
        event = MonitorEvent(kind, session, data, server=self.server)
        nbytes = event_bytes(data)
        for sub in self._subs:
            sub.put(event, nbytes)

    def publish_sized(self, kind: str, session: str, nbytes: int, data: dict[str, Any]) -> None:
        """`publish`, for a publisher that knows its event's size (`event_bytes` walks the data:
        on a per-message path such as the tap, that walk would be most of the cost)."""
        if not self._subs:
            return
        event = MonitorEvent(kind, session, data, server=self.server)
        for sub in self._subs:
            sub.put(event, nbytes)

    def probe(self, session: str) -> SessionProbe:
        return SessionProbe(self, session)


def event_bytes(data: dict[str, Any]) -> int:
    """Estimated memory of one event with `data` (what the subscribers' byte bound counts)."""
    return EVENT_OVERHEAD_BYTES + approx_bytes(data)


_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class ReplyAudio:
    """Recent reply audio (base64 MP3) by reference `"<response id>/<seq | full>"`, bounded by bytes.

    Filled only from `SessionProbe.publish_out`, i.e. only while someone watches; the oldest clips
    go first. Observers fetch a clip by the `ref` its event carried, while it is still here.
    """

    def __init__(self, max_bytes: int = AUDIO_STORE_BYTES, max_items: int = AUDIO_STORE_ITEMS) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.bytes = 0
        self._clips: OrderedDict[str, str] = OrderedDict()
        self._unnamed = 0

    def __len__(self) -> int:
        return len(self._clips)

    def put(self, ref: str, audio_b64: str) -> None:
        old = self._clips.pop(ref, None)
        if old is not None:
            self.bytes -= len(old)
        if len(audio_b64) > self.max_bytes:
            return  # larger than the whole store: observers see its size, not its sound
        self._clips[ref] = audio_b64
        self.bytes += len(audio_b64)
        while self.bytes > self.max_bytes or len(self._clips) > self.max_items:
            _, gone = self._clips.popitem(last=False)
            self.bytes -= len(gone)

    def get(self, ref: str) -> bytes | None:
        """The MP3 bytes of `ref`, or None if unknown or already pushed out."""
        clip = self._clips.get(ref)
        return base64.b64decode(clip) if clip is not None else None

    def clear(self) -> None:
        self._clips.clear()
        self.bytes = 0

    def strip(self, payload: dict[str, Any]) -> dict[str, Any]:
        """`payload` as observers see it: base64 `audio` kept here and replaced by a reference,
        any binary value by its size. The payload itself (on its way to the client) is not changed."""
        out: dict[str, Any] | None = None
        for key, value in payload.items():
            if isinstance(value, bytes | bytearray | memoryview):
                replaced: Any = {"bytes": len(value)}
            elif key == "audio" and isinstance(value, str) and value:
                ref = self._ref(payload)
                self.put(ref, value)
                replaced = {"bytes": b64_size(value), "seconds": round(mp3_seconds_b64(value), 3), "ref": ref}
            else:
                continue
            if out is None:
                out = dict(payload)
            out[key] = replaced
        return payload if out is None else out

    def _ref(self, payload: dict[str, Any]) -> str:
        rid, seq = payload.get("id"), payload.get("seq")
        if not (isinstance(rid, str) and _SAFE_ID.fullmatch(rid)):
            self._unnamed += 1
            rid = f"clip-{self._unnamed}"
        part = str(seq) if isinstance(seq, int) and not isinstance(seq, bool) else "full"
        return f"{rid}/{part}"


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

    def publish_out(self, event: str, payload: Any) -> None:
        """An event sent to the client, as an `out` event without its audio (see `ReplyAudio`)."""
        monitor = self.monitor
        if not monitor._subs:
            return
        if isinstance(payload, dict):
            payload = monitor.audio.strip(payload)
        monitor.publish("out", self.session, event=event, payload=payload)

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
