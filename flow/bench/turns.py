"""Turn overhead (scenario 2) and capacity (scenario 5), server in its own process.

Turn overhead: N connected sessions each take voice turns (the question as PCM16, then
`stop-recording`) with think time between them, providers at zero latency (the stub); the figure
is `stop-recording` → `ai-response` at the client. A burst variant stops every session at once.

Capacity: N sessions stream 40 ms PCM16 chunks paced at real time (25/s). Each talks at random
moments (a turn every `TURN_EVERY_S` on average): the question streamed in real time, then
`stop-recording`, then streaming resumes. Once a second each
session asks for an acknowledgement of a chunk; its round trip says whether the server keeps up
(a growing backlog shows as a growing round trip). A step passes when turn overhead p99 ≤ 50 ms
and the round trip stays under `BACKLOG_MS`.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field

from flow.bench.latency import QUESTION, pct
from flow.bench.procs import close_all, connect_many, cpu_seconds, server_process
from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.speech import encode, speak_piper

CHUNK = 1280  # 40 ms of 16 kHz PCM16
NOISE = bytes(CHUNK)  # digital silence: no speech, no turn
START = {"format": "pcm16", "sampleRate": 16000}
TURN_P99_MS = 50.0
BACKLOG_MS = 200.0
TURN_EVERY_S = 20.0
"""Mean time between one user's turns (exponential): a brisk conversation."""


def question_pcm() -> bytes:
    return encode(speak_piper(QUESTION), "pcm16_16k", pad_s=0.0)


async def one_turn(c: Recorder, audio: bytes, chunk: int = 32_000) -> float:
    """Stream `audio`, stop, wait for the reply: ms from `stop-recording` to `ai-response`."""
    n = len(c.of("ai-response"))
    await c.emit("start-recording", START)
    await c.stream(audio, chunk)
    t0 = time.monotonic()
    await c.emit("stop-recording")
    await c.wait("ai-response", count=n + 1, timeout=120)
    t = [t for t, e, _ in c.events if e == "ai-response"][n]
    return 1000 * (t - t0)


async def turn_overhead(runs: list[tuple[int, int, bool]], think_s: tuple[float, float] = (2.0, 4.0),
                        ) -> list[list[float]]:
    """Per run `(sessions, turns each, burst)`: stop → ai-response (ms) of every turn, one server."""
    audio = question_pcm()
    out: list[list[float]] = []
    async with OpenAIStub() as stub, server_process("default", stub) as srv:
        warm = await Recorder().connect(srv.url)  # first-use costs (SDK, pools) are not in the figure
        await one_turn(warm, audio)
        await warm.close()
        for sessions, turns_each, burst in runs:
            clients = await connect_many(srv.url, sessions)
            try:
                out.append(await (_burst(clients, audio) if burst else
                                  _staggered(clients, audio, turns_each, think_s)))
            finally:
                await close_all(clients)
    return out


async def _staggered(clients: list[Recorder], audio: bytes, turns_each: int,
                     think_s: tuple[float, float]) -> list[float]:
    rng = random.Random(7)

    async def talk(c: Recorder, seed: int) -> list[float]:
        r = random.Random(seed)
        await asyncio.sleep(r.uniform(0, think_s[1]))
        out = []
        for _ in range(turns_each):
            out.append(await one_turn(c, audio))
            await asyncio.sleep(r.uniform(*think_s))
        return out

    results = await asyncio.gather(*(talk(c, rng.randrange(1 << 30)) for c in clients))
    return [ms for per in results for ms in per]


async def _burst(clients: list[Recorder], audio: bytes) -> list[float]:
    for c in clients:
        await c.emit("start-recording", START)
        await c.stream(audio, 32_000)
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    await asyncio.gather(*(c.emit("stop-recording") for c in clients))
    await asyncio.gather(*(c.wait("ai-response", timeout=120) for c in clients))
    return [1000 * (next(t for t, e, _ in c.events if e == "ai-response") - t0) for c in clients]


# ---------------------------------------------------------------------- capacity


