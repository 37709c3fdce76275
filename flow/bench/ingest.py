"""Ingest: audio chunks/s through the graph vs a bare python-socketio server, same run, same client.

`python -m flow.bench.ingest [--sessions N] [--chunks M] [--rounds R]`. Both servers run in
processes of their own (voicegraph as a real `voicegraph serve`), the client here. Each session
sends M PCM16 chunks of 40 ms (1280 bytes) of low noise (no speech, so no turn starts) as fast as
the socket allows; the last one asks for an acknowledgement, which the server sends after handling
every chunk before it (handlers run in arrival order): the time to that ack is the figure.
Rounds alternate bare and voicegraph, and the medians are compared, so a noisy moment on a shared
machine does not decide the ratio.

`--tap` measures instead what the dashboard's message tap costs: voicegraph unwatched against
voicegraph with its dashboard open in a browser on the Tap tab, tapping one of the sessions (every
message on every edge of it summarized, published and shown), rounds alternating between the two
servers. The tap's goal: at least 0.95x the unwatched rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import socketio

from flow.audio.ffmpeg import ffmpeg_path
from flow.bench.procs import cpu_seconds, profiled, tree_cpu_seconds
from flow.testing.browser import open_tab
from flow.testing.servers import served

CHUNK = (np.random.default_rng(0).standard_normal(640) * 30).astype("<i2").tobytes()  # -60 dBFS noise
WATCHER = ""
"""What watched the tapped server of the last `tap_cost` (or of the last `dashboard=True` run)."""
OPENED = ""
"""What watched the dashboard-open (not tapping) server of the last `tap_cost`."""
WATCHERS: dict[str, str] = {}
"""Per server URL of a `dashboard=True` run: what watched it (a browser tab, or state only)."""


TAPPED = "bench-tapped"
"""The client label of the session a `--tap` run taps (the dashboard opens as `/?tap=bench-tapped`)."""
TAP_SETTLE_S = 1.5
"""Between connecting and flooding in a `--tap` run: the dashboard's Tap tab checks twice a second
for the labelled session (the unwatched server waits as long, so both are timed alike)."""


def webm_chunks(chunks: int) -> list[bytes]:
    """`chunks` slices of one webm/opus recording (low noise, made by ffmpeg), 40 ms of audio each
    as MediaRecorder slices with a timeslice: the header in the first, continuation bytes after."""
    from flow.testing.speech import ENCODE

    cmd = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
           f"anoisesrc=r=48000:a=0.001:d={chunks * 0.04:.2f}", "-ac", "1", *ENCODE["webm"], "pipe:1"]
    data = subprocess.run(cmd, capture_output=True, check=True).stdout
    size = -(-len(data) // chunks)
    return [data[i:i + size] for i in range(0, len(data), size)]


async def drive(url: str, sessions: int, chunks: int, settle_s: float = 0.0, codec: str = "pcm16") -> float:
    """Chunks/s that `sessions` clients flooding `chunks` each get through `url` (the first one
    labelled `TAPPED`). With `settle_s`, every client connects first and the clock starts
    `settle_s` later (time for a dashboard to start tapping the labelled one); else connecting counts."""

    async def connect(i: int) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(url, transports=["websocket"], auth={"label": TAPPED if i == 0 else "bench"})
        return sio

    sliced = webm_chunks(chunks) if codec == "webm" else [CHUNK] * chunks
    start = {"mimeType": "audio/webm;codecs=opus"} if codec == "webm" else {"format": "pcm16", "sampleRate": 16000}

    async def flood(sio: socketio.AsyncClient) -> None:
        await sio.emit("start-recording", start)
        for chunk in sliced[:-1]:
            await sio.emit("audio-stream", chunk)
        await sio.call("audio-stream", sliced[-1], timeout=120)  # acked after every chunk before it
        await sio.disconnect()

    async def one(i: int) -> None:
        await flood(await connect(i))

    if settle_s:
        clients = await asyncio.gather(*(connect(i) for i in range(sessions)))
        await asyncio.sleep(settle_s)
        t0 = time.perf_counter()
        await asyncio.gather(*(flood(sio) for sio in clients))
    else:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(sessions)))
    return sessions * len(sliced) / (time.perf_counter() - t0)


def _bare_main(port: multiprocessing.Queue) -> None:
    """A python-socketio server that only counts the chunks: the floor voicegraph stands on."""
    from aiohttp import web

    from flow.transport import fastjson

    # configured as voicegraph configures it (inline handlers, orjson), so the ratio is the graph's cost
    sio = socketio.AsyncServer(async_mode="aiohttp", async_handlers=False, json=fastjson.for_socketio())
    app = web.Application()
    sio.attach(app)
    received = 0

    @sio.on("audio-stream")
    async def audio(sid, data):
        nonlocal received
        received += 1

    @sio.on("start-recording")
    async def start(sid, *a):
        pass

    async def main() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.put(site._server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


@contextlib.asynccontextmanager
async def bare_process() -> AsyncIterator[tuple[str, int]]:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this process's heap
    q = ctx.Queue()
    p = ctx.Process(target=_bare_main, args=(q,), daemon=True)
    p.start()
    try:
        port = await asyncio.to_thread(q.get, True, 30)
        yield f"http://127.0.0.1:{port}", p.pid
    finally:
        p.terminate()
        p.join(5)


@contextlib.asynccontextmanager
async def voicegraph_process(dashboard: bool = False, *extra: str, tap: bool = False) -> AsyncIterator[tuple[str, int]]:
    """`voicegraph serve --graph offline EXTRA` (with its dashboard open in a browser if asked, on
    the Tap tab tapping the session labelled `TAPPED` if `tap`)."""
    global WATCHER
    args = ("--ui-port", "0") if dashboard else ("--no-ui",)
    cm = served({}, *args, "--graph", "offline", *extra, with_ui=dashboard)
    running = await asyncio.to_thread(cm.__enter__)
    browser = None
    try:
        if dashboard:
            browser = open_tab(running.ui_url + (f"/?tap={TAPPED}" if tap else ""))
            WATCHER = WATCHERS[running.url] = ("dashboard open in headless chromium" + (", tapping 1 session"
                                                                                        if tap else "")
                                               if browser else "dashboard served, no browser")
            if browser is not None:
                await asyncio.sleep(5)  # the page loads and subscribes to the monitoring channel
        async with profiled(running.pid):
            yield running.url, running.pid
    finally:
        if browser is not None:
            browser.terminate()
            await asyncio.to_thread(browser.wait)
        await asyncio.to_thread(cm.__exit__, None, None, None)


@dataclass
class Ingest:
    """Chunks/s through a server, and the server's own CPU per chunk (client limits aside)."""

    rate: float
    cpu_us: float


