"""The shared CPU pool: blocking work that stops when its caller is cancelled, shared fairly by sessions.

`loop.run_in_executor` cannot do either. Cancelling the awaiting task leaves the thread running
(a stale 30-second synthesis kept a core busy after barge-in and made every other session wait),
and its FIFO queue lets one session with many queued jobs make all others wait behind them.

So each job gets a `CancelToken`: cancelling the awaiting task removes the job if it is still
queued, or sets its token if it runs. A function that declares a `cancel` parameter receives the
token and decides how to stop — check it between steps, or `hook` a callback that aborts what
it is blocked in (an onnxruntime run, a child process). A free worker takes the next job of the
owner (session) with the fewest jobs running, least recently served first, so a session's one
job never waits behind another's backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class CancelToken:
    """Set once the job's caller is gone; the job should stop as soon as it can."""

    def __init__(self) -> None:
        self._cancelled = False
        self._hooks: list[Callable[[], None]] = []
        # held while hooks run, so a hook never fires once `hook` has exited (a decoder
        # returned to its pool must not be killed under its next user)
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Mark cancelled and run the hooks now (on the caller's thread: they must be quick)."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            hooks, self._hooks = self._hooks, []
            for hook in hooks:
                hook()

    def raise_if_cancelled(self) -> None:
        """`asyncio.CancelledError` once cancelled: a BaseException, so no `except Exception` eats it."""
        if self._cancelled:
            raise asyncio.CancelledError("cancelled by its caller")

    @contextlib.contextmanager
    def hook(self, on_cancel: Callable[[], None]) -> Iterator[None]:
        """Within the block, a cancel calls `on_cancel` (at once if already cancelled)."""
        with self._lock:
            if self._cancelled:
                on_cancel()
            else:
                self._hooks.append(on_cancel)
        try:
            yield
        finally:
            with self._lock:
                if on_cancel in self._hooks:
                    self._hooks.remove(on_cancel)


@dataclass(eq=False)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    owner: Hashable
    future: asyncio.Future[Any]
    token: CancelToken = field(default_factory=CancelToken)
    state: str = "queued"  # -> "running" -> "done", or "queued" -> "dropped"


@dataclass(eq=False)
class _Lane:
    """One owner's jobs; it exists while the owner has jobs queued or running."""

    queue: deque[_Job] = field(default_factory=deque)
    running: set[_Job] = field(default_factory=set)
    served: int = -1  # dispatch tick of its last job: the lower, the longer it has waited


def _takes_token(fn: Callable[..., Any]) -> bool:
    try:
        return "cancel" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False


class CpuPool:
    """`size` daemon threads, started on demand, running jobs fairly across owners."""

    def __init__(self, size: int, name: str = "voicegraph-cpu") -> None:
        self.size = max(1, size)
        self.name = name
        self.dropped = 0
        """Jobs cancelled while queued, so never run (tests and benchmarks read it)."""
        self._lanes: dict[Hashable, _Lane] = {}
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._ticks = itertools.count()
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any, owner: Hashable = None) -> T:
        """`fn(*args)` on a worker thread (with `cancel=<CancelToken>` if `fn` takes it)."""
        job = _Job(fn, args, owner, asyncio.get_running_loop().create_future())
        with self._cond:
            if self._closed:
                raise RuntimeError("the CPU pool is shut down")
            self._lanes.setdefault(owner, _Lane()).queue.append(job)
            # a woken thread stays counted idle until it takes a job, so compare with all queued jobs
            if sum(len(lane.queue) for lane in self._lanes.values()) > self._idle and \
                    len(self._threads) < self.size:
                self._start_thread()
            self._cond.notify()
        try:
            return await job.future
        except asyncio.CancelledError:
            self._cancel(job)
            raise

    def _cancel(self, job: _Job) -> None:
        with self._cond:
            if job.state == "queued":
                job.state = "dropped"
                self.dropped += 1
                lane = self._lanes[job.owner]
                lane.queue.remove(job)
                self._forget_if_empty(job.owner, lane)
        job.token.cancel()  # outside the pool's lock: hooks may take a moment

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True)
        # daemon: an idle worker never holds up interpreter exit (shutdown() ends them cleanly)
        self._threads.append(thread)
        thread.start()

    def _next(self) -> _Job | None:
        """The next job to run (None: shut down and nothing queued). Caller holds the lock."""
        while True:
            waiting = [(len(lane.running), lane.served, owner) for owner, lane in self._lanes.items() if lane.queue]
            if waiting:
                # fewest running first, then least recently served; ties keep arrival order
                _, _, owner = min(waiting, key=lambda w: w[:2])
                lane = self._lanes[owner]
                job = lane.queue.popleft()
                job.state = "running"
                lane.running.add(job)
                lane.served = next(self._ticks)
                return job
            if self._closed:
                return None
            self._idle += 1
            self._cond.wait()
            self._idle -= 1

    def _forget_if_empty(self, owner: Hashable, lane: _Lane) -> None:
        if not lane.queue and not lane.running:
            del self._lanes[owner]

    def _work(self) -> None:
        while True:
            with self._cond:
                job = self._next()
            if job is None:
                return
            result: Any = None
            error: BaseException | None = None
            kwargs = {"cancel": job.token} if _takes_token(job.fn) else {}
            try:
                result = job.fn(*job.args, **kwargs)
            except BaseException as err:  # handed to the awaiting task, never lost here
                error = err
            with self._cond:
                job.state = "done"
                lane = self._lanes[job.owner]
                lane.running.discard(job)
                self._forget_if_empty(job.owner, lane)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                job.future.get_loop().call_soon_threadsafe(_settle, job, result, error)
            del job, result, error, kwargs  # hold no job while waiting for the next

    def running(self, owner: Hashable = None) -> int:
        """Jobs of `owner` running now (a cancelled one counts until its thread lets go)."""
        with self._cond:
            lane = self._lanes.get(owner)
            return len(lane.running) if lane else 0

    def queued(self, owner: Hashable = None) -> int:
        with self._cond:
            lane = self._lanes.get(owner)
            return len(lane.queue) if lane else 0

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop taking jobs; `cancel_futures` drops the queued ones and cancels the running ones.

        The signature is `ThreadPoolExecutor.shutdown`'s, which this pool replaced.
        """
        queued: list[_Job] = []
        running: list[_Job] = []
        with self._cond:
            self._closed = True
            if cancel_futures:
                for lane in self._lanes.values():
                    queued += lane.queue
                    running += lane.running
                    lane.queue.clear()
                for job in queued:
                    job.state = "dropped"
            self._cond.notify_all()
        for job in queued + running:
            job.token.cancel()
        for job in queued:
            with contextlib.suppress(RuntimeError):  # its loop may be closed already
                job.future.get_loop().call_soon_threadsafe(job.future.cancel)
        if wait:
            for thread in self._threads:
                thread.join()


def _settle(job: _Job, result: Any, error: BaseException | None) -> None:
    """On the loop: hand the outcome to the awaiting task, or cancel it if the job was."""
    if job.future.done():  # the task was cancelled: nobody wants the result
        return
    if job.token.cancelled:
        job.future.cancel()
    elif error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)
