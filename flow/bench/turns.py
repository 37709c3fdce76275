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

import socketio

from flow.bench.figures import pct, spread
from flow.bench.latency import QUESTION
from flow.bench.procs import children, close_all, connect_many, server_process, tree_cpu_seconds
from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.speech import MIME, encode, speak_piper

CHUNK = 1280  # 40 ms of 16 kHz PCM16
NOISE = bytes(CHUNK)  # digital silence: no speech, no turn
START = {"format": "pcm16", "sampleRate": 16000}
TURN_P99_MS = 50.0
BACKLOG_MS = 200.0
TURN_EVERY_S = 20.0
"""Mean time between one user's turns (exponential): a brisk conversation."""


def question_pcm() -> bytes:
    return encode(speak_piper(QUESTION), "pcm16_16k", pad_s=0.0)


WEBM_START = {"mimeType": MIME["webm"]}
WEBM_GAPS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
"""The silences before the question in the webm recordings, in units of `turn_every_s` (each
recording is picked at random: a gap that is not exponential, see `step_seconds`)."""
WEBM_ARRIVAL = statistics.mean(WEBM_GAPS)
"""A webm session starts its first recording after a random wait of up to this many
`turn_every_s`: users arrive at independent moments. Started together, the sessions that drew the
same recording stopped at the same instant, a burst of ~14 turns at 100 sessions, and most of a
step's turns were first turns: the webm rows measured bursts (p50 130-240 ms at 100 sessions)."""