async def measured(url: str, pid: int, sessions: int, chunks: int, settle_s: float = 0.0,
                   codec: str = "pcm16") -> Ingest:
    """With webm, the CPU is the server's and any decoder children's (in-process opus needs none)."""
    cpu_of = tree_cpu_seconds if codec == "webm" else cpu_seconds
    cpu = cpu_of(pid)
    rate = await drive(url, sessions, chunks, settle_s, codec)
    return Ingest(rate, 1e6 * (cpu_of(pid) - cpu) / (sessions * chunks))


async def compare_webm(sessions: int, chunks: int, rounds: int = 3) -> tuple[Ingest, Ingest]:
    """(bare, voicegraph) with webm/opus chunks, the browser's path: the bare server only counts
    them; voicegraph decodes them (in-process; any decoder child's CPU would be counted)."""
    bare: list[Ingest] = []
    ours: list[Ingest] = []
    async with bare_process() as (bare_url, bare_pid), voicegraph_process() as (url, pid):
        await drive(url, 1, 50, codec="webm")
        await drive(bare_url, 1, 50, codec="webm")
        for _ in range(rounds):
            bare.append(await measured(bare_url, bare_pid, sessions, chunks, codec="webm"))
            ours.append(await measured(url, pid, sessions, chunks, codec="webm"))
    return _median(bare), _median(ours)


async def compare(sessions: int, chunks: int, rounds: int = 3) -> tuple[Ingest, Ingest]:
    """(bare, voicegraph): medians over `rounds` alternating runs against one server each."""
    bare: list[Ingest] = []
    ours: list[Ingest] = []
    async with bare_process() as (bare_url, bare_pid), voicegraph_process() as (url, pid):
        await drive(url, 1, 50)  # warm both (first connections, first decoder)
        await drive(bare_url, 1, 50)
        for _ in range(rounds):
            bare.append(await measured(bare_url, bare_pid, sessions, chunks))
            ours.append(await measured(url, pid, sessions, chunks))
    return _median(bare), _median(ours)


