"""Three workers behind HAProxy or nginx (the shipped configs), sharing a real redis-server: 30 official
socket.io-client conversations (polling, then websocket), one worker SIGKILLed mid-way, and every
conversation continues on a surviving worker, with its own history and nobody else's."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from flow.conversations.redis import KEY_PREFIX
from flow.conversations.store import decode
from flow.testing.cluster import TEXT_ONLY, haproxy, nginx, redis_server, workers
from flow.testing.openai_stub import OpenAIStub

JS = Path(__file__).parent / "js"
CLIENTS = 30
TURNS_BEFORE = 2


def recite(messages: list[dict]) -> str:
    """The stub LLM's answer: every user turn it was given, so a reply shows its whole history."""
    return "heard: " + " | ".join(m["content"] for m in messages if m.get("role") == "user")


async def _health(url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(url + "/health") as r:
        return await r.json()


async def _lines(proc: asyncio.subprocess.Process, want, timeout: float) -> list[dict]:
    """JSON lines from the node client until `want(lines)` is true."""
    got: list[dict] = []
    async with asyncio.timeout(timeout):
        while not want(got):
            line = await proc.stdout.readline()
            if not line:
                raise AssertionError(f"node client ended ({await proc.wait()}): {got[-5:]}\n"
                                     f"{(await proc.stderr.read()).decode()[-2000:]}")
            if line.startswith(b"{"):
                got.append(json.loads(line))
    return got


@pytest.mark.parametrize("balancer", [haproxy, nginx], ids=["haproxy", "nginx"])
async def test_conversations_continue_after_a_worker_is_killed(tmp_path: Path, balancer) -> None:
    graph = tmp_path / "text_only.yaml"
    graph.write_text(TEXT_ONLY)
    async with OpenAIStub(reply=recite) as stub:
        with redis_server() as redis_url:
            env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test", "OPENAI_MAX_RETRIES": "0",
                   "VOICEGRAPH_STORE": redis_url, "VOICEGRAPH_REDIS_URL": redis_url, "VOICEGRAPH_PRELOAD": "0"}
            with workers(3, env, "--no-ui", "--graph", str(graph)) as ws, \
                    balancer([int(w.url.rsplit(":", 1)[1]) for w in ws]) as url:
                redis = aioredis.Redis.from_url(redis_url)
                proc = await asyncio.create_subprocess_exec(
                    "node", str(JS / "conversations.mjs"), url, str(CLIENTS), str(TURNS_BEFORE),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                try:
                    ready = await _lines(proc, lambda got: sum("ready" in g for g in got) == CLIENTS, 60)
                    ids = {g["client"]: g["conversationId"] for g in ready if "ready" in g}
                    assert len(set(ids.values())) == CLIENTS

                    counts = [(await _health(w.url))["sessions"] for w in ws]
                    assert sum(counts) == CLIENTS and all(counts), f"sessions per worker: {counts}"
                    victim = max(range(3), key=lambda i: counts[i])

                    # every conversation's two exchanges are in Redis (saves follow delivery)
                    async with asyncio.timeout(10):
                        while True:
                            stored = {c: decode(await redis.get(KEY_PREFIX + cid) or b"[]") for c, cid in ids.items()}
                            if all(len(h) == TURNS_BEFORE and all(e.heard for e in h) for h in stored.values()):
                                break
                            await asyncio.sleep(0.1)
                    for c, history in stored.items():
                        assert [e.user for e in history] == [f"c{c} t{k}" for k in range(1, TURNS_BEFORE + 1)]

                    os.kill(ws[victim].pid, signal.SIGKILL)
                    await _lines(proc, lambda got: sum("disconnect" in g for g in got) >= counts[victim], 20)
                    proc.stdin.write(b"go\n")
                    await proc.stdin.drain()
                    replies = [g for g in await _lines(
                        proc, lambda got: sum("reply" in g for g in got) == CLIENTS, 60) if "reply" in g]
                finally:
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()
                    await redis.aclose()

    assert len(replies) == CLIENTS
    for r in replies:
        c = r["client"]
        # a client that moved was told its conversation was resumed; the others never noticed
        assert r["conversationId"] == ids[c] and r["resumed"] is (r["connects"] > 1)
        # its own three turns, in order, and no other client's
        assert r["text"] == "heard: " + " | ".join(f"c{c} t{k}" for k in range(1, TURNS_BEFORE + 2)), r
    moved = [r for r in replies if r["connects"] > 1]
    assert len(moved) == counts[victim]
