"""A graceful stop finishes the reply in flight; `/health` is readiness for a balancer."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import socketio

from flow.testing.client import Recorder
from flow.testing.cluster import TEXT_ONLY, free_port
from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import served, voicegraph


async def _health(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(url + "/health") as r:
        return r.status, await r.json()


async def test_sigterm_lets_the_reply_in_flight_finish_and_takes_no_one_new(tmp_path) -> None:
    graph = tmp_path / "text_only.yaml"
    graph.write_text(TEXT_ONLY)
    async with OpenAIStub() as stub:
        stub.chat.first_token_latency = 1.5  # the reply is in flight when SIGTERM comes
        env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test", "VOICEGRAPH_PRELOAD": "0",
               "VOICEGRAPH_DRAIN_S": "20"}
        with served(env, "--no-ui", "--graph", str(graph)) as s:
            c = await Recorder().connect(s.url)
            try:
                await c.emit("text-message", "finish this please")
                await c.wait("ai-typing", lambda p: p == {"isTyping": True})
                os.kill(s.pid, signal.SIGTERM)
                status, body = 0, {}
                async with asyncio.timeout(5):  # draining: the balancer is told to send no one new
                    while status != 503:
                        status, body = await _health(s.url)
                assert body["status"] == "draining"
                late = Recorder()
                try:
                    await late.connect(s.url)
                    raise AssertionError("a new client was taken while draining")
                except socketio.exceptions.ConnectionError:
                    pass  # refused (connect_error server_full: "this worker is shutting down")
                finally:
                    await late.close()
                reply = await c.wait("ai-response", timeout=15)
                assert reply["text"] == "You said: finish this please. Here is my answer."
                await c.wait("ai-typing", lambda p: p == {"isTyping": False})
            finally:
                await c.close()


async def test_health_is_503_while_the_store_is_unreachable_and_clients_are_still_served(clients) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with voicegraph(graph_text=TEXT_ONLY.replace("remove_nodes", "nodes:\n  llm: {params: {provider: echo}}\n"
                                                       "remove_nodes"), store=dead) as srv:
        status, body = await _health(srv.url)
        assert status == 503 and body["status"] == "unavailable"
        assert body["checks"]["store"].startswith("unreachable") and body["store"] == "redis"
        c = await clients(srv.url)  # a new conversation, kept in this session only
        assert (await c.conversation())["resumed"] is False
        await c.emit("text-message", "still here?")
        assert "turn 1 of" in (await c.wait("ai-response"))["text"]
    async with voicegraph(graph_text=TEXT_ONLY, stub=None) as srv:
        status, body = await _health(srv.url)
        assert status == 200 and body["checks"] == {"store": "ok"} and body["store"] == "memory"
