"""Ingest: audio chunks/s through the graph vs a bare python-socketio server, same run, same client.

`python -m tests.bench.ingest [--sessions N] [--chunks M]`. The client runs in a separate process
(so it does not share the server's CPU core budget unfairly); the server under test runs here.
Each session sends M PCM16 chunks of 40 ms (1280 bytes) of low noise (no speech, so no turns start)
as fast as the socket allows, then asks for an ack: the time to the last ack is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import time

import numpy as np
import socketio
from aiohttp import web

CHUNK = (np.random.default_rng(0).standard_normal(640) * 30).astype("<i2").tobytes()  # -60 dBFS noise


def client_main(url: str, sessions: int, chunks: int, result: multiprocessing.Queue) -> None:
    async def one() -> None:
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(url, transports=["websocket"])
        await sio.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
        for _ in range(chunks):
            await sio.emit("audio-stream", CHUNK)
        await sio.call("ping", timeout=120)  # in order after every chunk
        await sio.disconnect()

    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(sessions)))
        return time.perf_counter() - t0

    result.put(asyncio.run(main()))


def drive(url: str, sessions: int, chunks: int) -> float:
    q: multiprocessing.Queue = multiprocessing.Queue()
    p = multiprocessing.Process(target=client_main, args=(url, sessions, chunks, q))
    p.start()
    seconds = q.get(timeout=300)
    p.join(10)
    return sessions * chunks / seconds


async def bare_server(sessions: int, chunks: int) -> float:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)
    received = 0

    @sio.on("audio-stream")
    async def audio(sid, data):
        nonlocal received
        received += 1

    @sio.on("ping")
    async def ping(sid, *a):
        return "pong"

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    rate = await asyncio.to_thread(drive, f"http://127.0.0.1:{port}", sessions, chunks)
    await runner.cleanup()
    assert received == sessions * chunks, received
    return rate


async def voicegraph_server(sessions: int, chunks: int, dashboard: bool = False) -> float:
    """Chunks/s through the offline graph; with `dashboard`, while a dashboard tab watches."""
    from flow.testing.servers import voicegraph

    async with voicegraph("offline") as srv:
        sio = srv.server.sio

        @sio.on("ping")
        async def ping(sid, *a):
            return "pong"

        if not dashboard:
            return await asyncio.to_thread(drive, srv.url, sessions, chunks)
        async with watching(srv.server, srv.url):
            return await asyncio.to_thread(drive, srv.url, sessions, chunks)


@contextlib.asynccontextmanager
async def watching(server, url: str):
    """The dashboard served in this process and open in a headless Chromium tab (the Sessions view).

    Without chromium/selenium (the bench needs neither), a subscriber folding the same events into
    the dashboard's state stands in for the tab; `WATCHER` says which one ran.
    """
    global WATCHER
    from ui.app import serve_dashboard

    running = await serve_dashboard(server, url, "127.0.0.1", 0)
    browser = await asyncio.to_thread(_open_browser, running.url)
    try:
        if browser is None:
            running.dashboard.open_tab()
            WATCHER = "dashboard state only (no chromium)"
        else:
            WATCHER = "dashboard open in headless chromium"
        if not running.dashboard.watching:  # the page is built during the browser's GET
            raise RuntimeError("the dashboard tab did not open")
        yield
    finally:
        if browser is not None:
            await asyncio.to_thread(browser.quit)
        await running.aclose()


WATCHER = ""


def _open_browser(url: str):
    import shutil

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        return None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.get(url)
    return browser


async def main(sessions: int, chunks: int) -> None:
    bare = await bare_server(sessions, chunks)
    ours = await voicegraph_server(sessions, chunks)
    watched = await voicegraph_server(sessions, chunks, dashboard=True)
    print(f"| ingest, {sessions} sessions x {chunks} PCM16 40 ms chunks | chunks/s |")
    print("| --- | --- |")
    print(f"| bare python-socketio | {bare:,.0f} |")
    print(f"| voicegraph (offline graph: buffer + finalizer) | {ours:,.0f} |")
    print(f"| ratio | {ours / bare:.2f} |")
    print(f"| voicegraph, {WATCHER} | {watched:,.0f} ({watched / ours:.2f}x unwatched) |")
    print(f"(cpus: {os.cpu_count()}; a real-time session needs 25 chunks/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=1500)
    a = parser.parse_args()
    asyncio.run(main(a.sessions, a.chunks))
