"""Feed a recording's input to a server as a real Socket.IO client, and keep what comes back.

`speed` 1 (or any factor) sends each inbound event at its recorded time divided by the factor;
`speed=None` ("max") sends audio as fast as the server takes it. At any speed, each other event
(a typed message, an interrupt, a start or stop) is also held until the replay has seen as many
transcripts, user turns and reply pieces as the recording had before it, so a server slower than
the recorded one (a loaded machine, another provider) does not reorder the turns: an interrupt
still lands on the reply it interrupted. A graph that makes fewer of them (a longer `silence_ms`
joins two utterances) cannot catch up: the first such wait gives up after `SYNC_TIMEOUT_S`, and
from then on the run is known to differ and waits at most `DIVERGED_WAIT_S` at each. The run ends
once the replay has as many user turns as the recording (or without them, as long) and nothing
has come for `settle_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import socketio

from flow.replay.recording import Event, Recording

SYNC_EVENTS = ("speech-result", "message-received", "ai-response-chunk", "ai-response")
"""What a max-speed replay waits for before each non-audio event (as many as were recorded)."""
SYNC_TIMEOUT_S = 10.0
"""Longest wait for one such point (a changed graph may never produce what the recording had)."""
DIVERGED_WAIT_S = 2.0
"""Longest wait at each later point once one was not reached."""


@dataclass
class ReplayRun:
    sid: str
    outbound: list[Event] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    diverged: bool = False
    """A sync point was not reached: this run made fewer transcripts, turns or pieces than recorded."""
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, event: str) -> int:
        return sum(1 for e in self.outbound if e.event == event)


async def replay(rec: Recording, url: str, *, speed: float | None = 1.0, auth: dict[str, Any] | None = None,
                 settle_s: float = 1.5, timeout_s: float = 300.0) -> ReplayRun:
    """Send `rec`'s inbound events to the server at `url`; its outbound events, as received."""
    sio = socketio.AsyncClient(reconnection=False)
    run = ReplayRun("")

    async def catch_all(event: str, *args: Any) -> None:
        run.outbound.append(Event(round((time.monotonic() - run.started) * 1000, 1), event, args[0] if args else None))
        run._changed.set()

    sio.on("*", catch_all)
    await sio.connect(url, auth={"label": "replay", **(auth or {})}, transports=["websocket"], wait_timeout=10)
    run.sid = sio.get_sid() or ""
    run.started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            for e in rec.inbound:
                if speed is not None:
                    delay = run.started + e.t / 1000.0 / speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if e.event != "audio-stream":
                    await _caught_up(run, rec, e.t)
                await _emit(sio, e)
            await _finished(run, len(_recorded(rec, "message-received", float("inf"))), settle_s)
    finally:
        with contextlib.suppress(Exception):
            await sio.disconnect()
    return run


async def _emit(sio: socketio.AsyncClient, e: Event) -> None:
    if e.data is None:
        await sio.emit(e.event)
    else:
        await sio.emit(e.event, e.data)


def _recorded(rec: Recording, event: str, before: float) -> list[Event]:
    return [o for o in rec.outbound if o.event == event and o.t <= before]


async def _wait(run: ReplayRun, done: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        run._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run._changed.wait(), left)
    return True


async def _caught_up(run: ReplayRun, rec: Recording, t: float) -> None:
    wanted = {event: len(_recorded(rec, event, t)) for event in SYNC_EVENTS}
    reached = await _wait(run, lambda: all(run.count(ev) >= n for ev, n in wanted.items()),
                          DIVERGED_WAIT_S if run.diverged else SYNC_TIMEOUT_S)
    run.diverged = run.diverged or not reached


async def _finished(run: ReplayRun, turns: int, settle_s: float) -> None:
    """As many user turns as recorded (or a while without), then quiet for `settle_s`."""
    await _wait(run, lambda: run.count("message-received") >= turns,
                DIVERGED_WAIT_S if run.diverged else SYNC_TIMEOUT_S)
    while True:
        seen = len(run.outbound)
        await asyncio.sleep(settle_s)
        if len(run.outbound) == seen:
            return
