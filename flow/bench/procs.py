"""The server under test in its own process, so what the bench measures is that process alone.

Clients and the OpenAI-compatible stub run in the bench process (one loop, another core); the
server is a real `voicegraph serve` pointed at the stub, as a user would run it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import Served, served


@contextlib.asynccontextmanager
async def server_process(graph: str, stub: OpenAIStub | None = None, **env: str) -> AsyncIterator[Served]:
    """`voicegraph serve --graph GRAPH --no-ui`, OpenAI pointed at `stub` (retries off)."""
    values = {"OPENAI_MAX_RETRIES": "0", **env}
    if stub is not None:
        values.update(OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="sk-bench")
    cm = served(values, "--no-ui", "--graph", graph)
    running = await asyncio.to_thread(cm.__enter__)
    try:
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
        clients += await asyncio.gather(*(Recorder().connect(url) for _ in range(min(batch, n - i))))
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
    what a server costs including its decoder processes (one ffmpeg per webm recording)."""
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
