"""Per-turn asynchronous work that is cancelled, not merely ignored, when its turn goes stale.

Provider calls (LLM streams, speech synthesis) belong to a user turn. When a newer turn arrives
at a node, or the session marks a turn stale (interrupt, newer turn accepted elsewhere), the
task doing that turn's work is cancelled, which closes its HTTP request or frees its worker.
Within one turn, messages are handled one at a time in arrival order, so the pieces of a reply
keep their order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.node import Node
from flow.contract.providers import ProviderError

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("voicegraph.turns")


class TurnWorker(Generic[T, R]):
    """Runs `work(msg)` (an async generator of results) for the latest turn only.

    `code` is the protocol error code a failure of this work becomes (e.g. `llm_failed`);
    `on_failed(msg)` may emit a fallback result after the failure has been reported.
    """

    def __init__(
        self,
        node: Node[Any],
        work: Callable[[T], AsyncIterator[R]],
        code: str,
        on_failed: Callable[[T, Exception], R | None] | None = None,
        concurrency: int = 1,
    ) -> None:
        self.node = node
        self.ctx = node.ctx
        self.work = work
        self.code = code
        self.on_failed = on_failed
        self.concurrency = concurrency
        """Messages of one turn worked on at once (look-ahead); results still leave in order."""
        self.output: Subject[R] = Subject()
        self._turn = -1
        self._queue: deque[T] = deque()
        self._task: asyncio.Task | None = None
        self.ctx.disposables.add(self.ctx.stale.subscribe(self._on_stale))

    def attach(self, source: Observable[T]) -> Observable[R]:
        """Consume `source`; results come out of the returned observable."""
        self.ctx.disposables.add(
            source.subscribe(on_next=self.submit, scheduler=self.ctx.scheduler)
        )
        return self.output

    def submit(self, msg: T) -> None:
        turn = getattr(msg, "turn", 0)
        if turn <= self.ctx.stale_through or turn < self._turn:
            return  # already stale: never start work for it
        if turn > self._turn:
            self._cancel_current()
            self._turn = turn
        self._queue.append(msg)
        if self._task is None or self._task.done():
            self._task = self.ctx.spawn(self._drain(turn), name=f"{self.node.id}-turn{turn}")

    def _on_stale(self, through: int) -> None:
        if self._turn <= through:
            self._cancel_current()

    def _cancel_current(self) -> None:
        self._queue.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    async def _drain(self, turn: int) -> None:
        if self.concurrency > 1:
            await self._drain_ahead(turn)
            return
        while self._queue and self._turn == turn:
            msg = self._queue.popleft()
            try:
                async for result in self.work(msg):
                    if not self._emit(turn, result):
                        return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._failed(turn, msg, err)

    async def _drain_ahead(self, turn: int) -> None:
        """Start up to `concurrency` messages at once; emit their results in arrival order."""
        pending: deque[asyncio.Future[list[R]]] = deque()
        try:
            while (self._queue or pending) and self._turn == turn:
                while self._queue and len(pending) < self.concurrency:
                    pending.append(asyncio.ensure_future(self._collect(turn, self._queue.popleft())))
                results = await pending[0]
                pending.popleft()
                for result in results:
                    if not self._emit(turn, result):
                        return
        finally:
            for fut in pending:
                fut.cancel()

    async def _collect(self, turn: int, msg: T) -> list[R]:
        try:
            return [r async for r in self.work(msg)]
        except asyncio.CancelledError:
            raise
        except Exception as err:
            fallback = self._failed(turn, msg, err, emit=False)
            return [fallback] if fallback is not None else []

    def _emit(self, turn: int, result: R) -> bool:
        if self._turn != turn or turn <= self.ctx.stale_through:
            return False
        self.ctx.count(self.node.id, "out")
        self.output.on_next(result)
        return True

    def _failed(self, turn: int, msg: T, err: Exception, emit: bool = True) -> R | None:
        if not isinstance(err, ProviderError):
            log.error("node %s failed on turn %s", self.node.id, turn, exc_info=err)
        reason = str(err) or type(err).__name__
        self.node.fail(self.code, f"{self.node.id}: {reason}", turn)
        fallback = self.on_failed(msg, err) if self.on_failed else None
        if emit and fallback is not None:
            self._emit(turn, fallback)
        return fallback
