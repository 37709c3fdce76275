"""Start a real voicegraph server on a loopback port inside the test's event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from flow.cli import graph_path
from flow.config import Settings
from flow.graph_loader import load_graph, load_graph_text
from flow.resources import Resources
from flow.server import VoicegraphServer, running


@dataclass
class Running:
    server: VoicegraphServer
    url: str


@contextlib.asynccontextmanager
async def voicegraph(
    graph: str = "default",
    *,
    stub: Any = None,
    graph_text: str | None = None,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> AsyncIterator[Running]:
    """A server for `graph` (a bundled name, a path, or YAML text), OpenAI pointed at `stub`."""
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "openai_max_retries": 0}
    if stub is not None:
        values.update(openai_base_url=stub.base_url, openai_api_key="sk-test-key")
    values.update(settings)
    resources = Resources(Settings(**values))
    if graph_text is not None:
        spec = load_graph_text(graph_text, env=env or {}, resources=resources)
    else:
        spec = load_graph(graph_path(graph), env=env or {}, resources=resources)
    server = VoicegraphServer(spec, resources)
    async with running(server, "127.0.0.1", 0) as url:
        yield Running(server, url)


@contextlib.contextmanager
def serve_process(env: dict[str, str], *args: str, timeout: float = 60.0):
    """`voicegraph serve --port 0 ARGS` as a real process (as a user runs it); yields its URL."""
    import os
    import subprocess
    import sys
    import time

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOICEGRAPH_"))}
    full_env.update(env)
    proc = subprocess.Popen([sys.executable, "-m", "flow.cli", "serve", "--host", "127.0.0.1", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError("voicegraph serve exited:\n" + "".join(lines))
            lines.append(line)
            if "listening on " in line:
                yield line.split("listening on ")[1].split()[0]
                return
        raise AssertionError("voicegraph serve did not start:\n" + "".join(lines))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