def _median(runs: list[Ingest]) -> Ingest:
    return Ingest(statistics.median(r.rate for r in runs), statistics.median(r.cpu_us for r in runs))


async def watched(sessions: int, chunks: int) -> Ingest:
    """voicegraph while its dashboard is open in a browser tab (the Sessions view)."""
    async with voicegraph_process(dashboard=True) as (url, pid):
        await drive(url, 1, 50)
        return await measured(url, pid, sessions, chunks)


async def scraping(url: str, every_s: float = 1.0) -> None:
    """GET /metrics every `every_s`, as Prometheus would, until cancelled."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{url}/metrics") as resp:
                await resp.read()
            await asyncio.sleep(every_s)


async def measured_scraped(url: str, pid: int, sessions: int, chunks: int) -> Ingest:
    scraper = asyncio.get_running_loop().create_task(scraping(url))
    try:
        return await measured(url, pid, sessions, chunks)
    finally:
        scraper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scraper


async def observed(sessions: int, chunks: int, rounds: int = 3) -> tuple[Ingest, Ingest, Ingest]:
    """(plain, /metrics scraped every second, every session recorded to disk): medians over
    `rounds` alternating runs, one server process each. The metrics' counter increments are paid
    in all three (they cannot be turned off); `counter_cost_us` says what they cost."""
    import tempfile

    plain: list[Ingest] = []
    scraped: list[Ingest] = []
    recorded: list[Ingest] = []
    with tempfile.TemporaryDirectory(prefix="voicegraph-bench-rec-") as tmp:
        async with voicegraph_process() as (url, pid), voicegraph_process(False, "--record", tmp) as (rurl, rpid):
            for u in (url, rurl):
                await drive(u, 1, 50)
            for _ in range(rounds):
                plain.append(await measured(url, pid, sessions, chunks))
                scraped.append(await measured_scraped(url, pid, sessions, chunks))
                recorded.append(await measured(rurl, rpid, sessions, chunks))
    return _median(plain), _median(scraped), _median(recorded)


def counter_cost_us(n: int = 200_000) -> float:
    """What the two counter increments a chunk adds on the audio path cost (µs, this process)."""
    from flow.metrics import Metrics

    m = Metrics()
    t0 = time.perf_counter()
    for _ in range(n):
        m.bytes_in.inc(1280)
        m.audio_seconds.inc(0.04)
    return 1e6 * (time.perf_counter() - t0) / n


async def tap_cost(sessions: int, chunks: int, rounds: int = 3) -> tuple[Ingest, Ingest, Ingest]:
    """(unwatched, dashboard open, dashboard tapping one session): medians over `rounds` runs
    alternating between three servers, so the tap's cost is told apart from the dashboard's. The
    servers (and browsers) start at once: nothing is measured until all three are up."""
    global WATCHER, OPENED
    runs: list[list[Ingest]] = [[], [], []]
    async with contextlib.AsyncExitStack() as stack:
        started = await asyncio.gather(*(stack.enter_async_context(cm) for cm in (
            voicegraph_process(), voicegraph_process(dashboard=True), voicegraph_process(dashboard=True, tap=True))),
            return_exceptions=True)  # every one entered (and so stopped by the stack) before a failure is raised
        for failed in started:
            if isinstance(failed, BaseException):
                raise failed
        servers: list[tuple[str, int]] = started  # type: ignore[assignment]
        OPENED, WATCHER = WATCHERS[servers[1][0]], WATCHERS[servers[2][0]]
        for url, _ in servers:
            await drive(url, 1, 50)
        for _ in range(rounds):
            for (url, pid), results in zip(servers, runs, strict=True):
                results.append(await measured(url, pid, sessions, chunks, TAP_SETTLE_S))
    plain, opened, tapped = (_median(r) for r in runs)
    return plain, opened, tapped


async def graph_cpu_us(tapped: bool, chunks: int = 20_000) -> float:
    """CPU µs per chunk of the offline graph itself (buffer + finalizer, in this process, no
    socket), with a monitor subscribed and the session tapped or not: the tap's own cost per
    chunk of a tapped session, without the noise of a shared machine's sockets and processes."""
    from flow.config import Settings
    from flow.contract.messages import AudioData, AudioFormat, RecordingStarted
    from flow.contract.node import SessionContext
    from flow.contract.resources import Resources
    from flow.graph.loader import graph_path, load_graph
    from flow.graph.runtime import GraphInstance

    resources = Resources(Settings(env={}, preload=False))
    spec = load_graph(graph_path("offline"), env={}, resources=resources)
    sub = resources.monitor.subscribe()
    ctx = SessionContext("bench", resources, asyncio.get_running_loop())
    graph = GraphInstance(spec, ctx)
    if tapped:
        resources.monitor.tap.watch("bench")
    try:
        graph.sources["start"].on_next(RecordingStarted("bench", 1, AudioFormat("pcm16")))
        t0 = time.process_time()
        for i in range(chunks):
            graph.sources["audio"].on_next(AudioData("bench", 1, CHUNK, i))
            if i % 100 == 0:
                sub.drain()  # an observer that keeps up
                await asyncio.sleep(0)  # the loop runs its timers (a run of audio ends)
        return 1e6 * (time.process_time() - t0) / chunks
    finally:
        resources.monitor.tap.unwatch("bench")
        sub.close()
        await ctx.aclose()


