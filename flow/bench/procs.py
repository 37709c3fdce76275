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