@dataclass
class Step:
    sessions: int
    turns: list[float] = field(default_factory=list)
    acks: list[tuple[float, float]] = field(default_factory=list)
    """(seconds into the step, round trip ms) of acknowledged chunks."""
    lag_ms: float = 0.0
    server_cpu: float = 0.0
    """Share of one core the server process used during the step."""
    client_cpu: float = 0.0
    """Share of one core this (load-generating) process used: near 1.0, the figures are client-bound."""
    pending: set[asyncio.Task] = field(default_factory=set)
    """Turns whose reply is still awaited."""
    """How far the slowest sender fell behind its real-time schedule (the client's own limit)."""

    @property
    def turn_p99(self) -> float:
        return pct(self.turns, 99) if self.turns else float("nan")

    @property
    def ack_late(self) -> float:
        """Median round trip over the last third of the step: a backlog shows here."""
        if not self.acks:
            return float("nan")
        end = max(t for t, _ in self.acks)
        tail = [ms for t, ms in self.acks if t >= end * 2 / 3]
        return statistics.median(tail)

    @property
    def ok(self) -> bool:
        return bool(self.turns) and self.turn_p99 <= TURN_P99_MS and self.ack_late <= BACKLOG_MS

    def describe(self) -> str:
        return (f"{self.sessions} sessions: turn p99 {self.turn_p99:.0f} ms (n={len(self.turns)}), "
                f"ack {self.ack_late:.0f} ms, CPU server {100 * self.server_cpu:.0f}% / "
                f"clients {100 * self.client_cpu:.0f}%")


async def _stream(c: Recorder, step: Step, seconds: float, turn_every_s: float, audio: bytes, seed: int) -> None:
    loop = asyncio.get_running_loop()
    r = random.Random(seed)
    start = loop.time()
    plan: list[bytes] = []
    next_turn = r.expovariate(1 / turn_every_s)  # users talk at random, independent moments
    sent = 0
    await c.emit("start-recording", START)
    while True:
        at = sent * 0.04
        if at >= seconds:
            break
        lag = loop.time() - (start + at)
        step.lag_ms = max(step.lag_ms, 1000 * lag)
        if lag < 0:
            await asyncio.sleep(-lag)
        if not plan and at >= next_turn:
            plan = [audio[i:i + CHUNK] for i in range(0, len(audio), CHUNK)]
            next_turn = float("inf")
        if plan:
            await c.sio.emit("audio-stream", plan.pop(0))
            if not plan:  # the question is out: stop, time the reply, start streaming again
                t0 = loop.time()
                n = len(c.of("ai-response"))
                await c.emit("stop-recording")

                async def timed(t0: float = t0, n: int = n) -> None:
                    try:
                        await c.wait("ai-response", count=n + 1, timeout=60)
                    except AssertionError:
                        step.turns.append(float("inf"))  # no reply at all: the step fails
                        return
                    t = [t for t, e, _ in c.events if e == "ai-response"][n]
                    step.turns.append(1000 * (t - t0))

                step.pending.add(loop.create_task(timed()))
                await c.emit("start-recording", START)
                next_turn = at + r.expovariate(1 / turn_every_s)
        elif sent % 25 == 0:
            sent_at = loop.time()
            await c.sio.emit("audio-stream", NOISE, callback=lambda *a, s=sent_at: step.acks.append(
                (s - start, 1000 * (loop.time() - s))))
        else:
            await c.sio.emit("audio-stream", NOISE)
        sent += 1


async def capacity(steps: tuple[int, ...], seconds: float, turn_every_s: float = TURN_EVERY_S) -> list[Step]:
    """Raise the session count step by step until a step fails (or the steps run out)."""
    async with OpenAIStub() as stub, server_process("default", stub) as srv:
        return await climb(srv.url, [srv.pid], steps, seconds, turn_every_s)


async def climb(url: str, pids: list[int], steps: tuple[int, ...], seconds: float,
                turn_every_s: float = TURN_EVERY_S) -> list[Step]:
    """The capacity steps against `url` (one server, or a balancer in front of several), whose
    server processes are `pids` (their CPU is summed)."""
    audio = question_pcm()
    done: list[Step] = []
    for _ in pids:  # first-use costs are not in the figure (a balancer spreads these over the workers)
        warm = await Recorder().connect(url)
        await one_turn(warm, audio)
        await warm.close()
    for n in steps:
        step = Step(n)
        clients = await connect_many(url, n)
        wall, mine = time.monotonic(), time.process_time()
        server = sum(cpu_seconds(pid) for pid in pids)
        try:
            await asyncio.gather(*(_stream(c, step, seconds, turn_every_s, audio, i)
                                   for i, c in enumerate(clients)))
            await asyncio.gather(*step.pending)  # replies of the last turns
            wall = time.monotonic() - wall
            step.server_cpu = (sum(cpu_seconds(pid) for pid in pids) - server) / wall
            step.client_cpu = (time.process_time() - mine) / wall
        finally:
            await close_all(clients)
        done.append(step)
        if not step.ok:
            break
        await asyncio.sleep(1.0)
    return done