async def main_tap(sessions: int, chunks: int, rounds: int) -> None:
    alone = [(await graph_cpu_us(False), await graph_cpu_us(True)) for _ in range(rounds)]
    plain_us, tapped_us = (statistics.median(x[i] for x in alone) for i in (0, 1))
    print(f"| graph alone (offline: buffer + finalizer), 20,000 chunks, median of {rounds} | CPU µs per chunk |")
    print("| --- | --- |")
    print(f"| session not tapped | {plain_us:.1f} |")
    print(f"| session tapped | {tapped_us:.1f} |")
    print()
    plain, opened, tapped = await tap_cost(sessions, chunks, rounds)
    print(f"| ingest, {sessions} sessions x {chunks} PCM16 40 ms chunks, median of {rounds} | chunks/s | "
          "server CPU per chunk (µs) |")
    print("| --- | --- | --- |")
    print(f"| voicegraph, unwatched | {plain.rate:,.0f} | {plain.cpu_us:.0f} |")
    print(f"| voicegraph, dashboard open in headless chromium | {opened.rate:,.0f} | {opened.cpu_us:.0f} |")
    print(f"| voicegraph, {WATCHER} | {tapped.rate:,.0f} | {tapped.cpu_us:.0f} |")
    print(f"| tapped / unwatched | {tapped.rate / plain.rate:.2f} | {plain.cpu_us / tapped.cpu_us:.2f} |")
    print(f"| tapped / dashboard open | {tapped.rate / opened.rate:.2f} | {opened.cpu_us / tapped.cpu_us:.2f} |")
    print(f"(cpus: {os.cpu_count()}; goal: tapped >= 0.95x unwatched)")


async def main(sessions: int, chunks: int, rounds: int) -> None:
    bare, ours = await compare(sessions, chunks, rounds)
    seen = await watched(sessions, chunks)
    print(f"| ingest, {sessions} sessions x {chunks} PCM16 40 ms chunks, median of {rounds} | chunks/s | "
          "server CPU per chunk (µs) |")
    print("| --- | --- | --- |")
    print(f"| bare python-socketio | {bare.rate:,.0f} | {bare.cpu_us:.0f} |")
    print(f"| voicegraph (offline graph: buffer + finalizer) | {ours.rate:,.0f} | {ours.cpu_us:.0f} |")
    print(f"| ratio | {ours.rate / bare.rate:.2f} | {bare.cpu_us / ours.cpu_us:.2f} |")
    print(f"| voicegraph, {WATCHER} | {seen.rate:,.0f} | {seen.cpu_us:.0f} |")
    print(f"(cpus: {os.cpu_count()}; a real-time session needs 25 chunks/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tap", action="store_true", help="the cost of tapping one session instead")
    a = parser.parse_args()
    asyncio.run((main_tap if a.tap else main)(a.sessions, a.chunks, a.rounds))
