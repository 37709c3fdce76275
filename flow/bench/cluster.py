"""Scenario 11, past one process: capacity of 1 vs 2 workers behind HAProxy, and how long a client
whose worker was killed takes to get its next reply.

Both run real parts, started here and stopped here: redis-server (conversations, Socket.IO's
manager), `voicegraph serve` workers, HAProxy with the shipped `deploy/haproxy.cfg`; the
OpenAI-compatible stub and the reconnecting clients run in this process. Capacity is scenario 5's measure (real-time
sessions, turn p99 ≤ 50 ms, no backlog) through the balancer. On a 2-core machine the load
generator, the stub, HAProxy and Redis share the cores with the workers, so the 2-worker figure is
bounded by that machine, not only by voicegraph: the table says the CPU each side used. As in
scenario 5 the client fleet of the capacity steps runs in a process of its own (`climb_elsewhere`),
apart from the stub, and each step runs long enough for `min_turns` turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import socketio

from flow.bench.turns import Step, climb_elsewhere
from flow.testing.cluster import TEXT_ONLY, haproxy, redis_server, workers
from flow.testing.openai_stub import OpenAIStub


@contextlib.asynccontextmanager
async def _entered(cm: contextlib.AbstractContextManager) -> AsyncIterator[Any]:
    """A blocking context manager (starting processes) entered off the loop."""
    value = await asyncio.to_thread(cm.__enter__)
    try:
        yield value
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)


@contextlib.contextmanager
def _cluster(n: int, env: dict[str, str], graph: str) -> Iterator[tuple[str, list]]:
    with workers(n, env, "--no-ui", "--graph", graph) as ws, \
            haproxy([int(w.url.rsplit(":", 1)[1]) for w in ws]) as url:
        yield url, ws


def _env(stub: OpenAIStub, redis_url: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-bench", "OPENAI_MAX_RETRIES": "0",
            "VOICEGRAPH_REDIS_URL": redis_url, "VOICEGRAPH_STORE": redis_url,
            "VOICEGRAPH_MAX_SESSIONS": "1000"}  # each worker's capacity, not its configured limit


async def capacity(steps: dict[int, tuple[int, ...]], seconds: float, turn_every_s: float,
                   min_turns: int) -> dict[int, list[Step]]:
    """Per worker count: scenario 5's steps through HAProxy, until a step fails; the client
    fleet in a spawned process of its own, each step long enough for `min_turns` turns."""
    out: dict[int, list[Step]] = {}
    async with OpenAIStub() as stub:
        with redis_server() as redis_url:
            for n, sizes in steps.items():
                async with _entered(_cluster(n, _env(stub, redis_url), "default")) as (url, ws):
                    out[n] = await climb_elsewhere(url, [w.pid for w in ws], sizes, seconds, turn_every_s,
                                                   "pcm16", min_turns)
    return out


class _Client:
    """A frontend that reconnects (python-socketio, websocket) and resumes its conversation."""

    def __init__(self, i: int) -> None:
        self.i = i
        self.id: str | None = None
        self.replies: list[float] = []
        self.connected_at: list[float] = []
        self.disconnected = asyncio.Event()
        self.reconnected = asyncio.Event()
        self._reply = asyncio.Event()
        self.sio = socketio.AsyncClient(reconnection=True, reconnection_delay=0.1, reconnection_delay_max=0.5,
                                        randomization_factor=0.0)
        self.sio.on("conversation", self._conversation)
        self.sio.on("ai-response", self._replied)
        self.sio.on("connect", self._connected)
        self.sio.on("disconnect", lambda *a: self.disconnected.set())

    async def _connected(self) -> None:
        self.connected_at.append(time.monotonic())
        self.reconnected.set()

    async def _conversation(self, p: dict) -> None:
        self.id = p["conversationId"]

    async def _replied(self, p: dict) -> None:
        self.replies.append(time.monotonic())
        self._reply.set()

    async def connect(self, url: str) -> None:
        await self.sio.connect(url, transports=["websocket"], wait_timeout=10,
                               auth=lambda: {"conversationId": self.id} if self.id else {})

    async def turn(self, text: str, timeout: float = 30.0) -> float:
        self._reply.clear()
        await self.sio.emit("text-message", text)
        await asyncio.wait_for(self._reply.wait(), timeout)
        return self.replies[-1]


def _sessions(url: str) -> int:
    import json

    with urllib.request.urlopen(url + "/health", timeout=5) as r:
        return json.load(r)["sessions"]


async def reconnect(clients: int) -> tuple[list[float], list[float]]:
    """`clients` conversations on 2 workers; one worker SIGKILLed: per moved client, ms from its
    reconnect to its next reply, and from the kill to that reply."""
    import os
    import signal

    with tempfile.TemporaryDirectory(prefix="vg-bench-") as tmp:
        graph = Path(tmp) / "text_only.yaml"
        graph.write_text(TEXT_ONLY)
        async with OpenAIStub() as stub:
            with redis_server() as redis_url:
                async with _entered(_cluster(2, _env(stub, redis_url), str(graph))) as (url, ws):
                    cs = [_Client(i) for i in range(clients)]
                    try:
                        for c in cs:
                            await c.connect(url)
                        await asyncio.gather(*(c.turn(f"c{c.i} t1") for c in cs))
                        victim = max(ws, key=lambda w: _sessions(w.url))
                        for c in cs:
                            c.disconnected.clear()
                            c.reconnected.clear()
                        killed = time.monotonic()
                        os.kill(victim.pid, signal.SIGKILL)

                        async def moved(c: _Client) -> tuple[float, float] | None:
                            try:
                                await asyncio.wait_for(c.disconnected.wait(), 3.0)
                            except TimeoutError:
                                return None  # its worker lives on
                            await asyncio.wait_for(c.reconnected.wait(), 30.0)
                            replied = await c.turn(f"c{c.i} t2")
                            return 1000 * (replied - c.connected_at[-1]), 1000 * (replied - killed)

                        results = [r for r in await asyncio.gather(*(moved(c) for c in cs)) if r is not None]
                    finally:
                        await asyncio.gather(*(c.sio.disconnect() for c in cs), return_exceptions=True)
    return [r[0] for r in results], [r[1] for r in results]
