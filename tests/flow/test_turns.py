"""TurnWorker: per-turn work is cancelled by a newer turn or a `Cancel`, and failures become messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from flow.config import Settings
from flow.contract.messages import Cancel, NodeFailed
from flow.contract.node import Node, NoParams, SessionContext
from flow.contract.resources import Resources
from flow.contract.turns import TurnWorker


@dataclass(frozen=True)
class Job:
    turn: int
    text: str
    delay: float = 0.0
    fail: bool = False


class Probe(Node[NoParams]):
    """A node that runs jobs through a TurnWorker and records what started, ended, got cancelled."""

    def __init__(self, ctx: SessionContext) -> None:
        super().__init__("probe", NoParams(), ctx)
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.results: list[str] = []
        self.failures: list[NodeFailed] = []
        self.errors.subscribe(self.failures.append)
        self.worker: TurnWorker[Job, str] = TurnWorker(
            self, self.work, "llm_failed", on_failed=lambda job, _e: f"fallback:{job.text}")
        self.worker.output.subscribe(self.results.append)

    async def work(self, job: Job) -> AsyncIterator[str]:
        self.started.append(job.text)
        try:
            await asyncio.sleep(job.delay)
        except asyncio.CancelledError:
            self.cancelled.append(job.text)
            raise
        if job.fail:
            raise RuntimeError("provider exploded")
        yield job.text


def make_ctx() -> SessionContext:
    return SessionContext("s1", Resources(Settings()), asyncio.get_running_loop())


async def settle(ctx: SessionContext) -> None:
    for _ in range(50):
        if ctx.task_count == 0:
            return
        await asyncio.sleep(0.01)


async def test_newer_turn_cancels_older_work() -> None:
    ctx = make_ctx()
    p = Probe(ctx)
    p.worker.submit(Job(1, "old", delay=5))
    await asyncio.sleep(0.01)
    p.worker.submit(Job(2, "new"))
    await settle(ctx)
    assert p.cancelled == ["old"]
    assert p.results == ["new"]
    await ctx.aclose()


async def test_pieces_of_one_turn_keep_their_order() -> None:
    ctx = make_ctx()
    p = Probe(ctx)
    for i, delay in enumerate([0.03, 0.0, 0.01]):
        p.worker.submit(Job(1, f"piece{i}", delay=delay))
    await settle(ctx)
    assert p.results == ["piece0", "piece1", "piece2"]
    await ctx.aclose()


async def test_cancel_stops_work_and_blocks_late_jobs() -> None:
    ctx = make_ctx()
    p = Probe(ctx)
    p.worker.submit(Job(3, "slow", delay=5))
    await asyncio.sleep(0.01)
    p.worker.cancel(Cancel("s1", 3))
    p.worker.submit(Job(3, "late"))
    await settle(ctx)
    assert p.cancelled == ["slow"]
    assert p.results == []
    assert "late" not in p.started
    await ctx.aclose()


async def test_failure_becomes_message_and_fallback() -> None:
    ctx = make_ctx()
    p = Probe(ctx)
    p.worker.submit(Job(1, "boom", fail=True))
    await settle(ctx)
    assert [f.code for f in p.failures] == ["llm_failed"]
    assert p.failures[0].turn == 1 and "provider exploded" in p.failures[0].message
    assert p.results == ["fallback:boom"]
    p.worker.submit(Job(2, "after"))
    await settle(ctx)
    assert p.results[-1] == "after"
    await ctx.aclose()


async def test_close_cancels_everything() -> None:
    ctx = make_ctx()
    p = Probe(ctx)
    p.worker.submit(Job(1, "hanging", delay=60))
    await asyncio.sleep(0.01)
    assert ctx.task_count == 1
    await ctx.aclose()
    assert ctx.task_count == 0
    assert p.cancelled == ["hanging"]


async def test_look_ahead_works_in_parallel_but_emits_in_order() -> None:
    ctx = make_ctx()
    p = Probe(ctx)
    p.worker.concurrency = 2
    for i, delay in enumerate([0.05, 0.0, 0.02, 0.0]):
        p.worker.submit(Job(1, f"piece{i}", delay=delay))
    await asyncio.sleep(0.005)
    assert p.started[:2] == ["piece0", "piece1"] and "piece2" not in p.started  # bounded: two at once
    await settle(ctx)
    assert p.results == ["piece0", "piece1", "piece2", "piece3"]
    await ctx.aclose()


async def test_look_ahead_failure_keeps_order_and_stale_cancels_all() -> None:
    ctx = make_ctx()
    p = Probe(ctx)
    p.worker.concurrency = 2
    p.worker.submit(Job(1, "a", delay=0.02))
    p.worker.submit(Job(1, "b", fail=True))
    p.worker.submit(Job(1, "c"))
    await settle(ctx)
    assert p.results == ["a", "fallback:b", "c"]
    p.worker.submit(Job(2, "slow1", delay=5))
    p.worker.submit(Job(2, "slow2", delay=5))
    await asyncio.sleep(0.01)
    p.worker.cancel(Cancel("s1", 2))
    await settle(ctx)
    assert sorted(p.cancelled) == ["slow1", "slow2"]
    await ctx.aclose()
