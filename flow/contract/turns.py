"""Per-turn asynchronous work that is cancelled, not merely ignored, when its turn goes stale.

Provider calls (LLM streams, speech synthesis) belong to a user turn. When a newer turn arrives
at a node, or a `Cancel` arrives on the node's `cancel` input (the interrupt gate sends one on an
interrupt, on barge-in, and when a newer turn is accepted), the task doing that turn's work is
cancelled, which closes its HTTP request or stops its offline synthesis. Within one turn,
messages are handled one at a time in arrival order, so the pieces of a reply keep their order.

This is plain asyncio, not Rx scheduling: `submit` runs synchronously when a message arrives
(Subjects deliver on the caller's stack), and the work runs in one task per turn. Rx would say
"latest turn wins" with `switch_latest`, but the rest has no RxPY operator: an ordered merge
that starts up to `concurrency` inner streams at once (Rx's `concatMapEager`), and a cancel that
must reach the asyncio task (and through it the HTTP request or the offline worker) at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.messages import Cancel
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
        self.stale_through = 0
        """Every turn ≤ this was cancelled: its work stopped, its late messages are ignored."""
        self._turn = -1
        self._queue: deque[T] = deque()
        self._task: asyncio.Task | None = None

    def attach(self, source: Observable[T], cancel: Observable[Cancel] | None = None) -> Observable[R]:
        """Consume `source` (and `cancel`, the node's cancel input if wired); results come out of
        the returned observable."""
        self.ctx.disposables.add(source.subscribe(on_next=self.submit, scheduler=self.ctx.scheduler))
        if cancel is not None:
            self.ctx.disposables.add(cancel.subscribe(on_next=self.cancel, scheduler=self.ctx.scheduler))
        return self.output

    def submit(self, msg: T) -> None:
        turn = getattr(msg, "turn", 0)
        if turn <= self.stale_through or turn < self._turn:
            return  # already stale: never start work for it
        if turn > self._turn:
            self._cancel_current()
            self._turn = turn
        self._queue.append(msg)
        if self._task is None or self._task.done():
            self._task = self.ctx.spawn(self._drain(turn), name=f"{self.node.id}-turn{turn}")

    def cancel(self, msg: Cancel) -> None:
        """Stop the work of every turn ≤ `msg.through_turn` (now, not when it next yields)."""
        if msg.through_turn <= self.stale_through:
            return
        self.stale_through = msg.through_turn
        if self._turn <= msg.through_turn:
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
        if self._turn != turn or turn <= self.stale_through:
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
