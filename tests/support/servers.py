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