def webm_recordings(turn_every_s: float) -> list[list[bytes]]:
    """Recordings as a browser sends them: webm/opus made by ffmpeg from real speech (silence of a
    few lengths, then the question), each sliced into 40 ms of audio per chunk as MediaRecorder
    does with a timeslice: the first chunk holds the header, the rest are continuation bytes."""
    out = []
    for share in WEBM_GAPS:
        gap = share * turn_every_s
        data = encode(speak_piper(QUESTION), "webm", pad_s=0.0, lead_s=gap)
        slices = max(1, round((gap + QUESTION_S) / 0.04))
        size = -(-len(data) // slices)
        out.append([data[i:i + size] for i in range(0, len(data), size)])
    return out


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


FLOOR_TURNS = 50
"""Back-to-back rounds the provider floor of a turn is the median of."""
FLOOR: list[float] = []
"""The last `turn_overhead`'s floor rounds (ms): what a turn costs without voicegraph around it."""


async def provider_floor(url: str, stub_url: str, audio: bytes, n: int = FLOOR_TURNS) -> list[float]:
    """What a voice turn cannot go below with providers at 0 ms, measured from a bare process: the
    three provider calls as voicegraph makes them (its OpenAI provider classes, the real SDK, the same
    stub, the question's audio as the upload) one after the other, plus one Socket.IO round trip to
    the server (an acknowledged chunk). On this kind of machine each request that wakes an idle peer
    costs 0.1-0.4 ms in the send alone (measured in the server's profile), so the floor is not zero."""
    from flow.config import Settings
    from flow.contract.providers import ChatMessage
    from flow.contract.resources import Resources
    from nodes.responder.openai import OpenAIResponder
    from nodes.synthesizer.openai import OpenAISynthesizer
    from nodes.transcriber.openai import OpenAITranscriber

    env = {"OPENAI_BASE_URL": stub_url, "OPENAI_API_KEY": "sk-bench", "OPENAI_MAX_RETRIES": "0"}
    resources = Resources(Settings.from_env(env, dotenv=None))
    stt, llm, tts = OpenAITranscriber(resources), OpenAIResponder(resources), OpenAISynthesizer(resources)
    c = await Recorder().connect(url)
    out: list[float] = []
    try:
        for i in range(n + 3):  # the first three warm the connections
            t0 = time.monotonic()
            text = await stt.transcribe(audio, 16000, 2, 1, owner="floor")
            reply = "".join([d async for d in llm.reply([ChatMessage("user", text)])])
            _ = [b async for b in tts.speak(reply, owner="floor")]
            await c.sio.call("audio-stream", NOISE, timeout=10)
            if i >= 3:
                out.append(1000 * (time.monotonic() - t0))
            await asyncio.sleep(0.05)
    finally:
        await c.close()
        await resources.aclose()
    return out


FLEET_CPU: list[float] = []
"""Per run of the last `turn_overhead`: the share of one core the client fleet's process used
(near 1.0 the figures are client-bound)."""
STUB_CPU: list[float] = []
"""Same for the stub's process (this one)."""
SERVER_CPU: list[float] = []
"""Same for the server process."""


async def turn_overhead(runs: list[tuple], think_s: tuple[float, float] = (2.0, 4.0),
                        ) -> list[list[float]]:
    """Per run `(sessions, turns each, burst[, think_s])`: stop → ai-response (ms) of every turn,
    one server. The stub runs here, the server in its own process, the client fleet in a third
    (spawned)."""
    import concurrent.futures
    import multiprocessing

    out: list[list[float]] = []
    FLEET_CPU.clear(), STUB_CPU.clear(), SERVER_CPU.clear(), FLOOR.clear()
    async with OpenAIStub() as stub, server_process("default", stub) as srv:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            await loop.run_in_executor(pool, _fleet_main, srv.url, 1, 1, False, think_s, True)  # warm
            FLOOR[:] = await loop.run_in_executor(pool, _floor_main, srv.url, stub.base_url)
            for sessions, turns_each, burst, *think in runs:
                wall, mine, server = time.monotonic(), time.process_time(), tree_cpu_seconds(srv.pid)
                values, fleet_cpu = await loop.run_in_executor(
                    pool, _fleet_main, srv.url, sessions, turns_each, burst, think[0] if think else think_s, False)
                wall = time.monotonic() - wall
                out.append(values)
                FLEET_CPU.append(fleet_cpu / wall)
                STUB_CPU.append((time.process_time() - mine) / wall)
                SERVER_CPU.append((tree_cpu_seconds(srv.pid) - server) / wall)
    return out


def _fleet_main(url: str, sessions: int, turns_each: int, burst: bool, think_s: tuple[float, float],
                warm: bool) -> tuple[list[float], float]:
    """In the fleet's process: connect `sessions` clients, take the turns; (ms of each, CPU s)."""

    async def run() -> list[float]:
        audio = question_pcm()
        if warm:  # first-use costs (SDK, pools) are not in the figure
            c = await Recorder().connect(url)
            await one_turn(c, audio)
            await c.close()
            return []
        clients = await connect_many(url, sessions)
        try:
            return await (_burst(clients, audio) if burst else _staggered(clients, audio, turns_each, think_s))
        finally:
            await close_all(clients)

    question_pcm()  # made (or read from cache) before the clock starts
    cpu = time.process_time()
    values = asyncio.run(run())
    return values, time.process_time() - cpu


def _floor_main(url: str, stub_url: str) -> list[float]:
    """In the fleet's process: `provider_floor` with the question's audio as the upload."""

    async def run() -> list[float]:
        return await provider_floor(url, stub_url, question_pcm())

    return asyncio.run(run())


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


MIN_TURNS = 100
"""Turns a full capacity step is long enough for: the p99 it is judged on is a real p99."""
QUESTION_S = 3.0
"""About how long the question takes to stream in real time (a turn's length before its gap)."""


def step_seconds(sessions: int, seconds: float, turn_every_s: float, min_turns: int = MIN_TURNS,
                 codec: str = "pcm16") -> float:
    """How long a step of `sessions` runs: at least `seconds`, and long enough for `min_turns`
    turns with 30 % to spare. Each session is a renewal process whose cycle is a gap (PCM16:
    exponential, mean `turn_every_s`; webm: one of `WEBM_GAPS`) then the question (`QUESTION_S`);
    by time T it has finished about T / mean - (mean² - variance) / (2 mean²) turns of cycles with
    that mean and variance (the second term is the head start of the first cycle, which every
    session pays: it dominates short steps of many sessions)."""
    arrival = 0.0
    if codec == "pcm16":
        mean, var = turn_every_s + QUESTION_S, turn_every_s ** 2
    else:
        gaps = [g * turn_every_s for g in WEBM_GAPS]
        mean, var = statistics.mean(gaps) + QUESTION_S, statistics.pvariance(gaps)
        arrival = WEBM_ARRIVAL * turn_every_s / 2  # the mean wait before the first recording
    head_start = (mean ** 2 - var) / (2 * mean ** 2) + arrival / mean
    return max(seconds, mean * (1.3 * min_turns / sessions + head_start))


@dataclass
class Step:
    sessions: int
    turns: list[float] = field(default_factory=list)
    acks: list[tuple[float, float]] = field(default_factory=list)
    """(seconds into the step, round trip ms) of acknowledged chunks."""
    lag_ms: float = 0.0
    """How far the slowest sender ever fell behind its real-time schedule."""
    end_lag_ms: float = 0.0
    """How far behind real time the slowest sender was at its last chunk: the clients could not
    keep real time (their own limit, or a server that does not read) when this is large."""
    server_cpu: float = 0.0
    """Share of one core the server process used during the step."""
    client_cpu: float = 0.0
    """Share of one core the client fleet's process used: near 1.0, the figures are client-bound."""
    seconds: float = 0.0
    codec: str = "pcm16"
    decoders: int = 0
    """Decoder child processes (ffmpeg) of the server at the step's busiest moment (webm; 0 with opus)."""
    pending: set[asyncio.Task] = field(default_factory=set)
    """Turns whose reply is still awaited."""
    refused: str = ""
    """Why the step's clients could not all connect (the step fails; empty when they did)."""

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
    def real_time(self) -> bool:
        return self.end_lag_ms <= BACKLOG_MS

    @property
    def ok(self) -> bool:
        return (not self.refused and bool(self.turns) and self.turn_p99 <= TURN_P99_MS
                and self.ack_late <= BACKLOG_MS and self.real_time)

    def describe(self) -> str:
        if self.refused:
            return f"{self.sessions} sessions ({self.codec}): fails: not every client could connect ({self.refused})"
        why = [] if self.ok else [w for w, bad in (
            (f"turn p99 > {TURN_P99_MS:.0f} ms", bool(self.turns) and self.turn_p99 > TURN_P99_MS),
            (f"backlog > {BACKLOG_MS:.0f} ms", self.ack_late > BACKLOG_MS),
            ("clients fell behind real time", not self.real_time),
            ("no turn", not self.turns)) if bad]
        dec = f", {self.decoders} decoder processes" if self.codec != "pcm16" else ""
        return (f"{self.sessions} sessions ({self.codec}, {self.seconds:.0f} s): turn (ms) {spread(self.turns)}, "
                f"ack {self.ack_late:.0f} ms, clients behind real time {self.end_lag_ms:.0f} ms at the end "
                f"(worst {self.lag_ms:.0f}), CPU server {100 * self.server_cpu:.0f}%{dec} / "
                f"clients {100 * self.client_cpu:.0f}%" + (f" — fails: {', '.join(why)}" if why else ""))


def _timed(c: Recorder, step: Step, t0: float) -> asyncio.Task:
    """Wait (in the background) for the reply to the turn just stopped at `t0`; record its time."""
    n = len(c.of("ai-response"))

    async def timed() -> None:
        try:
            await c.wait("ai-response", count=n + 1, timeout=60)
        except AssertionError:
            step.turns.append(float("inf"))  # no reply at all: the step fails
            return
        t = [t for t, e, _ in c.events if e == "ai-response"][n]
        step.turns.append(1000 * (t - t0))

    return asyncio.get_running_loop().create_task(timed())


async def _stream(c: Recorder, step: Step, seconds: float, turn_every_s: float, audio: bytes, seed: int,
                  webm: list[list[bytes]] | None = None) -> None:
    """One real-time session for `seconds`: PCM16 (digital silence between questions), or with
    `webm` whole browser recordings (silence then the question, one decoder each) back to back,
    the first after a random wait (`WEBM_ARRIVAL`)."""
    loop = asyncio.get_running_loop()
    r = random.Random(seed)
    # each session's own 40 ms clock phase, as independent browsers have: phase-locked, every
    # session's chunk landed in the same instant, 25 times a second
    start = loop.time() + r.uniform(0.0, 0.04)
    plan: list[bytes] = []
    next_turn = r.expovariate(1 / turn_every_s)  # users talk at random, independent moments
    arrives = r.uniform(0, WEBM_ARRIVAL * turn_every_s) if webm is not None else 0.0
    sent = 0
    if webm is None:
        await c.emit("start-recording", START)
    lag = 0.0
    while True:
        at = sent * 0.04
        if at >= seconds:
            step.end_lag_ms = max(step.end_lag_ms, 1000 * lag)
            break
        lag = loop.time() - (start + at)
        step.lag_ms = max(step.lag_ms, 1000 * lag)
        if lag < 0:
            await asyncio.sleep(-lag)
        if at < arrives:  # a browser user who has not started to record yet: nothing to send
            sent += 1
            continue
        if webm is not None and not plan:
            plan = list(r.choice(webm))
            await c.emit("start-recording", WEBM_START)
        elif not plan and at >= next_turn:
            plan = [audio[i:i + CHUNK] for i in range(0, len(audio), CHUNK)]
            next_turn = float("inf")
        if plan:
            chunk = plan.pop(0)
            if sent % 25 == 0:
                sent_at = loop.time()
                await c.sio.emit("audio-stream", chunk, callback=lambda *a, s=sent_at: step.acks.append(
                    (s - start, 1000 * (loop.time() - s))))
            else:
                await c.sio.emit("audio-stream", chunk)
            if not plan:  # the question is out: stop, time the reply, start streaming again
                t0 = loop.time()
                step.pending.add(_timed(c, step, t0))
                await c.emit("stop-recording")
                if webm is None:
                    await c.emit("start-recording", START)
                    next_turn = at + r.expovariate(1 / turn_every_s)
        elif sent % 25 == 0:
            sent_at = loop.time()
            await c.sio.emit("audio-stream", NOISE, callback=lambda *a, s=sent_at: step.acks.append(
                (s - start, 1000 * (loop.time() - s))))
        else:
            await c.sio.emit("audio-stream", NOISE)
        sent += 1


async def capacity(steps: tuple[int, ...], seconds: float, turn_every_s: float = TURN_EVERY_S,
                   codec: str = "pcm16", min_turns: int = MIN_TURNS, through: int = 0) -> list[Step]:
    """Raise the session count step by step until a step fails past `through` sessions (or the
    steps run out). The stub runs in this process, the server in its own, the client fleet in a
    third."""
    # the process's capacity, not its configured limit (VOICEGRAPH_MAX_SESSIONS, 200 by default)
    limit = str(max(steps) + 50)
    async with OpenAIStub() as stub, server_process("default", stub, VOICEGRAPH_MAX_SESSIONS=limit) as srv:
        return await climb_elsewhere(srv.url, [srv.pid], steps, seconds, turn_every_s, codec, min_turns, through)


def _climb_main(*args: object) -> list[Step]:
    steps = asyncio.run(climb(*args))  # type: ignore[arg-type]
    for st in steps:
        st.pending = set()  # tasks do not cross processes
    return steps


async def climb_elsewhere(*args: object) -> list[Step]:
    """`climb` with the client fleet in a process of its own (spawned: no inherited loop), so the
    load generator competes with neither the stub nor the server for an interpreter lock, and
    its CPU share is its own."""
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return await asyncio.get_running_loop().run_in_executor(pool, _climb_main, *args)


async def climb(url: str, pids: list[int], steps: tuple[int, ...], seconds: float,
                turn_every_s: float = TURN_EVERY_S, codec: str = "pcm16", min_turns: int = 0,
                through: int = 0) -> list[Step]:
    """The capacity steps against `url` (one server, or a balancer in front of several), whose
    server processes are `pids` (their CPU, with their decoder children's, is summed). A step
    runs for `seconds`, longer if needed for `min_turns` turns. The climb stops at the first
    failed step, except below `through` sessions: a goal's own step (100 webm sessions) is
    always measured, so the table says whether the goal holds even when a smaller step failed."""
    audio = question_pcm()
    webm = webm_recordings(turn_every_s) if codec == "webm" else None
    done: list[Step] = []
    for _ in pids:  # first-use costs are not in the figure (a balancer spreads these over the workers)
        warm = await Recorder().connect(url)
        await one_turn(warm, audio)
        await warm.close()
    for n in steps:
        length = step_seconds(n, seconds, turn_every_s, min_turns, codec)
        step = Step(n, seconds=length, codec=codec)
        try:
            clients = await connect_many(url, n)
        except socketio.exceptions.ConnectionError as err:  # refused (server_full) or timed out
            step.refused = str(err)
            done.append(step)
            break
        wall, mine = time.monotonic(), time.process_time()
        server = sum(tree_cpu_seconds(pid) for pid in pids)

        async def count_decoders(step: Step = step) -> None:
            while True:
                step.decoders = max(step.decoders, sum(len(children(pid)) for pid in pids))
                await asyncio.sleep(1.0)

        counter = asyncio.get_running_loop().create_task(count_decoders())
        try:
            await asyncio.gather(*(_stream(c, step, length, turn_every_s, audio, i, webm)
                                   for i, c in enumerate(clients)))
            await asyncio.gather(*step.pending)  # replies of the last turns
            wall = time.monotonic() - wall
            step.server_cpu = (sum(tree_cpu_seconds(pid) for pid in pids) - server) / wall
            step.client_cpu = (time.process_time() - mine) / wall
        finally:
            counter.cancel()
            await close_all(clients)
        done.append(step)
        if not step.ok and n >= through:
            break
        await asyncio.sleep(1.0)
    return done
