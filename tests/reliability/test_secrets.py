"""The API key never leaves the server: not through a graph's `${VAR}`s (errors, `/health`, the
log, `voicegraph serve`'s output), nor through a provider error that echoes the request's headers."""

from __future__ import annotations

import contextlib
import json
import logging
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from flow.cli import main
from flow.graph.loader import GraphError, load_graph, load_graph_text
from flow.redact import REDACTED, redact
from flow.testing.servers import voicegraph

pytestmark = pytest.mark.timeout(60)

KEY = "sk-proj-Zq9UvT3xLm8pRw2Ks7YbNc4Hd6Fg1Je5"
"""An OpenAI-style key."""
PROXY_KEY = "corp-gw-7f3a9b2c1d8e4f60"
"""A key with no recognisable shape (a company gateway's): only knowing it finds it."""
FOUND = "key found in a client payload, log line or /health"
"""The figure: places the key was found in."""

LEAKY_GRAPH = """
version: 1
name: "${OPENAI_API_KEY}"
description: "key ${OPENAI_API_KEY}"
nodes:
  "${OPENAI_API_KEY}": {type: chunk_buffer}
  llm: {type: "${OPENAI_API_KEY}"}
  tts: {type: synthesizer, params: {provider: "${OPENAI_API_KEY}", voice: "${OPENAI_API_KEY:-alloy}"}}
edges:
  - client.text -> ${OPENAI_API_KEY}.turn
"""


def test_a_graph_naming_the_key_is_refused_without_showing_it(caplog: pytest.LogCaptureFixture, figures) -> None:
    caplog.set_level(logging.DEBUG)
    for read_env in (True, False):  # a file of the server, and text from the dashboard editor
        with pytest.raises(GraphError) as info:
            load_graph_text(LEAKY_GRAPH, "g.yaml", env={"OPENAI_API_KEY": KEY}, read_env=read_env)
        shown = str(info.value)
        figures.add(FOUND, (KEY in shown) + (KEY in caplog.text), goal="0")
        assert KEY not in shown and "${OPENAI_API_KEY} in 'name'" in shown
        assert "${OPENAI_API_KEY} in 'type'" in shown and "${OPENAI_API_KEY} in a node id" in shown
        assert "${OPENAI_API_KEY} in 'edges'" in shown and "${OPENAI_API_KEY}: a graph may read only" in shown
    assert KEY not in caplog.text


def test_voicegraph_check_and_serve_show_the_variable_not_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], figures) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    graph = tmp_path / "leaky.yaml"
    graph.write_text(LEAKY_GRAPH, encoding="utf-8")
    assert main(["check", str(graph)]) == 1
    assert main(["serve", "--no-ui", "--port", "0", "--graph", str(graph)]) == 2  # refused before binding
    out = capsys.readouterr()
    figures.add(FOUND, KEY in out.out + out.err)
    assert KEY not in out.out + out.err and "${OPENAI_API_KEY} in 'name'" in out.out + out.err


async def test_health_shows_the_graph_by_name_not_the_key_or_where_it_lives(tmp_path: Path, figures) -> None:
    graph = tmp_path / "mine.yaml"
    graph.write_text("version: 1\nextends: offline\nname: mine\n", encoding="utf-8")
    assert load_graph(graph, env={}).path == str(graph)
    async with (voicegraph(str(graph), env={"OPENAI_API_KEY": KEY}) as srv, aiohttp.ClientSession() as http,
                http.get(srv.url + "/health") as r):
        body = await r.text()
    figures.add(FOUND, KEY in body)
    assert KEY not in body and str(tmp_path) not in body
    assert json.loads(body)["graph"] == {"name": "mine", "path": "mine.yaml"}
    async with voicegraph("offline") as srv, aiohttp.ClientSession() as http, http.get(srv.url + "/health") as r:
        assert (await r.json())["graph"] == {"name": "offline", "path": "graphs/offline.yaml"}


# ---------------------------------------------------------------------- provider errors


class EchoingProxy:
    """An OpenAI-compatible endpoint that refuses every call with a 401 whose body echoes the
    request's `Authorization` header, as some proxies do."""

    def __init__(self) -> None:
        self.base_url = ""
        self.seen: list[str] = []

    async def refuse(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        self.seen.append(auth)
        key = auth.removeprefix("Bearer ")
        message = f"Unauthorized. Received headers: Authorization: {auth}; the key {key} is not valid"
        return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=401)


@contextlib.asynccontextmanager
async def echoing_proxy() -> AsyncIterator[EchoingProxy]:
    proxy = EchoingProxy()
    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", proxy.refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"
    try:
        yield proxy
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("key", [KEY, PROXY_KEY])
async def test_a_401_echoing_the_authorization_header_reaches_no_client_and_no_log(
        key: str, clients, caplog: pytest.LogCaptureFixture, figures) -> None:
    caplog.set_level(logging.DEBUG)
    async with echoing_proxy() as proxy, voicegraph("default", stub=proxy, env={"OPENAI_API_KEY": key}) as srv:
        c = await clients(srv.url)
        await c.emit("text-message", "hello")
        err = await c.wait("error")
        await c.wait("ai-typing", lambda p: p == {"isTyping": False})
        assert proxy.seen == [f"Bearer {key}"]  # the proxy did get the key, and echoed it
        assert err["code"] == "llm_failed" and "HTTP 401" in err["message"] and REDACTED in err["message"]
        figures.add(FOUND, (key in json.dumps(c.events, default=str)) + (key in caplog.text))
        assert key not in json.dumps(c.events, default=str) and key not in caplog.text


def test_redact_finds_labelled_credentials_and_the_configured_ones() -> None:
    env = {"OPENAI_API_KEY": PROXY_KEY, "VOICEGRAPH_TOKEN": "dashboard-token-42", "PATH": "/usr/bin:/bin"}
    text = textwrap.dedent(f"""
        Authorization: Bearer {KEY}
        {{"authorization": "Basic dXNlcjpwYXNzd29yZA=="}} x-api-key: abc123def api_key={KEY}
        key {PROXY_KEY} and token dashboard-token-42, bearer tokenvalue99 from /usr/bin:/bin
        the bearer of good news; risk-assessment ok
        """)
    out = redact(text, env)
    for secret in (KEY, PROXY_KEY, "dashboard-token-42", "dXNlcjpwYXNzd29yZA==", "abc123def", "tokenvalue99"):
        assert secret not in out
    assert "/usr/bin:/bin" in out and "the bearer of good news; risk-assessment ok" in out
    assert redact("Authorization: Bearer x") == f"Authorization: {REDACTED}"
