"""Start a real voicegraph server on a loopback port inside the test's event loop."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from flow.config import Settings
from flow.contract.resources import Resources
from flow.graph.loader import graph_path, load_graph, load_graph_text
from flow.transport.server import VoicegraphServer, running


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
    """A server for `graph` (a bundled name, a path, or YAML text), OpenAI pointed at `stub`.

    `env` is the server's environment, as `voicegraph serve` would read it: providers take their
    settings from it (`env={"OPENAI_TIMEOUT": "0.5"}`) and the graph file its `${VARS}`. Nothing
    comes from the test process's own environment. `settings` are `Settings` fields.
    """
    server_env = {"OPENAI_MAX_RETRIES": "0"}
    if stub is not None:
        server_env.update(OPENAI_BASE_URL=stub.base_url, OPENAI_API_KEY="sk-test-key")
    server_env.update(env or {})
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "preload": False, **settings}
    resources = Resources(Settings(**values, env=server_env))
    if graph_text is not None:
        spec = load_graph_text(graph_text, env=server_env, resources=resources)
    else:
        spec = load_graph(graph_path(graph), env=server_env, resources=resources)
    server = VoicegraphServer(spec, resources)
    async with running(server, "127.0.0.1", 0) as url:
        yield Running(server, url)


@dataclass
class Served:
    """A `voicegraph serve` process: its Socket.IO URL, dashboard URL (if any), pid, and a tally of
    what it logged after start-up."""

    url: str
    ui_url: str | None
    pid: int
    log: ServerLog = field(default_factory=lambda: ServerLog())


@dataclass
class ServerLog:
    """Counts of a served process's log lines (tracebacks, ERROR lines) and the last few of them."""

    lines: int = 0
    tracebacks: int = 0
    errors: int = 0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=50))

    def add(self, line: str) -> None:
        self.lines += 1
        self.tracebacks += line.startswith("Traceback (most recent call last)")
        self.errors += " ERROR " in line
        self.tail.append(line)


@contextlib.contextmanager
def serve_process(env: dict[str, str], *args: str, timeout: float = 60.0):
    """`voicegraph serve --port 0 --no-ui ARGS` as a real process (as a user runs it); yields its URL."""
    with served(env, "--no-ui", *args, timeout=timeout) as s:
        yield s.url


@contextlib.contextmanager
def serve_with_dashboard(env: dict[str, str], *args: str, timeout: float = 60.0):
    """`voicegraph serve --port 0 --ui-port 0 ARGS`; yields (Socket.IO URL, dashboard URL)."""
    with served(env, "--ui-port", "0", *args, timeout=timeout, with_ui=True) as s:
        yield s.url, s.ui_url


@contextlib.contextmanager
def served(env: dict[str, str], *args: str, timeout: float = 60.0, with_ui: bool = False):
    """`voicegraph serve --host 127.0.0.1 --port 0 ARGS` in its own process; yields `Served`."""
    import os
    import subprocess
    import sys
    import threading
    import time

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOICEGRAPH_"))}
    full_env["VOICEGRAPH_DRAIN_S"] = "2"  # stopping it waits at most this for replies in flight
    full_env.update(env)
    proc = subprocess.Popen([sys.executable, "-m", "flow.cli", "serve", "--host", "127.0.0.1", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
    lines: list[str] = []
    url = ui_url = None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (url is None or (with_ui and ui_url is None)):
            line = proc.stdout.readline()
            if not line:
                raise AssertionError("voicegraph serve exited:\n" + "".join(lines))
            lines.append(line)
            if "listening on " in line:
                url = line.split("listening on ")[1].split()[0]
            elif "dashboard on " in line:
                ui_url = line.split("dashboard on ")[1].split()[0]
        if url is None or (with_ui and ui_url is None):
            raise AssertionError("voicegraph serve did not start:\n" + "".join(lines))
        running = Served(url, ui_url, proc.pid)

        def drain() -> None:  # keep reading its output, so a chatty server never blocks on a full pipe
            for line in proc.stdout:
                running.log.add(line)

        threading.Thread(target=drain, daemon=True).start()
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
