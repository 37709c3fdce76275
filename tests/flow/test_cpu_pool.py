"""The shared CPU pool: fair dispatch across owners, and cancellation that reaches the thread.

Jobs here are plain functions that block on `threading.Event`s the test releases, so every order
asserted is forced by the test, never by timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from flow.contract.cpu_pool import CancelToken, CpuPool


@pytest.fixture
def pool():
    p = CpuPool(2, name="test-cpu")
    yield p
    p.shutdown(wait=True, cancel_futures=True)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (on the loop) until `condition()` holds; fail naming `what` after 10 s."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"gave up waiting: {what}")


class Gates:
    """Jobs that log when they start and then wait for the test to release them."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._lock = threading.Lock()
        self.gates: dict[str, threading.Event] = {}

    def job(self, name: str) -> Callable[[], str]:
        gate = self.gates.setdefault(name, threading.Event())

        def run() -> str:
            with self._lock:
                self.started.append(name)
            assert gate.wait(10), f"{name} never released"
            return name

        return run

    def release(self, *names: str) -> None:
        for name in names or tuple(self.gates):
            self.gates[name].set()


async def test_results_errors_and_threads(pool) -> None:
    assert await pool.run(sum, [1, 2, 3]) == 6  # no owner, a builtin without a signature
    with pytest.raises(ZeroDivisionError):
        await pool.run(lambda: 1 / 0, owner="a")
    names = await asyncio.gather(*(pool.run(lambda: threading.current_thread().name, owner=i) for i in range(6)))
    assert set(names) <= {"test-cpu_0", "test-cpu_1"}  # never more threads than the size
    assert threading.current_thread().name not in names


async def test_a_short_job_of_b_starts_before_as_queued_ones(pool) -> None:
    g = Gates()
    a_jobs = [asyncio.create_task(pool.run(g.job(f"a{i}"), owner="a")) for i in range(4)]
    await until(lambda: pool.running("a") == 2 and pool.queued("a") == 2, "a0 and a1 running, a2 and a3 queued")
    b = asyncio.create_task(pool.run(g.job("b"), owner="b"))
    await until(lambda: pool.queued("b") == 1, "b queued")
    g.release("b")
    g.release("a0")  # one worker frees up: it goes to b, not to a's backlog
    assert await b == "b"
    assert g.started[:3] == ["a0", "a1", "b"]
    g.release()
    assert await asyncio.gather(*a_jobs) == ["a0", "a1", "a2", "a3"]


async def test_one_worker_alternates_between_owners() -> None:
    pool = CpuPool(1)
    g = Gates()
    try:
        tasks = [asyncio.create_task(pool.run(g.job(f"a{i}"), owner="a")) for i in range(3)]
        await until(lambda: pool.running("a") == 1, "a0 running")
        tasks += [asyncio.create_task(pool.run(g.job(f"b{i}"), owner="b")) for i in range(3)]
        await until(lambda: pool.queued("b") == 3, "b's jobs queued")
        g.release()
        await asyncio.gather(*tasks)
        assert g.started == ["a0", "b0", "a1", "b1", "a2", "b2"]
    finally:
        pool.shutdown()


async def test_a_cancelled_queued_job_never_runs(pool) -> None:
    g = Gates()
    blockers = [asyncio.create_task(pool.run(g.job(f"x{i}"), owner="x")) for i in range(2)]
    await until(lambda: pool.running("x") == 2, "both workers busy")
    queued = asyncio.create_task(pool.run(g.job("late"), owner="y"))
    await until(lambda: pool.queued("y") == 1, "late queued")
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert pool.queued("y") == 0 and pool.dropped == 1
    g.release()
    await asyncio.gather(*blockers)
    assert await pool.run(lambda: "next") == "next"  # the worker went on to later jobs
    assert "late" not in g.started


async def test_a_cancelled_running_job_gets_its_token_set_and_frees_its_worker(pool) -> None:
    stopped = threading.Event()
    seen: list[CancelToken] = []

    def long_job(cancel: CancelToken) -> str:
        seen.append(cancel)
        halt = threading.Event()
        with cancel.hook(halt.set):  # what a real job does to abort a blocking call
            assert halt.wait(10), "never cancelled"
        stopped.set()
        cancel.raise_if_cancelled()
        return "finished"

    task = asyncio.create_task(pool.run(long_job, owner="a"))
    await until(lambda: pool.running("a") == 1, "long job running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen[0].cancelled
    await until(lambda: pool.running("a") == 0, "the thread let go of the cancelled job")
    assert stopped.is_set()


async def test_a_job_that_ignores_cancel_runs_out_but_its_result_is_dropped(pool) -> None:
    g = Gates()
    task = asyncio.create_task(pool.run(g.job("deaf"), owner="a"))
    await until(lambda: pool.running("a") == 1, "running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.running("a") == 1  # still holding its thread: it cannot be stopped
    g.release()
    await until(lambda: pool.running("a") == 0, "it ran out")


def test_a_hook_fires_once_only_within_its_block() -> None:
    token = CancelToken()
    calls: list[str] = []
    with token.hook(lambda: calls.append("left")):
        pass
    with token.hook(lambda: calls.append("inside")):
        token.cancel()
        token.cancel()
    with token.hook(lambda: calls.append("late")):  # already cancelled: at once
        pass
    assert calls == ["inside", "late"]
    with pytest.raises(asyncio.CancelledError):
        token.raise_if_cancelled()


async def test_shutdown_cancels_queued_and_running_jobs() -> None:
    pool = CpuPool(1)
    tokens: list[CancelToken] = []

    def running(cancel: CancelToken) -> None:
        tokens.append(cancel)
        halt = threading.Event()
        with cancel.hook(halt.set):
            halt.wait(10)
        cancel.raise_if_cancelled()

    first = asyncio.create_task(pool.run(running))
    await until(lambda: pool.running() == 1, "running")
    second = asyncio.create_task(pool.run(running))
    await until(lambda: pool.queued() == 1, "queued")
    pool.shutdown(wait=False, cancel_futures=True)
    for task in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(tokens) == 1 and tokens[0].cancelled  # the queued one never started
    with pytest.raises(RuntimeError, match="shut down"):
        await pool.run(lambda: None)
