"""The server under test in its own process, so what the bench measures is that process alone.

The server is a real `voicegraph serve` pointed at the stub, as a user would run it. The stub runs
in the bench process; the turn-overhead and capacity scenarios put their client fleet in a spawned
process of its own and report its CPU share, so a reader sees whether the load generator was the
limit. With `PROFILE` set, py-spy samples each server process and writes a flame graph.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import Served, served

PROFILE: Path | None = None
"""When set (`voicegraph bench --profile`), every server process the bench starts is sampled by
py-spy and its flame graph written here (`NAME.svg`, then `NAME-2.svg`, …; another suffix than .svg
gives py-spy's raw collapsed stacks, for reading in a terminal)."""
_profiled = 0


@contextlib.asynccontextmanager
async def profiled(pid: int) -> AsyncIterator[None]:
    """py-spy attached to `pid` for the block (if `PROFILE` is set): a sampling profile of the
    server as the scenario drives it, written as a flame graph when the block ends."""
    global _profiled
    if PROFILE is None:
        yield
        return
    import shutil
    import signal
    import subprocess
    import sys

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    _profiled += 1
    out = PROFILE if _profiled == 1 else PROFILE.with_name(f"{PROFILE.stem}-{_profiled}{PROFILE.suffix}")
    proc = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--rate", "200", "--subprocesses", "--nonblocking", "--format",
        "flamegraph" if out.suffix == ".svg" else "raw", "--output", str(out),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    await asyncio.sleep(1.0)  # attached before the scenario starts
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes the flame graph on SIGINT
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            err = b"timed out"
        print(f"flame graph: {out}" if out.exists() else f"py-spy wrote no flame graph: {err.decode()[-500:]}",
              flush=True)


@contextlib.asynccontextmanager
async def server_process(graph: str, stub: OpenAIStub | None = None, **env: str) -> AsyncIterator[Served]:
    """`voicegraph serve --graph GRAPH --no-ui`, OpenAI pointed at `stub` (retries off)."""
    values = {"OPENAI_MAX_RETRIES": "0", **env}
    if stub is not None:
        values.update(OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="sk-bench")
    cm = served(values, "--no-ui", "--graph", graph)
    running = await asyncio.to_thread(cm.__enter__)
    try:
        async with profiled(running.pid):
            yield running
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc), in seconds."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def connect_many(url: str, n: int, batch: int = 25) -> list[Recorder]:
    """`n` connected clients (in batches, so the connect storm itself is not what is measured)."""
    clients: list[Recorder] = []
    for i in range(0, n, batch):
        tried = await asyncio.gather(*(Recorder().connect(url) for _ in range(min(batch, n - i))),
                                     return_exceptions=True)
        clients += [c for c in tried if isinstance(c, Recorder)]
        failed = [e for e in tried if isinstance(e, BaseException)]
        if failed:  # (those that did connect are not left open)
            await close_all(clients)
            raise failed[0]
    return clients


async def close_all(clients: list[Recorder]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (Linux /proc), e.g. the server's ffmpeg decoders."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid`, of its children that have exited (and were waited for) and of the live ones:
    what a server costs including any decoder processes (ffmpeg for wav/mp3 recordings)."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for child in children(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(child)
    return total


def private_bytes(pid: int) -> int:
    """Memory only this process holds (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup):
    for ffmpeg children, RSS would count the shared libraries once per decoder."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1]) * 1024
    return total


def tree_rss_bytes(pid: int) -> int:
    """RSS of `pid` plus its live children's private memory (the decoders' shared libraries are
    paged in once for all of them, so RSS would overstate what another decoder costs)."""
    total = rss_bytes(pid)
    for child in children(pid):
        with contextlib.suppress(OSError, RuntimeError):
            total += private_bytes(child)
    return total
