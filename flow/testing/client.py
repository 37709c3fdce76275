"""A real python-socketio client that records every event the server sends, for assertions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import socketio


class Recorder:
    """Connects to a voicegraph server and keeps `(monotonic_time, event, payload)` of all events.

    The `conversation` event every connect begins with is kept apart, in `conversations` (the
    latest is `conversation_id`), so that `events` holds what the client's turns caused.
    """

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[float, str, Any]] = []
        self.conversations: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

        async def catch_all(event: str, *args: Any) -> None:
            payload = args[0] if args else None
            if event == "conversation":
                self.conversations.append(payload)
            else:
                self.events.append((time.monotonic(), event, payload))
            self._changed.set()

        self.sio.on("*", catch_all)

    async def connect(self, url: str, auth: dict | None = None) -> Recorder:
        await self.sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
        return self

    async def emit(self, event: str, data: Any = None) -> None:
        if data is None:
            await self.sio.emit(event)
        else:
            await self.sio.emit(event, data)

    async def stream(self, data: bytes, size: int, pace_s: float = 0.0) -> None:
        """Send `data` as `audio-stream` chunks of `size` bytes (arbitrary boundaries)."""
        for i in range(0, len(data), size):
            await self.sio.emit("audio-stream", data[i : i + size])
            if pace_s:
                await asyncio.sleep(pace_s)

    @property
    def conversation_id(self) -> str | None:
        return self.conversations[-1]["conversationId"] if self.conversations else None

    async def conversation(self, timeout: float = 10.0) -> dict[str, Any]:
        """The `conversation` event of the latest connect (waits for it)."""
        deadline = time.monotonic() + timeout
        while not self.conversations:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no 'conversation' event within {timeout}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.conversations[-1]

    def of(self, event: str) -> list[Any]:
        return [p for _, e, p in self.events if e == event]

    async def wait(self, event: str, pred: Callable[[Any], bool] | None = None,
                   timeout: float = 20.0, count: int = 1) -> Any:
        """The `count`-th payload of `event` matching `pred`; fails with the events seen so far."""
        deadline = time.monotonic() + timeout
        while True:
            found = [p for p in self.of(event) if pred is None or pred(p)]
            if len(found) >= count:
                return found[count - 1]
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(e, _short(p)) for _, e, p in self.events[-20:]]
                raise AssertionError(f"no {event!r} (#{count}) within {timeout}s; last events: {seen}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def quiet(self, seconds: float) -> None:
        """Let `seconds` pass so that anything wrongly sent late has a chance to arrive."""
        await asyncio.sleep(seconds)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


def _short(p: Any) -> Any:
    if isinstance(p, dict):
        return {k: (v[:40] + "…" if isinstance(v, str) and len(v) > 40 else v) for k, v in p.items()}
    return p
