"""Two workers sharing a real redis-server: one observer sees both workers' sessions, each named
by its worker, and an Apply reaches both (each validates it itself and says so)."""

from __future__ import annotations

import asyncio

from flow.monitor import MonitorEvent, Subscription
from flow.testing.cluster import redis_server
from flow.testing.servers import voicegraph

TEXT_ONLY = """
version: 1
extends: default
name: {name}
nodes:
  llm: {{params: {{provider: echo}}}}
remove_nodes: [tts]
edges:
  - llm.reply -> gate.response
"""


async def _until(sub: Subscription, seen: list[MonitorEvent], done, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not done(seen):
            seen.extend(await sub.batch(1.0))


async def test_one_observer_sees_every_worker_and_apply_reaches_all(clients) -> None:
    with redis_server() as redis_url:
        common = {"graph_text": TEXT_ONLY.format(name="first"), "redis_url": redis_url, "store": redis_url}
        async with voicegraph(worker="w1", **common) as w1, voicegraph(worker="w2", **common) as w2:
            sub = w1.server.resources.monitor.subscribe()  # as a dashboard on w1 does
            w1.server.announce()
            try:
                await clients(w1.url, {"label": "on-w1"})
                await clients(w2.url, {"label": "on-w2"})
                seen: list[MonitorEvent] = []

                def opened(events: list[MonitorEvent]) -> set[tuple[str, str]]:
                    return {(e.server, e.data.get("label")) for e in events if e.kind == "open"}

                await _until(sub, seen, lambda ev: {("w1", "on-w1"), ("w2", "on-w2")} <= opened(ev))

                # a valid graph: both workers apply it and say so
                seen.clear()
                await w1.server.cluster.apply(TEXT_ONLY.format(name="second"))
                await _until(sub, seen, lambda ev: {e.server for e in ev if e.kind == "applied"} == {"w1", "w2"})
                assert all(e.data["ok"] for e in seen if e.kind == "applied")
                assert w1.server.spec.name == w2.server.spec.name == "second"

                # a broken one: each worker refuses it, and keeps serving what it had
                seen.clear()
                await w2.server.cluster.apply("version: 1\nnodes: {x: {type: no_such_node}}\n")
                await _until(sub, seen, lambda ev: {e.server for e in ev if e.kind == "applied"} == {"w1", "w2"})
                refusals = [e.data for e in seen if e.kind == "applied"]
                assert not any(r["ok"] for r in refusals) and all("problem" in r["message"] for r in refusals)
                assert w1.server.spec.name == w2.server.spec.name == "second"

                health = [await w.server.readiness() for w in (w1, w2)]
                assert health == [{"store": "ok", "redis": "ok"}] * 2
            finally:
                sub.close()
